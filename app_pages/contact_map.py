"""Contact map: which loops share a rhythm, as a heatmap you can sharpen live."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import library_state as ls
from engine import explore

st.title("Contact map")
st.caption("Every loop against every other by rhythm (dynamic time warping of onset and "
           "bass patterns), ordered so that similar loops sit together: squares on the "
           "diagonal are families of loops that groove alike. The sharpening controls only "
           "re-weight the stored comparisons, so they respond at once.")

table = ls.source_picker("cm")
files = table["file"].astype(str).tolist()
if len(files) < 3:
    st.info("A contact map needs at least 3 loops. Add tracks, point to a folder of loops, "
            "or generate demo loops above.")
    st.stop()

lib = ls.build_button(files, f"Build the contact map of {len(files)} loops", "cm_build")
if lib is None:
    st.stop()
label_of = ls.names(lib, table)

with st.sidebar.expander("Sharpening", expanded=True):
    mode = st.selectbox("Sharpen mode", ["self_tuned_knn", "sinkhorn", "none"], key="cm_mode",
                        help="self_tuned_knn: keep each loop's closest k with a per-loop "
                             "scale. sinkhorn: balance rows and columns. none: raw similarity.")
    k = st.slider("self_tune_k", 2, max(3, min(30, lib.n - 1)), min(7, lib.n - 1), key="cm_k",
                  disabled=mode != "self_tuned_knn")
    mutual = st.toggle("Mutual kNN", True, key="cm_mutual", disabled=mode != "self_tuned_knn",
                       help="Keep an edge only when each loop is in the other's closest k.")
    iters = st.slider("Sinkhorn iterations", 1, 100, 25, key="cm_iters",
                      disabled=mode != "sinkhorn")
    n_bins = st.slider("Pseudo-label bins", 2, 8, 4, key="cm_bins")

params = {"sharpen_mode": mode, "self_tune_k": int(k), "mutual_knn": bool(mutual),
          "sinkhorn_iters": int(iters), "n_bins": int(n_bins)}
st.session_state["cm_params"] = params      # the library map uses the same settings
cmap = ls.sharpened(ls.library_key(lib.files), json.dumps(params, sort_keys=True), lib)

dc = explore.dtw_counters()
st.caption(f"{lib.n} loops · {lib.dtw.mode} DTW over {lib.dtw.n_pairs:,} pairs · "
           f"DTW runs in this server: {dc['computed']} (cache reads {dc['cached']}) · "
           f"re-sharpenings: {explore.COUNTERS['sharpen']} · "
           f"last one {cmap.seconds * 1000:.0f} ms", help="Moving a control re-sharpens "
           "the stored DTW distances; the DTW count does not change.")
for w in cmap.warnings:
    st.warning(w)


#: dark (unrelated) to bright (same groove); explicit so the app theme cannot swap it
HEAT_COLOURS = [[0.0, "#0b1020"], [0.2, "#2a1b4d"], [0.45, "#7b2d7a"], [0.7, "#e0605a"],
                [1.0, "#fde68a"]]


def fig_layout(fig, title, n):
    return fig.update_layout(title=title, height=460, margin=dict(l=10, r=10, t=40, b=10),
                             xaxis=dict(showticklabels=False, title="loops in Fiedler order",
                                        range=[-0.5, n - 0.5], showgrid=False, zeroline=False),
                             yaxis=dict(showticklabels=False, range=[n - 0.5, -0.5],
                                        scaleanchor="x", showgrid=False, zeroline=False,
                                        ticks=""), modebar=dict(orientation="v"))


def heat(view, title, key, clickable):
    n = view.values.shape[0]
    if view.binned:
        text = [f"block of {len(m)} loops" for m in view.members]
    else:
        text = [label_of.get(lib.files[int(m[0])], "")[:50] for m in view.members]
    fig = go.Figure(go.Heatmap(z=view.values, zmin=0, zmax=1, colorscale=HEAT_COLOURS,
                               hoverinfo="skip" if clickable else None,
                               hovertemplate=None if clickable else
                               "similarity %{z:.2f}<extra></extra>",
                               colorbar=dict(thickness=10)))
    # a transparent point on every cell: Plotly selects points, not heatmap cells, so
    # these make a click select the cell (WebGL above 60 cells per side)
    if not clickable:
        return st.plotly_chart(fig_layout(fig, title, n), key=key)
    ii, jj = np.divmod(np.arange(n * n), n)
    cells = go.Scatter if n <= 60 else go.Scattergl
    fig.add_trace(cells(x=jj, y=ii, mode="markers", showlegend=False,
                        marker=dict(symbol="square", size=max(3.0, 380.0 / n), opacity=0.01,
                                    color="white"),
                        customdata=np.round(view.values.ravel(), 3),
                        text=[f"{text[i]}<br>× {text[j]}" for i, j in zip(ii, jj)]
                        if n <= 100 else None,
                        hovertemplate=("%{text}" if n <= 100 else "cell %{y} × %{x}")
                        + "<br>similarity %{customdata:.2f}<extra></extra>"))
    fig_layout(fig, title, n).update_layout(clickmode="event+select")
    return st.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points")


raw_view = explore.heatmap_view(cmap, "similarity_raw")
sharp_view = explore.heatmap_view(cmap, "similarity")
if sharp_view.binned:
    st.info(f"{lib.n} loops: each cell is the mean of a block of about "
            f"{lib.n / sharp_view.values.shape[0]:.1f} consecutive loops.")
c1, c2 = st.columns(2)
with c1:
    heat(raw_view, "Raw similarity", "cm_raw", clickable=False)
with c2:
    ev_sharp = heat(sharp_view, f"Sharpened ({mode})", "cm_sharp",
                    clickable=True)


def clicked(ev):
    try:
        pts = ev["selection"]["points"]
    except (KeyError, TypeError):
        pts = []
    for p in pts or []:
        if p.get("curve_number", 1) == 1 and p.get("x") is not None and p.get("y") is not None:
            return int(round(p["y"])), int(round(p["x"]))
    return None


cell = clicked(ev_sharp)
st.subheader("Play a pair")
if cell is None:
    st.caption("Click a cell of the sharpened heatmap to hear its two loops.")
    members = sharp_view.members
    cell = (0, 1 if len(members) > 1 else 0)
    st.session_state.setdefault("cm_cell_default", True)
i_loop = int(sharp_view.members[cell[0]][0])
j_loop = int(sharp_view.members[cell[1]][0])
pair = explore.pair_similarity(cmap, i_loop, j_loop)
st.markdown(f"Row **{label_of[lib.files[i_loop]]}** × column **{label_of[lib.files[j_loop]]}** · "
            f"sharpened {pair['similarity']:.2f} · raw {pair['similarity_raw']:.2f} · "
            f"DTW stretch {pair['stretch']:.2f}")
p1, p2 = st.columns(2)
with p1:
    ls.play(lib.files[i_loop], label_of[lib.files[i_loop]])
with p2:
    ls.play(lib.files[j_loop], label_of[lib.files[j_loop]])

st.subheader("Fiedler vector and pseudo-labels")
labels = cmap.labels_frame()
labels.insert(1, "loop", [label_of[f] for f in labels["file"]])
order = np.asarray(cmap.order)
fig = go.Figure(go.Scatter(x=np.arange(lib.n), y=cmap.fiedler[order], mode="markers+lines",
                           marker=dict(color=cmap.bins[order], colorscale="Turbo", size=7),
                           text=[label_of[lib.files[i]] for i in order],
                           hovertemplate="%{text}<br>Fiedler %{y:.3f}<extra></extra>",
                           line=dict(width=1, color="#888")))
fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=30),
                  xaxis_title="position in Fiedler order", yaxis_title="Fiedler value")
st.plotly_chart(fig, key="cm_fiedler")
ev = np.asarray(cmap.eigenvalues)
st.caption("Eigenvalues of the normalised Laplacian: " + ", ".join(f"{v:.3f}" for v in ev[:6])
           + f" · components before bridging: {cmap.n_components}, bridges added: "
           f"{cmap.bridges_added}")
labels = labels.sort_values("fiedler_value", kind="stable")
st.dataframe(labels.drop(columns=["file"]), hide_index=True, width="stretch",
             column_config={"fiedler_value": st.column_config.NumberColumn(format="%.4f")})


_lib, _cmap = lib, cmap
st.download_button("Download all artifacts (ZIP)", lambda: explore.artifacts_zip(_lib, _cmap),
                   file_name="contact_map.zip", mime="application/zip",
                   icon=":material/download:", key="cm_zip",
                   help="Similarity, distance and stretch matrices, labels, Fiedler order, "
                        "nearest neighbours, top pairs, heatmap PNGs, aspect neighbours, "
                        "summary JSON (written when you click).")
