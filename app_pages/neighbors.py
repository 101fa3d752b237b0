"""Neighbours: the loops that mix best with a chosen loop, with tempo and key hints."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import library_state as ls
from engine.errors import LoopLabError

st.title("Neighbours")
st.caption("Pick a loop and hear the loops closest to it: same rhythm (DTW), similar sound, "
           "compatible key and tempo. Each row says how far to move the pitch fader to mix "
           "it in, and whether a CDJ's ±6/±10/±16 % range reaches it.")

table = ls.source_picker("nb")
files = table["file"].astype(str).tolist()
if len(files) < 3:
    st.info("Neighbours need at least 3 loops. Add tracks (their top loops are used), point to "
            "a folder of loops, or generate demo loops above.")
    st.stop()

lib = ls.build_button(files, f"Find neighbours among {len(files)} loops", "nb_build")
if lib is None:
    st.stop()
label_of = ls.names(lib, table)

with st.sidebar.expander("Neighbour weights", expanded=True):
    st.caption("How much each aspect counts in the overall similarity.")
    w = {a: st.slider(a.capitalize(), 0.0, 1.0, d, 0.05, key=f"nb_w_{a}")
         for a, d in (("rhythm", 0.5), ("timbre", 0.3), ("harmony", 0.1), ("tempo", 0.1))}
if sum(w.values()) <= 0:
    st.warning("All aspect weights are 0: raise at least one slider.")
    st.stop()

c1, c2 = st.columns([4, 1])
query = c1.selectbox("Query loop", lib.files, format_func=lambda f: label_of.get(f, f),
                     key="nb_query", help="Type to search.")
top_k = c2.number_input("Neighbours", 1, max(1, lib.n - 1), min(8, lib.n - 1), key="nb_k")

try:
    nb = ls.explore.neighbors_of(lib, query, w, int(top_k))
except (LoopLabError, ValueError) as exc:
    st.error(str(exc))
    st.stop()

qb = nb["query_bpm_est"].iloc[0] if len(nb) else None
st.markdown(f"**Query:** {label_of[query]}" + (f" · {qb:.1f} BPM" if qb else ""))
ls.play(query)

view = nb.assign(
    loop=[label_of.get(f, f) for f in nb["neighbor_file"]],
    similarity=nb["overall"].round(3),
    stretch=nb["stretch_ratio_neighbor_over_file"].round(3),
    timing=nb["neighbor_tempo_factor"].map({1.0: "same", 0.5: "half time", 2.0: "double time"}),
    neighbor_camelot=nb["neighbor_camelot"].fillna("–"),
    pitch_fader=nb["recommended_pitch_fader_pct"].map(
        lambda v: "" if v != v or v is None else f"{v:+.1f} %"),
)
cols = {"neighbor_rank": "#", "loop": "Loop", "similarity": "Similarity",
        "neighbor_bpm_est": "Its BPM", "neighbor_target_bpm": "Play it at BPM",
        "timing": "Against the query",
        "pitch_fader": "Pitch fader", "cdj_pitch_range": "CDJ range",
        "key_relation": "Key", "neighbor_camelot": "Camelot",
        "rhythm": "Rhythm", "timbre": "Timbre", "harmony": "Harmony", "tempo": "Tempo",
        "stretch": "DTW stretch", "query_bpm_est": "Query BPM"}
shown = view[list(cols)].rename(columns=cols)
st.dataframe(shown, hide_index=True, width="stretch", column_config={
    "Similarity": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f"),
    "Query BPM": st.column_config.NumberColumn(format="%.1f"),
    "Its BPM": st.column_config.NumberColumn(format="%.1f"),
    "Play it at BPM": st.column_config.NumberColumn(format="%.1f"),
    "Rhythm": st.column_config.NumberColumn(format="%.2f"),
    "Timbre": st.column_config.NumberColumn(format="%.2f"),
    "Harmony": st.column_config.NumberColumn(format="%.2f"),
    "Tempo": st.column_config.NumberColumn(format="%.2f"),
})
st.caption("Pitch fader: the move that brings the neighbour to the query's tempo (or half/double "
           "time, whichever is closest). CDJ range: the narrowest pitch range that reaches it "
           "(\"wide\": beyond ±16 %, use master tempo or another pairing). Key: Camelot "
           "relation (\"unknown\" for loops without a clear key, such as drums).")

fig = go.Figure(go.Bar(x=nb["overall"], y=[f"#{r} {label_of.get(f, f)}"[:60]
                                            for r, f in zip(nb["neighbor_rank"],
                                                            nb["neighbor_file"])],
                       orientation="h", marker_color="#2ec4b6",
                       text=nb["overall"].round(2), textposition="auto"))
fig.update_layout(height=40 + 28 * len(nb), margin=dict(l=10, r=10, t=10, b=30),
                  xaxis=dict(title="overall similarity", range=[0, 1]),
                  yaxis=dict(autorange="reversed"))
st.plotly_chart(fig, key="nb_bar")

st.subheader("Listen")
for r in nb.itertuples(index=False):
    pct = r.recommended_pitch_fader_pct
    hint = "" if pct is None or pct != pct else f" · pitch {pct:+.1f} % ({r.cdj_pitch_range})"
    ls.play(r.neighbor_file, f"#{r.neighbor_rank} {label_of.get(r.neighbor_file)} · "
                             f"similarity {r.overall:.2f}{hint}")
