"""Plotly figures from engine results (layout only; the numbers come from the engine)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.loopview import WaveformView, bars_text, format_time

#: Colours: waveform, beat lines, bar lines, loop regions, the selected loop.
WAVE, BEAT, BAR, REGION, SELECTED = "#7aa6c2", "rgba(200,200,200,0.18)", "#e8e8e8", \
    "#2ec4b6", "#ff8a3d"

#: Index of the loop-region trace in :func:`waveform_figure` (clicks select its points).
REGION_TRACE = 4


def _vlines(xs, y0: float, y1: float):
    xs = np.asarray(xs, float)
    x = np.repeat(xs, 3).astype(object)
    x[2::3] = None
    y = np.tile(np.array([y0, y1, None], dtype=object), len(xs))
    return x, y


def waveform_figure(view: WaveformView, loops: pd.DataFrame, selected_rank: int | None = None,
                    height: int = 300) -> go.Figure:
    """The track's waveform, beat and bar grid, and the top-K loops as clickable regions.

    Trace order is fixed (see :data:`REGION_TRACE`): envelope top, envelope
    bottom, beat lines, bar lines, loop regions.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=view.times, y=view.high, mode="lines", line=dict(width=0.6, color=WAVE),
                             hoverinfo="skip", showlegend=False, name="waveform"))
    fig.add_trace(go.Scatter(x=view.times, y=view.low, mode="lines", line=dict(width=0.6, color=WAVE),
                             fill="tonexty", fillcolor="rgba(122,166,194,0.55)", hoverinfo="skip",
                             showlegend=False, name="waveform"))
    bx, by = _vlines(view.beats, -1.0, 1.0)
    fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line=dict(width=1, color=BEAT),
                             hoverinfo="skip", name="beats", showlegend=True))
    lx, ly = _vlines(view.bars, -1.08, 1.08)
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", line=dict(width=1.4, color=BAR, dash="dot"),
                             hoverinfo="skip", name="bar lines", showlegend=True))
    top = 1.12
    if loops is not None and not loops.empty:
        starts = loops["start_time"].to_numpy(float)
        ends = loops["end_time"].to_numpy(float)
        ranks = loops["rank"].astype(int).to_numpy()
        lanes = _lanes(starts, ends)
        lane_h = 0.32
        for s_, e_, r in zip(starts, ends, ranks):      # the selected loop, over the waveform
            if selected_rank is not None and r == selected_rank:
                fig.add_shape(type="rect", x0=s_, x1=e_, y0=-1.08, y1=1.08, line=dict(width=0),
                              fillcolor=SELECTED, opacity=0.22, layer="below")
        colors = [SELECTED if selected_rank is not None and r == selected_rank else REGION
                  for r in ranks]
        hover = [f"#{r} · {bars_text(b)} · {format_time(s)}–{format_time(e)}<br>click to select"
                 for r, b, s, e in zip(ranks, loops["bars"], starts, ends)]
        # every loop as a labelled clip in a lane above the waveform; overlapping loops go to
        # different lanes, so each one can be clicked
        fig.add_trace(go.Bar(x=(starts + ends) / 2.0, y=np.full(len(ranks), lane_h * 0.86),
                             base=top + lanes * lane_h, width=ends - starts,
                             marker=dict(color=colors, opacity=0.85, line=dict(width=0)),
                             text=[f"#{r}" for r in ranks], textposition="inside",
                             insidetextanchor="middle", textangle=0, constraintext="none",
                             textfont=dict(size=12, color="#111"),
                             customdata=ranks, hovertext=hover, hoverinfo="text",
                             name="top loops", showlegend=True))
        top = top + (int(lanes.max()) + 1) * lane_h
    else:
        fig.add_trace(go.Bar(x=[], y=[], name="top loops"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=30), bargap=0,
                      barmode="overlay", clickmode="event+select", dragmode="zoom",
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"),
                      xaxis=dict(title="time (s)", range=[0, view.duration], showgrid=False),
                      yaxis=dict(range=[-1.12, top + 0.04], showticklabels=False, showgrid=False,
                                 zeroline=False, fixedrange=True))
    return fig


def _lanes(starts, ends) -> np.ndarray:
    """Lane per loop (in the given order): the first lane where it overlaps no other loop."""
    placed: list[list[tuple[float, float]]] = []
    out = []
    for s_, e_ in zip(starts, ends):
        for i, spans in enumerate(placed):
            if all(s_ >= e2 - 1e-6 or e_ <= s2 + 1e-6 for s2, e2 in spans):
                spans.append((s_, e_))
                out.append(i)
                break
        else:
            placed.append([(s_, e_)])
            out.append(len(placed) - 1)
    return np.asarray(out, dtype=int)


def rank_from_selection(event, loops: pd.DataFrame) -> int | None:
    """The rank of the loop region clicked in :func:`waveform_figure`, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        points = getattr(getattr(event, "selection", None), "points", None) or []
    for p in points or []:
        if p.get("curve_number") != REGION_TRACE:
            continue
        cd = p.get("customdata")
        if cd is not None:
            return int(cd[0] if isinstance(cd, (list, tuple)) else cd)
        idx = p.get("point_index", p.get("point_number"))
        if idx is not None and 0 <= int(idx) < len(loops):
            return int(loops["rank"].iloc[int(idx)])
    return None
