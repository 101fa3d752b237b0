"""Tempo, beats and bar lines (downbeats).

The pipeline (:func:`analyse_rhythm`):

1. **Tempo** from the periodicity spectrum of the onset envelopes
   (:mod:`engine.tempo`): a harmonic comb over the whole track picks the beat
   level and rejects 2/3 and 3/2 readings (a bar-periodic rhythm has no line
   there); backbeat, kick and a mild prior pick the level in the DJ range,
   then a learned octave check (:mod:`engine.tempo_octave`: drum placement,
   onset density per beat, harmonic rhythm) keeps it, halves it or doubles
   it, a little outside the range if need be. The user can fix it
   (``AnalysisConfig.bpm``).
2. **Beat grid**: the period and phase whose comb best fits the onsets of the
   whole track (continuous, refined to parts per million, not a lag bin).
   When librosa's tracked beats do not keep one position against that grid
   the tempo moves, and the tracked beats (re-tracked with a looser tempo
   constraint) are kept instead.
3. **Beat or off-beat**: the comb's strongest pulse may be the off-beat
   (disco hats, reggae skanks); onset levels in three bands, the kick/snare
   alternation, harmonic change and where the low register enters (the music
   starts on a beat) decide (:func:`_offbeat_choice`). The
   phase is then refined on the fine attack envelope folded over the track.
4. **Meter**: 4/4 unless the spectrum shows triple bar lines
   (:func:`engine.tempo.meter_evidence`); ``beats_per_bar`` 3 or 4 forces it.
5. **Bar phase**: which beat is "one", from kick, beat-to-beat and
   bar-to-bar harmonic change, backbeat, and entry (the first beat where kick
   and bass come in, after any pickup) cues, and a prior from how the file
   opens (:func:`opening_prior`: a file whose music starts with it, on a beat
   with kick or bass, starts on bar one); its margin over the runner-up is
   the bar confidence. ``downbeat_offset`` shifts it.

Measured on generated tracks (``tests/test_rhythm.py``, ``bench/bench_rhythm.py``)
and on real renders (``bench/bench_rhythm_real.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import AnalysisConfig
from .errors import AnalysisError

#: Phase concentration (resultant length, modulo a quarter beat) of the
#: tracked beats against the comb grid above which the track is taken as
#: constant-tempo.
GRID_AGREEMENT_MIN = 0.5

#: Beat-tracker tightness when the tempo is not constant (librosa's default
#: is 100; lower follows tempo changes more freely).
TRACK_TIGHTNESS_VARIABLE = 100

#: :func:`grid_agreement`: beats per block, the least onset weight of a block that
#: counts (fraction of the median block's), and the quantile of the blocks'
#: agreement that decides.
AGREEMENT_BLOCK_BEATS = 16
AGREEMENT_MIN_WEIGHT = 0.25
AGREEMENT_QUANTILE = 0.2
#: Tightness of the beat tracker whose beats :func:`grid_agreement` compares with the
#: grid (tracked at exactly the grid's period, :func:`track_beats_at_period`): tight
#: enough to hold the beat through syncopation and swing, loose enough to follow a
#: tempo that changes (400 held a 118 -> 132 BPM step; 100-200 wandered on swung
#: constant-tempo arrangements).
AGREEMENT_TRACK_TIGHTNESS = 300

#: Meter evidence (:func:`engine.tempo.meter_evidence`) above which a bar has
#: three beats; the 4/4 prior sits in the offset (measured separation on the
#: realbench renders: 4/4 tracks <= -1.05, waltzes >= -0.14).
METER_THRESHOLD = -0.6

#: Weight of the "snare on the beat after one" cue in :func:`bar_phase_scores`.
BACKBEAT_W = 0.35

#: Weights of the beat-to-beat and the bar-to-bar harmonic change cues in
#: :func:`bar_phase_scores` (scaled by how tonal the track is).
BEAT_CHANGE_W = 1.0
BAR_CHANGE_W = 0.75

#: Weight of the timbre-change cue in :func:`bar_phase_scores`: log-mel change
#: across the bar lines of a phase, the two bars before against the two bars
#: after (parts enter, leave and change at bar lines, mostly every two or more
#: bars; a one-bar window mostly sees the drum pattern's own variation).
#: Chosen with BAR_CHANGE_W (was 1.5) by the log-likelihood of the true phase
#: under the softmax of the scores (one fitted temperature) on the 26 realbench
#: dev tracks with the right beats and 93 generated tracks: -0.072 per track
#: before, -0.045 with these weights (bar one right on 117 of 119 either way);
#: BAR_CHANGE_W 0.5-1.0 with this weight 0.25-0.75 all score -0.044 to -0.056,
#: and the dev and the generated tracks alone pick settings in that range.
#: Alone, this cue finds bar one on 92% of the dev and 91% of the generated
#: tracks (the one-bar log-mel change: 88% and 87%; added to the cues it hurt).
BAR_TIMBRE_W = 0.5
BAR_TIMBRE_BARS = 2

#: Bar-one cues of :func:`bar_phase_cues`, weighted by the conditional logit of
#: ``engine/models/bar_phase.json`` (learned by ``bench/train_bar_phase.py`` on
#: MMA library grooves, generated arrangements and dev; :func:`bar_phase_weights`).
BAR_PHASE_CUES = ("low", "beat_change", "backbeat", "bar_change", "timbre", "timbre1", "entry")
BAR_PHASE_MODEL_PATH = Path(__file__).resolve().parent / "models" / "bar_phase.json"

#: Weight of the entry cue in :func:`bar_phase_scores`: the first beat where
#: the low register (kick, bass; log-mel bands centred below ENTRY_MAX_HZ)
#: reaches ENTRY_LEVEL times its median beat level is taken as a bar line
#: (songs start on bar one; a pickup is hats or a lone melody, without the
#: bass). Measured on 89 generated tracks (random arrangements, 0-3 beat
#: pickups) and the 26 realbench dev tracks with the right beats: the entry
#: beat alone is bar one on 80 and 25 of them (ENTRY_LEVEL 0.3: 72 and 26;
#: 0.7: 85 and 24), and the cue added to the others fixes tracks without
#: breaking any for weights 0.3-1.6 (where it is wrong, the other cues lead
#: by more than that).
ENTRY_W = 1.0
ENTRY_LEVEL = 0.5
ENTRY_MAX_HZ = 700.0
#: Level (times the median) below which the low register counts as silent
#: when :func:`_rise_start` looks back for where an entry's rise began.
ENTRY_FLOOR = 0.1

#: The opening prior (:func:`opening_prior`): a file that opens with the music
#: (its first sound within OPENING_MAX_S of 0 s, no leading silence) on a beat
#: of the grid (within OPENING_TOL_S) where the low register (kick, bass)
#: sounds, as a render of a song from its start or a loop cut at bar one does,
#: has that beat as bar one with probability OPENING_PRIOR. "Sound" is a frame
#: within OPENING_FLOOR_DB of the track's loud level (95th percentile), so a
#: soft intro (a pad swelling in, renders 15-20 dB under their loud level in
#: the first frames) counts, and the opening beat is music, not noise: the
#: median spectral flatness of its frames' mel band powers is at most
#: OPENING_NOISE_FLATNESS (a noise bed or room tone, which generated tracks
#: open with ~16 dB under their loud level, is 0.98-0.99; the music openings
#: of the training tracks 0.0-0.82).
#: OPENING_PRIOR is estimated on the bar-phase training tracks
#: (``python bench/estimate_opening_prior.py``: of 317 tracks with the right
#: beats, 224 open this way and all 224 on bar one: the MMA library renders
#: 196 (of 196), the realbench dev set 27 (of 28), the generated arrangements
#: 1 (of 93; the others open with silence, a noise bed or a pickup); (224 + 1)
#: / (224 + 2)). With the floor at 12 dB, no noise test and the low register
#: looked for over the whole beat (before) it was 224 of 225: a generated
#: track whose noise bed opened on a beat.
OPENING_PRIOR = 0.996
OPENING_MAX_S = 0.06
OPENING_TOL_S = 0.035
OPENING_FLOOR_DB = 30.0
OPENING_NOISE_FLATNESS = 0.95

#: The hand weights of the cues (used before the learned ones, and when
#: ``engine/models/bar_phase.json`` is absent).
HAND_BAR_WEIGHTS = {"low": 1.0, "beat_change": BEAT_CHANGE_W, "backbeat": BACKBEAT_W,
                    "bar_change": BAR_CHANGE_W, "timbre": BAR_TIMBRE_W, "entry": ENTRY_W}

#: Weights of the backbeat alternation and harmonic-change cues in
#: :func:`_offbeat_choice` (the onset-level cues weigh 0.5 each). The
#: alternation cue was 2.0: a syncopated drum pattern (kick on one and the
#: "and" of two, hats on the off-beats) alternates at the off-beats too, and it
#: put the grid on the off-beat of 5 of 35 holdout songs.
OFFBEAT_ALT_W = 0.5
OFFBEAT_CHANGE_W = 1.0

#: Weight of the entry cue in :func:`_offbeat_choice`: the music enters on a
#: beat, so the time the low register enters (see ENTRY_W) votes for the
#: candidate grid it falls on (cosine of its phase against the grid). The
#: weight of one onset-level cue; on 85 generated tracks and the 27 dev
#: tracks with the right tempo every weight up to 0.7 keeps the choice right
#: (a noise bed or an eighth-note pickup puts the entry off the beat).
OFFBEAT_ENTRY_W = 0.5

#: A grid beat up to this many seconds before the start of the audio is kept
#: (clipped to 0 s) as the first beat.
EARLY_FIRST_BEAT = 0.03

#: Frequency bands (Hz) of the band-limited onset envelopes.
ONSET_BANDS = {"low": (30.0, 200.0), "mid": (180.0, 2500.0)}

#: Seconds of onset envelope (centred) used for the global tempo estimate.
TEMPO_WINDOW = 240.0

#: Hop (samples at the analysis rate) of the fine attack envelope.
FINE_HOP = 32


@dataclass
class RhythmGrid:
    """Beats and bars of one track (times in seconds).

    Attributes
    ----------
    bpm : float
        Tempo in the DJ range.
    beats : ndarray
        Beat times.
    downbeats : ndarray
        Times of beats that start a bar (a subset of ``beats``).
    beats_per_bar : int
    bar_phase : int
        Index into ``beats`` of the first downbeat.
    confidence : float
        Beat confidence in [0, 1] (how well onsets line up with the beats).
    bar_confidence : float
        Margin of the chosen bar phase over the runner-up, in [0, 1].
    constant_tempo : bool
        True if the beats are a fitted straight grid.
    tempo_candidates : dict
        Octave candidates considered and their scores.
    tempo_confidence : float
        In [0, 1]: how clearly the chosen tempo beats the alternative
        metrical levels (1 when the user fixed the tempo).
    meter_confidence : float
        In [0, 1]: how clearly the detected meter beats the other (1 when the
        meter was forced).
    downbeat_offset : int
        User shift of bar one, in beats, already applied to ``downbeats``.
    bpm_fixed : bool
        True when the tempo was given by the user (``AnalysisConfig.bpm``).
    grid_shift_ms : float
        User nudge of the whole grid in ms (``AnalysisConfig.grid_shift_ms``),
        already applied to ``beats`` and ``downbeats``.
    """

    bpm: float
    beats: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int
    bar_phase: int
    confidence: float
    bar_confidence: float
    constant_tempo: bool
    tempo_candidates: dict = field(default_factory=dict)
    tempo_confidence: float = 0.0
    meter_confidence: float = 0.0
    downbeat_offset: int = 0
    bpm_fixed: bool = False
    grid_shift_ms: float = 0.0

    @property
    def meter(self) -> str:
        """Time signature as reported to users, e.g. ``"4/4"``."""
        return f"{self.beats_per_bar}/4"

    @property
    def beat_period(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_duration(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm


@dataclass
class OnsetData:
    """Onset envelopes shared by rhythm analysis and features."""

    sr: int
    hop_length: int
    envelope: np.ndarray          # full-band spectral flux, frame rate sr/hop
    low: np.ndarray               # low-band (30-200 Hz) flux: kick, bass
    mid: np.ndarray               # mid-band (180-2500 Hz) flux: snare, claps
    fine: np.ndarray              # attack envelope at FINE_HOP
    fine_hop: int = FINE_HOP

    @property
    def fps(self) -> float:
        return self.sr / self.hop_length


# --------------------------------------------------------------------------- onsets

def onset_data(y: np.ndarray, sr: int, *, S_mag: np.ndarray | None = None,
               n_fft: int = 2048, hop_length: int = 512) -> OnsetData:
    """Onset envelopes for rhythm analysis.

    Parameters
    ----------
    y : ndarray
        Mono signal.
    sr : int
    S_mag : ndarray, optional
        Magnitude STFT (1 + n_fft/2, frames) computed with ``hop_length`` and
        ``center=True``; computed here if absent.

    Returns
    -------
    OnsetData
    """
    import librosa

    if S_mag is None:
        S_mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    env, low, mid = flux_bands(S_mag, np.fft.rfftfreq(n_fft, 1.0 / sr))
    lag = onset_lag(n_fft, hop_length)
    env, low, mid = (shift_frames(v, lag).astype(np.float32) for v in (env, low, mid))
    return OnsetData(sr=sr, hop_length=hop_length, envelope=env, low=low, mid=mid,
                     fine=fine_attack_envelope(y, FINE_HOP))


def flux_bands(S_mag: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectral flux of a magnitude STFT: full band, low band (kick, bass) and
    mid band (snare, claps), one value per frame, not yet shifted.

    The flux is the half-wave rectified frame-to-frame rise of log(1 + 100|S|).
    Blocked callers (:func:`engine.features.compute_track_features`) call it
    per block with a frame of context before the block.
    """
    logS = np.log1p(100.0 * S_mag)
    flux = np.maximum(0.0, np.diff(logS, axis=1, prepend=logS[:, :1]))
    lo, mid = ONSET_BANDS["low"], ONSET_BANDS["mid"]
    return (flux.mean(axis=0),
            flux[(freqs >= lo[0]) & (freqs < lo[1])].mean(axis=0),
            flux[(freqs >= mid[0]) & (freqs < mid[1])].mean(axis=0))


def onset_lag(n_fft: int, hop_length: int) -> int:
    """Frames to delay a flux envelope from centred frames: a centred frame
    sees an attack half a window early (the same shift librosa applies)."""
    return n_fft // (2 * hop_length) - 1


def shift_frames(x: np.ndarray, k: int) -> np.ndarray:
    """Delay ``x`` by ``k`` frames, zero-filling the start."""
    if k <= 0:
        return x
    return np.concatenate([np.zeros(k, x.dtype), x[:-k]])


def fine_attack_envelope(y: np.ndarray, hop: int = FINE_HOP, win: int = 64) -> np.ndarray:
    """Half-wave rectified rise of log energy in short frames.

    Frame ``k`` covers samples ``[k*hop, k*hop + win)``; a sharp attack at
    sample ``t`` peaks at frame ``ceil((t - win + 1)/hop)`` or so, i.e. within
    one ``hop`` of ``t / hop``.
    """
    n = (len(y) - win) // hop + 1
    if n < 3:
        return np.zeros(max(n, 1), np.float32)
    if win % hop:
        raise ValueError("win must be a multiple of hop")
    # energy per hop-sized block, computed in chunks (no (n, win) index array:
    # a 60-minute mix stays at a few MB here)
    n_blocks = len(y) // hop
    e_blk = np.empty(n_blocks, np.float64)
    chunk = hop * 65536
    for a in range(0, n_blocks * hop, chunk):
        z = min(a + chunk, n_blocks * hop)
        seg = y[a:z].astype(np.float64)
        e_blk[a // hop:z // hop] = np.square(seg).reshape(-1, hop).sum(axis=1)
    k = win // hop
    csum = np.concatenate([[0.0], np.cumsum(e_blk)])
    e = np.sqrt((csum[k:k + n] - csum[:n]) / win + 1e-10)
    le = np.log(e + 1e-5)
    out = np.zeros(n, np.float32)
    out[1:] = np.maximum(0.0, le[1:] - le[:-1])
    return out


# --------------------------------------------------------------------------- tempo

def fold_tempo(bpm: float, min_bpm: float, max_bpm: float) -> float:
    """Multiply or divide ``bpm`` by 2 until it lies in [min_bpm, max_bpm)."""
    if not np.isfinite(bpm) or bpm <= 0:
        raise AnalysisError("no usable tempo")
    while bpm < min_bpm * 0.985:
        bpm *= 2.0
    while bpm >= max_bpm * 1.015 and bpm / 2.0 >= min_bpm * 0.985:
        bpm /= 2.0
    return float(bpm)


# --------------------------------------------------------------------------- grid

def _fold_refine(t: float, period: float, od: OnsetData, window: float = 0.025,
                 z_min: float = 3.0) -> float:
    """Beat time near ``t`` where the fine attack envelope, folded at
    ``period`` over the whole track, peaks (within ``window`` s).

    The comb phase comes from 23 ms frames; attacks folded over hundreds of
    beats locate the grid to a couple of milliseconds, and the narrow window
    keeps the refinement on this beat rather than a neighbouring subdivision.

    The fold is only trusted when it has a peak: the highest (smoothed) bin
    inside the window must be an interior maximum standing ``z_min`` standard
    deviations of the fold's own noise above the lowest bin of the window. The
    noise is the bin-to-bin roughness of the unsmoothed fold (median absolute
    first difference), carried through the smoothing kernel. Otherwise
    (attacks smeared or spread over the window) ``t`` is kept.
    """
    fps = od.sr / od.fine_hop
    n_bins = max(16, int(round(period * fps)))
    fine = od.fine
    ph = ((np.arange(len(fine)) / fps - t) / period) % 1.0
    b = (ph * n_bins).astype(int) % n_bins
    h = np.bincount(b, weights=fine, minlength=n_bins) / np.maximum(1, np.bincount(b, minlength=n_bins))
    d = np.diff(np.r_[h, h[:1]])
    sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0)
    kern = np.array([0.25, 0.5, 1.0, 0.5, 0.25])
    h = np.convolve(np.r_[h[-2:], h, h[:2]], kern, mode="same")[2:-2]
    w = int(round(window / period * n_bins))
    cand = np.r_[np.arange(n_bins - w, n_bins), np.arange(0, w + 1)]     # in time order
    i = int(np.argmax(h[cand]))
    k, j = int(cand[i]), int(cand[np.argmin(h[cand])])
    noise = sigma * float(np.sqrt(2.0 * np.sum(kern ** 2)))   # of a difference of two smoothed bins
    if i in (0, len(cand) - 1) or h[k] - h[j] < z_min * noise:
        return float(t)
    off = (k + 0.5) / n_bins * period
    if off > period / 2:
        off -= period
    return float(t + off)


def track_beats_at_period(env: np.ndarray, fps: float, period: float,
                          tightness: float = 400.0) -> tuple[np.ndarray, np.ndarray]:
    """Beats tracked by dynamic programming (librosa's tracker) at exactly ``period``.

    librosa's tracker rounds the beat period to a whole number of frames, so
    wherever the onsets are too weak to pull it back (a break, a pad-only
    section) it coasts at up to half a frame per beat off the music's tempo
    and drifts off the beats. The envelope is stretched in time (by less than
    half a frame per beat) so that ``period`` is a whole number of its frames,
    tracked there, and the beats mapped back.

    Returns
    -------
    times : ndarray
        Beat times (s).
    frames : ndarray
        The frames of ``env`` nearest to them.
    """
    import librosa

    env = np.asarray(env, np.float64)
    fpb = period * fps
    k = max(1, int(round(fpb)))
    stretch = k / fpb                      # new frames per old frame
    n_new = max(2, int(round(len(env) * stretch)))
    src = np.arange(n_new) / stretch
    env_s = np.interp(src, np.arange(len(env)), env)
    _, fr = librosa.beat.beat_track(onset_envelope=env_s, sr=int(round(fps * 1000)),
                                    hop_length=1000, bpm=60.0 * fps / k, trim=False,
                                    tightness=tightness)
    fr = np.asarray(fr, float)
    # librosa's frame rate here is fps (sr / hop_length), so bpm = 60 * fps / k is
    # exactly k frames per beat of the stretched envelope
    times = fr / stretch / fps
    frames = np.clip(np.round(fr / stretch).astype(int), 0, len(env) - 1)
    return times, frames


def grid_agreement(beat_times: np.ndarray, beat_frames: np.ndarray, env: np.ndarray,
                   period: float, phase: float) -> float:
    """How steadily tracked beats keep one position against a straight grid, in every
    part of the track.

    The beats are taken in blocks of :data:`AGREEMENT_BLOCK_BEATS`; in each, the
    resultant length, modulo a quarter beat (the tracker may sit on off-beats or
    16ths), of their phases against the grid of ``period`` and ``phase`` (s), each
    beat weighted by the onset strength under it (``env``'s maximum within 2 frames
    of ``beat_frames``: in a break the tracker coasts without onsets to hold it, and
    those beats say nothing about the tempo). Blocks holding less than
    :data:`AGREEMENT_MIN_WEIGHT` of the median block's onset weight (breaks, fades)
    are left out. Returns a low quantile (:data:`AGREEMENT_QUANTILE`) of the
    blocks' resultants: near 1 when the beats stay on the grid throughout; low when
    the tempo moves in part of the track (a whole-track resultant stays high when
    half of the track sits on the grid).
    """
    beat_times = np.asarray(beat_times, float)
    if beat_times.size == 0:
        return 0.0
    frames = np.clip(np.asarray(beat_frames, int), 0, max(len(env) - 1, 0))
    w = np.array([float(np.max(env[max(0, f - 2):f + 3])) for f in frames])
    if not np.isfinite(w).all() or w.sum() <= 1e-12:
        w = np.ones(len(frames))
    v = w * np.exp(2j * np.pi * 4.0 * (beat_times - phase) / period)
    n_blocks = max(1, len(v) // AGREEMENT_BLOCK_BEATS)
    edges = np.linspace(0, len(v), n_blocks + 1).astype(int)
    weight = np.array([w[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    res = np.array([abs(v[a:b].sum()) / max(w[a:b].sum(), 1e-12)
                    for a, b in zip(edges[:-1], edges[1:])])
    keep = weight >= AGREEMENT_MIN_WEIGHT * np.median(weight)
    return float(np.quantile(res[keep], AGREEMENT_QUANTILE)) if keep.any() else 0.0


def middle_tempo(beat_times: np.ndarray) -> float:
    """Tempo (BPM) of the middle half of a tracked beat sequence.

    The slope of a least-squares line through the beat times against their
    index, so the figure is continuous (a median of beat-to-beat differences
    would be a whole number of analysis frames: a lag bin).
    """
    t = np.asarray(beat_times, float)
    n = len(t)
    lo, hi = n // 4, n - n // 4
    if hi - lo < 4:
        lo, hi = 0, n
    slope = np.polyfit(np.arange(lo, hi, dtype=float), t[lo:hi], 1)[0]
    return float(60.0 / slope)


def _beat_confidence(times: np.ndarray, od: OnsetData) -> float:
    """Mean onset strength on beats over mean strength overall, squashed to [0,1]."""
    env = od.envelope
    idx = np.round(times * od.fps).astype(int)
    idx = idx[(idx >= 0) & (idx < len(env))]
    if idx.size == 0:
        return 0.0
    on = np.array([env[max(0, i - 1):i + 2].max() for i in idx])
    ratio = float(on.mean() / (env.mean() + 1e-9))
    return float(np.clip((ratio - 1.0) / 3.0, 0.0, 1.0))


# --------------------------------------------------------------------------- bars

def _beat_sync_chroma(chroma: np.ndarray, chroma_fps: float, beats: np.ndarray) -> np.ndarray:
    """Mean of each row of ``chroma`` (or any frames at ``chroma_fps``, e.g.
    log-mel) over each beat interval, shape (rows, n_beats)."""
    edges = np.round(np.append(beats, beats[-1] + np.median(np.diff(beats))) * chroma_fps)
    edges = np.clip(edges.astype(int), 0, chroma.shape[1])
    out = np.zeros((chroma.shape[0], len(beats)))
    for b in range(len(beats)):
        a, z = edges[b], max(edges[b + 1], edges[b] + 1)
        if a < chroma.shape[1]:
            out[:, b] = chroma[:, a:z].mean(axis=1)
    return out


def _z(x: np.ndarray) -> np.ndarray:
    s = x.std()
    return (x - x.mean()) / s if s > 1e-12 else np.zeros_like(x)


def bar_phase_cues(beats: np.ndarray, od: OnsetData, beats_per_bar: int,
                   chroma: np.ndarray | None = None, chroma_fps: float | None = None,
                   snare_env: np.ndarray | None = None,
                   mel: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each bar-one cue's value at each of ``beats_per_bar`` phases.

    Keys (see :data:`BAR_PHASE_CUES`): ``low`` low-band onset strength at the
    beats; ``beat_change`` beat-to-beat chroma change (times tonality);
    ``backbeat`` snare on the beat after; ``bar_change`` chroma change across
    the bar lines (times tonality); ``timbre`` two-bar and ``timbre1`` one-bar
    log-mel change across the bar lines; ``entry`` 1 at the phase of the beat
    where the low register enters. A cue whose input is missing is all zeros.
    Arguments as :func:`bar_phase_scores`.
    """
    n = len(beats)
    idx = np.clip(np.round(beats * od.fps).astype(int), 0, len(od.low) - 1)

    def at_beats(env):
        pad = np.pad(env, 2)
        return np.array([pad[i:i + 5].max() for i in idx])

    def per_phase(c):
        return np.array([float(np.mean(c[p::beats_per_bar])) if c[p::beats_per_bar].size else 0.0
                         for p in range(beats_per_bar)])

    zero = np.zeros(beats_per_bar)
    cues = {k: zero.copy() for k in BAR_PHASE_CUES}
    cues["low"] = per_phase(_z(at_beats(od.low)))
    if chroma is not None and chroma_fps and n > 2:
        bc = _beat_sync_chroma(chroma, chroma_fps, beats)
        norm = np.linalg.norm(bc, axis=0) + 1e-9
        bcn = bc / norm
        change = np.zeros(n)
        change[1:] = 1.0 - np.sum(bcn[:, 1:] * bcn[:, :-1], axis=0)
        change *= norm / (norm.max() + 1e-9)
        tonal = _tonality(bc, od)
        cues["beat_change"] = tonal * per_phase(_z(change))
        cues["bar_change"] = tonal * _bar_change_profile(bc, beats_per_bar)
    sn = at_beats(od.mid if snare_env is None else snare_env)
    # backbeat: snare on the beat after "one" (and after "three")
    nxt = np.append(sn[1:], sn[-1])
    cues["backbeat"] = per_phase(_z(nxt - sn))
    if mel is not None and chroma_fps and n > 2:
        bm = _beat_sync_chroma(mel, chroma_fps, beats)
        cues["timbre"] = _bar_change_profile(bm, beats_per_bar, BAR_TIMBRE_BARS)
        cues["timbre1"] = _bar_change_profile(bm, beats_per_bar, 1)
        e = _entry_beat(bm, od.sr)
        if e is not None:
            cues["entry"][e % beats_per_bar] = 1.0
    return cues


@lru_cache(maxsize=4)
def bar_phase_weights(path: str | None = None) -> dict[str, float]:
    """Weight of each bar-one cue: the learned conditional logit in
    ``engine/models/bar_phase.json`` (``bench/train_bar_phase.py``), or
    :data:`HAND_BAR_WEIGHTS` when the file is absent."""
    p = Path(path) if path else BAR_PHASE_MODEL_PATH
    if not p.exists():
        return dict(HAND_BAR_WEIGHTS)
    d = json.loads(p.read_text())
    w = {str(k): float(v) for k, v in zip(d["features"], d["weights"])}
    unknown = sorted(set(w) - set(BAR_PHASE_CUES))
    if unknown or len(d["features"]) != len(d["weights"]):
        raise ValueError(f"{p}: bad bar-phase model (unknown cues {unknown} or a length mismatch)")
    return w


def bar_phase_scores(beats: np.ndarray, od: OnsetData, beats_per_bar: int,
                     chroma: np.ndarray | None = None, chroma_fps: float | None = None,
                     snare_env: np.ndarray | None = None,
                     mel: np.ndarray | None = None) -> np.ndarray:
    """Score each of ``beats_per_bar`` phases as the position of beat one:
    the cues of :func:`bar_phase_cues` weighted by :func:`bar_phase_weights`
    (a conditional logit: the softmax of the scores is each phase's probability).

    Parameters
    ----------
    beats : ndarray
        Beat times (s).
    od : OnsetData
    beats_per_bar : int
    chroma : ndarray, optional
        (12, frames) chroma for harmonic-change cues.
    snare_env : ndarray, optional
        Mid-band (snare) onset envelope at ``od.fps`` for the backbeat cue.
    mel : ndarray, optional
        (bands, frames) log-mel spectrogram at ``chroma_fps`` (the frames of
        ``chroma``) for the timbre-change and entry cues (:func:`_entry_beat`).

    Returns
    -------
    ndarray, shape (beats_per_bar,)
        Higher is more likely; phase p means ``beats[p::beats_per_bar]`` are
        downbeats.
    """
    cues = bar_phase_cues(beats, od, beats_per_bar, chroma, chroma_fps, snare_env, mel)
    scores = np.zeros(beats_per_bar)
    for name, w in bar_phase_weights().items():
        scores += w * cues[name]
    return scores


def opening_beat(beats: np.ndarray, mel: np.ndarray | None, mel_fps: float | None,
                 sr: int) -> int | None:
    """Index of the beat the file opens on, or None.

    The file opens on a beat when its first sound (the first ``mel`` frame
    whose level is within :data:`OPENING_FLOOR_DB` of the track's loud level)
    comes within :data:`OPENING_MAX_S` of 0 s (the music starts with the file:
    no leading silence), a beat lies within :data:`OPENING_TOL_S` of it, the
    low register (:func:`_low_register`: kick, bass) reaches ENTRY_LEVEL
    times its median in the first half of that beat (a pickup is hats or a
    lone melody; the second half's frames already hear the next beat's kick),
    and that beat is not noise (:func:`_spectral_flatness` at most
    :data:`OPENING_NOISE_FLATNESS`: a noise bed under music that enters later).

    Parameters
    ----------
    beats : ndarray
        Beat times (s).
    mel : ndarray or None
        (bands, frames) log-mel, ``log1p(MEL_GAIN * power)`` (:func:`mel_power`
        inverts it), at ``mel_fps`` (:func:`engine.features.compute_track_features`).
    mel_fps : float or None
    sr : int
    """
    if mel is None or not mel_fps or mel.size == 0 or len(beats) < 2:
        return None
    power = mel_power(mel).sum(axis=0)
    level = 10.0 * np.log10(power + 1e-12)
    k = int(np.argmax(level >= np.percentile(level, 95) - OPENING_FLOOR_DB))
    t = k / float(mel_fps)
    if t > OPENING_MAX_S:
        return None
    i = int(np.argmin(np.abs(beats - t)))
    if abs(beats[i] - t) > OPENING_TOL_S:
        return None
    low = _low_register(mel, sr)
    if low is None:
        return None
    period = float(np.median(np.diff(beats)))
    a = int(round(beats[i] * mel_fps))
    e = max(a + 1, int(round((beats[i] + 0.5 * period) * mel_fps)))
    if low[a:e].size == 0 or low[a:e].max() < ENTRY_LEVEL * float(np.median(low)):
        return None
    if _spectral_flatness(mel[:, a:e]) > OPENING_NOISE_FLATNESS:
        return None
    return i


def _spectral_flatness(mel: np.ndarray) -> float:
    """Median over frames of the spectral flatness (geometric over arithmetic
    mean) of the mel band powers of ``mel`` (stored log-mel, (bands, frames)):
    ~1 for noise, near 0 for tones."""
    p = mel_power(mel) + 1e-12
    return float(np.median(np.exp(np.log(p).mean(axis=0)) / p.mean(axis=0)))


def opening_prior(beats: np.ndarray, beats_per_bar: int, mel: np.ndarray | None,
                  mel_fps: float | None, sr: int) -> np.ndarray | None:
    """Log prior of each bar phase from how the file opens (add it to
    :func:`bar_phase_scores`, a conditional logit, for the posterior), or None
    when the file does not open on a beat (:func:`opening_beat`): the opening
    beat's phase gets :data:`OPENING_PRIOR`, the others share the rest."""
    i = opening_beat(beats, mel, mel_fps, sr)
    if i is None or beats_per_bar < 2:
        return None
    prior = np.full(beats_per_bar, (1.0 - OPENING_PRIOR) / (beats_per_bar - 1))
    prior[i % beats_per_bar] = OPENING_PRIOR
    return np.log(prior)


#: Gain of the stored log-mel spectrogram: :func:`engine.features.compute_track_features`
#: keeps ``log1p(MEL_GAIN * power)`` per band and frame.
MEL_GAIN = 100.0


def mel_power(mel: np.ndarray) -> np.ndarray:
    """Band powers (float64) of a stored log-mel spectrogram (the inverse of
    ``log1p(MEL_GAIN * power)``)."""
    return np.expm1(np.asarray(mel, np.float64)) / MEL_GAIN


@lru_cache(maxsize=8)
def _mel_centres(n_bands: int, fmax: float) -> np.ndarray:
    """Centre frequencies (Hz) of ``n_bands`` mel bands up to ``fmax``, as
    :func:`engine.features.compute_track_features` lays them out (memoised:
    librosa takes ~20 ms to compute them)."""
    import librosa

    c = librosa.mel_frequencies(n_bands + 2, fmax=fmax)[1:-1]
    c.setflags(write=False)
    return c


def _low_register(mel: np.ndarray, sr: int) -> np.ndarray | None:
    """Mean log-mel level over the bands centred below ENTRY_MAX_HZ (kick,
    bass), one value per column of ``mel`` (frames or beats); None when there
    is no such band."""
    centres = _mel_centres(mel.shape[0], min(sr / 2.0, 11025.0))
    lowb = centres < ENTRY_MAX_HZ
    return mel[lowb].mean(axis=0) if lowb.any() else None


def _entry_index(level: np.ndarray | None) -> int | None:
    """First index where ``level`` reaches ENTRY_LEVEL times its median;
    None when it is silent throughout."""
    if level is None or level.size == 0:
        return None
    med = float(np.median(level))
    if med <= 1e-9:
        return None
    return int(np.argmax(level >= ENTRY_LEVEL * med))


def _rise_start(level: np.ndarray, k: int) -> int:
    """Index where the rise that reaches ``level[k]`` begins: step back from
    ``k`` while the level keeps falling and stays above ENTRY_FLOOR times its
    median (below that it is silence, or the decay of nothing). A fade-in or a
    slowly swelling bass crosses the entry threshold a good part of a beat
    after it starts (on a ramp the crossing time depends on the threshold,
    not on the music); the start of the rise is where the part entered."""
    floor = ENTRY_FLOOR * float(np.median(level))
    while k > 0 and floor <= level[k - 1] < level[k]:
        k -= 1
    return k


def _entry_beat(bm: np.ndarray, sr: int) -> int | None:
    """Index of the first beat where the low register enters (its level
    reaches ENTRY_LEVEL times the median over all beats; ``bm``:
    beat-synchronous log-mel, (bands, beats), from
    :func:`engine.features.compute_track_features`). None when the low
    register is silent throughout."""
    return _entry_index(_low_register(bm, sr))


def _tonality(bc: np.ndarray, od: OnsetData) -> float:
    """How far to trust harmonic cues, in [0, 1].

    Harmonic chroma of a drum track is weak next to its onset energy
    (harmonic chroma energy over onset energy: ~9 for a track with chords and
    bass, ~1 for drums alone; measured on generated tracks).
    """
    norm = np.linalg.norm(bc, axis=0)
    ratio = float(np.mean(norm) / (20.0 * np.mean(od.envelope) + 1e-9))
    return float(np.clip((ratio - 1.5) / 3.0, 0.0, 1.0))


def _bar_change(bc: np.ndarray, beats_per_bar: int, p: int, bars: int = 1) -> float:
    """Mean harmonic change across the bar lines of phase ``p``: cosine
    distance between the chroma of the ``bars`` bars before and the ``bars``
    bars after each line. Whole-bar windows make it robust to chords pushed an
    eighth early (anticipations), which fool a beat-to-beat comparison. Any
    beat-synchronous frames work (log-mel for timbre change)."""
    n = bc.shape[1]
    m = beats_per_bar * bars
    cs = np.cumsum(np.pad(bc, ((0, 0), (1, 0))), axis=1)
    k = np.arange(p, n, beats_per_bar)
    k = k[(k - m >= 0) & (k + m <= n)]
    if k.size == 0:
        return 0.0
    a = (cs[:, k] - cs[:, k - m]).T
    b = (cs[:, k + m] - cs[:, k]).T
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    return float(np.mean(1.0 - cos))


def _bar_change_profile(bc: np.ndarray, beats_per_bar: int, bars: int = 1) -> np.ndarray:
    """:func:`_bar_change` of every bar phase, standardised across the phases."""
    return _z(np.array([_bar_change(bc, beats_per_bar, p, bars) for p in range(beats_per_bar)]))


# --------------------------------------------------------------------------- main

def analyse_rhythm(y: np.ndarray, sr: int, config: AnalysisConfig = AnalysisConfig(), *,
                   onsets: OnsetData | None = None, chroma: np.ndarray | None = None,
                   chroma_fps: float | None = None, snare_env: np.ndarray | None = None,
                   mel: np.ndarray | None = None, path: str | None = None) -> RhythmGrid:
    """Tempo, beats and downbeats of a mono signal.

    Parameters
    ----------
    y : ndarray
        Mono signal at ``sr``.
    sr : int
    config : AnalysisConfig
        Uses ``min_bpm``, ``max_bpm``, ``beats_per_bar`` (0 detects the meter),
        ``bpm`` (fixes the tempo), ``downbeat_offset`` (shifts bar one),
        ``grid_shift_ms`` (moves the whole grid),
        ``hop_length``, ``n_fft``.
    onsets : OnsetData, optional
        Precomputed envelopes (see :func:`onset_data`).
    chroma, chroma_fps : optional
        Chroma frames and their rate, for the harmonic-change bar cue.
    snare_env : ndarray, optional
        Mid-band onset envelope at the onset frame rate, for the backbeat cue.
    mel : ndarray, optional
        Log-mel frames at ``chroma_fps`` (same frames as ``chroma``), for the
        entry cue of the bar phase.
    path : str, optional
        Only used in error messages.

    Returns
    -------
    RhythmGrid

    Raises
    ------
    AnalysisError
        No beats could be found or the audio is shorter than one bar.
    """
    import librosa

    from . import tempo as tempomod
    from .tempo_octave import resolve_octave

    where = f"{path}: " if path else ""
    od = onsets or onset_data(y, sr, n_fft=config.n_fft, hop_length=config.hop_length)
    duration = len(y) / sr
    if od.envelope.max() <= 1e-8:
        raise AnalysisError(f"{where}no rhythmic onsets found (is it a drone or silence?)")

    env = od.envelope
    fixed = config.bpm is not None
    if fixed:
        if not (np.isfinite(config.bpm) and 20.0 <= config.bpm <= 400.0):
            raise AnalysisError(f"{where}bpm must be between 20 and 400, got {config.bpm}")
        bpm = float(config.bpm)
        cands, tempo_conf = {round(bpm, 3): 1.0}, 1.0
    else:
        # the periodicity spectrum of the middle TEMPO_WINDOW seconds (a
        # 60-minute mix would otherwise cost a long FFT for nothing)
        m = int(TEMPO_WINDOW * od.fps)
        lo = 0 if len(env) <= m else (len(env) - m) // 2
        est = tempomod.estimate_tempo(env[lo:lo + m], od.low[lo:lo + m], od.mid[lo:lo + m],
                                      od.fps, config.min_bpm, config.max_bpm)
        if not np.isfinite(est.bpm) or est.bpm <= 0:
            raise AnalysisError(f"{where}no steady pulse found")
        bpm, cands, tempo_conf = est.bpm, dict(est.candidates), est.confidence
        # half or double? (a learned choice between metrical levels, which may
        # leave the DJ range a little: slow ballads, fast polkas)
        octave = resolve_octave(env[lo:lo + m], od.low[lo:lo + m], od.mid[lo:lo + m], od.fps, bpm,
                                chroma=chroma, chroma_fps=chroma_fps, min_bpm=config.min_bpm,
                                max_bpm=config.max_bpm, context=est.context)
        tempo_conf = min(tempo_conf, octave.confidence)
        if octave.factor != 1.0:
            bpm = octave.bpm
            cands[round(bpm, 2)] = round(max(cands.values(), default=0.0), 3)
    # constant-tempo grid: the period and phase whose comb best fits the
    # onsets of the whole track (continuous, refined around the estimate)
    comb_env = tempomod.novelty(env, od.fps) + tempomod.novelty(od.low, od.fps)
    if fixed:
        period = 60.0 / bpm
        phase, _ = tempomod.best_phase(comb_env, od.fps, period, bins=64)
    else:
        period, phase = tempomod.refine_period(comb_env, od.fps, 60.0 / bpm)
    grid = np.arange(phase, duration, period)
    beat_times, beat_frames = track_beats_at_period(env, od.fps, period,
                                                    tightness=AGREEMENT_TRACK_TIGHTNESS)
    if len(beat_times) < 2:
        raise AnalysisError(f"{where}too few beats found")
    # the grid is trusted when the tracked beats keep one position against it
    # (modulo a quarter beat: the tracker may sit on off-beats or 16ths);
    # when the tempo moves, their phase against any straight grid wanders
    agree = grid_agreement(beat_times, beat_frames, env, period, phase)
    constant = fixed or agree >= GRID_AGREEMENT_MIN
    if constant:
        bpm = 60.0 / period
        beats0 = grid
    else:
        # the tempo moves: track beats with a looser tempo constraint so the
        # tracker can follow it, and report the tempo of the middle of the track
        _, beat_frames = librosa.beat.beat_track(onset_envelope=env, sr=sr,
                                                 hop_length=od.hop_length, bpm=bpm, trim=False,
                                                 tightness=TRACK_TIGHTNESS_VARIABLE)
        tracked = librosa.frames_to_time(beat_frames, sr=sr, hop_length=od.hop_length)
        if len(tracked) >= 4:
            beat_times = tracked
        beats0 = beat_times
        bpm = middle_tempo(beat_times)

    # which of the beat or the off-beat is the beat, the meter, and bar one
    beats_per_bar = config.beats_per_bar
    meter_conf = 1.0
    if beats_per_bar == 0:
        ev = tempomod.meter_evidence(env, od.low, od.mid, od.fps, bpm) - METER_THRESHOLD
        beats_per_bar = 3 if ev > 0 else 4
        meter_conf = float(np.clip(abs(ev) / 1.0, 0.0, 1.0))
    beats = beats0
    if constant:
        shift = _offbeat_choice(beats0, period, od, chroma, chroma_fps, mel)
        beats = beats0 + shift
        beats = beats + _fold_refine(beats[0], period, od) - beats[0]
        first = beats[0] - np.floor(beats[0] / period) * period
        if first - period > -EARLY_FIRST_BEAT:        # a beat a hair before 0 s is the first beat
            first -= period
        beats = np.arange(first, duration - 0.5 * period, period)
        beats = np.maximum(beats[(beats > -EARLY_FIRST_BEAT) & (beats < duration)], 0.0)
    shift = float(config.grid_shift_ms) / 1000.0
    if shift:
        # the user's nudge of the whole grid (every beat sat early or late)
        beats = beats + shift
        beats = beats[(beats >= 0.0) & (beats < duration)]
    bar_len = beats_per_bar * 60.0 / bpm
    if duration < bar_len * 0.98 or len(beats) < beats_per_bar:
        raise AnalysisError(f"{where}too short for one bar ({duration:.2f} s; a {beats_per_bar}-beat "
                            f"bar at {bpm:.0f} BPM lasts {bar_len:.2f} s)")
    scores = bar_phase_scores(beats, od, beats_per_bar, chroma, chroma_fps, snare_env, mel)
    prior = opening_prior(beats, beats_per_bar, mel, chroma_fps, sr)
    if prior is not None:
        scores = scores + prior          # the file opens on a beat: most likely bar one
    phase = int(np.argmax(scores))
    srt = np.sort(scores)
    spread = float(np.ptp(scores)) + 1e-9
    bar_conf = float(np.clip((srt[-1] - srt[-2]) / spread, 0, 1)) if len(srt) > 1 else 1.0
    offset = int(config.downbeat_offset)
    phase = (phase + offset) % beats_per_bar
    return RhythmGrid(bpm=float(bpm), beats=beats, downbeats=beats[phase::beats_per_bar],
                      beats_per_bar=beats_per_bar, bar_phase=phase,
                      confidence=_beat_confidence(beats, od), bar_confidence=bar_conf,
                      constant_tempo=bool(constant), tempo_candidates=cands,
                      tempo_confidence=float(tempo_conf),
                      meter_confidence=meter_conf, downbeat_offset=offset, bpm_fixed=fixed,
                      grid_shift_ms=float(config.grid_shift_ms))


def _offbeat_choice(beats: np.ndarray, period: float, od: OnsetData,
                    chroma: np.ndarray | None, chroma_fps: float | None,
                    mel: np.ndarray | None = None) -> float:
    """0 or half a period: whether the comb's strongest pulse is the beat or
    the off-beat.

    Six cues, comparing the candidate beats with the other candidate: onset
    strength in the full, low (kicks, bass notes) and mid (snares, chords)
    bands as log-ratios; the backbeat (:func:`engine.tempo.alternation`: kick and
    snare alternate on beats, not on off-beats); harmonic change between
    consecutive beat intervals (chords change on beats; intervals cut across
    the off-beats mix two chords); and, with ``mel`` (log-mel frames at
    ``chroma_fps``), where the low register enters (the music starts on a beat).
    """
    half = period / 2.0

    def level(env, times):
        idx = np.round(times * od.fps).astype(int)
        idx = idx[(idx >= 1) & (idx < len(env) - 1)]
        if idx.size == 0:
            return 1e-9
        return float(np.mean(np.maximum(np.maximum(env[idx - 1], env[idx]), env[idx + 1]))) + 1e-9

    from .tempo import alternation, novelty

    on, off = beats, beats + half
    score = 0.5 * np.log(level(od.envelope, on) / level(od.envelope, off))
    nl, nm = novelty(od.low, od.fps), novelty(od.mid, od.fps)
    score += OFFBEAT_ALT_W * (alternation(nl, nm, od.fps, on) - alternation(nl, nm, od.fps, off))
    score += 0.5 * np.log(level(od.low, on) / level(od.low, off))
    score += 0.5 * np.log(level(od.mid, on) / level(od.mid, off))
    if chroma is not None and chroma_fps and len(beats) > 8:
        def change(times):
            bc = _beat_sync_chroma(chroma, chroma_fps, times)
            bc = bc / (np.linalg.norm(bc, axis=0) + 1e-9)
            return float(np.mean(1.0 - np.sum(bc[:, 1:] * bc[:, :-1], axis=0))) + 1e-9
        off_t = off[off < on[-1]]
        if len(off_t) > 8:
            # chroma of a drum track is noise: trust it as much as the track is tonal
            tonal = _tonality(_beat_sync_chroma(chroma, chroma_fps, on), od)
            score += OFFBEAT_CHANGE_W * tonal * np.log(change(on) / change(off_t))
    if mel is not None and chroma_fps:
        low = _low_register(mel, od.sr)
        k = _entry_index(low)
        if k is not None:
            k = _rise_start(low, k)
            score += OFFBEAT_ENTRY_W * np.cos(2.0 * np.pi * (k / chroma_fps - beats[0]) / period)
    return 0.0 if score >= 0 else half


def estimate_bpm(y: np.ndarray, sr: int, min_bpm: float = 70.0, max_bpm: float = 180.0) -> float:
    """Tempo only (e.g. for short loops), folded into [min_bpm, max_bpm)."""
    cfg = AnalysisConfig(min_bpm=min_bpm, max_bpm=max_bpm)
    try:
        return fold_tempo(analyse_rhythm(y, sr, cfg).bpm, min_bpm, max_bpm)
    except AnalysisError:
        import librosa

        od = onset_data(y, sr)
        t = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=od.envelope, sr=sr))[0])
        return fold_tempo(t, min_bpm, max_bpm)
