"""What a loop browser shows, computed from a cached analysis without re-analysing.

The dashboard's loop finder (and any other front end) calls these to get the
waveform overview with its beat and bar grid, the ranked top K for a choice of
loop lengths, and a table of the columns a DJ reads. All cheap: no audio is
decoded here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .candidates import bar_lines
from .config import RankConfig
from .pipeline import TrackAnalysis, load_scorer, rank_track

#: Features shown next to the score (name in the candidate table -> column title).
MAIN_FEATURES = {
    "periodicity_score": "groove repeat",
    "bar_repetition": "bar repeat",
    "drum_alignment_score": "drums on grid",
    "seam_spectral_continuity": "seam match",
    "energy_stability": "steady energy",
}


@dataclass(frozen=True)
class WaveformView:
    """A track's overview for plotting (times in seconds).

    Attributes
    ----------
    times, low, high : ndarray
        Envelope of the mono signal: min and max per block, at block centres.
    beats : ndarray
        Beat times of the grid.
    bars : ndarray
        Bar lines (downbeats, plus the line closing the last full bar).
    duration : float
    bpm : float
    meter : str
    """

    times: np.ndarray
    low: np.ndarray
    high: np.ndarray
    beats: np.ndarray
    bars: np.ndarray
    duration: float
    bpm: float
    meter: str


def waveform_view(analysis: TrackAnalysis, points: int = 1200) -> WaveformView:
    """Overview envelope (at most ``points`` blocks) and grid lines of an analysed track.

    ``points`` bounds what a chart has to draw: about one block per pixel column of a
    wide screen keeps the peaks while redrawing fast.
    """
    ov = np.asarray(analysis.overview, dtype=np.float32)
    duration = float(analysis.info.duration)
    total = ov.shape[1] if ov.ndim == 2 else 0
    step = max(1, int(np.ceil(total / max(points, 1))))
    if step > 1:
        pad = (-total) % step                       # repeat the last block to fill the group
        lo = np.concatenate([ov[0], np.repeat(ov[0, -1:], pad)]).reshape(-1, step).min(axis=1)
        hi = np.concatenate([ov[1], np.repeat(ov[1, -1:], pad)]).reshape(-1, step).max(axis=1)
        ov = np.vstack([lo, hi])
    n = ov.shape[1] if ov.ndim == 2 else 0
    centres = np.minimum((np.arange(n) + 0.5) * step, total)
    times = centres * (duration / max(total, 1))
    grid = analysis.grid
    return WaveformView(times=times, low=ov[0] if n else np.zeros(0),
                        high=ov[1] if n else np.zeros(0),
                        beats=np.asarray(grid.beats, float),
                        bars=np.asarray(bar_lines(grid, duration), float),
                        duration=duration, bpm=float(grid.bpm),
                        meter=getattr(grid, "meter", f"{grid.beats_per_bar}/4"))


def add_sample_positions(df: pd.DataFrame, sr: int) -> pd.DataFrame:
    """``start_sample``/``end_sample`` at the source rate, as the export computes them.

    Kept when the table already has them; otherwise ``round(time * sr)``, the rule
    :func:`engine.export.export_track_loops` applies, so a preview, a label and an
    exported file name the same samples.
    """
    out = df.copy()
    for kind in ("start", "end"):
        col = f"{kind}_sample"
        if col not in out.columns:
            out[col] = np.round(out[f"{kind}_time"].astype(float) * int(sr)).astype(np.int64)
    return out


def rank_view(analysis: TrackAnalysis, *, top_k: int = 5, bars=None,
              rank_cfg: RankConfig | None = None, scorer=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-rank a cached analysis for the chosen loop lengths and K.

    Parameters
    ----------
    analysis : TrackAnalysis
    top_k : int
        Loops to keep (distinct: near-duplicates are skipped).
    bars : iterable of int, optional
        Loop lengths to consider (default: every length analysed).
    rank_cfg : RankConfig, optional
        Weights and overlap; ``top_k`` overrides its own.
    scorer : LoopScorer, optional
        A trained loop-quality model. By default the one ``rank_cfg`` names
        (:func:`engine.pipeline.load_scorer`: the shipped model unless its
        ``model_path`` says otherwise; ``"heuristic"`` ranks by the heuristic),
        so the dashboard ranks exactly as ``extract`` does.

    Returns
    -------
    scored, selected : DataFrame
        As :func:`engine.pipeline.rank_track` plus ``start_sample``/``end_sample``
        (:func:`add_sample_positions`); empty when no candidate has one of the
        chosen lengths.
    """
    cfg = dataclasses.replace(rank_cfg or RankConfig(), top_k=max(1, int(top_k)))
    sr = int(analysis.info.sr)
    view = analysis
    if bars is not None:
        wanted = {int(b) for b in bars}
        cands = analysis.candidates[analysis.candidates["bars"].astype(int).isin(wanted)]
        if cands.empty:
            empty = add_sample_positions(analysis.candidates.iloc[0:0], sr)
            return empty, empty.assign(rank=pd.Series(dtype=int))
        view = dataclasses.replace(analysis, candidates=cands)
    if scorer is None:
        scorer = load_scorer(cfg)
    scored, selected = rank_track(view, cfg, scorer)
    selected = selected.assign(score_share=score_share(scored["score"], selected["score"]))
    return add_sample_positions(scored, sr), add_sample_positions(selected, sr)


def score_share(all_scores, scores) -> np.ndarray:
    """The share (0-1) of a track's candidates that score at most as high as each of ``scores``.

    Model scores are ranking margins with no fixed scale (negative is common), so the
    dashboard shows each loop's standing among its own track's candidates instead.
    """
    ref = np.sort(np.asarray(all_scores, float))
    if not ref.size:
        return np.zeros(len(scores))
    return np.searchsorted(ref, np.asarray(scores, float), side="right") / ref.size


def key_text(key, camelot=None) -> str:
    """``"F# minor (11A)"``, ``"no clear key"`` or ``""`` (missing values dropped)."""
    key = key if isinstance(key, str) else ""
    cam = camelot if isinstance(camelot, str) and camelot else ""
    return f"{key} ({cam})" if key and cam else key


def format_time(seconds: float) -> str:
    """``83.456`` -> ``"1:23.46"``."""
    if seconds is None or not np.isfinite(seconds):
        return "-"
    m, s = divmod(max(0.0, float(seconds)), 60.0)
    return f"{int(m)}:{s:05.2f}"


def bars_text(n) -> str:
    """``1`` -> ``"1 bar"``, ``4`` -> ``"4 bars"``."""
    n = int(n)
    return f"{n} bar" if n == 1 else f"{n} bars"


def loop_table(selected: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ranked loops as a DJ reads them.

    Columns: ``rank, start, end, bars, BPM, key, Camelot, score, scored by``, the
    :data:`MAIN_FEATURES` and ``your label`` (the latest good/bad given to that
    exact span, matched by sample positions, else empty).
    """
    if selected is None or selected.empty:
        return pd.DataFrame(columns=["rank", "start", "end", "bars", "BPM", "key", "Camelot",
                                     "score", "scored by", *MAIN_FEATURES.values(), "your label"])
    df = selected.reset_index(drop=True)
    out = pd.DataFrame({
        "rank": df["rank"].astype(int),
        "start": [format_time(t) for t in df["start_time"]],
        "end": [format_time(t) for t in df["end_time"]],
        "bars": df["bars"].astype(int),
        "BPM": df["bpm"].astype(float).round(1),
        "key": df.get("key", pd.Series([""] * len(df))).fillna(""),
        "Camelot": df.get("camelot", pd.Series([""] * len(df))).fillna(""),
        # the scorer's own estimate as the share of the track's candidates it beats
        # (``score_share``, from rank_view); the order (rank) may also reflect the
        # section guard or the composite re-rank (``rank_score``)
        "score": (df["score_share"] if "score_share" in df else df["score"]).astype(float).round(3),
        "scored by": df.get("score_source", pd.Series([""] * len(df))).fillna(""),
    })
    for col, title in MAIN_FEATURES.items():
        if col in df:
            out[title] = df[col].astype(float).round(2)
    out["your label"] = ""
    if labels is not None and not labels.empty:
        latest = {}
        for r in labels.itertuples(index=False):
            latest[(int(r.start_sample) if pd.notna(r.start_sample) else -1,
                    int(r.end_sample) if pd.notna(r.end_sample) else -1)] = r.label
        out["your label"] = [latest.get((int(s), int(e)), "") for s, e in
                             zip(df["start_sample"], df["end_sample"])]
    return out
