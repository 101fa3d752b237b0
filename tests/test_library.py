"""The workspace (engine/library.py) and the loop-view glue (engine/loopview.py)."""
from __future__ import annotations

import shutil
import threading
import zipfile
from multiprocessing import get_context

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from engine.config import AnalysisConfig, ExportConfig, RankConfig
from engine.errors import LoopLabError
from engine.library import LABEL_CSV_COLUMNS, Workspace, grid_fix, params_key
from engine.loopview import key_text, loop_table, rank_view, waveform_view


@pytest.fixture()
def ws(tmp_path, populated_workspace):
    root = tmp_path / "ws"
    shutil.copytree(populated_workspace, root)
    return Workspace(root)


def test_ingest_reports_every_file_in_plain_words(tmp_path, short_track):
    ws = Workspace(tmp_path / "ws")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all")
    seen = []
    res = ws.ingest([short_track[1], empty, text],
                    progress=lambda d, t, m: seen.append((d, t, m)))
    ok, bad1, bad2 = res
    # the model's top loops are phrase-length, and distinct
    assert ok.ok and abs(ok.bpm - 124.0) < 1.0 and ok.key == "A minor" and ok.n_loops >= 2
    assert not bad1.ok and "empty.wav" in bad1.error and "empty" in bad1.error
    assert not bad2.ok and "notes.mp3" in bad2.error and "not a readable audio file" in bad2.error
    for r in (bad1, bad2):
        assert "Traceback" not in r.error and "said:" not in r.error
    assert seen[-1][0] == seen[-1][1] == 3 and all(0 <= d <= t for d, t, _ in seen)
    # stored by content hash, original name kept as data; failures leave nothing behind
    tracks = ws.tracks()
    assert list(tracks["original_name"]) == ["short 124bpm.wav"]
    assert [p.name for p in (ws.root / "audio").iterdir()] == [f"{ok.track_id}.wav"]
    assert ws.runs("ingest")[0]["n_failed"] == 2


def test_hostile_names_never_become_paths(tmp_path, short_track):
    ws = Workspace(tmp_path / "ws")
    data = short_track[1].read_bytes()
    res = ws.ingest([("../../evil name.wav", data)])
    assert res[0].ok
    assert ws.tracks()["original_name"].tolist() == ["../../evil name.wav"]
    assert ws.audio_path(res[0].track_id).parent == ws.root / "audio"
    assert not (tmp_path / "evil name.wav").exists()
    again = ws.ingest([("copy.wav", data)])[0]             # same bytes: same track
    assert again.already_there and again.track_id == res[0].track_id and ws.n_tracks() == 1


def test_restart_reloads_without_reanalysis(ws):
    tid = ws.tracks()["track_id"].iloc[0]
    ws2 = Workspace(ws.root)                                  # a server restart
    a = ws2.load_analysis(tid)
    assert a.from_cache and abs(a.grid.bpm - 124.0) < 1.0
    cands = ws2.candidates(tid)
    assert len(cands) == len(a.candidates) and cands["default_rank"].notna().sum() >= 3


def test_rank_view_and_table(ws):
    tid = ws.tracks()["track_id"].iloc[0]
    a = ws.load_analysis(tid)
    _, sel = rank_view(a, top_k=3, bars=[2])
    assert len(sel) == 3 and set(sel["bars"]) == {2}
    _, sel1 = rank_view(a, top_k=1)
    assert len(sel1) == 1 and {"start_sample", "end_sample"} <= set(sel1.columns)
    assert sel1["start_sample"].iloc[0] == round(sel1["start_time"].iloc[0] * a.info.sr)
    view = waveform_view(a)
    assert view.bars.size >= 8 and np.all(np.diff(view.bars) > 0) and view.times.size > 100
    ws.add_label(tid, sel["start_time"].iloc[0], sel["end_time"].iloc[0], "good",
                 start_sample=sel["start_sample"].iloc[0], end_sample=sel["end_sample"].iloc[0])
    table = loop_table(sel, ws.labels(tid))
    assert table["your label"].tolist() == ["good", "", ""]
    assert {"rank", "start", "bars", "BPM", "key", "Camelot", "score"} <= set(table.columns)
    # the table's score is the loop's standing among the track's candidates (0-1)
    assert table["score"].between(0.0, 1.0).all()
    # the dashboard ranks as extract does: with the shipped loop-quality model
    assert sel1["score_source"].iloc[0] == "model:loop_ranker"
    _, heur = rank_view(a, top_k=1, rank_cfg=RankConfig(model_path="heuristic"))
    assert heur["score_source"].iloc[0] == "heuristic"


def test_score_share():
    from engine.loopview import score_share

    np.testing.assert_allclose(score_share([-1.0, 0.5, 2.0, 3.0], [3.0, 0.5, -2.0]),
                               [1.0, 0.5, 0.0])
    assert score_share([], [1.0]).tolist() == [0.0]


def test_key_text_drops_missing_values():
    assert key_text("F# minor", "11A") == "F# minor (11A)"
    assert key_text("no clear key", float("nan")) == "no clear key"
    assert key_text(None, None) == "" and key_text(float("nan")) == ""


def test_grid_fix_settings():
    cfg = AnalysisConfig()
    assert grid_fix(cfg, 124.0, "double").bpm == 248.0
    assert grid_fix(cfg, 124.0, "half").bpm == 62.0
    with pytest.raises(LoopLabError):
        grid_fix(cfg, 248.0, "double")
    s = grid_fix(grid_fix(cfg, 124.0, "shift"), 124.0, "shift")
    assert s.downbeat_offset == 2 and grid_fix(s, 124.0, "shift").downbeat_offset == 3
    assert grid_fix(grid_fix(s, 124.0, "shift"), 124.0, "shift").downbeat_offset == 0
    assert grid_fix(s, 124.0, "reset") == cfg
    # typed tempo (a 3/2 reading corrected to 2/3 of it): bar one goes back to the engine's
    t = grid_fix(s, 153.0, "set", bpm=102.0)
    assert t.bpm == 102.0 and t.downbeat_offset == 0
    with pytest.raises(LoopLabError):
        grid_fix(cfg, 124.0, "set", bpm=500.0)
    with pytest.raises(ValueError):
        grid_fix(cfg, 124.0, "set")
    # a nudge of the whole grid adds up, survives a bar-one shift, goes with a new tempo
    n = grid_fix(grid_fix(cfg, 124.0, "nudge", shift_ms=10), 124.0, "nudge", shift_ms=-25)
    assert n.grid_shift_ms == -15.0
    assert grid_fix(n, 124.0, "shift").grid_shift_ms == -15.0
    assert grid_fix(n, 124.0, "double").grid_shift_ms == 0.0
    assert grid_fix(n, 124.0, "reset") == cfg
    assert params_key(n) != params_key(cfg)
    with pytest.raises(LoopLabError):
        grid_fix(cfg, 124.0, "nudge", shift_ms=2500)
    with pytest.raises(ValueError):
        grid_fix(cfg, 124.0, "nudge")
    assert params_key(grid_fix(cfg, 124.0, "double")) != params_key(cfg)
    with pytest.raises(ValueError):
        grid_fix(cfg, 124.0, "triple")


def test_grid_fix_recuts_and_persists(ws):
    tid = ws.tracks()["track_id"].iloc[0]
    before = ws.load_analysis(tid)
    shifted = grid_fix(ws.analysis_config(tid), before.grid.bpm, "shift")
    after = ws.set_analysis_config(tid, shifted)
    step = before.grid.beat_period
    d = (after.grid.downbeats[0] - before.grid.downbeats[0]) % before.grid.bar_duration
    assert abs(d - step) < 0.03                       # bar one moved one beat later
    reopened = Workspace(ws.root)
    assert reopened.analysis_config(tid).downbeat_offset == 1
    assert reopened.tracks()["downbeat_offset"].iloc[0] == 1


def test_preview_is_the_exported_loop(ws):
    tid = ws.tracks()["track_id"].iloc[0]
    a = ws.load_analysis(tid)
    _, sel = rank_view(a, top_k=1, bars=[4])
    s, e = int(sel["start_sample"].iloc[0]), int(sel["end_sample"].iloc[0])
    p = ws.loop_preview(tid, s, e, ExportConfig(seam_mode="crossfade"))
    info = sf.info(str(p))
    assert info.frames == e - s and info.samplerate == a.info.sr and info.channels == 2
    assert ws.loop_preview(tid, s, e, ExportConfig(seam_mode="crossfade")) == p   # cached


def test_export_zip_members_and_columns(ws, tmp_path):
    tid = ws.tracks()["track_id"].iloc[0]
    _, sel = rank_view(ws.load_analysis(tid), top_k=3)
    ws.add_label(tid, sel["start_time"].iloc[1], sel["end_time"].iloc[1], "bad")
    res = ws.export_zip([(tid, sel)], ExportConfig(export_mp3=True))
    assert res.n_loops == 3 and not res.failed
    names = res.members
    assert "all_loops_metadata.csv" in names and "user_labels.csv" in names
    assert "run_summary.json" in names
    assert sum(n.endswith(".wav") for n in names) == 3 and sum(n.endswith(".mp3") for n in names) == 3
    assert "short 124bpm/short 124bpm__01_" in " ".join(names)
    with zipfile.ZipFile(res.zip_path) as zf:
        zf.extractall(tmp_path / "x")
    meta = pd.read_csv(tmp_path / "x" / "all_loops_metadata.csv")
    assert list(meta.columns[:5]) == ["track_id", "start_time", "end_time", "bars", "bpm"]
    assert set(meta["track_id"]) == {"short 124bpm"}
    labels = pd.read_csv(tmp_path / "x" / "user_labels.csv")
    assert list(labels.columns) == list(LABEL_CSV_COLUMNS)


def _label_many(root, tid, worker, n):
    ws = Workspace(root)
    for i in range(n):
        ws.add_label(tid, worker * 100 + i, worker * 100 + i + 1.5, "good" if i % 2 else "bad",
                     client=f"w{worker}")


def test_concurrent_writers_lose_nothing(ws):
    """Two processes and two threads label at once: every label is stored."""
    tid = ws.tracks()["track_id"].iloc[0]
    ctx = get_context("spawn")
    procs = [ctx.Process(target=_label_many, args=(str(ws.root), tid, w, 40)) for w in (1, 2)]
    threads = [threading.Thread(target=_label_many, args=(str(ws.root), tid, w, 40))
               for w in (3, 4)]
    for p in procs + threads:
        p.start()
    for p in procs + threads:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    labels = ws.labels(latest_only=False)
    assert len(labels) == 160 and labels["client"].value_counts().to_dict() == \
        {"w1": 40, "w2": 40, "w3": 40, "w4": 40}


def test_labels_csv_latest_wins(ws, tmp_path):
    tid = ws.tracks()["track_id"].iloc[0]
    ws.add_label(tid, 1.0, 2.0, "good")
    ws.add_label(tid, 1.0, 2.0, "bad")
    ws.add_label(tid, 3.0, 4.0, "good")
    out = ws.labels_csv(tmp_path / "labels.csv")
    back = pd.read_csv(tmp_path / "labels.csv")
    assert list(back.columns) == ["source_file", "start_time", "end_time", "label"]
    assert back["label"].tolist() == ["bad", "good"] and len(out) == 2
    assert back["source_file"].str.endswith(".wav").all()
    with pytest.raises(ValueError):
        ws.add_label(tid, 1.0, 2.0, "maybe")


def test_loop_files_for_part_two_pages(ws):
    files = ws.loop_files()
    assert len(files) >= 3 and files["default_rank"].tolist()[:3] == [1, 2, 3]
    for r in files.itertuples(index=False):
        info = sf.info(r.file)
        assert abs(info.duration - (r.end_time - r.start_time)) < 0.01


def test_waveform_view_bounds_points_and_keeps_time_axis(ws):
    tid = ws.tracks()["track_id"].iloc[0]
    a = ws.load_analysis(tid)
    full = waveform_view(a, points=10_000)
    small = waveform_view(a, points=500)
    assert small.times.size <= 500 and full.times.size == a.overview.shape[1]
    assert small.times[-1] <= a.info.duration and small.times[-1] > 0.95 * a.info.duration
    assert small.high.max() == pytest.approx(full.high.max())      # peaks survive
    assert small.low.min() == pytest.approx(full.low.min())
