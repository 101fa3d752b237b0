"""Add tracks: upload several files or point at a folder; each is analysed with progress."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import nav, state
from dashboard.widgets import Progress
from engine.config import AUDIO_EXTENSIONS
from engine.errors import LoopLabError
from engine.loopview import key_text

st.title("Add tracks")
ws = state.workspace()
st.markdown("Add tracks to the workspace. LoopLab finds each one's tempo, bars and key and "
            "ranks its loops; files are kept in the workspace under a content-hash name, so "
            "adding the same file twice costs nothing.")


def _result_rows(results) -> pd.DataFrame:
    rows = []
    for r in results:
        get = (lambda k: r.get(k)) if isinstance(r, dict) else (lambda k: getattr(r, k))
        ok = bool(get("ok"))
        rows.append({
            "file": get("name"),
            "status": ("ok" + (" (already there)" if get("already_there") else ""))
            if ok else "FAILED",
            "BPM": f"{float(get('bpm')):.1f}" if ok and get("bpm") else "",
            "key": key_text(get("key"), get("camelot")) if ok else "",
            "loops": str(int(get("n_loops") or 0)) if ok else "",
            "what happened": "; ".join(w for w in (get("warnings") or []) if w) if ok
            else get("error"),
        })
    return pd.DataFrame(rows)


def _run(kind: str, payload) -> None:
    cfg = state.analysis_defaults()
    n = len(payload) if kind == "files" else None
    prog = Progress(f"Analysing {n} file{'s' if n != 1 else ''}…" if n else
                    "Analysing the folder…")
    try:
        if kind == "files":
            results = ws.ingest(payload, cfg, source="upload", progress=prog)
        else:
            results = ws.ingest_folder(payload, cfg, progress=prog)
    except (LoopLabError, OSError) as exc:
        prog.done("Nothing was added", ok=False)
        st.session_state["ingest_error"] = str(exc)
        return
    n_ok = sum(r.ok for r in results)
    prog.done(f"{n_ok} of {len(results)} file{'s' if len(results) != 1 else ''} ready",
              ok=n_ok == len(results))
    st.session_state["upload_gen"] = st.session_state.get("upload_gen", 0) + 1
    st.session_state["last_ingest"] = [r.__dict__ for r in results]


tab_files, tab_folder = st.tabs(["Upload files", "A folder on this computer"])
with tab_files:
    gen = st.session_state.get("upload_gen", 0)
    files = st.file_uploader("Audio files", type=[e.lstrip(".") for e in AUDIO_EXTENSIONS],
                             accept_multiple_files=True, key=f"uploader_{gen}",
                             help="Drop several files at once; the size limit per file is set "
                                  "in .streamlit/config.toml")
    label = (f"Add and analyse {len(files)} file{'s' if len(files) != 1 else ''}" if files
             else "Add and analyse")
    if st.button(label,
                 type="primary", disabled=not files, key="add_files"):
        _run("files", [(f.name, f.getvalue()) for f in files])
        st.rerun()
with tab_folder:
    folder = st.text_input("Folder path", key="folder_path",
                           placeholder="/home/me/Music/tracks",
                           help="Every audio file under this folder (and its sub-folders) is "
                                "copied into the workspace and analysed.")
    if st.button("Add and analyse the folder", disabled=not folder.strip(), key="add_folder"):
        _run("folder", folder.strip())
        st.rerun()

if st.session_state.get("ingest_error"):
    st.error(st.session_state.pop("ingest_error"))
last = st.session_state.get("last_ingest")
if last is None:
    runs = ws.runs("ingest", limit=1)
    last = runs[0]["summary"] if runs else None
if last:
    st.subheader("Last run")
    df = _result_rows(last)
    st.dataframe(df, hide_index=True, key="ingest_rows",
                 column_config={"what happened": st.column_config.TextColumn(width="large")})
    ok_ids = [r["track_id"] for r in last if r.get("ok") and r.get("track_id")]
    if ok_ids:
        if st.button("Open the loop finder", type="primary", key="open_finder"):
            st.switch_page(nav.path("loop_finder"), query_params={"track": ok_ids[0]})
