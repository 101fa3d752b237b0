"""Home: what LoopLab does, a one-click demo, and the tracks already in the workspace."""
from __future__ import annotations

import streamlit as st

from dashboard import nav, state
from dashboard.widgets import Progress
from engine.config import AUDIO_EXTENSIONS
from engine.errors import LoopLabError
from engine.loopview import key_text

st.title("LoopLab")
st.markdown(
    "Turn tracks into **DJ- and DAW-ready loops**: LoopLab finds the tempo, beats and bar "
    "lines, cuts loops that start on the downbeat and last whole bars, ranks them, and "
    "exports seam-safe, loudness-normalised WAVs (and MP3 previews) with metadata CSVs.")

ws = state.workspace()


def _demo() -> None:
    prog = Progress("Making a demo track (drums, bass and chords, 124 BPM, A minor)…")
    try:
        res = ws.add_demo_track(progress=prog)
    except (LoopLabError, OSError) as exc:
        prog.done("The demo track could not be made", ok=False)
        st.error(str(exc))
        return
    if not res.ok:
        prog.done("The demo track could not be analysed", ok=False)
        st.error(res.error)
        return
    prog.done(f"Demo ready: {res.bpm:.1f} BPM, {res.key}, {res.n_candidates} loop candidates")
    st.switch_page(nav.path("loop_finder"), query_params={"track": res.track_id})


left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Start here")
    st.markdown("1. **Add tracks** (upload files or point at a folder), or try the demo.\n"
                "2. In the **loop finder**, listen to the best loops, mark them good or bad, "
                "and fix the grid if the tempo or bar one is off.\n"
                "3. **Export** the loops you like as a ZIP of WAVs with their metadata.")
    b1, b2 = st.columns(2)
    if b1.button("Try a demo track", icon=":material/headphones:", type="primary", width="stretch",
                 help="Generates a 16-bar track, analyses it and opens the loop finder"):
        _demo()
    if b2.button("Add your tracks", icon=":material/upload:", width="stretch"):
        st.switch_page(nav.path("upload"))
    st.caption("Reads " + ", ".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)
               + " (m4a/aac need ffmpeg).")

with right:
    st.subheader("In your workspace")
    tracks = ws.tracks()
    if tracks.empty:
        st.info("No tracks yet. Try the demo or add your own.")
    else:
        for row in tracks.head(8).itertuples(index=False):
            bpm = f"{row.bpm:.1f} BPM" if row.bpm == row.bpm and row.bpm else "not analysed"
            key = f" · {key_text(row.key, row.camelot)}" if key_text(row.key) else ""
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.markdown(f"**{row.original_name}**  \n{bpm}{key}")
            if c2.button("Open", key=f"open_{row.track_id}"):
                st.switch_page(nav.path("loop_finder"), query_params={"track": row.track_id})
        if len(tracks) > 8:
            st.caption(f"and {len(tracks) - 8} more in the loop finder")
