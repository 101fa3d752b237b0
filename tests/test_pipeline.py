"""End to end: generated tracks in, seam-safe bar-aligned loops out; bad files skipped."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from engine.cli import main as cli_main
from engine.config import AnalysisConfig, PipelineConfig, RankConfig
from engine.loudness import measure_loudness
from engine.pipeline import analyse_track, collect_inputs, run_batch
from engine.cache import DiskCache
from engine.synth import synth_track

TRACKS = [  # name, bpm, beats_per_bar, swing, patterns
    ("deep 70", 70, 4, 0.0, None),
    ("swing 112", 112, 4, 0.3, None),
    ("dnb 174", 174, 4, 0.0, ("breakbeat", "four_on_floor")),
    ("waltz 90", 90, 3, 0.0, None),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    truths = {}
    for i, (name, bpm, bpb, swing, pats) in enumerate(TRACKS):
        tr = synth_track(bpm, beats_per_bar=bpb, n_bars=24, swing=swing, patterns=pats,
                         key=["A minor", "E major", "F minor", "G major"][i], sr=44100,
                         stereo=True, seed=10 + i, lead_in_beats=1 + i % 3)
        path = tr.write(root / f"{name}.wav")
        truths[path.name] = tr.truth
    return root, truths


def _cfg(tmp_path, bpb=4, **kw):
    return PipelineConfig(analysis=AnalysisConfig(beats_per_bar=bpb), rank=RankConfig(top_k=4),
                          cache_dir=str(tmp_path / "cache"), **kw)


def _seam_ok(x):
    """Largest jump across the wrap <= largest jump within the first/last 50 ms."""
    sr_guess = 44100
    m = int(0.05 * sr_guess)
    seam = np.abs(x[0] - x[-1]).max()
    inner = max(np.abs(np.diff(x[:m], axis=0)).max(), np.abs(np.diff(x[-m:], axis=0)).max())
    return seam <= inner + 1e-6


@pytest.mark.slow
def test_batch_exports_bar_aligned_seam_safe_loops(library, tmp_path):
    root, truths = library
    results = []
    for name, bpm, bpb, *_ in TRACKS:
        path = root / f"{name}.wav"
        out = run_batch([path], tmp_path / "out", _cfg(tmp_path, bpb))
        assert out.n_failed == 0, out.summary["files_failed"]
        results.append(out.results[0])
    starts_ok, n_loops = 0, 0
    for r in results:
        truth = truths[r.path.split("/")[-1]]
        meta = r.metadata
        assert len(meta) == 4
        assert abs(r.bpm - truth.bpm) / truth.bpm < 0.02
        assert r.key == truth.key
        assert meta["camelot"].notna().all()
        bar = truth.beats_per_bar * 60.0 / truth.bpm
        for _, row in meta.iterrows():
            wav = f"{r.out_dir}/{row['file']}"
            x, sr = sf.read(wav, always_2d=True)
            assert sr == 44100 and x.shape[1] == 2                       # rate and stereo kept
            assert sf.info(wav).subtype == "PCM_24"
            start = row["export_start_sample"] / sr
            starts_ok += np.min(np.abs(truth.downbeats - start)) < 0.030
            n_loops += 1
            n_bars = len(x) / sr / bar
            assert abs(n_bars - round(n_bars)) * bar < 0.030              # whole bars
            assert round(n_bars) == row["bars"]
            assert np.abs(x).max() < 1.0                                  # never full scale
            assert _seam_ok(x)
            lufs = measure_loudness(x, sr)
            if not row["ceiling_limited"]:
                assert abs(lufs - (-14.0)) <= 0.5
            else:
                assert 20 * np.log10(np.abs(x).max()) <= -1.0 + 0.01
    assert starts_ok / n_loops >= 0.95


def test_batch_skips_bad_files_and_reports_them(library, tmp_path):
    root, _ = library
    folder = tmp_path / "mixed"
    (folder / "sub dir").mkdir(parents=True)
    good = synth_track(126, n_bars=12, sr=44100, seed=5)
    good.write(folder / "sub dir" / "Café Ñandú 東京 mix.wav")
    (folder / "zero.wav").write_bytes(b"")
    (folder / "readme.wav").write_text("not audio")
    sf.write(folder / "blip.wav", np.full((13230, 2), 0.1, np.float32), 44100)
    sf.write(folder / "silence.wav", np.zeros((88200, 2), np.float32), 44100)
    nan = good.audio[:88200].copy()
    nan[500:600] = np.nan
    sf.write(folder / "nan.wav", nan, 44100, subtype="FLOAT")
    paths = collect_inputs(folder=folder)
    out = run_batch(paths, tmp_path / "out", _cfg(tmp_path))
    s = out.summary
    assert s["n_files"] == 6 and s["n_ok"] == 1 and s["n_failed"] == 5
    failed = {f["file"].split("/")[-1]: f["error"] for f in s["files_failed"]}
    assert "empty" in failed["zero.wav"]
    assert "not a readable audio file" in failed["readme.wav"]
    assert "too short" in failed["blip.wav"]
    assert "silent" in failed["silence.wav"]
    assert "NaN" in failed["nan.wav"]
    saved = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert saved["n_failed"] == 5
    agg = pd.read_csv(tmp_path / "out" / "all_loops_metadata.csv")
    assert len(agg) == 4 and set(agg["track_id"]) == {"Café Ñandú 東京 mix"}
    for col in ("track_id", "start_time", "end_time", "bars", "bpm", "source_file", "rank",
                "key", "camelot", "key_confidence", "score", "score_source"):
        assert col in agg.columns
    assert (agg["score_source"] == "model:loop_ranker").all()     # the shipped default model


def test_analysis_cache_is_reused(library, tmp_path):
    root, _ = library
    path = root / "deep 70.wav"
    cache = DiskCache(tmp_path / "c")
    a = analyse_track(path, AnalysisConfig(), cache=cache)
    b = analyse_track(path, AnalysisConfig(), cache=cache)
    assert not a.from_cache and b.from_cache
    pd.testing.assert_frame_equal(a.candidates, b.candidates)
    c = analyse_track(path, replace(AnalysisConfig(), bars=(4,)), cache=cache)
    assert not c.from_cache and set(c.candidates.bars) == {4}


def test_cli_extract_folder_with_zip_and_failure_exit_code(library, tmp_path):
    root, _ = library
    folder = tmp_path / "cli"
    folder.mkdir()
    synth_track(120, n_bars=10, sr=44100, seed=7).write(folder / "../evil name.wav")
    (folder / "good.wav").write_bytes((tmp_path / "evil name.wav").read_bytes())
    (folder / "bad.wav").write_text("nope")
    rc = cli_main(["extract", "--folder", str(folder), "--out_dir", str(tmp_path / "o"),
                   "--bars", "2,4", "--top_k", "2", "--zip", "--export_mp3", "--jobs", "1",
                   "--cache_dir", str(tmp_path / "cache")])
    assert rc == 1                                  # one file failed
    import zipfile

    names = zipfile.ZipFile(tmp_path / "o" / "loops_export.zip").namelist()
    assert any(n.endswith(".wav") for n in names) and any(n.endswith(".mp3") for n in names)
    assert all(not n.startswith("/") and ".." not in n for n in names)
    meta = pd.read_csv(tmp_path / "o" / "good" / "loops_metadata.csv")
    assert set(meta["bars"]) <= {2, 4} and len(meta) == 2


@pytest.mark.slow
def test_dask_backend_on_a_local_cluster(library, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, _ = library
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        paths = [root / "deep 70.wav", root / "swing 112.wav"]
        cfg = replace(_cfg(tmp_path), backend="dask", scheduler=cluster.scheduler_address)
        out = run_batch(paths, tmp_path / "out", cfg)
        assert out.summary["n_ok"] == 2
        assert len(pd.read_csv(tmp_path / "out" / "all_loops_metadata.csv")) == 8
    finally:
        cluster.close()


def test_pooled_embeddings_are_added_and_named(library, tmp_path):
    root, _ = library
    a = analyse_track(root / "swing 112.wav", AnalysisConfig(embedding="spectral", bars=(2, 4)))
    assert a.embedding_backend == "spectral"
    emb = [c for c in a.candidates.columns if c.startswith("emb_mean_")]
    assert len(emb) > 10 and a.candidates[emb].notna().all().all()
    # different loops get different vectors
    assert a.candidates[emb].std().max() > 0


@pytest.mark.parametrize("sr,channels,subtype", [(8000, 1, "PCM_16"), (192000, 2, "FLOAT"),
                                                 (48000, 6, "PCM_24")])
def test_unusual_sources_keep_rate_and_channels(tmp_path, sr, channels, subtype):
    tr = synth_track(122, n_bars=10, sr=sr, stereo=channels > 1, seed=sr % 97)
    audio = tr.audio if channels <= 2 else np.tile(tr.audio, (1, channels // 2)) * 0.7
    path = tmp_path / f"src {sr} {channels}ch.wav"
    sf.write(path, audio, sr, subtype=subtype)
    out = run_batch([path], tmp_path / "out", replace(_cfg(tmp_path), rank=RankConfig(top_k=2)))
    assert out.n_failed == 0, out.summary["files_failed"]
    r = out.results[0]
    assert abs(r.bpm - 122) / 122 < 0.02
    for f in r.metadata["file"]:
        info = sf.info(f"{r.out_dir}/{f}")
        assert info.samplerate == sr and info.channels == channels


def test_progress_callback_reports_every_stage(library):
    root, _ = library
    seen = []
    analyse_track(root / "waltz 90.wav", AnalysisConfig(beats_per_bar=3),
                  progress=lambda done, total, msg: seen.append((done, total, msg)))
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1]
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert any("bars" in m for _, _, m in seen)


def test_a_trained_model_is_used_and_reported(library, tmp_path):
    import json as _json

    import xgboost as xgb

    from engine.features import FEATURE_COLUMNS
    from engine.pipeline import rank_track
    from engine.scoring import LoopScorer

    root, _ = library
    a = analyse_track(root / "deep 70.wav", AnalysisConfig())
    X = a.candidates[FEATURE_COLUMNS].to_numpy(float)
    y = a.candidates["bar_repetition"].to_numpy(float)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y, feature_names=FEATURE_COLUMNS), 5)
    booster.save_model(tmp_path / "m.json")
    (tmp_path / "m.features.json").write_text(_json.dumps(FEATURE_COLUMNS))
    scored, top = rank_track(a, RankConfig(top_k=3), LoopScorer.load(tmp_path / "m.json"))
    assert (scored["score_source"] == "model:m").all() and len(top) == 3
    with pytest.raises(Exception, match="lack features"):
        LoopScorer.load(tmp_path / "m.json").predict(a.candidates.drop(columns=["bar_repetition"]))


def test_cli_grid_corrections_and_confidences_are_reported(library, tmp_path):
    root, truths = library
    path = root / "deep 70.wav"
    truth = truths[path.name]
    out = tmp_path / "o"
    rc = cli_main(["extract", "--input", str(path), "--out_dir", str(out), "--bars", "1",
                   "--top_k", "3", "--jobs", "1", "--no_cache", "--bpm", "140",
                   "--downbeat_offset", "1", "--beats_per_bar", "4"])
    assert rc == 0
    meta = pd.read_csv(out / "deep 70" / "loops_metadata.csv")
    assert np.allclose(meta["bpm"], 140.0)
    assert (meta["meter"] == "4/4").all()
    assert meta["tempo_confidence"].between(0, 1).all() and meta["bar_confidence"].between(0, 1).all()
    # at double tempo a "bar" is half a true bar; shifted by one (double-time) beat, no loop
    # starts on a true bar line
    assert all(np.min(np.abs(truth.downbeats - s)) > 0.1 for s in meta["start_time"])
    summary = json.loads((out / "run_summary.json").read_text())
    f = summary["files_ok"][0]
    assert f["bpm_fixed"] and f["downbeat_offset"] == 1 and f["meter"] == "4/4"
    for k in ("tempo_confidence", "bar_confidence", "beat_confidence", "meter_confidence"):
        assert 0.0 <= f[k] <= 1.0


def test_grid_warnings_ask_to_check_an_uncertain_grid_but_not_what_the_user_set():
    from engine.pipeline import BAR_UNCERTAIN, TEMPO_UNCERTAIN, grid_warnings
    from engine.rhythm import RhythmGrid

    beats = np.arange(0.0, 8.0, 0.5)
    grid = RhythmGrid(bpm=153.0, beats=beats, downbeats=beats[::4], beats_per_bar=4, bar_phase=0,
                      confidence=0.9, bar_confidence=0.9, constant_tempo=True,
                      tempo_confidence=0.9)
    assert grid_warnings(grid) == []
    unsure = replace(grid, tempo_confidence=TEMPO_UNCERTAIN / 2, bar_confidence=BAR_UNCERTAIN / 2)
    w = grid_warnings(unsure)
    assert len(w) == 2 and "tempo is uncertain" in w[0] and "153.0 BPM" in w[0]
    assert "bar lines are uncertain" in w[1]
    # a tempo the user typed and a bar one the user moved are not questioned
    assert grid_warnings(replace(unsure, bpm_fixed=True, downbeat_offset=1)) == []


def test_extract_input_given_a_folder_says_to_use_folder(tmp_path):
    """``extract --input DIR`` stops before any work and names the flag to use."""
    from engine.cli import main

    (tmp_path / "tracks").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--input", str(tmp_path / "tracks"), "--out_dir", str(tmp_path / "out")])
    assert "is a folder" in str(exc.value) and f"--folder {tmp_path / 'tracks'}" in str(exc.value)
    assert not (tmp_path / "out").exists()
