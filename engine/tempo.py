"""Global tempo from the periodicity spectrum of onset envelopes.

Why a spectrum and not an autocorrelation tempogram: a rhythm that repeats
every bar has energy only at multiples of the bar frequency, so the beat's
fundamental and its harmonics are sharp spectral lines, while a "3-3-2" or
dotted-quarter pattern, which makes an autocorrelation peak at 1.5 beats (the
classic 2/3-tempo error), puts no line at 2/3 of the beat frequency. The
spectrum of a whole track also resolves the tempo finely (a line is as narrow
as 1/duration), which the lag bins of a windowed tempogram cannot.

:func:`estimate_tempo`:

1. **Periodicity spectrum**: the full-band, low-band (kick, bass) and mid-band
   (snare, chords) flux envelopes, each with its local mean removed, are
   Fourier transformed over the track; their magnitude spectra, each scaled
   by its own median level, are summed.
2. **Candidates**: peaks of the harmonic comb ``sum_h |X(h f)|`` (h = 1..4)
   over the tempo range, one per spectral line. A wrong metrical level (2/3,
   3/4, 4/3, 3/2 of the beat) misses most harmonics and scores low.
3. **Octave** (the comb alone slightly favours the faster of f and 2f):
   the backbeat (:func:`alternation`: kick and snare alternate beat by beat
   at the beat level, not at half or double), the kick cue (the low band
   pulses at the beat but not at half of it) and a log-normal prior around
   110 BPM (one octave wide).
4. **Continuous period** (:func:`refine_period`): the period whose harmonic
   comb holds the most energy of the whole envelope.

:func:`meter_evidence` reads the meter from the same spectrum (lines at 1/3
and 2/3 of the beat frequency for a bar of three).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Centre (BPM) and width (octaves, one standard deviation) of the tempo prior.
PRIOR_CENTRE_BPM = 110.0
PRIOR_WIDTH_OCT = 1.0

#: Weight of the backbeat alternation cue (see :func:`alternation`).
ALT_WEIGHT = 0.5

#: Weight of the comb strength (log ratio to the strongest comb peak).
STRENGTH_WEIGHT = 1.0

#: Weight of the kick cue: low-band (kick, bass) periodicity at the beat
#: minus that at half the beat (the level where the low band pulses).
KICK_WEIGHT = 1.25

#: Score penalty of a candidate whose beat is not a whole multiple or divisor
#: of the strongest comb peak's.
INCOMPATIBLE_PENALTY = 0.5

#: Comb-sum peaks examined as tempo candidates.
MAX_CANDIDATES = 6

#: Zero padding factor of the periodicity spectrum (finer peak picking).
PAD = 4


@dataclass
class TempoEstimate:
    """Result of :func:`estimate_tempo`.

    Attributes
    ----------
    bpm : float
        Chosen tempo (continuous, not a lag bin).
    confidence : float
        In [0, 1]: softmax weight of the chosen candidate among the others.
    candidates : dict
        ``{bpm: score}`` of every metrical hypothesis considered.
    """

    bpm: float
    confidence: float
    candidates: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    #: The :class:`PulseContext` the estimate was read from (for the octave check).
    context: "PulseContext | None" = field(default=None, repr=False)


@dataclass
class PulseContext:
    """What the tempo estimate and the octave check read from a track's onset envelopes.

    Attributes
    ----------
    nf, nl, nm : ndarray
        Novelty curves (:func:`novelty`) of the full, low and mid bands.
    fps : float
        Their frame rate.
    r_low : ndarray
        Autocorrelation of ``nl`` (:func:`_acf`): the kick cue.
    freqs, mag : ndarray
        Their joint periodicity spectrum (:func:`periodicity_spectrum`).
    """

    nf: np.ndarray
    nl: np.ndarray
    nm: np.ndarray
    fps: float
    r_low: np.ndarray
    freqs: np.ndarray
    mag: np.ndarray


def pulse_context(full: np.ndarray, low: np.ndarray, mid: np.ndarray, fps: float) -> PulseContext:
    """The :class:`PulseContext` of full-, low- and mid-band onset envelopes at ``fps``."""
    nf, nl, nm = (novelty(e, fps) for e in (full, low, mid))
    freqs, mag = periodicity_spectrum([nf, nl, nm], fps)
    return PulseContext(nf, nl, nm, fps, _acf(nl), freqs, mag)


def novelty(env: np.ndarray, fps: float, window: float = 1.0) -> np.ndarray:
    """Onset envelope with its local mean (``window`` s) removed, half-wave
    rectified and scaled to unit standard deviation."""
    env = np.asarray(env, np.float64)
    w = max(3, int(round(window * fps)) | 1)
    kern = np.ones(w) / w
    x = np.maximum(0.0, env - np.convolve(env, kern, mode="same"))
    s = x.std()
    return x / s if s > 1e-12 else x


def periodicity_spectrum(envs, fps: float, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Summed, background-normalised magnitude spectra of several envelopes.

    Returns
    -------
    freqs, mag : ndarray
        Frequencies (Hz) and magnitudes in units of each spectrum's median
        level between 0.3 and 10 Hz.
    """
    n = min(len(e) for e in envs)
    nfft = 1 << int(np.ceil(np.log2(max(16, n * pad))))
    win = np.hanning(n)
    freqs = np.fft.rfftfreq(nfft, 1.0 / fps)
    band = (freqs > 0.3) & (freqs < 10.0)
    total = np.zeros(len(freqs))
    for e in envs:
        x = e[:n] - e[:n].mean()
        m = np.abs(np.fft.rfft(x * win, nfft))
        ref = np.median(m[band]) if band.any() else 1.0
        total += m / (ref + 1e-12)
    return freqs, total


def _mag_at(freqs: np.ndarray, mag: np.ndarray, f: float, rel: float = 0.004) -> float:
    """Largest magnitude within ``f * (1 +- rel)`` (at least one bin each side)."""
    df = freqs[1] - freqs[0]
    i = int(round(f / df))
    w = max(1, int(round(f * rel / df)))
    lo, hi = max(0, i - w), min(len(mag), i + w + 1)
    return float(mag[lo:hi].max()) if hi > lo else 0.0


def best_phase(env: np.ndarray, fps: float, period: float, bins: int = 48) -> tuple[float, float]:
    """Phase (s, in [0, period)) where the onset envelope folded at ``period``
    is largest, and that fold's peak-to-mean ratio (comb sharpness)."""
    t = np.arange(len(env)) / fps
    b = ((t / period) % 1.0 * bins).astype(int) % bins
    h = np.bincount(b, weights=env, minlength=bins) / np.maximum(1, np.bincount(b, minlength=bins))
    hs = h + 0.5 * (np.roll(h, 1) + np.roll(h, -1))
    k = int(np.argmax(hs))
    return (k + 0.5) / bins * period, float(hs[k] / (hs.mean() + 1e-12))


def alternation(low: np.ndarray, mid: np.ndarray, fps: float, beats: np.ndarray) -> float:
    """Timbre alternation between odd and even beats, >= 0.

    A backbeat (kick on one and three, snare on two and four) makes the
    low band and the mid band accent opposite parities of the beats. At
    half tempo the candidate's beats are all "ones and threes"; at double
    tempo every other beat is an off-beat, which both bands skip alike. So
    the geometric mean of the two parity contrasts, counted only when their
    signs are opposite, favours the beat level of backbeat music and is
    near zero (neutral) for music without one.
    """
    def vals(env):
        idx = np.round(beats * fps).astype(int)
        idx = idx[(idx >= 1) & (idx < len(env) - 1)]
        v = np.maximum(np.maximum(env[idx - 1], env[idx]), env[idx + 1])
        return (v - v.mean()) / (v.std() + 1e-9)
    lo, mi = vals(low), vals(mid)
    n = min(len(lo), len(mi))
    if n < 8:
        return 0.0
    lo, mi = lo[:n], mi[:n]
    dl = lo[0::2].mean() - lo[1::2].mean()
    dm = mi[0::2].mean() - mi[1::2].mean()
    return float(np.sqrt(max(0.0, -dl * dm)))


def _acf(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(spec * np.conj(spec))[:n]
    return r / (r[0] + 1e-12)


def _acf_at(r: np.ndarray, lag: float) -> float:
    """Autocorrelation at a fractional lag (max over the neighbouring bins)."""
    i = int(round(lag))
    lo, hi = max(1, i - 1), min(len(r) - 1, i + 1)
    return float(r[lo:hi + 1].max()) if hi >= lo else 0.0


def comb(freqs: np.ndarray, mag: np.ndarray, f: np.ndarray, harmonics=(1, 2, 3, 4),
         rel: float = 0.004) -> np.ndarray:
    """Harmonic sum ``sum_h |X(h f)|`` (max within ``rel`` of each harmonic)
    for an array of fundamentals ``f``; harmonics past the spectrum are skipped."""
    df = freqs[1] - freqs[0]
    out = np.zeros(len(f))
    for h in harmonics:
        centre = np.round(h * f / df).astype(int)
        w = np.maximum(1, np.round(h * f * rel / df).astype(int))
        wmax = int(w.max())
        best = np.zeros(len(f))
        for k in range(-wmax, wmax + 1):
            idx = centre + k
            ok = (np.abs(k) <= w) & (idx >= 0) & (idx < len(mag))
            best[ok] = np.maximum(best[ok], mag[idx[ok]])
        out += best
    return out


def estimate_tempo(full: np.ndarray, low: np.ndarray, mid: np.ndarray, fps: float,
                   min_bpm: float = 70.0, max_bpm: float = 180.0) -> TempoEstimate:
    """Tempo of a track from its onset envelopes (see the module docstring).

    Parameters
    ----------
    full, low, mid : ndarray
        Full-band, low-band and mid-band onset envelopes at ``fps``.
    min_bpm, max_bpm : float
        Range the answer must lie in.

    Returns
    -------
    TempoEstimate
    """
    ctx = pulse_context(full, low, mid, fps)
    nf, nl, nm, r_low, freqs, mag = ctx.nf, ctx.nl, ctx.nm, ctx.r_low, ctx.freqs, ctx.mag
    fmin, fmax = min_bpm / 60.0 * 0.985, max_bpm / 60.0 * 1.015
    sel = np.flatnonzero((freqs >= fmin) & (freqs <= fmax))
    if sel.size < 3:
        return TempoEstimate(bpm=float("nan"), confidence=0.0, context=ctx)
    c = comb(freqs, mag, freqs[sel])
    is_pk = np.r_[c[0] > c[1], (c[1:-1] >= c[:-2]) & (c[1:-1] >= c[2:]), c[-1] > c[-2]]
    pk = np.flatnonzero(is_pk)
    pk = pk[np.argsort(c[pk])[::-1]]
    chosen: list[int] = []
    for i in pk:                       # one candidate per line (sidelobes suppressed)
        if all(abs(freqs[sel[i]] / freqs[sel[j]] - 1.0) > 0.05 for j in chosen):
            chosen.append(int(i))
        if len(chosen) >= MAX_CANDIDATES:
            break
    pk = np.array(chosen)
    scored, parts = {}, {}
    f_top = None
    for i in pk:
        # the comb line is only as fine as the spectrum's bins: refine it so
        # beats sampled across the whole track do not drift off the music
        period, _, alt, kick = pulse_cues(nf, nl, nm, fps, r_low, 1.0 / float(freqs[sel[i]]))
        f = 1.0 / period
        strength = float(np.log(c[i] / c[pk[0]]))
        # the strongest pulse must be a metrical level of the candidate's
        # hierarchy (a whole multiple or divisor of its beat): a beat at 2/3
        # or 4/3 of the dominant pulse is a cross-rhythm, not the beat
        if f_top is None:
            f_top = f
        q = max(f, f_top) / min(f, f_top)
        compat = 0.0 if abs(q - round(q)) < 0.03 * q else -INCOMPATIBLE_PENALTY
        prior = -0.5 * (np.log2(f * 60.0 / PRIOR_CENTRE_BPM) / PRIOR_WIDTH_OCT) ** 2
        scored[f] = (STRENGTH_WEIGHT * strength + ALT_WEIGHT * alt + KICK_WEIGHT * kick + prior
                     + compat)
        parts[round(f * 60.0, 2)] = (round(strength, 3), round(alt, 3), round(float(kick), 3),
                                     round(float(prior), 3))
    best_f = max(scored, key=scored.get)
    vals = np.array(list(scored.values()))
    w = np.exp(3.0 * (vals - vals.max()))
    conf = float(w.max() / w.sum())
    return TempoEstimate(bpm=best_f * 60.0, confidence=conf,
                         candidates={round(f * 60.0, 2): round(s, 3) for f, s in scored.items()},
                         parts=parts, context=ctx)


def pulse_cues(nf: np.ndarray, nl: np.ndarray, nm: np.ndarray, fps: float, r_low: np.ndarray,
               period: float) -> tuple[float, float, float, float]:
    """A candidate pulse refined and judged: ``(period, phase, alt, kick)``.

    The period (s) near ``period`` and its phase come from the harmonic comb of
    ``nf + nl`` (:func:`refine_period`: the spectrum's bins are too coarse for
    beats sampled across a whole track); ``alt`` is the backbeat cue
    (:func:`alternation`) on the better of the beats and the off-beats (the
    comb's strongest pulse may be the off-beat); ``kick`` is the low band's
    autocorrelation (``r_low``, :func:`_acf` of ``nl``) at the period minus any
    at half of it. ``nf, nl, nm``: novelty curves (:func:`novelty`) of the full,
    low and mid bands.
    """
    period, ph = refine_period(nf + nl, fps, period, rel=0.006, steps=41)
    f = 1.0 / period
    bt = np.arange(ph, len(nf) / fps, period)
    alt = max(alternation(nl, nm, fps, bt), alternation(nl, nm, fps, bt + 0.5 / f))
    lag = fps / f
    kick = _acf_at(r_low, lag) - max(0.0, _acf_at(r_low, lag / 2.0))
    return period, ph, float(alt), float(kick)


def meter_evidence(full: np.ndarray, low: np.ndarray, mid: np.ndarray, fps: float,
                   bpm: float) -> float:
    """Log-ratio of triple to duple bar lines in the periodicity spectrum.

    A bar of three beats puts spectral lines at 1/3 and 2/3 of the beat
    frequency; a bar of four (or two) at 1/4, 1/2 and 3/4. Positive values
    favour 3/4, negative 4/4.
    """
    nf, nl, nm = (novelty(e, fps) for e in (full, low, mid))
    freqs, mag = periodicity_spectrum([nf, nl, nm], fps)
    f = bpm / 60.0
    triple = _mag_at(freqs, mag, f / 3.0) + _mag_at(freqs, mag, 2.0 * f / 3.0)
    duple = _mag_at(freqs, mag, f / 4.0) + _mag_at(freqs, mag, f / 2.0) + _mag_at(freqs, mag, 3.0 * f / 4.0)
    return float(np.log((triple + 1.0) / (duple + 1.0)))


def _comb_power(x: np.ndarray, fps: float, f: np.ndarray, n_harm: int,
                bins: int = 128) -> np.ndarray:
    """sum_h |DFT of x at h*f|^2 (h = 1..n_harm) for each trial fundamental.

    Computed from the envelope folded at each trial period: the DFT of the
    fold at harmonic h equals the track's DFT at h*f up to the phase
    quantisation of ``bins`` bins, for the cost of one histogram.
    """
    t = np.arange(len(x)) / fps
    out = np.zeros(len(f))
    for i, fi in enumerate(f):
        b = ((t * fi) % 1.0 * bins).astype(int) % bins
        fold = np.bincount(b, weights=x, minlength=bins)
        spec = np.fft.rfft(fold)[1:n_harm + 1]
        hmax = int(min(n_harm, np.floor(0.45 * fps / fi)))
        out[i] = float(np.sum(np.abs(spec[:hmax]) ** 2))
    return out


def refine_period(env: np.ndarray, fps: float, period: float, rel: float = 0.01,
                  steps: int = 41, n_harm: int = 8) -> tuple[float, float]:
    """Period (s) near ``period`` whose harmonic comb holds the most energy
    of the envelope over the whole track, and the phase (s) of its beats.

    The comb power ``sum_h |X(h/period)|^2`` (the track's Fourier transform at
    the beat frequency and its harmonics) is a smooth function of the period
    whose peak narrows with the track's length and the harmonic number, so a
    few passes of grid search with a parabolic fit locate the period to a
    few parts per million on a minutes-long constant-tempo track. The phase
    is where the envelope folded at that period peaks.
    """
    x = np.asarray(env, np.float64)
    x = x - x.mean()
    best_p = float(period)
    span = rel
    for _ in range(3):
        trial = best_p * (1.0 + np.linspace(-span, span, steps))
        powr = _comb_power(x, fps, 1.0 / trial, n_harm)
        k = int(np.argmax(powr))
        if 0 < k < steps - 1:
            y0, y1, y2 = powr[k - 1], powr[k], powr[k + 1]
            den = y0 - 2 * y1 + y2
            off = 0.5 * (y0 - y2) / den if abs(den) > 1e-12 else 0.0
            best_p = float(trial[k] + np.clip(off, -1, 1) * (trial[1] - trial[0]))
        else:
            best_p = float(trial[k])
        span = 3.0 * (trial[1] - trial[0]) / best_p
    ph, _ = best_phase(env, fps, best_p, bins=64)
    return best_p, ph
