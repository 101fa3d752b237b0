"""Bar-aligned loop candidates and near-duplicate suppression.

Unlike the seed (which started a candidate on *every* beat), a candidate here
starts on a downbeat and ends on a later downbeat: its length is a whole
number of bars of the track's own grid.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import schema
from .rhythm import RhythmGrid

#: Columns every candidate table carries, in order (units: :mod:`engine.schema`).
CANDIDATE_COLUMNS = schema.CANDIDATE_COLUMNS


def bar_lines(grid: RhythmGrid, duration: float) -> np.ndarray:
    """Downbeat times plus the bar line that closes the last full bar.

    A bar line past the end of the audio is dropped, so every bar in the
    result is complete.
    """
    db = np.asarray(grid.downbeats, float)
    if db.size == 0:
        return db
    if grid.constant_tempo:
        nxt = db[-1] + grid.bar_duration
        if nxt <= duration + 1e-6:
            db = np.append(db, nxt)
    return db


#: A bar at the end of a track whose strongest onset is below this share of the
#: median bar's strongest onset is ring-out (the last hit's decay, reverb
#: tails, silence), not music: no loop starts or ends in it. On the realbench
#: renders ring-out bars peak at 0.08-0.14 of the median bar, the last played
#: bars at 0.5 or more.
RING_OUT_ONSET = 0.25


def music_end_line(lines: np.ndarray, envelope: np.ndarray, fps: float,
                   floor: float = RING_OUT_ONSET) -> int:
    """Index of the bar line that closes the track's last played bar.

    Parameters
    ----------
    lines : ndarray
        Bar lines in seconds (:func:`bar_lines`).
    envelope : ndarray
        Onset-strength envelope of the whole track.
    fps : float
        Frames per second of ``envelope``.
    floor : float
        A trailing bar whose strongest onset is below ``floor`` times the
        median bar's is ring-out.

    Returns
    -------
    int
        ``len(lines) - 1`` when the music plays to the last bar line; fewer
        when trailing bars are ring-out. Bars in the middle of a track (a
        break) are never trimmed, and neither is anything when fewer than
        two bars would remain.
    """
    lines = np.asarray(lines, float)
    env = np.asarray(envelope, float)
    if len(lines) < 3 or env.size == 0:
        return len(lines) - 1
    idx = np.clip(np.round(lines * fps).astype(int), 0, env.size)
    peaks = np.array([env[a:b].max() if b > a else 0.0 for a, b in zip(idx[:-1], idx[1:])])
    ref = float(np.median(peaks))
    if not np.isfinite(ref) or ref <= 0:
        return len(lines) - 1
    played = np.flatnonzero(peaks >= floor * ref)
    if played.size == 0 or played[-1] < 1:
        return len(lines) - 1
    return int(played[-1]) + 1


def generate_candidates(grid: RhythmGrid, duration: float, bars=(1, 2, 4, 8), *,
                        onset_envelope=None, fps: float | None = None) -> pd.DataFrame:
    """Every loop of ``bars`` bars that starts and ends on a bar line.

    Parameters
    ----------
    grid : RhythmGrid
    duration : float
        Track length in seconds (bar lines past it are not used).
    bars : sequence of int
        Loop lengths in bars.
    onset_envelope, fps : ndarray and float, optional
        The track's onset-strength envelope and its frame rate. When given,
        the ring-out after the last played bar is left out
        (:func:`music_end_line`): a loop of a decaying final chord is no loop.

    Returns
    -------
    DataFrame
        Columns :data:`CANDIDATE_COLUMNS`, one row per candidate, ordered by
        length then start.
    """
    lines = bar_lines(grid, duration)
    if onset_envelope is not None and fps:
        lines = lines[:music_end_line(lines, onset_envelope, fps) + 1]
    rows = []
    for n in sorted({int(b) for b in bars if int(b) > 0}):
        for i in range(len(lines) - n):
            start, end = float(lines[i]), float(lines[i + n])
            if end <= start or end > duration + 1e-6:
                continue
            rows.append((start, end, n, i))
    df = pd.DataFrame(rows, columns=["start_time", "end_time", "bars", "start_bar"])
    df.insert(0, "candidate_id", np.arange(len(df), dtype=int))
    df["bpm"] = float(grid.bpm)
    df["beats_per_bar"] = int(grid.beats_per_bar)
    # the track's grid, carried into every loop's metadata row
    df["meter"] = grid.meter
    df["tempo_confidence"] = round(float(grid.tempo_confidence), 3)
    df["bar_confidence"] = round(float(grid.bar_confidence), 3)
    return df[CANDIDATE_COLUMNS]


def choose_adaptive_bar_options(beats: np.ndarray, bpm: float, bars=(4, 8),
                                beats_per_bar: int = 4, margin: float = 0.03) -> list[int]:
    """The optional choice between 4- and 8-bar loops (kept from the earlier scripts).

    Applies only when both 4 and 8 are requested and there are at least 40
    beats. For each length, every span of that many bars is compared with
    its nominal duration; score = 0.45*exp(-mean relative error)
    + 0.45/(1 + CV of the durations) + 0.10*min(1, count/32). A length is
    kept alone only if it beats the other by more than ``margin``.

    Returns
    -------
    list of int
        The bar lengths to keep (other requested lengths are untouched).
    """
    bars = sorted({int(b) for b in bars})
    if not (4 in bars and 8 in bars) or len(beats) < 40 or not np.isfinite(bpm) or bpm <= 0:
        return bars
    beats = np.asarray(beats, float)

    def score(n_bars: int) -> float:
        span = n_bars * beats_per_bar
        d = beats[span:] - beats[:-span]
        d = d[d > 0]
        if d.size < 4:
            return 0.0
        nominal = span * 60.0 / bpm
        err = np.mean(np.abs(d - nominal) / nominal)
        cv = np.std(d) / (np.mean(d) + 1e-12)
        return 0.45 * np.exp(-err) + 0.45 / (1 + cv) + 0.10 * min(1.0, d.size / 32)

    s4, s8 = score(4), score(8)
    others = [b for b in bars if b not in (4, 8)]
    if s4 > s8 + margin:
        return sorted(others + [4])
    if s8 > s4 + margin:
        return sorted(others + [8])
    return bars


def overlap_fraction(a_start, a_end, b_start, b_end) -> float:
    """Intersection over the shorter of two time spans (0 if disjoint)."""
    inter = min(a_end, b_end) - max(a_start, b_start)
    if inter <= 0:
        return 0.0
    return float(inter / max(min(a_end - a_start, b_end - b_start), 1e-9))


def select_distinct(df: pd.DataFrame, score_col: str, k: int, max_overlap: float = 0.5) -> pd.DataFrame:
    """Greedy top-``k`` by ``score_col``, skipping near-duplicates.

    A candidate is skipped if it overlaps an already chosen one by more than
    ``max_overlap`` of the shorter span (so a 1-bar slice of a chosen 4-bar
    loop, or the same loop shifted by a bar, does not take a second slot).
    Ties keep the earlier candidate (stable sort).

    Returns
    -------
    DataFrame
        The chosen rows in rank order, with a 1-based ``rank`` column.
    """
    order = df.sort_values(score_col, ascending=False, kind="mergesort")
    chosen: list = []
    spans: list = []
    for idx, row in order.iterrows():
        s, e = float(row["start_time"]), float(row["end_time"])
        if any(overlap_fraction(s, e, a, b) > max_overlap for a, b in spans):
            continue
        chosen.append(idx)
        spans.append((s, e))
        if len(chosen) >= k:
            break
    out = df.loc[chosen].copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
