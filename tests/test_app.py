"""Every dashboard page in AppTest, on an empty and on a populated workspace.

The workspace folder comes from $LOOPLAB_WORKSPACE (a temporary copy per test).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import nav

ROOT = Path(__file__).resolve().parent.parent
PAGES = [spec.path for specs in nav.SECTIONS.values() for spec in specs]


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    if page and page != nav.path("home"):
        at.switch_page(page).run()
    return at


@pytest.fixture()
def empty_ws(tmp_path, monkeypatch):
    root = tmp_path / "empty"
    monkeypatch.setenv("LOOPLAB_WORKSPACE", str(root))
    return root


@pytest.fixture()
def full_ws(tmp_path, monkeypatch, populated_workspace):
    root = tmp_path / "full"
    shutil.copytree(populated_workspace, root)
    monkeypatch.setenv("LOOPLAB_WORKSPACE", str(root))
    return root


def test_app_starts(empty_ws):
    at = _app()
    assert at.title[0].value == "LoopLab"
    assert any("DJ- and DAW-ready loops" in m.value for m in at.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_empty_workspace(empty_ws, page):
    at = _app(page)
    assert not at.exception and not at.error
    assert at.title, page


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_populated_workspace(full_ws, page):
    at = _app(page)
    assert not at.exception and not at.error
    if page == nav.path("loop_finder"):
        assert len(at.dataframe) == 1 and len(at.dataframe[0].value) >= 3
    if page == nav.path("upload"):
        assert "short 124bpm.wav" in at.dataframe[0].value["file"].tolist()


def test_demo_track_lists_candidates(empty_ws):
    at = _app()
    demo = next(b for b in at.button if b.label == "Try a demo track")
    demo.click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Loop finder"
    table = at.dataframe[0].value
    assert len(table) == 5 and table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert any("124.0 BPM" in m.value for m in at.markdown)
    # new tracks get the engine's default: the meter is detected, as extract does
    assert at.session_state["set_meter"] == "Detect"
    from engine.library import Workspace

    ws = Workspace(empty_ws)
    assert ws.analysis_config(ws.tracks()["track_id"].iloc[0]).beats_per_bar == 0


def test_label_buttons_store_labels(full_ws):
    from engine.library import Workspace

    at = _app(nav.path("loop_finder"))
    good = [b for b in at.button if b.key and b.key.startswith("all_") and b.key.endswith("_good")]
    bad = [b for b in at.button if b.key and b.key.startswith("all_") and b.key.endswith("_bad")]
    good[0].click().run()
    bad = [b for b in at.button if b.key and b.key.startswith("all_") and b.key.endswith("_bad")]
    bad[1].click().run()
    assert not at.exception
    labels = Workspace(full_ws).labels()
    assert sorted(labels["label"]) == ["bad", "good"]
    assert at.dataframe[0].value["your label"].tolist()[:2] == ["good", "bad"]


def test_k_slider_changes_the_table(full_ws):
    at = _app(nav.path("loop_finder"))
    assert len(at.dataframe[0].value) >= 3          # 16-bar track: 3-5 distinct loops at K=5
    at.slider(key="k").set_value(1).run()
    assert not at.exception and len(at.dataframe[0].value) == 1
    at.slider(key="k").set_value(2).run()
    assert not at.exception and len(at.dataframe[0].value) == 2
    at.pills(key="bars").set_value([2]).run()
    assert set(at.dataframe[0].value["bars"]) == {2}


def test_section_switch_ranks_by_the_model_alone(full_ws, tmp_path):
    """The loop finder's "Keep loops inside one section" switch: off ranks exactly as
    ``extract --no_section_guard`` does; on a generated arrangement whose parts enter and
    leave, that is a different top 5 (phrase-length loops across a change)."""
    from engine.config import RankConfig
    from engine.library import Workspace
    from engine.loopview import format_time, rank_view
    from engine.synth import random_arranged_track

    path = random_arranged_track(900004, max_seconds=40).write(tmp_path / "arranged.wav")
    ws = Workspace(full_ws)
    res = ws.ingest([path])
    assert res[0].ok, res[0].error
    tid = res[0].track_id
    analysis = ws.load_analysis(tid, ws.analysis_config(tid))
    expect = {g: rank_view(analysis, top_k=5, rank_cfg=RankConfig(section_guard=g))[1]
              for g in (True, False)}
    ws.close()
    shown = {g: [(format_time(t), int(b)) for t, b in zip(e["start_time"], e["bars"])]
             for g, e in expect.items()}
    assert shown[True] != shown[False]

    at = _app(nav.path("loop_finder"))
    at.selectbox(key="track").set_value(tid).run()
    assert not at.exception
    assert at.toggle(key="one_section").value is True

    def table():
        t = at.dataframe[0].value
        return list(zip(t["start"], t["bars"].astype(int)))

    assert table() == shown[True]
    at.toggle(key="one_section").set_value(False).run()
    assert not at.exception and not at.error
    assert table() == shown[False]


def test_export_page_builds_a_zip(full_ws):
    import zipfile

    at = _app(nav.path("export"))
    at.button(key="build_zip").click().run()
    assert not at.exception and not at.error
    path = Path(at.session_state["export_zip"])
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert "all_loops_metadata.csv" in names and sum(n.endswith(".wav") for n in names) >= 3
    assert any("K=5" in c.value for c in at.caption)


def test_errors_are_messages_not_tracebacks(empty_ws, tmp_path):
    at = _app(nav.path("upload"))
    at.text_input(key="folder_path").set_value(str(tmp_path / "no such folder")).run()
    at.button(key="add_folder").click().run()
    assert not at.exception
    assert any("not a folder" in e.value for e in at.error)


def test_engine_never_imports_streamlit():
    for py in (ROOT / "engine").rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        assert "import streamlit" not in text and "from streamlit" not in text, py


def test_pages_hold_no_signal_processing():
    """Pages call the engine; they never decode audio or run DSP libraries themselves."""
    for py in list((ROOT / "app_pages").glob("*.py")) + list((ROOT / "dashboard").glob("*.py")):
        text = py.read_text(encoding="utf-8")
        for lib in ("librosa", "soundfile", "scipy.signal", "numpy.fft", "pyloudnorm"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, (py, lib)
