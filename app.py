"""LoopLab dashboard entry point: ``streamlit run app.py``.

The multipage dashboard (upload, candidate ranking, tag training, contact map,
neighbour query) is built on the engine in ``engine/``; this entry page says
what LoopLab is and how to use the engine today.
"""
from __future__ import annotations

import streamlit as st

import engine
from engine.config import AUDIO_EXTENSIONS

st.set_page_config(page_title="LoopLab", page_icon="🔁", layout="wide")


def home() -> None:
    st.title("LoopLab")
    st.markdown(
        "Turn tracks into **DJ- and DAW-ready loops**: LoopLab finds the tempo, beats and bar "
        "lines, cuts loops that start on the downbeat and last whole bars, ranks them, and "
        "exports seam-safe, loudness-normalised WAVs (and MP3 previews) with metadata CSVs.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Engine version", engine.__version__)
    c2.metric("Formats", len(AUDIO_EXTENSIONS))
    c3.metric("Default loop lengths", "1, 2, 4, 8 bars")
    st.subheader("From the command line")
    st.code("python -m engine synth --out demo.wav --bpm 124\n"
            "python -m engine extract --input demo.wav --out_dir out --top_k 5 --zip", "bash")
    st.caption("Supported files: " + ", ".join(AUDIO_EXTENSIONS) + " (m4a/aac need ffmpeg).")


pg = st.navigation([st.Page(home, title="Home", icon="🏠", default=True)])
pg.run()
