"""The sidebar every page shows: the workspace folder, its contents, analysis settings."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.errors import LoopLabError

from . import state


def _change_workspace() -> None:
    text = str(st.session_state.get("ws_input", "")).strip()
    if not text:
        return
    try:
        state._open_workspace(str(Path(text).expanduser().resolve()))
        st.session_state[state.WORKSPACE_KEY] = str(Path(text).expanduser().resolve())
        st.session_state.pop("ws_error", None)
    except (OSError, LoopLabError) as exc:
        st.session_state["ws_error"] = f"Cannot use {text} as a workspace: {exc}"


def render() -> None:
    """Draw the shared sidebar (call once per run, from app.py)."""
    with st.sidebar:
        st.markdown("### :material/all_inclusive: LoopLab")
        try:
            ws = state.workspace()
            stats = ws.stats()
        except (OSError, LoopLabError) as exc:
            st.error(f"The workspace folder cannot be opened: {exc}")
            return
        c1, c2 = st.columns(2)
        c1.metric("Tracks", stats["tracks"])
        c2.metric("Labels", stats["labels"])
        with st.expander("Workspace", expanded=False):
            st.text_input("Folder", value=str(ws.root), key="ws_input",
                          on_change=_change_workspace,
                          help="Where LoopLab keeps your tracks, analyses, labels and exports. "
                               "Everything is saved as you go; use another folder for another "
                               "project.")
            if st.session_state.get("ws_error"):
                st.error(st.session_state["ws_error"])
        with st.expander("Analysis settings", expanded=False):
            st.segmented_control("Meter", ["Detect", "4/4", "3/4"], default="Detect",
                                 key="set_meter",
                                 help="Beats per bar of new tracks: detected (4/4 unless the "
                                      "music is in three, as `extract` does), or forced.")
            lo, hi = st.slider("Tempo range (BPM)", 50, 220, (70, 180), step=5,
                               key="set_tempo_range",
                               help="Half- and double-time readings are folded into this range.")
            if hi < 1.9 * lo:
                st.error("The tempo range must span an octave (e.g. 70-180), so that half- and "
                         "double-time readings fold into it; using 70-180 until then.")
            st.caption("Applies to tracks you add next. Fix one track's grid in the loop finder.")
