"""Part-2 pages' shared state: which loops to explore, and the cached engine calls.

The loops come from the workspace (each track's top loops, rendered once), a
folder on disk, or a set of generated demo loops. One :class:`engine.explore.LoopLibrary`
per loop set is built once per server (decode + DTW + aspects, all also on
the engine's disk cache) and shared by the contact map, neighbours and map
pages; sharpening settings are re-applied from its cached distances.
"""
from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import streamlit as st

from engine import explore
from engine.errors import LoopLabError

from . import state

SOURCE_KEY = "explore_source"
FOLDER_KEY = "explore_folder"
SOURCES = ("Workspace loops", "A folder on disk", "Demo loops")
#: Libraries kept per server (each holds DTW arrays; 2,000 loops ~ a few MB in scale mode).
MAX_LIBRARIES = 4


@st.cache_data(show_spinner="Preparing the workspace's loops…", max_entries=16)
def _workspace_loops(root: str, signature: str) -> pd.DataFrame:
    df = state._open_workspace(root).loop_files()
    if df.empty:
        return df.assign(label=[])
    df = df.copy()
    df["label"] = [f"{r.original_name} · loop {int(r.default_rank)} · {float(r.bars):g} bars"
                   for r in df.itertuples(index=False)]
    return df


def _signature(ws) -> str:
    c = ws.candidates(top_only=True)
    if c.empty:
        return "empty"
    return json.dumps([c["track_id"].tolist(), c["start_sample"].astype(int).tolist(),
                       c["end_sample"].astype(int).tolist()])


@st.cache_data(show_spinner=False, max_entries=16)
def _folder_loops(folder: str) -> pd.DataFrame:
    from engine.audio import find_audio_files

    files = find_audio_files(folder)
    return pd.DataFrame({"file": [str(f) for f in files],
                         "label": [str(Path(f).relative_to(folder)) for f in files]})


def demo_folder() -> Path:
    return Path(tempfile.gettempdir()) / "looplab-demo-loops"


def loop_table(source: str | None = None) -> pd.DataFrame:
    """``file, label`` (+ workspace columns) of the chosen source; raises LoopLabError."""
    source = source or st.session_state.get(SOURCE_KEY, SOURCES[0])
    if source == "A folder on disk":
        folder = str(st.session_state.get(FOLDER_KEY, "")).strip()
        if not folder:
            return pd.DataFrame(columns=["file", "label"])
        p = Path(folder).expanduser()
        if not p.is_dir():
            raise LoopLabError(f"{folder} is not a folder on this computer")
        return _folder_loops(str(p.resolve()))
    if source == "Demo loops":
        if not st.session_state.get("demo_loops_made"):
            return pd.DataFrame(columns=["file", "label"])
        return _folder_loops(str(demo_folder()))
    ws = state.workspace()
    return _workspace_loops(state.workspace_root(), _signature(ws))


def _make_demo() -> None:
    explore.demo_loops(demo_folder(), n=int(st.session_state.get("demo_n", 12)))
    _folder_loops.clear()
    st.session_state["demo_loops_made"] = True


def _persist(widget_key: str, key: str) -> None:
    st.session_state[key] = st.session_state.get(widget_key)


def source_picker(key: str = "src") -> pd.DataFrame:
    """The loop-source controls (shared by the part-2 pages); returns the loop table.

    The choice lives in plain session keys (:data:`SOURCE_KEY`, :data:`FOLDER_KEY`)
    copied from the widgets, because Streamlit forgets widget state on a page switch.
    """
    ss = st.session_state
    ss.setdefault(SOURCE_KEY, SOURCES[0])
    ss.setdefault(FOLDER_KEY, "")
    ss["_w_" + SOURCE_KEY] = ss[SOURCE_KEY]
    ss["_w_" + FOLDER_KEY] = ss[FOLDER_KEY]
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    c1.segmented_control("Loops from", SOURCES, key="_w_" + SOURCE_KEY,
                         on_change=_persist, args=("_w_" + SOURCE_KEY, SOURCE_KEY),
                         help="Workspace loops: the top loops of every track you added. "
                              "A folder: any folder of loop files. Demo loops: generated drum "
                              "loops to try the page.")
    source = ss.get(SOURCE_KEY) or SOURCES[0]
    if source == "A folder on disk":
        c2.text_input("Folder of loops", key="_w_" + FOLDER_KEY, placeholder="/path/to/loops",
                      on_change=_persist, args=("_w_" + FOLDER_KEY, FOLDER_KEY))
    elif source == "Demo loops":
        c2.button("Generate demo loops", key=f"{key}_demo", on_click=_make_demo,
                  icon=":material/auto_awesome:",
                  help="Writes 12 two-bar drum loops of 6 patterns at 96-140 BPM.")
    try:
        return loop_table(source)
    except (LoopLabError, OSError) as exc:
        st.error(str(exc))
        return pd.DataFrame(columns=["file", "label"])


# --------------------------------------------------------------------------- libraries

@st.cache_resource(show_spinner=False)
def _store() -> OrderedDict:
    return OrderedDict()


def _cache_dir() -> str:
    return str(Path(state.workspace_root()) / "cache")


def library_key(files) -> str:
    return json.dumps([str(f) for f in files])


def cached_library(files):
    """The built library of ``files`` if this server has it, else None."""
    return _store().get(library_key(files))


def library(files, progress=None):
    """Build (once per server) or return the :class:`LoopLibrary` of ``files``."""
    store = _store()
    key = library_key(files)
    if key in store:
        store.move_to_end(key)
        return store[key]
    lib = explore.build_library(list(files), cache_dir=_cache_dir(), progress=progress)
    store[key] = lib
    while len(store) > MAX_LIBRARIES:
        store.popitem(last=False)
    return lib


@st.cache_resource(show_spinner=False, max_entries=64)
def sharpened(lib_key: str, params_json: str, _lib):
    """The contact map for these sharpening settings (engine re-sharpening, no DTW)."""
    from engine.contact import SharpenParams

    return explore.sharpen(_lib, SharpenParams(**json.loads(params_json)))


def build_button(files, label: str, key: str):
    """The library for ``files``: cached, or built when the user clicks ``label``."""
    from .widgets import Progress

    lib = cached_library(files)
    if lib is not None:
        return lib
    if len(files) < 3:
        return None
    if not st.button(label, key=key, type="primary", icon=":material/play_arrow:"):
        return None
    bar = Progress(f"Analysing {len(files)} loops (first time only; cached afterwards)")
    try:
        lib = library(files, progress=bar)
    except (LoopLabError, OSError, ValueError) as exc:
        bar.done("Could not compare these loops", ok=False)
        st.error(str(exc))
        return None
    bar.done(f"{lib.n} loops ready")
    return lib


def names(lib, table: pd.DataFrame) -> dict:
    """file -> display label for a library built from ``table``."""
    look = dict(zip(table["file"].astype(str), table["label"].astype(str))) if len(table) else {}
    return {f: look.get(f, Path(f).name) for f in lib.files}


def play(path: str, caption: str | None = None) -> None:
    """A looping player of a loop file."""
    if caption:
        st.caption(caption)
    import mimetypes

    fmt = mimetypes.guess_type(str(path))[0] or "audio/wav"
    try:
        st.audio(Path(path).read_bytes(), format=fmt, loop=True)
    except OSError as exc:
        st.error(f"Cannot play {Path(path).name}: {exc}")
