"""Tempo octave: is the beat the estimated tempo, half of it or double it?

:func:`engine.tempo.estimate_tempo` picks the metrical level inside the DJ
range (70-180 BPM by default) from the periodicity spectrum, the backbeat, the
kick and a prior. Half and double of the beat are both metrical levels of the
same music, so the onset spectrum alone cannot tell a 72 BPM ballad with
arpeggiated 8th notes from a 144 BPM song, nor a 188 BPM polka from a 94 BPM
one; and songs below 70 or above 180 BPM cannot be reported at all.

:func:`resolve_octave` compares the estimate with its half and its double
(allowed a little outside the DJ range: :func:`octave_range`) with a small
logistic model over cues read at both levels of each pair (lower, upper = 2 x
lower):

* the comb strength and the beat line of each level (:mod:`engine.tempo`);
* the backbeat (:func:`engine.tempo.alternation`) and kick cues at both levels;
* how the onsets of each band (full, low, mid) fall inside two beats of the
  lower level: on its beats, its 8ths (the upper level's off-beats), 16ths and
  32nds, and how much the first beat outweighs the second (accent alternation);
* triple-bar evidence at each level (lines at 1/3 and 2/3 of the beat);
* the **harmonic rhythm**: the median interval between chord changes
  (:func:`chord_change_interval`, independent of any tempo) counted in beats
  of the lower level; chords mostly change every 2-4 beats of the true tempo;
* **repetition at metrical lags** (:func:`repetition_cues`): how much the
  onsets of each band (full, low, mid) repeat after 1/4, 1/2, 1, 2, 4 and 8
  beats of the lower level (the envelope's autocorrelation) and how much the
  chords repeat after 1, 2, 4, 8 and 16 of its beats (chroma self-similarity).
  A drum pattern repeats every bar of the true tempo: a funk groove at 96 BPM
  repeats after 4 of its beats, not after 2, while the same onsets read at 48
  BPM would repeat after every beat; a ballad's chords change every bar or
  half bar of its own tempo, not of its double.

Before the octave check, an optional **3:2 check** (``OctaveModel.triple``,
features :func:`triple_features`) compares the estimate with 2/3 and 3/2 of it
the same way (comb and line differences, backbeat, kick and triple-bar cues
at both levels, how the onsets fall on each level's beats and 8ths, the
harmonic rhythm): a bar-periodic groove read at 2/3 of its beat (a fast
waltz, a shuffle or a 3-3-2 pattern) moves to the beat, and a 3/4 song read
at 3/2 moves back. It moves the estimate only when the model is sure
(``triple.threshold``); the octave check then runs on the result.

The two checks are one **round**; rounds repeat from the answer until it
stops moving (at most :data:`DECISION_ROUNDS`; a round that would return to a
level already visited ends the search there). One round can only leave a
1:3 error half-solved: a 12/8 ballad at 66 BPM whose estimate is 132 (its
8th-note level) is moved to 198 (the triplet pulse, by the 3:2 check) and
halved to 99, and only a second round compares 99 with 66.

The models are trained by ``bench/train_tempo_octave.py`` (MMA library grooves
other than the realbench ones, generated tracks and the realbench dev set; see
its docstring for the recipe and the cross-validated accuracy); the weights
ship in ``engine/models/tempo_octave.json`` (plain numbers, numpy inference).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import tempo as tempomod

#: Where the shipped model lives.
MODEL_PATH = Path(__file__).resolve().parent / "models" / "tempo_octave.json"

#: How far outside [min_bpm, max_bpm] the octave resolver may go (factors on
#: the range ends): 70-180 BPM becomes about 55-215 BPM.
RANGE_LOW_FACTOR = 1.0 / 1.27
RANGE_HIGH_FACTOR = 1.2

#: Rounds of the decision at most (:func:`decide_octave`): each round is the
#: 3:2 check then the octave check, from the previous round's answer.
DECISION_ROUNDS = 3

#: Lags (in beats of a level) of the onset-repetition cues (:func:`repetition_cues`).
ACF_LAGS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Lags (in beats of a level) of the chord-repetition cues.
CHROMA_LAGS = (1.0, 2.0, 4.0, 8.0, 16.0)

#: Names of the pair features, in model order (see :func:`pair_features`).
FEATURES = (["lp", "dcomb", "alt_lo", "alt_hi", "kick_lo", "kick_hi"]
            + [f"{b}_{k}" for b in "flm" for k in ("beat", "8th", "16th", "32nd", "acc")]
            + ["hrx", "tri_lo", "tri_hi", "dline"]
            + [f"acf_{b}_{k:g}" for b in "flm" for k in ACF_LAGS]
            + [f"chroma_rep_{k:g}" for k in CHROMA_LAGS])

#: Names of the 3:2 pair features, in model order (see :func:`triple_features`).
TRIPLE_FEATURES = (["lp", "dcomb", "dline", "alt_lo", "alt_hi", "kick_lo", "kick_hi",
                    "tri_lo", "tri_hi", "hrx"]
                   + [f"{b}_{k}_{lv}" for b in "flm" for k in ("beat", "8th", "acc")
                      for lv in ("lo", "hi")])


@dataclass
class LevelCues:
    """Cues of one metrical level (one trial tempo).

    Attributes
    ----------
    bpm : float
        Refined tempo of the level.
    alt, kick : float
        Backbeat and kick cues (:mod:`engine.tempo`).
    comb : float
        Log harmonic-comb sum at the level's beat frequency.
    profile : dict
        Band (``"f"``, ``"l"``, ``"m"``) -> onset share in 16 slots over two
        beats of the level (slot 0 = the beat).
    triple : float
        Log-ratio of the spectral lines at 1/3 and 2/3 of the beat frequency to
        the line at 1/2.
    line : float
        Log magnitude of the beat frequency's own line.
    repeat : ndarray or None
        Onset repetition after :data:`ACF_LAGS` beats in the full, low and mid
        bands, then chord repetition after :data:`CHROMA_LAGS` beats (NaN
        without chroma): :func:`repetition_cues`.
    """

    bpm: float
    alt: float
    kick: float
    comb: float
    profile: dict
    triple: float
    line: float
    repeat: np.ndarray | None = None


@dataclass
class OctaveChoice:
    """Result of :func:`resolve_octave`.

    Attributes
    ----------
    bpm : float
        The chosen tempo (the estimate times ``factor``).
    factor : float
        1, 0.5 or 2 (octave), 2/3 or 3/2 (the 3:2 check), or the product of a
        3:2 move and an octave move (1/3, 4/3, 3/4, 3), or of the moves of
        several rounds (:func:`decide_octave`).
    p_keep_over_half : float or None
        Model probability that the estimate, not its half, is the beat (None
        when the half was out of range).
    p_double_over_keep : float or None
        Model probability that the double, not the estimate, is the beat.
    p_keep_over_two_thirds, p_three_halves_over_keep : float or None
        The same for the 3:2 check (the estimate against 2/3 of it, and 3/2 of
        it against the estimate); None when not compared. The octave
        probabilities then refer to the tempo after the 3:2 check.
    octave : float
        The octave move of the last round: 0.5, 1 or 2.
    rounds : list of OctaveChoice
        Each round's own choice, in order, relative to the tempo it started
        from (:func:`decide_octave`); the first is the single-round decision.
    """

    bpm: float
    factor: float = 1.0
    p_keep_over_half: float | None = None
    p_double_over_keep: float | None = None
    levels: dict = field(default_factory=dict)
    p_keep_over_two_thirds: float | None = None
    p_three_halves_over_keep: float | None = None
    octave: float = 1.0
    rounds: list = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """In [0, 1]: how clearly the model preferred the chosen level in the
        pairs it compared (1 when it compared none)."""
        ps = []
        octave = self.octave
        if self.p_keep_over_half is not None:
            ps.append(self.p_keep_over_half if octave != 0.5 else 1.0 - self.p_keep_over_half)
        if self.p_double_over_keep is not None and octave != 0.5:
            ps.append(self.p_double_over_keep if octave == 2.0 else 1.0 - self.p_double_over_keep)
        ps += [p for p in (self.p_keep_over_two_thirds, self.p_three_halves_over_keep)
               if p is not None]
        return float(min([1.0] + [abs(2.0 * p - 1.0) for p in ps]))


@dataclass
class OctaveModel:
    """Standardised logistic regression over :data:`FEATURES`.

    ``threshold`` is how sure the model must be before the resolver moves the
    estimate: halve when P(estimate over half) < 1 - threshold, double when
    P(double over estimate) > threshold (0.5: follow the model; higher: trust
    :func:`engine.tempo.estimate_tempo`'s own choice more). Chosen with the
    regularisation by grouped cross-validation.

    ``triple`` is the optional 3:2 model (the same form over
    :data:`TRIPLE_FEATURES`, with its own threshold), applied before the octave
    check: is the beat the estimate, 2/3 of it or 3/2 of it?
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: tuple = tuple(FEATURES)
    info: dict = field(default_factory=dict)
    threshold: float = 0.5
    triple: "OctaveModel | None" = None

    def prob_upper(self, x: np.ndarray) -> float:
        """Probability that the upper level of a pair is the beat (a missing
        cue, NaN, counts as the training mean: neutral)."""
        u = (np.asarray(x, np.float64) - self.mean) / self.scale
        u[~np.isfinite(u)] = 0.0
        z = float(np.dot(u, self.coef) + self.intercept)
        return float(1.0 / (1.0 + np.exp(-z)))

    def to_json(self) -> dict:
        d = {"features": list(self.features), "mean": self.mean.tolist(),
             "scale": self.scale.tolist(), "coef": self.coef.tolist(),
             "intercept": float(self.intercept), "threshold": float(self.threshold),
             "info": self.info}
        if self.triple is not None:
            d["triple"] = self.triple.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict, features=FEATURES) -> "OctaveModel":
        if list(d["features"]) != list(features):
            raise ValueError(f"tempo octave model features {d['features']} do not match "
                             f"this engine's {list(features)}; rebuild it with "
                             "bench/train_tempo_octave.py")
        triple = (cls.from_json(d["triple"], TRIPLE_FEATURES) if d.get("triple") else None)
        return cls(mean=np.asarray(d["mean"], np.float64), scale=np.asarray(d["scale"], np.float64),
                   coef=np.asarray(d["coef"], np.float64), intercept=float(d["intercept"]),
                   features=tuple(features), info=dict(d.get("info", {})),
                   threshold=float(d.get("threshold", 0.5)), triple=triple)


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> OctaveModel | None:
    """The shipped model (None when the file is absent: no octave resolution)."""
    p = Path(path) if path else MODEL_PATH
    if not p.exists():
        return None
    return OctaveModel.from_json(json.loads(p.read_text()))


def octave_range(min_bpm: float, max_bpm: float) -> tuple[float, float]:
    """Tempo range the resolver may move the estimate into."""
    return min_bpm * RANGE_LOW_FACTOR, max_bpm * RANGE_HIGH_FACTOR


def chord_change_interval(chroma: np.ndarray, fps: float, window: float = 0.5) -> float:
    """Median time (s) between chord changes, or NaN when fewer than three.

    A change is a peak of the cosine distance between the mean (log) chroma of
    the ``window`` seconds before and after each frame, above the median plus
    three median absolute deviations and the largest within ``window``.
    Frames quieter than a tenth of the median level are not changes.
    """
    c = np.log1p(10.0 * np.asarray(chroma, np.float64) / (float(np.max(chroma)) + 1e-9))
    k = max(1, int(round(window * fps)))
    n = c.shape[1]
    if n < 2 * k + 3:
        return float("nan")
    cs = np.cumsum(np.pad(c, ((0, 0), (1, 0))), axis=1)
    t = np.arange(k, n - k)
    a = cs[:, t] - cs[:, t - k]
    b = cs[:, t + k] - cs[:, t]
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    nov = 1.0 - np.sum(a * b, axis=0) / (na * nb + 1e-9)
    nov[np.minimum(na, nb) < 0.1 * np.median(np.minimum(na, nb))] = 0.0
    med = np.median(nov)
    thr = med + 3.0 * (np.median(np.abs(nov - med)) + 1e-9)
    # local maxima within +-k frames (a sliding maximum)
    from numpy.lib.stride_tricks import sliding_window_view
    padded = np.pad(nov, k, constant_values=-np.inf)
    local_max = sliding_window_view(padded, 2 * k + 1).max(axis=1)
    idx = np.arange(len(nov))
    pk = idx[(nov >= thr) & (nov == local_max) & (idx > 0) & (idx < len(nov) - 1)]
    if len(pk) < 3:
        return float("nan")
    return float(np.median(np.diff(pk)) / fps)


@dataclass
class RepetitionContext:
    """What :func:`repetition_cues` reads: the autocorrelations of a track's
    full, low and mid novelty curves (:func:`repetition_context`) and its
    frame-normalised log chroma (None without chroma)."""

    acf: dict
    fps: float
    chroma: np.ndarray | None = None
    chroma_fps: float | None = None


def repetition_context(ctx: tempomod.PulseContext, chroma: np.ndarray | None = None,
                       chroma_fps: float | None = None) -> RepetitionContext:
    """The :class:`RepetitionContext` of a :class:`engine.tempo.PulseContext`
    (and optionally the track's chroma frames)."""
    acf = {"f": tempomod._acf(ctx.nf), "l": ctx.r_low, "m": tempomod._acf(ctx.nm)}
    ch = None
    if chroma is not None and chroma_fps and np.size(chroma) and np.max(chroma) > 0:
        c = np.log1p(10.0 * np.asarray(chroma, np.float64) / float(np.max(chroma)))
        ch = c / (np.linalg.norm(c, axis=0, keepdims=True) + 1e-9)
    return RepetitionContext(acf=acf, fps=ctx.fps, chroma=ch,
                             chroma_fps=float(chroma_fps) if ch is not None else None)


def repetition_cues(rep: RepetitionContext, bpm: float) -> np.ndarray:
    """How much a track repeats after whole numbers (and fractions) of beats
    of the level at ``bpm``.

    The autocorrelation of the full, low and mid novelty curves after each of
    :data:`ACF_LAGS` beats (max over the neighbouring frames), then the mean
    cosine similarity of the log chroma frames ``k`` beats apart for ``k`` in
    :data:`CHROMA_LAGS` (NaN without chroma or when the track is too short
    for the lag). A bar-long pattern repeats strongly after 4 beats of the
    true tempo and less after 2; read at half tempo it repeats after every
    beat.
    """
    period = 60.0 / bpm
    v = [tempomod._acf_at(rep.acf[b], k * period * rep.fps) for b in "flm" for k in ACF_LAGS]
    ch = rep.chroma
    for k in CHROMA_LAGS:
        if ch is None:
            v.append(float("nan"))
            continue
        lag = int(round(k * period * rep.chroma_fps))
        v.append(float(np.mean(np.sum(ch[:, :-lag] * ch[:, lag:], axis=0)))
                 if 0 < lag < ch.shape[1] - 10 else float("nan"))
    return np.asarray(v, np.float64)


def level_cues(ctx: tempomod.PulseContext, bpm: float,
               rep: RepetitionContext | None = None) -> LevelCues:
    """Cues of the metrical level at ``bpm`` (see :class:`LevelCues`) in a track's
    :class:`engine.tempo.PulseContext`; the repetition cues come from ``rep``
    (:func:`repetition_context`, built from ``ctx`` without chroma when not
    given)."""
    fps = ctx.fps
    period, ph, alt, kick = tempomod.pulse_cues(ctx.nf, ctx.nl, ctx.nm, fps, ctx.r_low, 60.0 / bpm)
    f = 1.0 / period
    comb = float(np.log(tempomod.comb(ctx.freqs, ctx.mag, np.array([f]))[0] + 1e-12))
    t = np.arange(len(ctx.nf)) / fps
    b = (((t - ph) / (2.0 * period)) % 1.0 * 64).astype(int) % 64
    counts = np.maximum(1, np.bincount(b, minlength=64))
    profile = {}
    for name, x in (("f", ctx.nf), ("l", ctx.nl), ("m", ctx.nm)):
        h = np.bincount(b, weights=x, minlength=64) / counts
        s = np.roll(h, 2).reshape(16, 4).max(axis=1) - h.min()
        profile[name] = s / (s.sum() + 1e-9)

    def mag(q):
        return tempomod._mag_at(ctx.freqs, ctx.mag, q)

    triple = float(np.log((mag(f / 3.0) + mag(2.0 * f / 3.0) + 1.0) / (mag(f / 2.0) + 1.0)))
    rep = rep if rep is not None else repetition_context(ctx)
    return LevelCues(bpm=60.0 / period, alt=float(alt), kick=float(kick), comb=comb,
                     profile=profile, triple=triple, line=float(np.log(mag(f) + 1.0)),
                     repeat=repetition_cues(rep, 60.0 / period))


def pair_features(lo: LevelCues, hi: LevelCues, chord_interval: float) -> np.ndarray:
    """Feature vector (:data:`FEATURES`) of the pair (lower level, upper level)."""
    v = [np.log2(lo.bpm / 110.0), hi.comb - lo.comb, lo.alt, hi.alt, lo.kick, hi.kick]
    for band in "flm":
        s = lo.profile[band]
        v += [s[[0, 8]].sum(), s[[4, 12]].sum(), s[[2, 6, 10, 14]].sum(), s[1::2].sum(),
              abs(s[0] - s[8]) / (s[0] + s[8] + 1e-9)]
    x = np.log2(lo.bpm / 60.0 * chord_interval) if np.isfinite(chord_interval) else 2.0
    v += [x, lo.triple, hi.triple, hi.line - lo.line]
    n_rep = len(ACF_LAGS) * 3 + len(CHROMA_LAGS)
    v += list(lo.repeat) if lo.repeat is not None else [float("nan")] * n_rep
    return np.asarray(v, np.float64)


def triple_features(lo: LevelCues, hi: LevelCues, chord_interval: float) -> np.ndarray:
    """Feature vector (:data:`TRIPLE_FEATURES`) of a 3:2 pair (lower level,
    upper level = 3/2 x lower): tempo, comb and line differences, backbeat,
    kick and triple-bar cues at both levels, the harmonic rhythm in beats of
    the lower level, and per band how much of the onsets fall on each level's
    beats and 8ths and how much its beats alternate in weight."""
    v = [np.log2(lo.bpm / 110.0), hi.comb - lo.comb, hi.line - lo.line, lo.alt, hi.alt,
         lo.kick, hi.kick, lo.triple, hi.triple,
         np.log2(lo.bpm / 60.0 * chord_interval) if np.isfinite(chord_interval) else 2.0]
    for band in "flm":
        s, t = lo.profile[band], hi.profile[band]
        v += [s[[0, 8]].sum(), t[[0, 8]].sum(), s[[4, 12]].sum(), t[[4, 12]].sum(),
              abs(s[0] - s[8]) / (s[0] + s[8] + 1e-9), abs(t[0] - t[8]) / (t[0] + t[8] + 1e-9)]
    return np.asarray(v, np.float64)


def resolve_octave(full: np.ndarray, low: np.ndarray, mid: np.ndarray, fps: float, bpm: float,
                   *, chroma: np.ndarray | None = None, chroma_fps: float | None = None,
                   min_bpm: float = 70.0, max_bpm: float = 180.0,
                   model: OctaveModel | None = None,
                   context: tempomod.PulseContext | None = None) -> OctaveChoice:
    """Keep ``bpm``, move it by 3:2 or 2:3, then halve or double it (see the
    module docstring).

    Parameters
    ----------
    full, low, mid : ndarray
        Onset envelopes at ``fps`` (as given to :func:`engine.tempo.estimate_tempo`).
    bpm : float
        The estimate.
    chroma, chroma_fps : optional
        Chroma frames for the harmonic-rhythm cue (neutral without them).
    min_bpm, max_bpm : float
        The DJ range; the answer stays within :func:`octave_range` of it.
    model : OctaveModel, optional
        Defaults to the shipped model; without one the estimate is kept.
    context : engine.tempo.PulseContext, optional
        Of the same envelopes, when the caller has it (``TempoEstimate.context``).

    Returns
    -------
    OctaveChoice
    """
    model = model if model is not None else load_model()
    if model is None or not np.isfinite(bpm) or bpm <= 0:
        return OctaveChoice(bpm=bpm)
    lo_b, hi_b = octave_range(min_bpm, max_bpm)
    ctx = context if context is not None else tempomod.pulse_context(full, low, mid, fps)
    ci = (chord_change_interval(chroma, chroma_fps)
          if chroma is not None and chroma_fps and np.size(chroma) else float("nan"))
    rep = repetition_context(ctx, chroma, chroma_fps)
    levels = {1.0: level_cues(ctx, bpm, rep)}

    def at(f):
        """Cues of the level at ``f`` x the estimate (computed once)."""
        f = round(f, 9)
        if f not in levels:
            levels[f] = level_cues(ctx, bpm * f, rep)
        return levels[f]

    return decide_octave(model, bpm, at, ci, lo_b, hi_b, levels=levels)


def decide_octave(model: OctaveModel, bpm: float, at, ci: float, lo_b: float, hi_b: float,
                  levels: dict | None = None, rounds: int = DECISION_ROUNDS) -> OctaveChoice:
    """The decision of :func:`resolve_octave` from cues: rounds of the 3:2
    check (2/3 of the tempo, then 3/2 of it) and the octave check (halve or
    double), each round from the previous round's answer, until a round keeps
    its tempo, would go back to a tempo already visited (the search stops
    there), or ``rounds`` rounds have run.

    Parameters
    ----------
    model : OctaveModel
    bpm : float
        The estimate.
    at : callable
        ``at(f)`` -> :class:`LevelCues` of the level at ``f`` x ``bpm`` (asked
        only for the levels the decision needs; the trainer passes cached ones).
    ci : float
        :func:`chord_change_interval` (NaN without chroma).
    lo_b, hi_b : float
        :func:`octave_range` of the DJ range.
    levels : dict, optional
        Stored in the result's ``levels``.
    rounds : int
        At most this many rounds (1 = a single 3:2 then octave check).

    Returns
    -------
    OctaveChoice
        ``bpm`` and ``factor`` (relative to the estimate) of the answer; the
        probabilities are those of the last round, compared around the level
        it started from, and ``octave`` is that round's octave move (1 when
        the search stopped because the round would have gone back).
    """
    factor, visited, steps = 1.0, [1.0], []
    for _ in range(max(1, int(rounds))):
        step = _decide_round(model, bpm * factor, lambda g, f=factor: at(f * g), ci, lo_b, hi_b)
        steps.append(step)
        nxt = factor * step.factor
        if step.factor != 1.0 and any(abs(nxt / v - 1.0) < 1e-6 for v in visited):
            last = replace(step, octave=1.0)          # going back: stay
            break
        last, factor = step, nxt
        if step.factor == 1.0:
            break
        visited.append(nxt)
    return replace(last, bpm=bpm * factor, factor=factor,
                   levels=levels if levels is not None else {}, rounds=steps)


def _decide_round(model: OctaveModel, bpm: float, at, ci: float, lo_b: float,
                  hi_b: float) -> OctaveChoice:
    """One round of :func:`decide_octave` around ``bpm``: the 3:2 check, then
    halve or double its result (``factor`` relative to ``bpm``)."""
    out = OctaveChoice(bpm=bpm)
    f3 = 1.0
    tri = model.triple
    if tri is not None:
        # 3:2 check first: 2/3 of the estimate, then 3/2 of it
        if bpm * 2.0 / 3.0 >= lo_b:
            out.p_keep_over_two_thirds = tri.prob_upper(triple_features(at(2.0 / 3.0), at(1.0), ci))
            if out.p_keep_over_two_thirds < 1.0 - tri.threshold:
                f3 = 2.0 / 3.0
        if f3 == 1.0 and bpm * 1.5 <= hi_b:
            out.p_three_halves_over_keep = tri.prob_upper(triple_features(at(1.0), at(1.5), ci))
            if out.p_three_halves_over_keep > tri.threshold:
                f3 = 1.5

    base = bpm * f3
    out.bpm, out.factor = base, f3
    if base / 2.0 >= lo_b:
        out.p_keep_over_half = model.prob_upper(pair_features(at(f3 / 2.0), at(f3), ci))
        if out.p_keep_over_half < 1.0 - model.threshold:
            out.bpm, out.factor, out.octave = base / 2.0, f3 / 2.0, 0.5
            return out
    if base * 2.0 <= hi_b:
        out.p_double_over_keep = model.prob_upper(pair_features(at(f3), at(f3 * 2.0), ci))
        if out.p_double_over_keep > model.threshold:
            out.bpm, out.factor, out.octave = base * 2.0, f3 * 2.0, 2.0
    return out


def fit_model(X: np.ndarray, y: np.ndarray, C: float = 0.2, info: dict | None = None,
              sample_weight: np.ndarray | None = None, features=FEATURES) -> OctaveModel:
    """Fit the pair model (scikit-learn's L2 logistic regression on
    standardised features, missing ones (NaN) set to the column mean,
    optionally weighting the pairs); ``features``
    names the columns (:data:`FEATURES`, or :data:`TRIPLE_FEATURES` for the
    3:2 model)."""
    from sklearn.linear_model import LogisticRegression

    X = np.array(X, np.float64)
    mean = np.nanmean(X, axis=0)
    mean[~np.isfinite(mean)] = 0.0
    X = np.where(np.isfinite(X), X, mean)       # a missing cue counts as the mean
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    lr = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, np.asarray(y),
                                                    sample_weight=sample_weight)
    return OctaveModel(mean=mean, scale=scale, coef=lr.coef_[0].astype(np.float64),
                       intercept=float(lr.intercept_[0]), features=tuple(features),
                       info=dict(info or {}))
