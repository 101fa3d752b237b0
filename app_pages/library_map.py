"""Library map: every loop as a point, close points groove alike; click one to hear it."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import library_state as ls
from engine import explore

st.title("Library map")
st.caption("Your loops laid out in 2-D so that loops with similar rhythms sit close together, "
           "the way sample browsers such as AudioStellar and XO let you explore by ear. "
           "Click a point to play it and see its neighbours.")

table = ls.source_picker("map")
files = table["file"].astype(str).tolist()
if len(files) < 3:
    st.info("The map needs at least 3 loops. Add tracks, point to a folder of loops, or "
            "generate demo loops above.")
    st.stop()
lib = ls.build_button(files, f"Map {len(files)} loops", "map_build")
if lib is None:
    st.stop()
label_of = ls.names(lib, table)

# same sharpening as the contact map page (its sidebar controls, when set)
from engine.contact import SharpenParams

params = st.session_state.get("cm_params") or {
    k: v for k, v in SharpenParams(self_tune_k=min(7, lib.n - 1)).as_dict().items()
    if k in ("sharpen_mode", "self_tune_k", "mutual_knn", "sinkhorn_iters", "n_bins")}
cmap = ls.sharpened(ls.library_key(lib.files), json.dumps(params, sort_keys=True), lib)
pts = explore.map_coords(cmap)
pts["loop"] = [label_of[f] for f in pts["file"]]
bpm = lib.info.set_index("file")["bpm"]
pts["bpm"] = pts["file"].map(bpm).astype(float)

colour = st.segmented_control("Colour by", ["Pseudo-label", "BPM", "Tag"], default="Pseudo-label",
                              key="map_colour")
tags_df = st.session_state.get("tags_predictions")
if colour == "Tag" and (tags_df is None or tags_df.empty):
    st.caption("No tag predictions yet: the Tags page's predictions colour the map. "
               "Showing pseudo-labels.")
    colour = "Pseudo-label"

# SVG points up to 500 loops (clickable, crisp); WebGL above (stays fast with thousands)
Scatter = go.Scatter if lib.n <= 500 else go.Scattergl
fig = go.Figure()
if colour == "BPM":
    fig.add_trace(Scatter(x=pts["x"], y=pts["y"], mode="markers", customdata=pts.index,
                               text=pts["loop"], marker=dict(size=13, color=pts["bpm"],
                                                             colorscale="Viridis",
                                                             colorbar=dict(title="BPM")),
                               hovertemplate="%{text}<br>%{marker.color:.1f} BPM<extra></extra>",
                               name="loops"))
else:
    if colour == "Tag":
        look = tags_df.set_index("file")["tags"] if "tags" in tags_df else None
        group = pts["file"].map(look).fillna("(no tag)").map(lambda s: s.split(",")[0] or
                                                             "(no tag)")
    else:
        group = "bin " + pts["contact_bin"].astype(str)
    for g in sorted(group.unique()):
        sel = group == g
        fig.add_trace(Scatter(x=pts.loc[sel, "x"], y=pts.loc[sel, "y"], mode="markers",
                                   customdata=pts.index[sel], text=pts.loc[sel, "loop"],
                                   marker=dict(size=13), name=str(g),
                                   hovertemplate="%{text}<extra>" + str(g) + "</extra>"))
fig.update_traces(unselected=dict(marker=dict(opacity=0.6), textfont=dict(color="#999")),
                  selected=dict(marker=dict(size=18)))
if lib.n <= 30:   # few loops: name them on the map
    fig.update_traces(mode="markers+text", textposition="top center",
                      textfont=dict(size=10, color="#bbb"))
fig.update_layout(colorway=["#2ec4b6", "#ff8a3d", "#a06cd5", "#f6d743", "#e63946", "#4ea8de",
                            "#8ac926", "#ff70a6"])
def _padded(v, frac=0.12):
    lo, hi = float(np.min(v)), float(np.max(v))
    pad = (hi - lo) * frac or 1.0
    return [lo - pad, hi + pad]


fig.update_xaxes(range=_padded(pts["x"], 0.15))   # room for the names at the edges
fig.update_yaxes(range=_padded(pts["y"]))
fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10), clickmode="event+select",
                  xaxis=dict(showticklabels=False, zeroline=False, title="spectral axis 1"),
                  yaxis=dict(showticklabels=False, zeroline=False, title="spectral axis 2"),
                  legend=dict(orientation="h", y=1.02, yanchor="bottom"))
event = st.plotly_chart(fig, key="map_plot", on_select="rerun", selection_mode="points")
st.caption("Method: spectral embedding of the contact map's sharpened rhythm graph (its 2nd "
           "and 3rd Laplacian eigenvectors; the 1st axis is the contact map's Fiedler order). "
           "It reuses the DTW comparisons already made, needs no extra model, puts the contact "
           "map's families in separate regions and does not move between runs.")

chosen = None
try:
    for p in event["selection"]["points"]:
        cd = p.get("customdata")
        if cd is not None:
            chosen = int(cd[0] if isinstance(cd, (list, tuple)) else cd)
            break
except (KeyError, TypeError):
    chosen = None
if chosen is None:
    st.info("Click a point to play that loop.")
    st.stop()
f = pts.loc[chosen, "file"]
st.subheader(label_of[f])
ls.play(f, f"{pts.loc[chosen, 'bpm']:.1f} BPM · pseudo-label bin {pts.loc[chosen, 'contact_bin']}")
nb = explore.neighbors_of(lib, f, None, min(5, lib.n - 1))
st.markdown("**Its neighbours**")
st.dataframe(nb.assign(loop=[label_of[x] for x in nb["neighbor_file"]])[
    ["neighbor_rank", "loop", "overall", "rhythm", "timbre", "recommended_pitch_fader_pct",
     "cdj_pitch_range", "key_relation"]].rename(columns={
        "neighbor_rank": "#", "overall": "similarity", "recommended_pitch_fader_pct":
        "pitch fader %", "cdj_pitch_range": "CDJ range", "key_relation": "key"}),
    hide_index=True, width="stretch",
    column_config={"similarity": st.column_config.NumberColumn(format="%.3f"),
                   "rhythm": st.column_config.NumberColumn(format="%.2f"),
                   "timbre": st.column_config.NumberColumn(format="%.2f"),
                   "pitch fader %": st.column_config.NumberColumn(format="%+.1f")})
