"""Loudness measurement per ITU-R BS.1770-4, for any channel layout.

Integrated loudness comes from pyloudnorm (:func:`measure_loudness`).
Layouts pyloudnorm does not weight itself are mapped onto its L, R, C, Ls, Rs
slots (4.0 quad with an empty centre; 5.1 drops the LFE, as BS.1770 says);
7+ channels run the same gated algorithm with BS.1770 channel weights
(:func:`_gated_loudness`). Loops shorter than the 400 ms gating block are
measured repeated, the way they will be heard.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .audio import as_2d

#: BS.1770 gating block (s); shorter signals are measured repeated.
_GATE_BLOCK = 0.4


def _loudness_layout(channels: int) -> tuple[list[int | None], str]:
    """Map WAV channel order onto pyloudnorm's [L, R, C, Ls, Rs] slots.

    Returns the source channel for each slot (None = silent slot) and
    "pyloudnorm" or "generic".
    """
    if channels in (1, 2, 3, 5):
        return list(range(channels)), "pyloudnorm"
    if channels == 4:       # quad FL FR BL BR: surrounds weighted 1.41, empty centre
        return [0, 1, None, 2, 3], "pyloudnorm"
    if channels == 6:       # 5.1 FL FR FC LFE BL BR: LFE excluded (BS.1770)
        return [0, 1, 2, 4, 5], "pyloudnorm"
    return [], "generic"


def _generic_weights(channels: int) -> np.ndarray:
    """BS.1770 weights for layouts pyloudnorm does not cover (7+ channels).

    WAV order: front L, R, C weight 1; channel 3 is the LFE (excluded); all
    further (surround/back) channels weight 1.41.
    """
    w = np.full(channels, 1.41)
    w[:min(3, channels)] = 1.0
    if channels >= 6:
        w[3] = 0.0
    return w


def _gated_loudness(x: np.ndarray, sr: int, weights: np.ndarray) -> float:
    """BS.1770-4 integrated loudness with arbitrary channel weights.

    K-weighting uses pyloudnorm's own filters; blocks of 400 ms, 75 % overlap,
    absolute gate -70 LUFS, relative gate -10 LU (as pyloudnorm does).
    """
    import pyloudnorm as pyln

    meter = pyln.Meter(sr)
    y = np.array(x, dtype=np.float64, copy=True)
    for stage in meter._filters.values():
        for ch in range(y.shape[1]):
            y[:, ch] = stage.apply_filter(y[:, ch])
    block = int(round(_GATE_BLOCK * sr))
    step = max(1, int(round(_GATE_BLOCK * 0.25 * sr)))
    n_blocks = 1 + max(0, (y.shape[0] - block) // step)
    csum = np.vstack([np.zeros((1, y.shape[1])), np.cumsum(y ** 2, axis=0)])
    starts = np.arange(n_blocks) * step
    z = (csum[starts + block] - csum[starts]) / block              # (blocks, ch)
    with np.errstate(divide="ignore"):
        lj = -0.691 + 10 * np.log10(z @ weights)
        keep = lj >= -70.0
        if not keep.any():
            return float("-inf")
        rel = -0.691 + 10 * np.log10(z[keep].mean(axis=0) @ weights) - 10.0
        keep &= lj > rel
        if not keep.any():
            return float("-inf")
        return float(-0.691 + 10 * np.log10(z[keep].mean(axis=0) @ weights))


def measure_loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 via pyloudnorm).

    Parameters
    ----------
    x : ndarray, shape (n,) or (n, channels)
        WAV channel order (L, R, C, LFE, Ls, Rs for 5.1).
    sr : int

    Returns
    -------
    float
        LUFS; ``-inf`` when nothing passes the -70 LUFS absolute gate.

    Notes
    -----
    pyloudnorm weights up to five channels as [L, R, C, Ls, Rs]; 4-channel
    (quad) and 6-channel (5.1, LFE excluded) files are mapped onto those
    slots; 7+ channels use the same algorithm with BS.1770 weights
    (:func:`_generic_weights`). A signal shorter than the 400 ms gating block
    is measured repeated (a loop is heard repeated).
    """
    import pyloudnorm as pyln

    x = as_2d(np.asarray(x, dtype=np.float64))
    n, channels = x.shape
    if n == 0:
        return float("-inf")
    need = int(math.ceil(_GATE_BLOCK * sr)) + 1
    if n < need:
        x = np.tile(x, (int(math.ceil(need / n)), 1))
    slots, kind = _loudness_layout(channels)
    if kind == "generic":
        return _gated_loudness(x, sr, _generic_weights(channels))
    data = np.zeros((x.shape[0], len(slots)), np.float64)
    for j, src in enumerate(slots):
        if src is not None:
            data[:, j] = x[:, src]
    if data.shape[1] == 1:
        data = data[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = pyln.Meter(sr).integrated_loudness(data)
    return float(value) if np.isfinite(value) else float("-inf")


def peak_to_dbfs(peak: float) -> float:
    """A sample peak (linear, full scale = 1) in dBFS; ``-inf`` for silence."""
    return float(20 * np.log10(peak)) if peak > 0 else float("-inf")
