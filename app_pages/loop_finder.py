"""Loop finder: a track's waveform with its grid and best loops, players, labels, grid fixes."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, nav, state
from dashboard.widgets import Progress, loop_player
from engine.config import ExportConfig
from engine.errors import LoopLabError
from engine.library import MAX_FIXED_BPM, MIN_FIXED_BPM, grid_fix
from engine.loopview import MAIN_FEATURES, bars_text, format_time, key_text, loop_table, waveform_view

st.title("Loop finder")
ws = state.workspace()
root = state.workspace_root()
tracks = state.analysed_tracks()
if tracks.empty:
    st.info("No analysed tracks in this workspace yet.")
    c1, c2 = st.columns(2)
    if c1.button("Add tracks", icon=":material/upload:", type="primary"):
        st.switch_page(nav.path("upload"))
    if c2.button("Try a demo track on the home page", icon=":material/headphones:"):
        st.switch_page(nav.path("home"))
    st.stop()

names = dict(zip(tracks["track_id"], tracks["original_name"]))
info = {r.track_id: r for r in tracks.itertuples(index=False)}


def _label(tid: str) -> str:
    # no BPM here: a grid fix changes it, and the grid line below always shows the current one
    r = info[tid]
    key = key_text(r.key, r.camelot)
    return f"{names[tid]} · {key}" if key else names[tid]


track_id = st.selectbox("Track", list(names), format_func=_label, key="track",
                        bind="query-params")
row = info[track_id]

# ------------------------------------------------------------------ analysis (cached)
params_json = state.current_params(track_id)
try:
    with st.spinner("Loading the analysis…"):
        analysis = state.load_analysis(root, track_id, params_json)
except (LoopLabError, OSError, ValueError) as exc:
    st.error(f"This track cannot be shown: {exc}")
    st.stop()
cfg = ws.analysis_config(track_id)
view = waveform_view(analysis)
grid = analysis.grid

# ------------------------------------------------------------------ grid summary and fixes
fixed = []
if getattr(grid, "bpm_fixed", False):
    fixed.append("tempo set by you")
if getattr(grid, "downbeat_offset", 0):
    fixed.append(f"bar one moved {grid.downbeat_offset} beat(s) later")
if getattr(grid, "grid_shift_ms", 0.0):
    fixed.append(f"grid moved {grid.grid_shift_ms:+.0f} ms")
first = view.bars[0] if len(view.bars) else float("nan")
st.container(key="grid_summary").markdown(f"**Grid:** {view.bpm:.1f} BPM · {view.meter} · bar one at {format_time(first)} · "
            f"{bars_text(max(len(view.bars) - 1, 0))} · {len(view.beats)} beats"
            + (f" · _{', '.join(fixed)}_" if fixed else ""))
for w in analysis.warnings:
    if "bar lines are uncertain" in w:
        st.warning("The bar lines are uncertain. Play loop #1: if it does not start on the "
                   "'one', use **Shift bar one**.")
    elif "tempo is uncertain" in w:
        st.warning(f"The tempo is uncertain. Play loop #1: if it is half or twice as long as it "
                   f"should be, use **½ tempo** or **2× tempo**; if it is off by a third, use "
                   f"**Set tempo…** ({view.bpm * 2 / 3:.1f} or {view.bpm * 1.5:.1f} BPM?).")
    else:
        st.warning(w)

fix_cols = st.columns([1, 1, 1.3, 1, 1.3, 1.7], vertical_alignment="center")
action, nudge = None, None
if fix_cols[0].button("½ tempo", help=f"The track is really {view.bpm / 2:.1f} BPM",
                      disabled=view.bpm / 2 < MIN_FIXED_BPM):
    action = "half"
if fix_cols[1].button("2× tempo", help=f"The track is really {view.bpm * 2:.1f} BPM",
                      disabled=view.bpm * 2 > MAX_FIXED_BPM):
    action = "double"
if fix_cols[2].button("Shift bar one →", help="Bar one starts one beat later"):
    action = "shift"
if fix_cols[3].button("Reset grid", disabled=not fixed,
                      help="Back to the tempo and bar lines LoopLab found"):
    action = "reset"
with fix_cols[4].popover("Set tempo…", help="Type the track's tempo (e.g. 2/3 of a tempo read "
                         "at 3/2); LoopLab finds the beats and bar lines at it"):
    typed = st.number_input("Tempo (BPM)", min_value=float(MIN_FIXED_BPM),
                            max_value=float(MAX_FIXED_BPM), value=round(float(view.bpm), 1),
                            step=0.1, format="%.1f", key=f"set_bpm_{track_id}")
    if st.button("Set", key=f"set_bpm_go_{track_id}"):
        action = "set"
with fix_cols[5].popover("Nudge grid…", help="Move every beat and bar line a few "
                         "milliseconds when they all sit early or late (like a DJ app's grid "
                         "shift)"):
    step_ms = st.number_input("By (ms)", min_value=1.0, max_value=500.0, value=10.0, step=5.0,
                              format="%.0f", key=f"nudge_ms_{track_id}")
    nudge_cols = st.columns(2)
    if nudge_cols[0].button("◀ Earlier", key=f"nudge_early_{track_id}"):
        action, nudge = "nudge", -step_ms
    if nudge_cols[1].button("Later ▶", key=f"nudge_late_{track_id}"):
        action, nudge = "nudge", step_ms
st.caption("Fix the grid when the tempo is off (half, double, a third), loops start on the "
           "wrong beat or every beat sits a little early or late; the loops are re-cut.")
if action:
    prog = Progress("Re-cutting the loops on the corrected grid…")
    try:
        new_cfg = grid_fix(cfg, grid.bpm, action, bpm=typed if action == "set" else None,
                           shift_ms=nudge)
        ws.set_analysis_config(track_id, new_cfg, progress=prog)
        prog.done("Grid corrected")
        st.session_state.pop(f"sel_{track_id}", None)
        st.rerun()
    except (LoopLabError, OSError, ValueError) as exc:
        prog.done("The grid could not be changed", ok=False)
        st.error(str(exc))

# ------------------------------------------------------------------ ranking, players, export
# A fragment: moving K, the loop lengths, seam or loudness, selecting a loop or labelling
# one reruns only this part (the analysis is already loaded and cached).
@st.fragment
def loop_section() -> None:
    analysed_bars = sorted({int(b) for b in analysis.candidates["bars"]})
    c1, c2, c3, c4 = st.columns([2, 2, 1.4, 2])
    top_k = c1.slider("How many loops (K)", 1, 20, 5, key="k",
                      help="The best K distinct loops (near-duplicates are skipped)")
    bars = c2.pills("Loop lengths (bars)", analysed_bars, selection_mode="multi",
                    default=analysed_bars, key="bars")
    seam = c3.segmented_control("Seam", ["fade", "crossfade"], default="fade", key="seam",
                                help="fade: short fades at both cuts. crossfade: the loop's end "
                                     "flows into its start like a sampler; keeps the downbeat attack")
    lufs = c4.slider("Loudness target (LUFS)", -24.0, -6.0, -14.0, step=1.0, key="lufs",
                     format="%.0f LUFS",
                     help="Every loop is brought to this loudness, never above -1 dBFS peak")
    one_section = st.toggle(
        "Keep loops inside one section", value=True, key="one_section",
        help="On (default): a loop of several bars in which a part enters or leaves ranks "
             "below the loops that stay in one arrangement section. Off: the model alone "
             "ranks, so phrase-length loops (4 or 8 bars) come first even across a change, "
             "such as a crash on bar one or a part that drops out for a bar "
             "(the CLI's --no_section_guard)")
    if not bars:
        st.info("Choose at least one loop length.")
        return
    export_cfg = ExportConfig(seam_mode=seam or "fade", target_lufs=float(lufs))
    loops = state.ranked(root, track_id, params_json, int(top_k), tuple(sorted(bars)),
                         bool(one_section))
    if loops.empty:
        st.info("No loops of these lengths fit in this track.")
        return

    sel_key = f"sel_{track_id}"
    ranks = [int(r) for r in loops["rank"]]
    if st.session_state.get(sel_key) not in ranks:
        st.session_state[sel_key] = ranks[0]


    def _on_chart(loops_=loops):
        r = charts.rank_from_selection(st.session_state.get("wave_chart"), loops_)
        if r is not None:
            st.session_state[sel_key] = r


    def _on_table(ranks_=ranks):
        event = st.session_state.get("loop_table")
        rows = event.selection.rows if event is not None else []
        if rows:
            st.session_state[sel_key] = ranks_[int(rows[0])]


    selected_rank = st.session_state[sel_key]
    fig = charts.waveform_figure(view, loops, selected_rank)
    st.plotly_chart(fig, key="wave_chart", on_select=_on_chart, selection_mode=("points",),
                    config={"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]})
    st.caption("Dotted lines are bar lines, faint lines beats. Each top loop is a numbered clip "
               "above the waveform; click one (or a table row) to select it; the selected loop "
               "is shaded orange.")

    labels = ws.labels(track_id)
    table = loop_table(loops, labels)
    sel_row = loops[loops["rank"] == selected_rank].iloc[0].to_dict()
    current = table.loc[table["rank"] == selected_rank, "your label"].iloc[0]
    with st.container(border=True):
        st.markdown(f"#### Selected: loop #{selected_rank} · {bars_text(sel_row['bars'])} · "
                    f"{format_time(sel_row['start_time'])} → {format_time(sel_row['end_time'])} · "
                    f"{sel_row['end_time'] - sel_row['start_time']:.2f} s · "
                    f"{key_text(sel_row.get('key'), sel_row.get('camelot'))}"
                    + (f" · your label: **{current}**" if current else ""))
        loop_player(track_id, sel_row, export_cfg, current_label=current, key_prefix="sel",
                    title=False)
        st.caption(" · ".join(f"{title} {float(sel_row[col]):.2f}"
                              for col, title in MAIN_FEATURES.items() if col in sel_row))
        if st.session_state.get("label_error"):
            st.error(st.session_state.pop("label_error"))

    st.subheader(f"Top {len(loops)} loops")
    st.dataframe(table, key="loop_table", on_select=_on_table, selection_mode="single-row",
                 hide_index=True,
                 column_config={"score": st.column_config.ProgressColumn(
                     "score", min_value=0.0, max_value=1.0, format="%.2f",
                     help="share of this track's candidate loops that the quality model scores "
                          "no higher (1.00 = its best)"),
                     "scored by": st.column_config.TextColumn(
                         "scored by", help="model = trained loop-quality model; heuristic = "
                                           "transparent blend of the features")},
                 height=min(38 + 35 * len(table), 420))

    st.subheader("Listen to every loop")
    st.caption("Each player repeats its loop exactly as it will be exported (seam and loudness "
               "included). Good/bad labels are saved in the workspace and teach the ranking model.")
    for rec in loops.to_dict("records"):
        lab = table.loc[table["rank"] == int(rec["rank"]), "your label"].iloc[0]
        with st.container(border=True):
            loop_player(track_id, rec, export_cfg, current_label=lab, key_prefix="all")

    # ------------------------------------------------------------------ export
    st.subheader("Export")
    mp3 = st.toggle("Add MP3 previews", value=False, key="finder_mp3")
    zip_cfg = ExportConfig(seam_mode=export_cfg.seam_mode, target_lufs=export_cfg.target_lufs,
                           export_mp3=mp3)
    stem = names[track_id].rsplit(".", 1)[0]


    def _zip_all(loops_=loops, cfg_=zip_cfg, tid=track_id, root_=root):
        return state._open_workspace(root_).export_zip([(tid, loops_)], cfg_).zip_path.read_bytes()


    def _zip_one(loops_=loops, cfg_=zip_cfg, tid=track_id, root_=root, rank=selected_rank):
        one = loops_[loops_["rank"] == rank]
        return state._open_workspace(root_).export_zip([(tid, one)], cfg_).zip_path.read_bytes()


    e1, e2 = st.columns(2)
    e1.download_button(f"ZIP of these {len(loops)} loops", data=_zip_all,
                       file_name=f"{stem} - {len(loops)} loops.zip", mime="application/zip",
                       key="dl_all", type="primary", icon=":material/download:", on_click="ignore",
                       help="WAVs (24-bit, source rate), loops_metadata.csv, all_loops_metadata.csv, "
                            "your labels")
    e2.download_button(f"ZIP of loop #{selected_rank}", data=_zip_one,
                       file_name=f"{stem} - loop {selected_rank}.zip", mime="application/zip",
                       key="dl_one", on_click="ignore", icon=":material/download:")
    st.caption("To export several tracks at once, use the Export page.")


loop_section()
