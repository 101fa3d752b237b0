"""Loop BPM: onset-tempogram estimate refined by the loop's whole-bar length.

See :func:`loop_tempo` and :mod:`engine.contact` for the rule and its measured accuracy.
"""
from __future__ import annotations

import math

import numpy as np

from .frames import RhythmFeatures, SequenceParams, rhythm_features

#: Beat-grid score (onset strength on the grid / mean) above which a loop's
#: length decides its tempo.
LOOP_GRID_MIN = 1.35

#: Folded (octave-equivalent) distance, in octaves, within which the onset
#: tempo and a loop-length tempo are taken to agree (0.04 octave = 2.8 %).
LOOP_AGREE_OCT = 0.04

#: Beat counts a loop may hold: 1-64 bars of 4/4 or of 3/4.
LOOP_BEATS = tuple(sorted({4 * b for b in range(1, 65)} | {3 * b for b in range(1, 65)}))


def _fold(bpm: float, lo: float, hi: float) -> float:
    """Multiply/divide by 2 until ``bpm`` lies in [lo, hi] (when it can)."""
    if not (bpm and np.isfinite(bpm) and bpm > 0):
        return float("nan")
    while bpm < lo and bpm * 2 <= hi * 1.0001:
        bpm *= 2
    while bpm > hi and bpm / 2 >= lo * 0.9999:
        bpm /= 2
    return float(bpm)


def _grid_score(env: np.ndarray, fps: float, bpm: float, duration: float) -> float:
    """Mean onset strength (+-1 frame) on a beat grid starting at 0 s, over the mean."""
    n_beats = int(math.floor(duration * bpm / 60.0 + 1e-6))
    if n_beats < 2 or env.size < 4:
        return 0.0
    idx = np.round(np.arange(n_beats) * (60.0 / bpm) * fps).astype(np.int64)
    idx = idx[idx < env.size]
    if idx.size < 2:
        return 0.0
    nb = np.stack([np.clip(idx + k, 0, env.size - 1) for k in (-1, 0, 1)])
    mean = float(env.mean())
    return float(env[nb].max(axis=0).mean() / mean) if mean > 0 else 0.0


def _bar_penalty(beats: int) -> float:
    """How unusual a loop of ``beats`` beats is: 0 for 1, 2, 4, 8 ... bars of
    4/4, 0.5 for 3, 6, 12 ... bars of 4/4, 0.75 for 1, 2, 4 ... bars of 3/4,
    1 for anything else (5 or 7 bars, ...)."""
    def pow2(x):
        return x > 0 and x & (x - 1) == 0

    if beats % 4 == 0 and pow2(beats // 4):
        return 0.0
    if beats % 12 == 0 and pow2(beats // 12):
        return 0.5
    if beats % 3 == 0 and pow2(beats // 3):
        return 0.75
    return 1.0


def loop_tempo(env: np.ndarray, fps: float, duration: float, onset_bpm: float,
               params: SequenceParams = SequenceParams()) -> tuple[float, str]:
    """Refine ``onset_bpm`` with the loop's length (see :mod:`engine.contact`).

    A loop holds a whole number of bars (:data:`LOOP_BEATS`: 1-64 bars of
    4/4 or 3/4), so its exact tempo is ``60 * beats / duration`` for one of
    them. Candidates in [min_bpm, max_bpm] count only when the onsets line up
    with their beat grid from 0 s (grid score >= :data:`LOOP_GRID_MIN`).
    Each is scored ``d / LOOP_AGREE_OCT + penalty``, with d its distance in
    octaves to the onset estimate folded over octave errors and the penalty
    of its bar count (:func:`_bar_penalty`: 4, 8, 16 bars of 4/4 are common,
    5 or 7 bars rare); the best score wins if it is at most 1
    (``"loop_length"``). When none agrees (the onset estimate is off by 2:3
    or 3:4, common for syncopated patterns and loops shorter than its 8-s
    window) the candidate with the strongest beat grid wins (``"loop_grid"``).
    Without any candidate the onset estimate stays (``"onset"``).

    On 400 generated 8-16 s loops (six patterns incl. 3/4, 2-12 bars, half
    with swing or tonal parts) this gives the exact tempo for 94 % and the
    tempo up to a factor 2 for 98 %; the onset estimate alone is within 2 %
    for 86 %. Factor-2 errors do not matter to the neighbour hints, which
    allow half and double time.

    Returns
    -------
    bpm : float
    method : {"loop_length", "loop_grid", "onset"}
    """
    if not params.loop_snap or not (duration > 0) or not (onset_bpm and np.isfinite(onset_bpm)):
        return onset_bpm, "onset"
    env_loop = env[: int(math.ceil(duration * fps)) + 1]
    good = []
    for b in LOOP_BEATS:
        c = 60.0 * b / duration
        if params.min_bpm <= c <= params.max_bpm:
            g = _grid_score(env_loop, fps, c, duration)
            if g >= LOOP_GRID_MIN:
                good.append((c, b, g))
    if not good:
        return onset_bpm, "onset"

    def score(c, b):
        r = math.log2(c / onset_bpm)
        return abs(r - round(r)) / LOOP_AGREE_OCT + _bar_penalty(b)

    best = min(good, key=lambda cbg: (score(cbg[0], cbg[1]), abs(math.log2(cbg[0] / onset_bpm))))
    if score(best[0], best[1]) <= 1.0:
        return float(best[0]), "loop_length"
    return float(max(good, key=lambda cbg: cbg[2])[0]), "loop_grid"


def estimate_loop_bpm(y: np.ndarray, sr: int, feats: RhythmFeatures | None = None,
                      duration: float | None = None,
                      params: SequenceParams = SequenceParams()) -> tuple[float | None, str]:
    """BPM of a loop (see :mod:`engine.contact`); (None, "failed") when nothing is found.

    Parameters
    ----------
    y : ndarray
        Mono signal at ``sr``.
    sr : int
    feats : RhythmFeatures, optional
        Already computed features of ``y`` (saves the work).
    duration : float, optional
        The file's duration (default: ``len(y) / sr``).
    params : SequenceParams
    """
    import librosa

    if feats is None:
        feats = rhythm_features(y, sr, params)
    env = feats.onset_envelope
    duration = float(len(y) / sr) if duration is None else float(duration)
    if params.bpm_source == "rhythm":
        from ..rhythm import estimate_bpm  # lazy: the lead's module

        raw = float(estimate_bpm(y, sr, params.min_bpm, params.max_bpm))
    else:
        if env.size < 8:
            return None, "failed"
        raw = float(np.atleast_1d(librosa.feature.tempo(
            tg=feats.tempogram, sr=sr, hop_length=params.hop_length,
            aggregate=np.median))[0])
    est = _fold(raw, params.min_bpm, params.max_bpm)
    bpm, method = loop_tempo(env, params.fps, duration, est, params)
    if bpm is None or not np.isfinite(bpm) or bpm <= 0:
        return None, "failed"
    return float(bpm), method
