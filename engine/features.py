"""Frame features computed once per track, aggregated per candidate by slicing.

The earlier scripts recomputed HPSS, three STFTs and a tempo estimate for every
overlapping candidate. Here one pass over the track
computes compact per-frame descriptors (STFT magnitude is never kept whole:
the track is processed in blocks, so a 60-minute mix stays within a few
hundred MB), and each candidate's features are means and shapes of slices.

Per-candidate features (:func:`candidate_features`) keep the seed's 20 names
and add seam, repetition, arrangement and phrase features; see
:data:`engine.schema.SEED_FEATURES`, :data:`engine.schema.SEAM_FEATURES`,
:data:`engine.schema.SECTION_FEATURES`, :data:`engine.schema.PART_FEATURES` (a part entering
or leaving between bars: :class:`_BarParts`) and :data:`engine.schema.PHRASE_FEATURES` (bar
similarity at the loop's length vs 1 bar, the bars after the end vs its start, the local
and track repetition period: :class:`_BarLags`). Differences from the seed, on purpose:

* drum cues use the track's beat grid (candidates start on a downbeat), and
  are averaged over every bar of the loop instead of read at frame 0 only;
* ``hihat_grid`` uses a mean-removed autocorrelation (the seed's raw
  autocorrelation is close to 1 for any steady signal);
* ``onset_density`` counts onsets detected once on the whole track.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import schema
from .config import AnalysisConfig
from .rhythm import (FINE_HOP, MEL_GAIN, OnsetData, fine_attack_envelope, flux_bands, mel_power,
                     onset_lag, shift_frames)

#: The features this module computes, in order (names, units: :mod:`engine.schema`).
FEATURE_COLUMNS = schema.FEATURE_COLUMNS

N_MEL = 40
HPSS_TIME_KERNEL = 17   # frames (~0.4 s)
HPSS_FREQ_KERNEL = 9    # pooled bins (~390 Hz)
BANDS = {"kick": (30.0, 160.0), "snare": (180.0, 2500.0), "hat": (5000.0, 12000.0),
         "low": (20.0, 180.0)}


@dataclass
class TrackFeatures:
    """Per-frame descriptors of a whole track at ``sr / hop_length`` frames/s.

    Every array has one value per STFT frame (frame ``t`` is centred at
    ``t * hop_length / sr`` seconds); ``mel`` and ``chroma`` are
    (bands, frames).
    """

    sr: int
    hop_length: int
    n_fft: int
    rms: np.ndarray
    zcr: np.ndarray
    centroid: np.ndarray
    bandwidth: np.ndarray
    rolloff: np.ndarray
    harm_energy: np.ndarray
    perc_energy: np.ndarray
    kick: np.ndarray
    snare: np.ndarray
    hat: np.ndarray
    low: np.ndarray
    mel: np.ndarray
    chroma: np.ndarray
    onset_frames: np.ndarray

    @property
    def fps(self) -> float:
        return self.sr / self.hop_length

    @property
    def n_frames(self) -> int:
        return int(self.rms.shape[0])

    def frame(self, t: float) -> int:
        """Frame index nearest to time ``t`` (s), clipped to the track."""
        return int(np.clip(round(t * self.fps), 0, self.n_frames))


def _median_filter_1d(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    from scipy.ndimage import median_filter

    shape = [1, 1]
    shape[axis] = size
    return median_filter(x, size=tuple(shape), mode="reflect")


def compute_track_features(y: np.ndarray, sr: int, cfg: AnalysisConfig = AnalysisConfig(),
                           *, block_frames: int = 4096, progress=None
                           ) -> tuple[TrackFeatures, OnsetData]:
    """One pass over the track: frame features and onset envelopes.

    Parameters
    ----------
    y : ndarray
        Mono float32 signal at ``sr``.
    sr : int
    cfg : AnalysisConfig
        ``n_fft`` and ``hop_length``.
    block_frames : int
        STFT frames per block; memory is proportional to this, not to the
        track length.
    progress : callable, optional
        ``progress(done, total, message)``.

    Returns
    -------
    TrackFeatures, OnsetData
    """
    import librosa

    n_fft, hop = cfg.n_fft, cfg.hop_length
    n_frames = 1 + len(y) // hop
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr).astype(np.float32)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)   # periodic Hann
    mel_fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MEL, fmax=min(sr / 2, 11025)
                                 ).astype(np.float32)
    chroma_fb = librosa.filters.chroma(sr=sr, n_fft=n_fft).astype(np.float32)
    # chroma only from 55 Hz to 5 kHz: below is rumble, above is hats and noise
    chroma_fb[:, (freqs < 55) | (freqs > 5000)] = 0.0
    band_idx = {k: (freqs >= lo) & (freqs < hi) for k, (lo, hi) in BANDS.items()}
    lag = onset_lag(n_fft, hop)
    margin = 16   # frames of context for HPSS and the flux difference

    out = {k: np.zeros(n_frames, np.float32) for k in
           ("rms", "zcr", "centroid", "bandwidth", "rolloff", "harm", "perc", "kick", "snare",
            "hat", "low", "flux", "flux_low", "flux_mid")}
    mel = np.zeros((N_MEL, n_frames), np.float32)
    chroma = np.zeros((12, n_frames), np.float32)
    pad = n_fft // 2
    n_blocks = int(np.ceil(n_frames / block_frames))
    for b in range(n_blocks):
        f0, f1 = b * block_frames, min(n_frames, (b + 1) * block_frames)
        g0, g1 = max(0, f0 - margin), min(n_frames, f1 + margin)
        # samples for frames g0..g1-1 with centre padding (zeros at the edges)
        s0, s1 = g0 * hop - pad, (g1 - 1) * hop + pad + n_fft - pad
        seg = y[max(0, s0):min(len(y), s1)]
        seg = np.pad(seg, (max(0, -s0), max(0, s1 - len(y))))
        frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop][: g1 - g0]
        S = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32).T   # (bins, t)
        P = S * S
        # HPSS (Fitzgerald's median filtering with soft masks, as librosa's
        # hpss) on a spectrum pooled 4 bins to 1: the energy ratio it feeds
        # barely changes and the median filters run ~8x faster
        Sp = S[1:].reshape(-1, 4, S.shape[1]).sum(axis=1)
        H = _median_filter_1d(Sp, HPSS_TIME_KERNEL, axis=1)
        Pm = _median_filter_1d(Sp, HPSS_FREQ_KERNEL, axis=0)
        mask_h = H ** 2 / (H ** 2 + Pm ** 2 + 1e-12)
        Pp = Sp * Sp
        harm = (Pp * mask_h).sum(axis=0)
        perc = (Pp * (1 - mask_h)).sum(axis=0)
        total = P.sum(axis=0) + 1e-12
        mag_sum = S.sum(axis=0) + 1e-12
        centroid = (freqs[:, None] * S).sum(axis=0) / mag_sum
        bandwidth = np.sqrt(((freqs[:, None] - centroid[None, :]) ** 2 * S).sum(axis=0) / mag_sum)
        cum = np.cumsum(P, axis=0)
        rolloff = freqs[np.minimum((cum < 0.85 * cum[-1:]).sum(axis=0), len(freqs) - 1)]
        flux, flux_low, flux_mid = flux_bands(S, freqs)
        # frame-domain zero crossings
        zc = np.abs(np.diff(np.signbit(frames), axis=1)).mean(axis=1)
        keep = slice(f0 - g0, f1 - g0)
        vals = {
            "rms": np.sqrt(total / n_fft ** 2 * 2.0 / (window ** 2).mean()),
            "zcr": zc, "centroid": centroid, "bandwidth": bandwidth, "rolloff": rolloff,
            "harm": harm, "perc": perc,
            "kick": S[band_idx["kick"]].mean(axis=0), "snare": S[band_idx["snare"]].mean(axis=0),
            "hat": S[band_idx["hat"]].mean(axis=0) if band_idx["hat"].any() else np.zeros(S.shape[1]),
            "low": S[band_idx["low"]].mean(axis=0),
            "flux": flux, "flux_low": flux_low, "flux_mid": flux_mid,
        }
        for k, v in vals.items():
            out[k][f0:f1] = np.asarray(v, np.float32)[keep]
        mel[:, f0:f1] = np.log1p(MEL_GAIN * (mel_fb @ S[:, keep]))
        # chroma of the harmonic part only: drums must not look like chord changes
        mask_full = np.vstack([mask_h[:1], np.repeat(mask_h, 4, axis=0)])
        chroma[:, f0:f1] = chroma_fb @ (S * mask_full)[:, keep]
        if progress:
            progress(b + 1, n_blocks, "frame features")

    env = shift_frames(out["flux"], lag)
    onsets = OnsetData(sr=sr, hop_length=hop, envelope=env, low=shift_frames(out["flux_low"], lag),
                       mid=shift_frames(out["flux_mid"], lag), fine=fine_attack_envelope(y, FINE_HOP))
    onset_frames = _pick_onsets(env)
    feats = TrackFeatures(sr=sr, hop_length=hop, n_fft=n_fft, rms=out["rms"], zcr=out["zcr"],
                       centroid=out["centroid"], bandwidth=out["bandwidth"],
                       rolloff=out["rolloff"], harm_energy=out["harm"], perc_energy=out["perc"],
                       kick=out["kick"], snare=out["snare"], hat=out["hat"], low=out["low"],
                       mel=mel, chroma=chroma, onset_frames=onset_frames)
    return feats, onsets


def _pick_onsets(env: np.ndarray) -> np.ndarray:
    """Onset frames by peak picking (librosa's defaults at 43 fps)."""
    import librosa

    if env.max() <= 0:
        return np.zeros(0, int)
    norm = env / (env.max() + 1e-12)
    return librosa.util.peak_pick(norm, pre_max=3, post_max=3, pre_avg=3, post_avg=5,
                                  delta=0.07, wait=3).astype(int)


# --------------------------------------------------------------------------- per candidate

def _norm_max(x: np.ndarray) -> np.ndarray:
    m = float(x.max()) if x.size else 0.0
    return x / m if m > 1e-12 else np.zeros_like(x)


def _window_mean(x: np.ndarray, centres, half: int) -> float:
    vals = [x[max(0, c - half):c + half + 1].mean() for c in centres
            if 0 <= c < len(x) and x[max(0, c - half):c + half + 1].size]
    return float(np.mean(vals)) if vals else 0.0


def _circular_periodicity(env: np.ndarray, lags) -> float:
    """Best cosine between ``env`` and its circular shift over ``lags``."""
    if env.size < 4 or not np.any(env):
        return 0.0
    best = 0.0
    n0 = np.linalg.norm(env) + 1e-12
    for lag in lags:
        lag = int(lag) % env.size
        if lag == 0:
            continue
        best = max(best, float(np.dot(env, np.roll(env, lag)) / (n0 * n0)))
    return max(0.0, best)


def _acf_peak(env: np.ndarray, lags) -> float:
    """Max of the mean-removed, lag-0-normalised autocorrelation at ``lags``."""
    x = env - env.mean()
    denom = float(np.dot(x, x))
    if denom <= 1e-12:
        return 0.0
    vals = [float(np.dot(x[:-lag], x[lag:]) / denom) for lag in lags if 0 < lag < len(x)]
    return max(0.0, max(vals)) if vals else 0.0


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.dot(a, b) / (na * nb)) if na > 1e-12 and nb > 1e-12 else 0.0


#: Longest repetition period looked for (bars).
MAX_PERIOD_BARS = 8


def _rowwise_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 1e-12) & (nb > 1e-12)
    out = np.zeros(len(a))
    out[ok] = (a[ok] * b[ok]).sum(axis=1) / (na[ok] * nb[ok])
    return out


class _BarLags:
    """Similarity of every bar to the bars 1..``max_lag`` later, on bar lines
    ``phase + k * bar_len`` (frames) tiled over the whole track.

    Bar similarity: 0.5 chroma cosine + 0.25 onset-pattern cosine (16 steps)
    + 0.25 exp(-log-mel distance / ``jump_scale``). ``S[k, p]`` is bar ``k`` vs
    bar ``k + p`` (NaN past the end).
    """

    def __init__(self, feats: TrackFeatures, env: np.ndarray, phase: int, bar_len: int,
                 max_lag: int, jump_scale: float):
        K = max(0, (feats.n_frames - phase) // bar_len)
        self.K = K
        self.S = np.full((K, max_lag + 1), np.nan)
        if K < 2:
            return
        z = phase + K * bar_len
        chroma = feats.chroma[:, phase:z].reshape(12, K, bar_len).mean(axis=2).T
        mel = feats.mel[:, phase:z].reshape(feats.mel.shape[0], K, bar_len).mean(axis=2).T
        e = np.asarray(env[phase:z], float)
        if e.size < z - phase:
            e = np.pad(e, (0, z - phase - e.size))
        e = e.reshape(K, bar_len)
        steps = np.array_split(np.arange(bar_len), min(16, bar_len))
        pattern = np.stack([e[:, st].mean(axis=1) for st in steps], axis=1)
        for p in range(1, min(max_lag, K - 1) + 1):
            a, b = slice(0, K - p), slice(p, K)
            mel_d = np.linalg.norm(mel[a] - mel[b], axis=1) / np.sqrt(mel.shape[1])
            self.S[: K - p, p] = (0.5 * _rowwise_cos(chroma[a], chroma[b])
                                  + 0.25 * _rowwise_cos(pattern[a], pattern[b])
                                  + 0.25 * np.exp(-mel_d / jump_scale))

    def mean(self, k0: int, k1: int, lag: int) -> float:
        """Mean similarity at ``lag`` of bars ``k0 .. k1-1`` (NaN if none)."""
        k0, k1 = max(0, k0), min(self.K, k1)
        if k1 <= k0 or lag >= self.S.shape[1] or lag < 1:
            return float("nan")
        v = self.S[k0:k1, lag]
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    def period(self, k0: int, k1: int, max_lag: int = MAX_PERIOD_BARS,
               margin: float = 0.01) -> tuple[int, np.ndarray]:
        """The repetition period of bars ``k0 .. k1-1`` and the lag profile (index = lag).

        The profile is the mean similarity at each lag 1..``max_lag``. A period
        ``p`` scores the mean at its multiples minus the mean at the other lags
        (music that drifts is always most alike at lag 1; a 4-bar cycle stands
        out at lags 4 and 8); the best score wins if it exceeds ``margin``,
        else the period is 1 bar.
        """
        prof = np.array([np.nan] + [self.mean(k0, k1, p) for p in range(1, max_lag + 1)])
        best, best_score = 1, margin
        for p in range(2, max_lag + 1):
            on = prof[p::p]
            off = np.array([prof[j] for j in range(1, max_lag + 1) if j % p])
            on, off = on[np.isfinite(on)], off[np.isfinite(off)]
            if on.size and off.size and on.mean() - off.mean() > best_score:
                best, best_score = p, float(on.mean() - off.mean())
        return best, prof


#: Band groups of the part-presence cells (:class:`_BarParts`): 40 mel bands in 10 groups.
PART_GROUPS = 10
#: Steps per bar of the part-presence cells and onset patterns.
PART_STEPS = 16
#: Floor of the part-presence levels, dB below the track's loud level (a band that is
#: silent in one bar and quiet in another must not count as a huge change).
PART_FLOOR_DB = 50.0
#: The part-presence change of two bars is this percentile of their per-band (per-cell)
#: level differences: robust to one note moving between bands, yet a part entering or
#: leaving moves many bands (cells) at once.
PART_PERCENTILE = 90
#: Floor of the (band group x step) cells, dB below the track's loud cell level.
PART_CELL_FLOOR_DB = 40.0
#: ``part_repeat_rel`` of a loop with no whole block of its length before or after it.
PART_REPEAT_NONE = 99.0


def _upper_pct(x: np.ndarray, q: float = PART_PERCENTILE) -> float:
    """The ``q``-th percentile of a 1-D array by nearest rank (faster than np.percentile
    for the many short vectors of :class:`_BarParts`)."""
    k = int(round(q / 100.0 * (x.size - 1)))
    return float(np.partition(x, k)[k])


def _step_means(x: np.ndarray, steps) -> np.ndarray:
    """(groups, bars, frames) -> (bars, groups x steps): each group's mean over each step
    (``steps``: frame indices of each step of a bar)."""
    cells = np.stack([x[:, :, st].mean(axis=2) for st in steps], axis=2)
    return cells.transpose(1, 0, 2).reshape(x.shape[1], -1)


def _typical_change(x: np.ndarray) -> float:
    """Median over adjacent bar pairs of the (``PART_PERCENTILE``) change between the
    rows of ``x`` (bars x descriptors), at least 0.5 dB; 1 with fewer than 2 bars."""
    if len(x) < 2:
        return 1.0
    adj = np.percentile(np.abs(np.diff(x, axis=0)), PART_PERCENTILE, axis=1)
    return max(float(np.median(adj)), 0.5)


class _BarParts:
    """Per-bar part-presence descriptors on bar lines ``phase + k * bar_len`` (frames).

    A part (track, instrument) entering or leaving between bars shows up in these, while
    different notes of the same instrument mostly do not:

    * ``level``: per-bar level (dB) of each mel band, smoothed over 3 adjacent bands
      (a note moving by a step stays in the same smoothed band), floored
      :data:`PART_FLOOR_DB` below the track's loud level;
    * ``cells``: per-bar level (dB) in :data:`PART_GROUPS` band groups x
      :data:`PART_STEPS` steps: which register plays at which position in the bar;
    * ``pattern``: per-band-group onset pattern over the steps (half-wave rectified
      log-mel rise), for the cosine similarity of the bars' rhythm per register.
    """

    def __init__(self, mel: np.ndarray, phase: int, bar_len: int):
        n_mel, T = mel.shape
        K = max(0, (T - phase) // bar_len) if bar_len >= PART_STEPS else 0
        self.K = K
        if K < 1:
            return
        z = phase + K * bar_len
        lin = mel_power(mel[:, phase:z])
        loud = float(np.percentile(lin.sum(axis=0), 95)) / n_mel + 1e-12
        lev = lin.reshape(n_mel, K, bar_len).mean(axis=2)
        lev = np.apply_along_axis(lambda r: np.convolve(r, np.ones(3) / 3.0, mode="same"), 0, lev)
        self.level = 20 * np.log10(lev.T + loud * 10 ** (-PART_FLOOR_DB / 20))
        groups = np.array_split(np.arange(n_mel), PART_GROUPS)
        steps = np.array_split(np.arange(bar_len), PART_STEPS)
        g = np.stack([lin[ix].sum(axis=0) for ix in groups]).reshape(PART_GROUPS, K, bar_len)
        gl = float(np.percentile(g, 95)) + 1e-12
        self.cells = 20 * np.log10(_step_means(g, steps) + gl * 10 ** (-PART_CELL_FLOOR_DB / 20))
        m = mel[:, max(0, phase - 1):z].astype(np.float64)
        d = np.maximum(0.0, np.diff(m, axis=1))
        if phase == 0:
            d = np.pad(d, ((0, 0), (1, 0)))
        r = np.stack([d[ix].mean(axis=0) for ix in groups]).reshape(PART_GROUPS, K, bar_len)
        self.pattern = _step_means(r, steps)
        self._pairs: dict = {}
        # the track's median adjacent-bar change of the band levels and of the cells
        self.typical, self.typical_cell = (_typical_change(x) for x in (self.level, self.cells))

    def _pair(self, i: int, j: int) -> tuple:
        """(larger band-level rise either way, cell change, pattern cosine) of bars i, j;
        memoised, since overlapping loops share their bar pairs."""
        if (i, j) not in self._pairs:
            d = self.level[i] - self.level[j]
            rise = max(_upper_pct(d), _upper_pct(-d))
            cell = _upper_pct(np.abs(self.cells[i] - self.cells[j]))
            a, b = self.pattern[i], self.pattern[j]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            sim = float(a @ b / (na * nb)) if na > 1e-12 and nb > 1e-12 else 1.0
            self._pairs[i, j] = (rise, cell, sim)
        return self._pairs[i, j]

    def _block_change(self, k0: int, k1: int, n: int) -> float:
        """Bars ``k0 .. k0+n-1`` against bars ``k1 .. k1+n-1``, bar for bar: the largest
        band-level (cell) change of a pair over the track's median adjacent-bar band-level
        (cell) change; :data:`PART_REPEAT_NONE` when a block leaves the track."""
        if min(k0, k1) < 0 or max(k0, k1) + n > self.K:
            return PART_REPEAT_NONE
        pairs = [self._pair(min(k0, k1) + j, max(k0, k1) + j) for j in range(n)]
        return max(max(p[0] for p in pairs) / self.typical,
                   max(p[1] for p in pairs) / self.typical_cell)

    def _loop_bars(self, k0: int, n: int) -> list:
        """The bars of the loop of bars ``k0 .. k0+n-1`` that lie inside the track."""
        return [k for k in range(k0, k0 + n) if 0 <= k < self.K]

    def adjacent_change_rel(self, k0: int, n: int) -> float:
        """The largest band-level change between adjacent bars of the loop of bars
        ``k0 .. k0+n-1`` over the track's median adjacent-bar change (0 for one bar)."""
        ks = self._loop_bars(k0, n)
        return max((self._pair(i, i + 1)[0] for i in ks[:-1]), default=0.0) / self.typical

    def features(self, k0: int, n: int) -> dict:
        """Part-presence features of the loop of bars ``k0 .. k0+n-1``."""
        out = {"part_change_db": 0.0, "part_change_rel": 0.0, "part_cell_change_db": 0.0,
               "part_pattern_min_sim": 1.0, "part_end_change_db": 0.0,
               "part_start_change_db": 0.0, "part_repeat_rel": PART_REPEAT_NONE}
        if self.K < 1:
            return out
        # a section change persists, a chord progression repeats: the n bars after the
        # loop (or before it) hold, bar for bar, what the loop holds
        out["part_repeat_rel"] = min(self._block_change(k0, k0 + n, n),
                                     self._block_change(k0, k0 - n, n))
        ks = self._loop_bars(k0, n)
        if len(ks) >= 2:
            pairs = [self._pair(i, j) for a, i in enumerate(ks) for j in ks[a + 1:]]
            change = max(p[0] for p in pairs)
            out["part_change_db"] = change
            out["part_change_rel"] = change / self.typical
            out["part_cell_change_db"] = max(p[1] for p in pairs)
            out["part_pattern_min_sim"] = min(p[2] for p in pairs)
        if ks and k0 + n < self.K:
            out["part_end_change_db"] = _upper_pct(np.abs(self.level[k0 + n] - self.level[ks[0]]))
        if ks and k0 - 1 >= 0:
            out["part_start_change_db"] = _upper_pct(np.abs(self.level[k0 - 1] - self.level[ks[-1]]))
        return out


def candidate_features(feats: TrackFeatures, onsets: OnsetData, candidates: pd.DataFrame,
                       beat_period: float) -> pd.DataFrame:
    """Features of every candidate, computed by slicing the track's frames.

    Parameters
    ----------
    feats : TrackFeatures
    onsets : OnsetData
    candidates : DataFrame
        Needs ``start_time``, ``end_time``, ``bars``, ``beats_per_bar``.
    beat_period : float
        Seconds per beat (from the rhythm grid).

    Returns
    -------
    DataFrame
        :data:`FEATURE_COLUMNS`, aligned with ``candidates``' index.
    """
    fps = feats.fps
    beat = max(1, int(round(beat_period * fps)))
    half = max(1, int(round(0.10 * beat)))
    env = onsets.envelope
    onset_frames = feats.onset_frames
    seam = max(2, int(round(0.1 * fps)))          # ~100 ms of context at the seam
    memo: dict = {}

    def bar_desc(a: int, bar_len: int):
        """(timbre + onset pattern, chroma) of the bar starting at frame ``a``; memoised,
        since overlapping candidates share their bars."""
        if (a, bar_len) not in memo:
            z = a + bar_len
            if a < 0 or z > feats.n_frames:
                memo[a, bar_len] = None
            else:
                steps = np.array_split(env[a:z], 16) if z - a >= 16 else [env[a:z]]
                pattern = np.array([s.mean() if s.size else 0.0 for s in steps])
                memo[a, bar_len] = (np.concatenate([feats.mel[:, a:z].mean(axis=1) / 10.0,
                                                    _norm_max(pattern)]),
                                    _norm_max(feats.chroma[:, a:z].mean(axis=1)))
        return memo[a, bar_len]

    bar_memo: dict = {}
    n_groups = 8
    track_rms_ref = float(np.percentile(feats.rms, 95)) if feats.n_frames else 0.0

    def bar_stats(a: int, bar_len: int):
        """(log-mel mean, 8 band levels, onset pattern, chroma, rms) of one bar; memoised."""
        if (a, bar_len) not in bar_memo:
            z = a + bar_len
            if a < 0 or z > feats.n_frames or bar_len < 1:
                bar_memo[a, bar_len] = None
            else:
                mel = feats.mel[:, a:z].mean(axis=1)
                bands = np.array([g.mean() for g in np.array_split(mel, n_groups)])
                steps = np.array_split(env[a:z], 16) if z - a >= 16 else [env[a:z]]
                pattern = _norm_max(np.array([st.mean() if st.size else 0.0 for st in steps]))
                bar_memo[a, bar_len] = (mel, bands, pattern,
                                        _norm_max(feats.chroma[:, a:z].mean(axis=1)),
                                        float(feats.rms[a:z].mean()))
        return bar_memo[a, bar_len]

    def mel_jump(p, q) -> float:
        return float(np.linalg.norm(p[0] - q[0]) / np.sqrt(p[0].size))

    # the track's typical bar-to-bar change, on the candidates' own bar lines
    starts = sorted({feats.frame(t) for t in candidates["start_time"]}) if len(candidates) else []
    if len(candidates):
        bl0 = max(1, int(round(int(candidates["beats_per_bar"].iloc[0]) * beat)))
        jumps = []
        for a in starts:
            p, q = bar_stats(a - bl0, bl0), bar_stats(a, bl0)
            if p is not None and q is not None:
                jumps.append(mel_jump(p, q))
        jump_scale = float(np.median(jumps)) if jumps else 0.0
    else:
        jump_scale = 0.0
    jump_scale = max(jump_scale, 0.02)

    lag_memo: dict = {}
    parts_memo: dict = {}
    max_lag = max([MAX_PERIOD_BARS] + [int(b) for b in candidates["bars"]]) if len(candidates) \
        else MAX_PERIOD_BARS
    track_period_memo: dict = {}

    def phrase_feats(f0: int, n_bars: int, bar_len: int) -> dict:
        """Phrase features of the loop of ``n_bars`` bars from frame ``f0``."""
        phase, k0 = f0 % bar_len, f0 // bar_len
        key = (phase, bar_len)
        if key not in lag_memo:
            lag_memo[key] = _BarLags(feats, env, phase, bar_len, max_lag, jump_scale)
        L = lag_memo[key]
        if key not in track_period_memo:
            track_period_memo[key] = L.period(0, L.K)[0]
        n, m = n_bars, max(1, n_bars // 2)
        after = L.mean(k0, k0 + m, n) if k0 + n + m <= L.K else float("nan")
        pre = L.mean(k0 - m, k0, n) if k0 - m >= 0 else float("nan")
        ret = after if np.isfinite(after) else pre
        lag_loop = L.mean(k0, k0 + n, n) if k0 + 2 * n <= L.K else L.mean(k0 - n, k0, n)
        lag1 = L.mean(k0 - 2, k0 + n + 1, 1)
        per, prof = L.period(k0 - MAX_PERIOD_BARS, k0 + n + MAX_PERIOD_BARS)
        shorter = prof[1:n] if n > 1 else np.array([])
        shorter = shorter[np.isfinite(shorter)]
        at_n = prof[n] if n < len(prof) else float("nan")
        gain = (at_n - shorter.max()) if (shorter.size and np.isfinite(at_n)) else 0.0
        out = {"seam_return_bars": ret, "seam_return_pre": pre, "loop_lag_sim": lag_loop,
               "bar_lag1_sim": lag1, "lag_gain": lag_loop - lag1, "period_lag_gain": gain,
               "local_period_bars": float(per), "track_period_bars": float(track_period_memo[key]),
               "bars_over_period": n / float(per)}
        return {k: (float(v) if np.isfinite(v) else 0.0) for k, v in out.items()}

    track_change = 0.0          # the largest adjacent-bar change inside any candidate

    def part_feats(f0: int, n_bars: int, bar_len: int) -> dict:
        """Part-presence features (:class:`_BarParts`) of the loop from frame ``f0``."""
        nonlocal track_change
        key = (f0 % bar_len, bar_len)
        if key not in parts_memo:
            parts_memo[key] = _BarParts(feats.mel, *key)
        parts = parts_memo[key]
        if parts.K >= 2:
            track_change = max(track_change, parts.adjacent_change_rel(f0 // bar_len, n_bars))
        return parts.features(f0 // bar_len, n_bars)

    rows = []
    for _, c in candidates.iterrows():
        f0, f1 = feats.frame(c["start_time"]), feats.frame(c["end_time"])
        f1 = max(f1, f0 + 2)
        sl = slice(f0, f1)
        dur = float(c["end_time"] - c["start_time"])
        rms = feats.rms[sl]
        e = env[sl]
        harm, perc = float(feats.harm_energy[sl].sum()), float(feats.perc_energy[sl].sum())
        pr = perc / (harm + perc + 1e-8)
        kick, snare = _norm_max(feats.kick[sl]), _norm_max(feats.snare[sl])
        hat = _norm_max(feats.hat[sl])
        bpb = int(c.get("beats_per_bar", 4))
        n_bars = max(1, int(c["bars"]))
        bar_frames = [int(round(i * bpb * beat)) for i in range(n_bars)]
        kick_one = _window_mean(kick, bar_frames, half)
        snare_23 = max(_window_mean(snare, [b + beat for b in bar_frames], half),
                       _window_mean(snare, [b + 2 * beat for b in bar_frames], half))
        lags = [max(1, beat // 2), beat, 2 * beat, 4 * beat]
        hat_grid = _acf_peak(hat, lags)
        per_lags = [max(1, beat // 2), beat, 2 * beat]
        pk, ps, ph = (_circular_periodicity(x, per_lags) for x in (kick, snare, hat))
        n_on = int(np.count_nonzero((onset_frames >= f0) & (onset_frames < f1)))
        # seam: the loop's tail replaces what really precedes its start
        tail = feats.mel[:, max(f0, f1 - seam):f1].mean(axis=1)
        pre = feats.mel[:, max(0, f0 - seam):f0].mean(axis=1) if f0 > 0 else tail
        rms_tail = float(feats.rms[max(f0, f1 - 3):f1].mean())
        rms_pre = float(feats.rms[max(0, f0 - 3):f0].mean()) if f0 > 0 else rms_tail
        jump_db = abs(20 * np.log10((rms_tail + 1e-6) / (rms_pre + 1e-6)))
        # bar repetition: per-bar spectral shape and onset pattern (harmony may move)
        bar_len = max(1, int(round(bpb * beat)))
        descs = [bar_desc(f0 + i * bar_len, bar_len) for i in range(max(n_bars, 2))]
        descs = [d for d in descs if d is not None]
        if len(descs) >= 2:
            repetition = float(np.mean([_cos(descs[i][0], descs[j][0]) for i in range(len(descs))
                                        for j in range(i + 1, len(descs))]))
        else:
            repetition = 0.0
        after = bar_desc(f0 + n_bars * bar_len, bar_len)
        if after is not None and descs:
            phrase_return = 0.5 * _cos(after[0], descs[0][0]) + 0.5 * _cos(after[1], descs[0][1])
        else:
            phrase_return = 0.0
        bar_rms = [feats.rms[f0 + i * bar_len:f0 + (i + 1) * bar_len].mean()
                   for i in range(n_bars) if f0 + (i + 1) * bar_len <= feats.n_frames]
        stability = 1.0 - float(np.std(bar_rms) / (np.mean(bar_rms) + 1e-9)) if len(bar_rms) > 1 else 1.0
        start_att = float(env[f0:f0 + 2].max() / (np.percentile(e, 95) + 1e-9)) if e.size else 0.0
        # arrangement: per-bar descriptors inside the loop and at its edges
        stats = [bar_stats(f0 + i * bar_len, bar_len) for i in range(n_bars)]
        stats = [st for st in stats if st is not None]
        mj = pj = cj = 0.0
        for p, q in zip(stats[:-1], stats[1:]):
            mj = max(mj, mel_jump(p, q))
            pj = max(pj, 1.0 - _cos(p[2], q[2]))
            cj = max(cj, 1.0 - _cos(p[3], q[3]))
        if len(stats) >= 2:
            h = len(stats) // 2
            a_mel = np.mean([st[0] for st in stats[:h]], axis=0)
            b_mel = np.mean([st[0] for st in stats[h:]], axis=0)
            half_c = float(np.linalg.norm(a_mel - b_mel) / np.sqrt(a_mel.size))
            bands = np.array([st[1] for st in stats])
            brange = bands.max(axis=0) - bands.min(axis=0)
            band_range, flips = float(brange.max()), float(np.count_nonzero(brange > 1.0))
            brms = np.array([st[4] for st in stats])
            rms_range = float(20 * np.log10((brms.max() + 1e-6) / (brms.min() + 1e-6)))
        else:
            half_c = band_range = flips = rms_range = 0.0
        silent = (float(np.mean([st[4] < 0.05 * track_rms_ref for st in stats]))
                  if stats else 1.0)
        before, after_st = bar_stats(f0 - bar_len, bar_len), bar_stats(f0 + n_bars * bar_len, bar_len)
        sj = mel_jump(before, stats[0]) / jump_scale if (before is not None and stats) else 0.0
        ej = mel_jump(stats[-1], after_st) / jump_scale if (after_st is not None and stats) else 0.0
        rows.append({
            "duration_sec": dur, "rms_mean": float(rms.mean()), "rms_std": float(rms.std()),
            "zcr_mean": float(feats.zcr[sl].mean()),
            "spectral_centroid_mean": float(feats.centroid[sl].mean()),
            "spectral_bandwidth_mean": float(feats.bandwidth[sl].mean()),
            "spectral_rolloff_mean": float(feats.rolloff[sl].mean()),
            "onset_strength_mean": float(e.mean()), "onset_strength_std": float(e.std()),
            "onset_density": n_on / max(dur, 1e-6), "percussive_ratio": pr,
            "kick_on_one_score": kick_one, "snare_two_or_three_score": snare_23,
            "hihat_grid_score": hat_grid,
            "boundary_drum_score": 0.45 * kick_one + 0.35 * snare_23 + 0.20 * hat_grid,
            "drum_alignment_score": 0.70 * kick_one + 0.30 * snare_23,
            "periodicity_score": 0.50 * pk + 0.35 * ps + 0.15 * ph,
            "periodicity_kick": pk, "periodicity_snare": ps, "periodicity_hihat": ph,
            "seam_spectral_continuity": _cos(tail, pre),
            "seam_rms_jump_db": float(jump_db),
            "seam_onset_at_start": float(min(start_att, 2.0)),
            "bar_repetition": repetition,
            "phrase_return": float(phrase_return),
            "energy_stability": float(np.clip(stability, 0.0, 1.0)),
            "harmonic_ratio": 1.0 - pr,
            "bar_mel_jump_max": mj, "bar_mel_jump_rel": mj / jump_scale,
            "bar_pattern_jump_max": pj, "bar_chroma_jump_max": cj,
            "half_contrast": half_c, "half_contrast_rel": half_c / jump_scale,
            "band_range_max": band_range, "band_flips": flips,
            "bar_rms_range_db": rms_range, "silent_bar_frac": silent,
            "start_jump_rel": float(sj), "end_jump_rel": float(ej),
            "inside_vs_edges": float(mj / jump_scale / (max(sj, ej) + 1.0)),
            **phrase_feats(f0, n_bars, bar_len),
            **part_feats(f0, n_bars, bar_len),
        })
    out = pd.DataFrame(rows, index=candidates.index, columns=FEATURE_COLUMNS)
    # one value per track: does a part enter or leave anywhere the candidates reach?
    out["part_track_change_rel"] = track_change
    return out.replace([np.inf, -np.inf], np.nan).fillna(0.0)
