"""Shared page pieces: a progress bridge for engine callbacks, a looping player with labels."""
from __future__ import annotations

import streamlit as st

from engine.config import ExportConfig
from engine.errors import LoopLabError
from engine.loopview import bars_text, format_time

from . import state


class Progress:
    """Feed ``progress(done, total, message)`` engine callbacks into st.status + st.progress."""

    def __init__(self, label: str):
        self.status = st.status(label, expanded=True)
        with self.status:
            self.bar = st.progress(0.0, text="starting")

    def __call__(self, done: float, total: int, message: str) -> None:
        frac = 0.0 if not total else min(max(float(done) / float(total), 0.0), 1.0)
        self.bar.progress(frac, text=str(message)[:120])

    def done(self, label: str, ok: bool = True) -> None:
        self.bar.progress(1.0, text="done")
        self.status.update(label=label, state="complete" if ok else "error", expanded=not ok)


def _store_label(track_id: str, row: dict, label: str) -> None:
    try:
        state.workspace().add_label(
            track_id, row["start_time"], row["end_time"], label,
            start_sample=int(row["start_sample"]), end_sample=int(row["end_sample"]),
            bars=int(row["bars"]), bpm=float(row["bpm"]), client=state.client_id())
        st.toast(f"Saved: loop #{int(row['rank'])} is {label}",
                 icon=":material/thumb_up:" if label == "good" else ":material/thumb_down:")
    except LoopLabError as exc:
        st.session_state["label_error"] = str(exc)


def loop_player(track_id: str, row: dict, export_cfg: ExportConfig, *, current_label: str = "",
                key_prefix: str = "p", title: bool = True) -> None:
    """A player that loops exactly this loop (its own rendered bytes) and good/bad buttons."""
    root = state.workspace_root()
    if title:
        st.markdown(f"**#{int(row['rank'])}** · {bars_text(row['bars'])} · "
                    f"{format_time(row['start_time'])} → {format_time(row['end_time'])}"
                    + (f" · your label: **{current_label}**" if current_label else ""))
    try:
        data = state.preview_bytes(root, track_id, int(row["start_sample"]),
                                   int(row["end_sample"]), state.export_json(export_cfg))
    except (LoopLabError, OSError, ValueError) as exc:
        st.error(f"This loop cannot be played: {exc}")
        return
    cols = st.columns([5, 1.4, 1.4], vertical_alignment="center")
    with cols[0]:
        st.audio(data, format="audio/wav", loop=True)
    key = f"{key_prefix}_{track_id[:8]}_{int(row['start_sample'])}_{int(row['end_sample'])}"
    cols[1].button("Good", icon=":material/thumb_up:", key=f"{key}_good", on_click=_store_label,
                   width="stretch",
                   args=(track_id, row, "good"), help="A loop you would use: the model learns from it",
                   type="primary" if current_label == "good" else "secondary")
    cols[2].button("Bad", icon=":material/thumb_down:", key=f"{key}_bad", on_click=_store_label,
                   width="stretch",
                   args=(track_id, row, "bad"), help="Not a usable loop",
                   type="primary" if current_label == "bad" else "secondary")
