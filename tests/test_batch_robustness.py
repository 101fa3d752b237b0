"""Batches that survive a fresh install, a damaged numba cache, worker deaths,
moved files and repeated runs into the same output folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from engine.config import PipelineConfig, RankConfig
from engine.pipeline import KILL_WORKER_TEST_ENV, run_batch
from engine.synth import synth_track

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Four short generated tracks (8 bars each)."""
    root = tmp_path_factory.mktemp("batch_tracks")
    return [synth_track(bpm, n_bars=8, seed=i, key=k).write(root / f"track{i}.wav")
            for i, (bpm, k) in enumerate([(100, "A minor"), (118, "C major"),
                                          (126, "F minor"), (140, "D major")])]


def _extract(args, numba_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_dir), PYTHONPATH=str(ROOT))
    env.pop(KILL_WORKER_TEST_ENV, None)
    return subprocess.run([sys.executable, "-m", "engine", "extract", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_cold_start_in_parallel_then_a_damaged_cache_is_rebuilt(tracks, tmp_path):
    numba_dir = tmp_path / "numba"          # empty and private: a fresh install
    numba_dir.mkdir()
    folder = tracks[0].parent
    args = ["--folder", str(folder), "--jobs", "2", "--no_cache", "--top_k", "2"]
    proc = _extract([*args, "--out_dir", str(tmp_path / "out1")], numba_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out1" / "run_summary.json").read_text())
    assert summary["n_ok"] == 4 and summary["n_failed"] == 0
    assert list(numba_dir.rglob("*.nbi")), "the warm-up should have filled the private cache"

    # damage every librosa kernel's code file (what concurrent compiles used to leave behind)
    damaged = [p for p in numba_dir.rglob("*.nbc") if p.parent.name.startswith("librosa")]
    assert damaged
    for p in damaged:
        p.write_bytes(os.urandom(max(64, p.stat().st_size)))
    proc = _extract([*args, "--out_dir", str(tmp_path / "out2")], numba_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out2" / "run_summary.json").read_text())
    assert summary["n_ok"] == 4
    assert "rebuilt" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_workers_do_not_rerun_the_parents_main_script(tracks, tmp_path, monkeypatch):
    """Streamlit leaves the page it ran installed as ``__main__``; spawned workers
    must not execute that script again (it opened the workspace database in each
    worker, and two at once died with "database is locked")."""
    import types

    marker = tmp_path / "main_script_ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n"
                      "raise SystemExit('a worker re-ran the parent main script')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    cfg = PipelineConfig(rank=RankConfig(top_k=1), n_jobs=2, use_cache=False)
    out = run_batch(tracks[:2], tmp_path / "out", cfg)
    assert sys.modules["__main__"] is fake                 # put back after the workers started
    assert not marker.exists()
    assert [r.ok for r in out.results] == [True, True], [r.error for r in out.results]


@pytest.mark.slow
def test_a_worker_killed_by_a_signal_costs_only_its_file(tracks, tmp_path, monkeypatch):
    victim = tracks[1].name
    monkeypatch.setenv(KILL_WORKER_TEST_ENV, victim)
    cfg = PipelineConfig(rank=RankConfig(top_k=2), n_jobs=2, use_cache=False)
    out = run_batch(tracks[:3], tmp_path / "out", cfg)
    by_name = {Path(r.path).name: r for r in out.results}
    assert not by_name[victim].ok
    assert "worker process died while analysing" in by_name[victim].error
    assert "signal 11" in by_name[victim].error
    ok = [r for r in out.results if r.ok]
    errors = {Path(r.path).name: r.error for r in out.results if not r.ok}
    assert len(ok) == 2 and all(r.n_exported == 2 for r in ok), errors
    assert len(out.results) == 3      # each file reported once
    agg = pd.read_csv(tmp_path / "out" / "all_loops_metadata.csv")
    assert set(agg["track_id"]) == {p.stem for p in tracks[:3] if p.name != victim}
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["n_failed"] == 1 and victim in summary["files_failed"][0]["file"]
    assert not (tmp_path / "out" / tracks[1].stem).exists()
    assert out.n_failed == 1         # the CLI turns this into exit status 1


def test_moved_and_copied_files_reuse_the_cache_with_their_new_location(tracks, tmp_path):
    cfg = PipelineConfig(rank=RankConfig(top_k=3), cache_dir=str(tmp_path / "cache"))
    first = run_batch([tracks[0]], tmp_path / "out1", cfg)
    assert first.results[0].ok and not first.results[0].from_cache
    moved = tmp_path / "elsewhere" / "renamed track.wav"
    moved.parent.mkdir()
    moved.write_bytes(tracks[0].read_bytes())
    again = run_batch([moved], tmp_path / "out2", cfg)
    r = again.results[0]
    assert r.ok and r.from_cache, r.error
    a, b = first.results[0].metadata, r.metadata
    cols = ["start_time", "end_time", "bars", "bpm", "start_sample", "end_sample", "score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert set(b["track_id"]) == {"renamed track"}
    assert set(b["source_file"]) == {str(moved)}
    assert (tmp_path / "out2" / "renamed track" / b["file"].iloc[0]).is_file()


def test_rerun_into_the_same_out_dir_zips_only_this_run(tracks, tmp_path):
    out_dir = tmp_path / "out"
    # the heuristic ranks here: the loop counts below assume its picks on these short tracks
    # (the default model may fill a short track with two 4-bar loops, leaving no third)
    cfg = PipelineConfig(rank=RankConfig(top_k=2, model_path="heuristic"),
                         cache_dir=str(tmp_path / "cache"), make_zip=True)
    run_batch(tracks[:2], out_dir, replace(cfg, rank=RankConfig(top_k=3, model_path="heuristic")))
    # second run: another track, and track0 again with fewer loops (its folder is replaced)
    second = run_batch([tracks[0], tracks[2]], out_dir, cfg)
    with zipfile.ZipFile(second.zip_path) as zf:
        names = zf.namelist()
        summary = json.loads(zf.read("run_summary.json"))
    tops = {n.split("/")[0] for n in names if "/" in n}
    assert tops == {tracks[0].stem, tracks[2].stem}
    assert "all_loops_metadata.csv" in names
    assert summary["started"] == second.summary["started"]
    assert [Path(f["file"]).name for f in summary["files_ok"]] == [tracks[0].name, tracks[2].name]
    # track0's folder holds exactly this run's 2 loops; track1's folder from run 1 is kept
    wavs = sorted(p.name for p in (out_dir / tracks[0].stem).glob("*.wav"))
    assert len(wavs) == 2 and all(f"{tracks[0].stem}/{w}" in names for w in wavs)
    assert len(list((out_dir / tracks[1].stem).glob("*.wav"))) == 3
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]


def test_cache_key_follows_the_engine_source_and_its_models(tmp_path):
    """A refitted shipped model (same Python source) must not reuse old analyses; the
    command-line front ends do not shape results and do not count."""
    import shutil

    import engine
    from engine.cache import engine_source_hash

    root = tmp_path / "engine"
    shutil.copytree(Path(engine.__file__).parent, root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    base = engine_source_hash(root)
    assert base == engine_source_hash(Path(engine.__file__).parent)
    model = root / "models" / "tempo_octave.json"
    model.write_text(model.read_text() + " ")
    refit = engine_source_hash.__wrapped__(root)
    assert refit != base
    (root / "commands" / "extract.py").write_text("# front end only\n")
    assert engine_source_hash.__wrapped__(root) == refit
