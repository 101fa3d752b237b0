"""Export: the top K loops of several tracks as one ZIP; the user-labels CSV."""
from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from dashboard import state
from dashboard.widgets import Progress
from engine.config import ExportConfig
from engine.errors import LoopLabError

st.title("Export")
ws = state.workspace()
root = state.workspace_root()
tracks = state.analysed_tracks()
if tracks.empty:
    st.info("Nothing to export yet: add tracks first.")
    st.stop()

st.markdown("The best loops of the tracks you choose, as one ZIP: a folder per track with "
            "24-bit WAVs at the source's rate and channels and its `loops_metadata.csv`, plus "
            "`all_loops_metadata.csv`, `run_summary.json` and your labels "
            "(`python -m engine extract --zip` writes the same).")
names = dict(zip(tracks["track_id"], tracks["original_name"]))
chosen = st.multiselect("Tracks", list(names), default=list(names)[:10],
                        format_func=lambda t: names[t], key="export_tracks")
c1, c2, c3, c4 = st.columns(4)
k = c1.number_input("Loops per track (K)", 1, 50, 5, key="export_k")
mp3 = c2.toggle("MP3 previews", value=False, key="export_mp3")
seam = c3.segmented_control("Seam", ["fade", "crossfade"], default="fade", key="export_seam")
lufs = c4.slider("Loudness target (LUFS)", -24.0, -6.0, -14.0, step=1.0, key="export_lufs",
                 format="%.0f LUFS")
one_section = st.toggle("Keep loops inside one section", value=True, key="export_one_section",
                        help="Off: phrase-length loops first even across an arrangement change "
                             "(as the loop finder's switch and --no_section_guard)")
cfg = ExportConfig(export_mp3=mp3, seam_mode=seam or "fade", target_lufs=float(lufs))

if st.button("Build the ZIP", type="primary", disabled=not chosen, key="build_zip"):
    prog = Progress(f"Exporting {len(chosen)} track(s)…")
    try:
        items = []
        for tid in chosen:
            items.append((tid, state.ranked(root, tid, state.current_params(tid), int(k),
                                            tuple(sorted({int(b) for b in ws.analysis_config(
                                                tid).bars})), bool(one_section))))
        res = ws.export_zip(items, cfg, progress=prog)
        prog.done(f"{res.n_loops} loops from {res.n_tracks} track(s) ready",
                  ok=not res.failed)
        for msg in res.failed:
            st.error(msg)
        st.session_state["export_zip"] = str(res.zip_path)
        st.session_state["export_members"] = res.members
        st.session_state["export_note"] = (
            f"Built {time.strftime('%H:%M')}: {res.n_loops} loops from {res.n_tracks} track(s), "
            f"K={int(k)}, {'WAV + MP3' if mp3 else 'WAV'}, {cfg.seam_mode} seams, "
            f"{'in one section' if one_section else 'phrase-length first'}, "
            f"{cfg.target_lufs:.0f} LUFS. Change the settings and build again for another ZIP.")
    except (LoopLabError, OSError, ValueError) as exc:
        prog.done("The export failed", ok=False)
        st.error(str(exc))

zip_path = st.session_state.get("export_zip")
if zip_path:
    p = Path(zip_path)
    if p.is_file():
        st.download_button(f"Download {p.name}", data=p.read_bytes(), file_name=p.name,
                           mime="application/zip", type="primary", key="dl_export", icon=":material/download:",
                           on_click="ignore")
        st.caption(st.session_state.get("export_note", ""))
        with st.expander(f"{len(st.session_state.get('export_members', []))} files in the ZIP"):
            st.code("\n".join(st.session_state.get("export_members", [])), language=None)

st.divider()
st.subheader("Your labels")
labels = ws.labels()
if labels.empty:
    st.caption("No loops labelled yet: use Good / Bad in the loop finder.")
else:
    st.markdown(f"{len(labels)} labelled loops ({(labels['label'] == 'good').sum()} good, "
                f"{(labels['label'] == 'bad').sum()} bad). The CSV has the columns "
                "`source_file, start_time, end_time, label` that the loop-quality model trains on.")

    def _labels_csv(root_=root):
        return state._open_workspace(root_).labels_frame().to_csv(index=False).encode()

    st.download_button("user_labels.csv", data=_labels_csv, file_name="user_labels.csv",
                       mime="text/csv", key="dl_labels", icon=":material/download:", on_click="ignore")
