"""Part-2 pages in AppTest: neighbours, contact map, tags, library map on generated loops.

(Every page's render on an empty and a populated workspace is in test_app.py,
which iterates over all registered pages.)
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import nav

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def loops_dir(tmp_path_factory):
    from engine.explore import demo_loops

    d = tmp_path_factory.mktemp("loops")
    demo_loops(d, n=12, seed=3)
    return d


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPLAB_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _page(name: str, folder) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    at.switch_page(nav.path(name)).run()
    at.session_state["explore_source"] = "A folder on disk"
    at.session_state["explore_folder"] = str(folder)
    at.run()
    assert not at.exception, at.exception
    return at


def _build(at, key):
    """Click the build/train button (absent when this process already built the library)."""
    if any(b.key == key for b in at.button):
        at.button(key=key).click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _charts(at):
    return at.get("plotly_chart")


def test_contact_map_sharpening_controls_never_rerun_dtw(ws, loops_dir):
    from engine import explore
    from engine.contact.pairwise import DTW_COUNTERS

    at = _page("contact_map", loops_dir)
    _build(at, "cm_build")
    assert len(_charts(at)) == 3                     # raw, sharpened, Fiedler vector
    labels = at.dataframe[0].value
    assert len(labels) == 12 and {"contact_bin", "fiedler_value"} <= set(labels.columns)
    dtw_before = dict(DTW_COUNTERS)
    sharp_before = explore.COUNTERS["sharpen"]
    fig_before = _charts(at)[1].proto.spec
    at.slider(key="cm_k").set_value(3).run()
    assert not at.exception
    fig_k3 = _charts(at)[1].proto.spec
    at.selectbox(key="cm_mode").set_value("sinkhorn").run()
    assert not at.exception
    at.slider(key="cm_iters").set_value(5).run()
    assert not at.exception
    assert DTW_COUNTERS == dtw_before                # no DTW and no DTW cache read
    assert explore.COUNTERS["sharpen"] == sharp_before + 3
    assert fig_k3 != fig_before and _charts(at)[1].proto.spec != fig_k3
    assert any("DTW runs in this server" in c.value for c in at.caption)
    assert any(b.label.startswith("Download all artifacts") for b in at.get("download_button"))


def test_neighbours_table_and_weights(ws, loops_dir):
    at = _page("neighbors", loops_dir)
    _build(at, "nb_build")
    table = at.dataframe[0].value
    assert len(table) == 8
    assert {"Similarity", "Query BPM", "Its BPM", "Pitch fader", "CDJ range", "Key"} \
        <= set(table.columns)
    assert len(at.get("audio")) == 1 + 8             # the query and each neighbour
    for a in ("timbre", "harmony", "tempo"):
        at.slider(key=f"nb_w_{a}").set_value(0.0).run()
    rhythm_only = at.dataframe[0].value
    assert rhythm_only["Similarity"].round(3).tolist() == rhythm_only["Rhythm"].round(3).tolist()
    at.number_input(key="nb_k").set_value(3).run()
    assert len(at.dataframe[0].value) == 3
    before = at.dataframe[0].value["Loop"].tolist()
    at.selectbox(key="nb_query").select_index(1).run()
    assert not at.exception
    assert at.dataframe[0].value["Loop"].tolist() != before



def test_library_map_renders_and_recolours(ws, loops_dir):
    at = _page("library_map", loops_dir)
    _build(at, "map_build")
    assert len(_charts(at)) == 1
    assert any("Click a point" in i.value for i in at.info)
    at.segmented_control(key="map_colour").set_value("BPM").run()
    assert not at.exception and len(_charts(at)) == 1


def test_tags_train_predict_and_filter(ws, loops_dir):
    at = _page("tags", loops_dir)
    at.number_input(key="tg_min").set_value(2).run()
    at.select_slider(key="tg_trees").set_value(100).run()
    _build(at, "tg_train")
    assert any(m.label == "Held-out macro F1" for m in at.metric)
    assert len(_charts(at)) == 1                      # per-tag F1 / prevalence bars
    metrics = at.dataframe[0].value
    assert {"tag", "f1_calibrated", "prevalence", "threshold"} <= set(metrics.columns)
    assert "features hidden from it (leakage)" in metrics.columns
    assert {b.label for b in at.get("download_button")} >= {"Download the model",
                                                            "Download the report (JSON)"}
    at.button(key="tg_predict").click().run()
    assert not at.exception
    pred = at.dataframe[-1].value
    assert len(pred) == 12 and "tags" in pred.columns
    first = sorted({t for s in pred["tags"] for t in s.split(",") if t})[0]
    at.multiselect(key="tg_filter").set_value([first]).run()
    shown = at.dataframe[-1].value
    assert 0 < len(shown) <= 12 and all(first in s.split(",") for s in shown["tags"])


def test_contact_map_of_the_workspace_loops(tmp_path, monkeypatch, populated_workspace):
    """The default source: each analysed track's top loops, labelled by track and rank."""
    import shutil

    root = tmp_path / "full"
    shutil.copytree(populated_workspace, root)
    monkeypatch.setenv("LOOPLAB_WORKSPACE", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    at.switch_page(nav.path("contact_map")).run()
    assert not at.exception
    _build(at, "cm_build")
    labels = at.dataframe[0].value
    assert len(labels) >= 3
    assert all(s.startswith("short 124bpm.wav · loop ") for s in labels["loop"])
