"""Musical key, Camelot and Open Key codes for tracks and loops.

DJs mix harmonically: two tracks whose keys sit next to each other on the
Camelot wheel (same code, one step round the wheel, or the relative
major/minor) blend without clashing. This module gives every track and loop
a key the way rekordbox, Serato or Mixed In Key show it, and tells whether two
codes mix.

How the key is found
--------------------
1. :func:`track_chroma` runs ONCE per track. The mono signal is resampled to
   5512.5 Hz (pitch information above 2 kHz is not needed), cut into Hann
   windows of 4096 samples (0.74 s, 1.35 Hz bins: bass semitones stay apart)
   centred every ``hop_length`` input samples. In each frame only *spectral
   peaks* count: local maxima between 50 Hz and 2 kHz that stand at least 6x
   above the local mean power (drum noise and reverb tails fall away). Each
   peak's frequency is refined by parabolic interpolation, corrected for the
   track's tuning (estimated from the peaks of the average spectrum, so a
   record at A=432 Hz or pitched +30 cents still lands in the right bins) and
   added to its pitch class with a cos^2 weight of its distance to the
   semitone centre. The 12 pitch-class energies are log-compressed,
   ``log1p(100 * E / ref)``, against the track's 95th-percentile frame energy,
   so loud sections cannot drown the rest and quiet notes still count.
   Each frame also records its *tonality*: the share of its 150 Hz-2 kHz
   energy that sits in those peaks (under 0.03 for drums, 0.3-1 for music;
   kick drums, whose sustained body is itself a low sine, are left out by
   starting at 150 Hz).
2. :func:`estimate_key` scores the 24 keys with a weighted sum of evidence
   (:func:`key_evidence`, :data:`EVIDENCE_WEIGHTS`), what a listener uses
   rather than a total-chroma profile match alone:

   * the Pearson correlation of the mean chroma with a key profile
     (Krumhansl-Schmuckler; default Albrecht & Shanahan 2013, others in
     :data:`PROFILES` for comparison);
   * the diatonic-set fit (:func:`scale_fit` of :func:`note_presence`):
     the share of sounding notes outside each key's scale, so absent notes
     count as much as present ones (I-V-vi-IV in C holds F and never F#:
     not G major, however loud G and D are);
   * where the music starts and lands: the tonic triad's share of the first
     second of music and of the first and last 4 s, and the tonic's share of
     the bass (:attr:`Chroma.bass`) under the opening chord. A loop cut on
     the bar line opens on its bar-one chord;
   * with the bar lines of the rhythm stage (``downbeats``; the pipeline
     passes them, ``engine key --bars`` finds them), where a listener hears
     resolution (:func:`bar_evidence`): the tonic triad's share of the chord
     on bar one of every bar and of every 4-bar phrase, V at a bar's end
     giving way to I on the next bar one (chords and bass), the leading
     tone's presence, and the scale fit split so that which mode of a
     shared scale is meant (C major / A minor / D dorian / G mixolydian) is
     decided by those cues rather than by a fixed modal penalty. These use
     :data:`GRID_EVIDENCE_WEIGHTS`.

   The weights were fitted as a conditional logit on real General-MIDI
   renders (bench/keybench/), so the winner's softmax share is a
   calibrated-ish probability; it feeds the confidence. Loops
   (:func:`segment_keys`) can lean on the whole track's evidence.
3. It answers "no clear key" instead of guessing when the material has too
   little tonal energy (drums, noise), when the averaged chroma is flat, or
   when no key profile fits it (best correlation below
   :data:`MIN_CORRELATION`).

Camelot numbers: C major = 8B, A minor = 8A, each step +1 is a fifth up
(G major = 9B), 12 wraps to 1. Open Key: C major = 1d, A minor = 1m.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from .music import PITCH_CLASSES

__all__ = [
    "Chroma", "KeyEstimate", "KeyCompat", "PROFILES", "DEFAULT_PROFILE",
    "track_chroma", "estimate_key", "segment_keys", "key_of_audio",
    "camelot_code", "open_key_code", "parse_camelot", "key_compatibility",
    "key_from_camelot", "key_scores", "track_key", "NO_CLEAR_KEY",
    "key_evidence", "scale_fit", "note_presence", "evidence_scores", "EVIDENCE_WEIGHTS",
    "GRID_EVIDENCE_WEIGHTS", "BarChroma", "bar_chroma", "bar_evidence", "track_bars",
]

#: The ``key`` string of an estimate that refuses to guess.
NO_CLEAR_KEY = "no clear key"

#: Analysis rate of the chroma's internal copy (Hz).
CHROMA_SR = 5512.5
#: Window length at :data:`CHROMA_SR` (4096 samples = 0.743 s).
CHROMA_N_FFT = 4096
#: Frequency band searched for tonal peaks (Hz).
CHROMA_FMIN, CHROMA_FMAX = 50.0, 2000.0
#: Tonality (share of energy in tonal peaks) is measured above this frequency
#: (Hz), where kick drums carry little energy.
TONALITY_FMIN = 150.0
#: A peak must exceed this multiple of the mean power around it ...
PEAK_THRESHOLD = 6.0
#: ... measured over this many FFT bins (25 bins = 34 Hz).
PEAK_NEIGHBOURHOOD = 25
#: Bass register for :attr:`Chroma.bass` (Hz), about B1 to F#3. Kick drums
#: (bodies at 45-58 Hz) stay below it; a bass line's lowest notes (E1-A#1)
#: still count through their second harmonic.
BASS_FMIN, BASS_FMAX = 60.0, 190.0
#: Frame hop used by :func:`key_of_audio` (seconds).
KEY_HOP_SECONDS = 2048 / 22050
#: Gain inside the log compression ``log1p(gain * E / ref)``.
LOG_GAIN = 100.0
#: Harmonic discount of :func:`track_chroma` (the key stage's own chroma):
#: before folding to pitch classes, each semitone's peak energy, from the
#: lowest up, is taken to explain ``HARMONIC_DISCOUNT ** (h - 1)`` of its
#: energy at the h-th partial (h = 2..4: octave, twelfth = a fifth up, double
#: octave), which is subtracted there (never below zero).
#: Without it the 3rd partials of a C major triad spell G-B-D and profile
#: terms lean to the dominant key. 0 turns it off (plain chroma).
#: Measured with refitted weights (bench/keybench/fit_key_weights.py --grid
#: --harmonic-discount 0.5, bench/bench_key.py --real-only): held-out GM test
#: 0.875 -> 0.906 exact, 0.906 -> 0.924 MIREX, fifth-up errors among 48 major
#: test tracks 3 -> 1 (the issue's limit is 1 in 20), the second real set
#: stays at 1.0; one realbench MMA track (mma_samba_164, G major) turns
#: relative (E minor), 1.0 -> 0.933 exact there.
HARMONIC_DISCOUNT = 0.5
#: With the discount on, peaks are searched down to this frequency (Hz) so
#: that low bass notes (E1-A#1, below :data:`BASS_FMIN`) explain their upper
#: partials; they still count in no chroma themselves.
HARMONIC_FMIN = 30.0
#: Semitone offsets of partials 2..4 above their fundamental (adding the 5th
#: and 6th partials, +28 and +31, gave 0.917 / 0.938 on the held-out test but
#: 2 fifth-up errors in 48 majors and the same realbench miss).
_PARTIAL_OFFSETS = (12, 19, 24)
#: Lowest MIDI note of the semitone spectrum (a multiple of 12: C0).
_SEMITONE_LO = 12

#: Below this share of tonal energy the material has no key (drums, noise).
#: Drum-only tracks measure under 0.003 (synthetic and General-MIDI kits);
#: drum-heavy real mixes (MMA hip-hop) can sit as low as 0.08.
MIN_TONAL_SHARE = 0.04
#: Below this best profile correlation nothing fits: no key.
MIN_CORRELATION = 0.55
#: Below this coefficient of variation the averaged chroma is flat: no key.
MIN_CHROMA_CONTRAST = 0.05

#: Key profiles (major, minor), tonic first, one weight per semitone above it.
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Albrecht & Shanahan (2013), Music Perception 31(1): corpus of 490 pieces.
    "albrecht": ((0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
                 (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052)),
    # Krumhansl & Kessler (1982) probe-tone ratings (the classic K-S profile).
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley (2007), Music and Probability: Kostka-Payne corpus frequencies.
    "temperley": ((0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
                  (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)),
    # Temperley (1999), Music Perception 17(1): hand-set revision of K-K.
    "temperley99": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                    (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
    # Aarden (2003) Essen folksong corpus.
    "aarden": ((17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062,
                0.145624, 8.15494, 0.232998, 4.95122),
               (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161,
                4.56621, 1.93186, 7.37619, 1.75623)),
}
#: Profile used when none is named (best measured: see bench/bench_key.py).
DEFAULT_PROFILE = "albrecht"

_MODES = ("major", "minor")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True, eq=False)
class Chroma:
    """Pitch-class energy of one track, frame by frame.

    Attributes
    ----------
    values : ndarray, shape (12, T), float32
        Log-compressed, tuning-corrected pitch-class energy (row 0 = C).
        Non-negative; comparable between frames of the same track.
    times : ndarray, shape (T,), float64
        Centre of each frame in seconds: ``k * hop_length / sr``. The frame
        rate is ``sr / hop_length`` (43.07 frames/s for 512 at 22050 Hz);
        each frame sees a 0.743 s window around its centre.
    tonality : ndarray, shape (T,), float32
        Share of the frame's 150 Hz-2 kHz energy found in tonal peaks, in [0, 1].
    energy : ndarray, shape (T,), float32
        The frame's 150 Hz-2 kHz energy relative to the track's loud frames
        (95th percentile = 1); weights ``tonality`` when frames are pooled.
    sr : int
        Rate of the signal the chroma was computed from.
    hop_length : int
        Hop in samples at ``sr``.
    tuning_cents : float
        Estimated deviation from A = 440 Hz, in cents (-50, 50].
    bass : ndarray, shape (12, T), float32, or None
        The same measure restricted to the bass register
        (:data:`BASS_FMIN`-:data:`BASS_FMAX`), log-compressed against its own
        loud frames: which pitch class the bass plays, frame by frame.
    """

    values: np.ndarray
    times: np.ndarray
    tonality: np.ndarray
    energy: np.ndarray
    sr: int
    hop_length: int
    tuning_cents: float
    bass: np.ndarray | None = None

    @property
    def frame_rate(self) -> float:
        """Frames per second (``sr / hop_length``)."""
        return self.sr / float(self.hop_length)

    @property
    def n_frames(self) -> int:
        return int(self.times.size)

    def frame_range(self, start_sec: float, end_sec: float) -> tuple[int, int]:
        """Indices ``(i0, i1)`` of the frames whose centres fall in [start, end).

        At least one frame is returned when the interval overlaps the track.
        """
        i0 = int(np.searchsorted(self.times, start_sec, side="left"))
        i1 = int(np.searchsorted(self.times, end_sec, side="left"))
        i0 = min(max(i0, 0), self.n_frames)
        i1 = min(max(i1, i0), self.n_frames)
        if i1 == i0 and i0 < self.n_frames and end_sec > start_sec:
            i1 = i0 + 1
        return i0, i1

    def tonal_share(self, i0: int = 0, i1: int | None = None) -> float:
        """Energy-weighted tonality of frames ``i0:i1`` (0 when they are silent)."""
        e = self.energy[i0:i1].astype(np.float64)
        tot = float(e.sum())
        if tot <= 0.0:
            return 0.0
        return float(np.dot(self.tonality[i0:i1], e) / tot)


@dataclass(frozen=True)
class KeyEstimate:
    """The key of a track or loop.

    Attributes
    ----------
    tonic : int or None
        Pitch class of the tonic, 0 = C ... 11 = B; None when there is no clear key.
    mode : {"major", "minor"} or None
    key : str
        "A minor", "F# major" (sharps, as :data:`engine.synth.PITCH_CLASSES`)
        or ``"no clear key"``.
    camelot : str or None
        Camelot code, "8A" for A minor, "8B" for C major.
    open_key : str or None
        Open Key code, "1m" for A minor, "1d" for C major.
    confidence : float
        In [0, 1]: 0 for no clear key, near 1 for a strong, unambiguous fit
        with plenty of tonal energy.
    correlation : float
        Pearson correlation of the chroma with the winning key's profile
        (for "no clear key": the best correlation of any key; nan when
        nothing could be measured).
    margin : float
        Lead of the winning key's evidence score over the runner-up's, in
        log-odds units of the evidence model (nan when not measured).
    tonal_share : float or None
        Share of tonal energy in the material, when known.
    runner_up : str or None
        Second-best key name, useful when confidence is low.
    """

    tonic: int | None
    mode: str | None
    key: str
    camelot: str | None
    open_key: str | None
    confidence: float
    correlation: float = float("nan")
    margin: float = float("nan")
    tonal_share: float | None = None
    runner_up: str | None = None

    @property
    def is_clear(self) -> bool:
        """True when a key was found."""
        return self.tonic is not None

    def as_dict(self) -> dict:
        """Plain dict (for CSV rows / JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class KeyCompat:
    """Whether two Camelot codes mix, and why.

    Attributes
    ----------
    compatible : bool
    relation : str
        "same key", "+1 (dominant)", "-1 (subdominant)",
        "relative major/minor", "clash", or "unknown" when a key is missing.
    """

    compatible: bool
    relation: str


# --------------------------------------------------------------------------- codes

def _check_key(tonic, mode) -> tuple[int, str]:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")
    return int(tonic) % 12, mode


def camelot_code(tonic: int | None, mode: str | None) -> str | None:
    """Camelot code of a key: (9, "minor") -> "8A", (0, "major") -> "8B".

    Returns None when ``tonic`` or ``mode`` is None (no clear key).
    """
    if tonic is None or mode is None:
        return None
    tonic, mode = _check_key(tonic, mode)
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12   # relative major
    number = (major_tonic * 7 + 7) % 12 + 1                      # C -> 8, G -> 9, ...
    return f"{number}{'B' if mode == 'major' else 'A'}"


def open_key_code(tonic: int | None, mode: str | None) -> str | None:
    """Open Key code of a key: (0, "major") -> "1d", (9, "minor") -> "1m".

    Returns None when ``tonic`` or ``mode`` is None.
    """
    if tonic is None or mode is None:
        return None
    tonic, mode = _check_key(tonic, mode)
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12
    number = (major_tonic * 7) % 12 + 1                          # C -> 1, G -> 2, ...
    return f"{number}{'d' if mode == 'major' else 'm'}"


_CAMELOT_RE = re.compile(r"^\s*0*(\d{1,2})\s*([ABab])\s*$")


def parse_camelot(code: str) -> tuple[int, str]:
    """``"8A"`` -> ``(8, "A")``; accepts "08a", " 12B ".

    Raises
    ------
    ValueError
        If ``code`` is not a Camelot code 1A-12B.
    """
    m = _CAMELOT_RE.match(str(code))
    if not m or not 1 <= int(m.group(1)) <= 12:
        raise ValueError(f"not a Camelot code (1A-12B): {code!r}")
    return int(m.group(1)), m.group(2).upper()


def key_from_camelot(code: str) -> tuple[int, str]:
    """Inverse of :func:`camelot_code`: ``"8A"`` -> ``(9, "minor")``."""
    number, letter = parse_camelot(code)
    major_tonic = ((number - 8) * 7) % 12          # 7 is its own inverse mod 12
    if letter == "B":
        return major_tonic, "major"
    return (major_tonic - 3) % 12, "minor"


def _missing(code) -> bool:
    if code is None:
        return True
    if isinstance(code, float) and math.isnan(code):   # pandas missing value
        return True
    return isinstance(code, str) and code.strip() == ""


def key_compatibility(camelot_a, camelot_b) -> KeyCompat:
    """How track B's key mixes after/with track A's (Camelot wheel rules).

    Parameters
    ----------
    camelot_a, camelot_b : str or None
        Camelot codes ("8A"); None, "" or NaN mean "no clear key".

    Returns
    -------
    KeyCompat
        ``relation`` is B seen from A: "same key"; "+1 (dominant)" when B is
        one step clockwise (8A -> 9A, 12B -> 1B); "-1 (subdominant)" one step
        anticlockwise; "relative major/minor" for the same number with the
        other letter; otherwise "clash" (not compatible). "unknown" (not
        compatible) when either key is missing.

    Raises
    ------
    ValueError
        If a code is present but malformed.
    """
    if _missing(camelot_a) or _missing(camelot_b):
        return KeyCompat(False, "unknown")
    na, la = parse_camelot(camelot_a)
    nb, lb = parse_camelot(camelot_b)
    if la == lb:
        step = (nb - na) % 12
        if step == 0:
            return KeyCompat(True, "same key")
        if step == 1:
            return KeyCompat(True, "+1 (dominant)")
        if step == 11:
            return KeyCompat(True, "-1 (subdominant)")
        return KeyCompat(False, "clash")
    if na == nb:
        return KeyCompat(True, "relative major/minor")
    return KeyCompat(False, "clash")


# --------------------------------------------------------------------------- chroma

def _frames_view(x: np.ndarray, n_fft: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, n_fft)


def _estimate_tuning(view: np.ndarray, starts: np.ndarray, window: np.ndarray, sra: float,
                     n_fft: int, n_probe: int = 240, fmin: float = 100.0,
                     fmax: float = 1500.0) -> float:
    """Tuning offset in cents from the peaks of the average magnitude spectrum.

    Uses up to ``n_probe`` frames spread over the track; each peak's
    frequency is refined by parabolic interpolation of the log magnitude and
    its deviation from the nearest equal-tempered semitone (A = 440 Hz) is
    averaged on the circle, weighted by magnitude. Returns 0 when there are
    no peaks.
    """
    import scipy.fft as sfft

    if starts.size == 0:
        return 0.0
    pick = starts[np.unique(np.linspace(0, starts.size - 1, min(starts.size, n_probe)).astype(int))]
    mag = np.zeros(n_fft // 2 + 1)
    for s in range(0, pick.size, 64):
        fr = view[pick[s:s + 64]] * window
        mag += np.abs(sfft.rfft(fr, axis=1)).sum(axis=0, dtype=np.float64)
    k0 = max(2, int(fmin * n_fft / sra))
    k1 = min(mag.size - 2, int(fmax * n_fft / sra))
    if k1 <= k0 or mag.max() <= 0:
        return 0.0
    seg = mag[k0 - 1:k1 + 2]
    core = seg[1:-1]
    is_peak = (core > seg[:-2]) & (core >= seg[2:]) & (core > 0.05 * core.max())
    kk = np.nonzero(is_peak)[0] + k0
    if kk.size == 0:
        return 0.0
    la, lb, lc = (np.log(mag[kk + o] + 1e-12) for o in (-1, 0, 1))
    den = la - 2 * lb + lc
    d = np.where(den < -1e-12, 0.5 * (la - lc) / np.where(den < -1e-12, den, -1.0), 0.0)
    f = (kk + np.clip(d, -0.5, 0.5)) * sra / n_fft
    dev = 12 * np.log2(f / 440.0)
    dev -= np.round(dev)
    z = np.sum(mag[kk] * np.exp(2j * np.pi * dev))
    if abs(z) <= 0:
        return 0.0
    cents = float(np.angle(z) / (2 * np.pi) * 100.0)
    return 50.0 if cents <= -50.0 else cents


def _discount_harmonics(S: np.ndarray, discount: float) -> np.ndarray:
    """Subtract each semitone's expected upper partials, lowest note first.

    ``S`` is (frames, semitones) energy; partial h of semitone m (at
    ``m + _PARTIAL_OFFSETS[h - 2]``) loses ``discount ** (h - 1) * S[:, m]``
    (clipped at zero), with ``S[:, m]`` already cleared of its own lower
    fundamentals. A greedy, per-frame version of a harmonic-template
    decomposition (NNLS chroma, Mauch & Dixon 2010).
    """
    if discount <= 0:
        return S
    S = S.copy()
    n = S.shape[1]
    amp = [discount ** (h - 1) for h in range(2, 2 + len(_PARTIAL_OFFSETS))]
    for m in range(n - _PARTIAL_OFFSETS[0]):
        col = S[:, m]
        if not col.any():
            continue
        for off, a in zip(_PARTIAL_OFFSETS, amp):
            if m + off < n:
                np.maximum(S[:, m + off] - a * col, 0.0, out=S[:, m + off])
    return S


def track_chroma(y, sr: int, hop_length: int = 512, *, progress=None,
                 harmonic_discount: float | None = None) -> Chroma:
    """Tuning-corrected, log-compressed chroma of a whole track (compute once).

    Parameters
    ----------
    y : array_like, shape (n,)
        Mono signal (float). Typically :func:`engine.audio.load_mono` output
        at 22050 Hz.
    sr : int
        Its sample rate.
    hop_length : int
        Frame hop in samples at ``sr``; frames are centred at
        ``k * hop_length / sr`` seconds, ``k = 0 .. len(y) // hop_length``.
    progress : callable, optional
        ``progress(done, total, message)`` after each block of frames.
    harmonic_discount : float, optional
        Upper-partial discount (:data:`HARMONIC_DISCOUNT` when None; 0: plain
        peak chroma). The bass chroma, tonality and energy are not affected.

    Returns
    -------
    Chroma
        Slice it by time (:meth:`Chroma.frame_range`, :func:`segment_keys`)
        for loops; pass ``values`` to :func:`estimate_key` for the track.

    Notes
    -----
    About 0.3 s for a 4-minute 22050 Hz track at hop 512 on one core
    (resampling 20 ms, FFTs and peak picking the rest); the cost is
    proportional to the number of frames, so a larger hop is cheaper.
    """
    import scipy.fft as sfft
    import soxr

    discount = HARMONIC_DISCOUNT if harmonic_discount is None else float(harmonic_discount)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"track_chroma wants a mono signal, got shape {y.shape}")
    if sr <= 0 or hop_length <= 0:
        raise ValueError("sr and hop_length must be positive")
    n_frames = 1 + y.size // hop_length
    times = np.arange(n_frames) * (hop_length / float(sr))

    sra = float(min(CHROMA_SR, sr))
    n_fft = CHROMA_N_FFT if sra == CHROMA_SR else int(2 ** round(math.log2(CHROMA_N_FFT * sra / CHROMA_SR)))
    fmax = min(CHROMA_FMAX, 0.45 * sra)
    ya = soxr.resample(y, sr, sra, quality="HQ") if sra != sr else y
    ya = np.ascontiguousarray(ya, dtype=np.float32)
    pad = n_fft // 2
    ya = np.pad(ya, (pad, pad + n_fft))
    view = _frames_view(ya, n_fft)
    starts = np.minimum(np.round(np.arange(n_frames) * hop_length * sra / sr).astype(np.int64),
                        view.shape[0] - 1)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)

    tuning = _estimate_tuning(view, starts, window, sra, n_fft)
    k_low = max(2, int(math.floor(BASS_FMIN * n_fft / sra)))       # lowest bin counted
    k0 = max(2, int(math.floor(HARMONIC_FMIN * n_fft / sra))) if discount > 0 else k_low
    k_main = int(math.floor(CHROMA_FMIN * n_fft / sra))             # chroma proper from here
    k_bass = int(math.ceil(BASS_FMAX * n_fft / sra))                # bass chroma below this
    k1 = int(math.ceil(fmax * n_fft / sra))
    pitch_offset = 69.0 - tuning / 100.0
    kt = min(max(k0, int(math.ceil(TONALITY_FMIN * n_fft / sra))), k1)

    chroma = np.zeros((n_frames, 12), np.float64)
    bass = np.zeros((n_frames, 12), np.float64)
    tonal = np.zeros(n_frames, np.float64)
    total = np.zeros(n_frames, np.float64)
    n_semi = 12 * 9                                                 # C0 .. B8
    block = 512
    for b0 in range(0, n_frames, block):
        idx = starts[b0:b0 + block]
        nb = idx.size
        X = sfft.rfft(view[idx] * window, axis=1)[:, k0 - 1:k1 + 2]   # float32 -> complex64
        P = (X.real ** 2 + X.imag ** 2).astype(np.float32)
        core = P[:, 1:-1]
        total[b0:b0 + nb] = core[:, kt - k0:].sum(axis=1, dtype=np.float64)
        local = _uniform_filter_rows(P, PEAK_NEIGHBOURHOOD)[:, 1:-1]
        mask = (core > P[:, :-2]) & (core >= P[:, 2:]) & (core > PEAK_THRESHOLD * local)
        ti, ki = np.nonzero(mask)
        if ti.size:
            kk = ki + 1
            a, b, c = P[ti, kk - 1], P[ti, kk], P[ti, kk + 1]
            la, lb, lc = np.log(a + 1e-30), np.log(b + 1e-30), np.log(c + 1e-30)
            den = la - 2 * lb + lc
            d = np.where(den < -1e-9, 0.5 * (la - lc) / np.where(den < -1e-9, den, -1.0), 0.0)
            freq = (kk + (k0 - 1) + np.clip(d, -0.5, 0.5)) * (sra / n_fft)
            pitch = 12.0 * np.log2(freq / 440.0) + pitch_offset
            nearest = np.round(pitch)
            w = np.cos(np.pi * (pitch - nearest)) ** 2
            e = (a + b + c).astype(np.float64)
            pc = nearest.astype(np.int64) % 12
            kabs = kk + (k0 - 1)
            we = w * e
            if discount > 0:                  # scale each peak by its semitone's remainder
                si = np.clip(nearest.astype(np.int64) - _SEMITONE_LO, 0, n_semi - 1)
                flat = ti * n_semi + si
                S = np.bincount(flat, weights=we, minlength=nb * n_semi).reshape(nb, n_semi)
                kept = _discount_harmonics(S, discount)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.where(S > 0, kept / np.where(S > 0, S, 1.0), 0.0).ravel()
                we = we * ratio[flat]
            main = (kabs >= k_main) & (kabs >= k_low)
            chroma[b0:b0 + nb] = np.bincount(ti[main] * 12 + pc[main], weights=we[main],
                                             minlength=nb * 12).reshape(nb, 12)
            low = (kabs < k_bass) & (kabs >= k_low)
            bass[b0:b0 + nb] = np.bincount(ti[low] * 12 + pc[low], weights=we[low],
                                           minlength=nb * 12).reshape(nb, 12)
            upper = ki >= kt - k0
            tonal[b0:b0 + nb] = np.bincount(ti[upper], weights=e[upper], minlength=nb)
        if progress is not None:
            progress(min(b0 + nb, n_frames), n_frames, "chroma")

    frame_sum = chroma.sum(axis=1)
    ref = float(np.percentile(frame_sum, 95)) / 12.0 if n_frames else 0.0
    if ref <= 0.0:
        values = np.zeros((12, n_frames), np.float32)
    else:
        values = np.log1p(LOG_GAIN * chroma.T / ref).astype(np.float32)
    bref = float(np.percentile(bass.sum(axis=1), 95)) / 12.0 if n_frames else 0.0
    bass_values = (np.log1p(LOG_GAIN * bass.T / bref).astype(np.float32) if bref > 0
                   else np.zeros((12, n_frames), np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        tonality = np.where(total > 0, np.minimum(tonal / np.where(total > 0, total, 1.0), 1.0), 0.0)
    eref = float(np.percentile(total, 95)) if n_frames else 0.0
    energy = total / eref if eref > 0 else np.zeros_like(total)
    return Chroma(values=values, times=times, tonality=tonality.astype(np.float32),
                  energy=energy.astype(np.float32), sr=int(sr), hop_length=int(hop_length),
                  tuning_cents=float(tuning), bass=bass_values)


def _uniform_filter_rows(P: np.ndarray, width: int) -> np.ndarray:
    """Mean over ``width`` neighbouring columns (edges: nearest), row by row."""
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(P, width, axis=1, mode="nearest")


# --------------------------------------------------------------------------- key

def _profile_matrix(profile: str) -> np.ndarray:
    """(24, 12) centred, unit-norm key templates: rows 0-11 major C..B, 12-23 minor."""
    try:
        major, minor = PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown key profile {profile!r}; choose from {sorted(PROFILES)}") from None
    rows = []
    for prof in (major, minor):
        p = np.asarray(prof, np.float64)
        for t in range(12):
            q = np.roll(p, t)
            q = q - q.mean()
            rows.append(q / np.linalg.norm(q))
    return np.array(rows)


_TEMPLATES: dict[str, np.ndarray] = {}


def _templates(profile: str) -> np.ndarray:
    if profile not in _TEMPLATES:
        _TEMPLATES[profile] = _profile_matrix(profile)
    return _TEMPLATES[profile]


def key_scores(chroma_vector, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """Pearson correlation of a 12-bin chroma with all 24 keys.

    Returns
    -------
    ndarray, shape (24,)
        Index ``t`` (0-11) is ``t`` major, ``12 + t`` is ``t`` minor; all
        zeros for a flat vector.
    """
    v = np.asarray(chroma_vector, np.float64).reshape(12)
    v = v - v.mean()
    n = np.linalg.norm(v)
    if n <= 0 or not np.isfinite(n):
        return np.zeros(24)
    return _templates(profile) @ (v / n)


def _no_key(correlation=float("nan"), margin=float("nan"), tonal_share=None) -> KeyEstimate:
    return KeyEstimate(tonic=None, mode=None, key=NO_CLEAR_KEY, camelot=None, open_key=None,
                       confidence=0.0, correlation=float(correlation), margin=float(margin),
                       tonal_share=tonal_share)


def _pitch_class_spread(v: np.ndarray) -> float:
    """Effective number of active pitch classes (exp of the entropy), 1-12.

    A single triad gives about 3-4.5, a diatonic progression 6-9: few
    pitch classes make the key ambiguous however well a profile fits.
    """
    span = float(v.max() - v.min())
    if span <= 0:
        return 12.0
    p = (v - v.min()) / span
    p = p / p.sum()
    nz = p[p > 0]
    return float(np.exp(-(nz * np.log(nz)).sum()))


def _confidence(probability: float, correlation: float, tonal_share: float | None,
                spread: float) -> float:
    """Map the evidence model's probability, fit, pitch-class spread and tonal energy to [0, 1].

    ``probability`` is the softmax share of the winning key under the
    evidence model (:func:`key_evidence`; its weights were fitted as a
    conditional logit, so it is roughly calibrated on whole tracks).
    ``fit`` rises from 0 at :data:`MIN_CORRELATION` to 1 at a best profile
    correlation of 0.75; ``cover`` from 0 at 3.5 active pitch classes (one
    triad: any of several keys) to 1 at 6.5; ``tonal`` from 0 at
    :data:`MIN_TONAL_SHARE` to 1 at a tonal share of 0.3. The exact-key
    rate per confidence bin is printed by ``bench/bench_key.py``.
    """
    fit = float(np.clip((correlation - MIN_CORRELATION) / (0.75 - MIN_CORRELATION), 0.0, 1.0))
    cover = float(np.clip((spread - 3.5) / 3.0, 0.0, 1.0))
    tonal = 1.0 if tonal_share is None else float(
        np.clip((tonal_share - MIN_TONAL_SHARE) / (0.30 - MIN_TONAL_SHARE), 0.0, 1.0))
    return float(np.clip(probability * (0.5 + 0.5 * fit) * cover * tonal, 0.0, 1.0))


# --------------------------------------------------------------------------- evidence

#: Pitch-class sets, tonic first (1 = in the scale).
_IONIAN = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], np.float64)
_MIXOLYDIAN = np.roll(_IONIAN, -7)
_DORIAN = np.roll(_IONIAN, -2)
#: Minor: natural minor plus the raised 7th (harmonic/melodic minor's
#: leading tone), so a leading tone never counts against a minor key.
_MINOR = np.maximum(np.roll(_IONIAN, -9), np.eye(12)[11])
_MAJOR_TRIAD = np.eye(12)[[0, 4, 7]].sum(axis=0)
_MINOR_TRIAD = np.eye(12)[[0, 3, 7]].sum(axis=0)


def _rotations(mask: np.ndarray) -> np.ndarray:
    """(12, 12): row t = ``mask`` moved to tonic t."""
    return np.array([np.roll(mask, t) for t in range(12)])


_SETS = {name: _rotations(m) for name, m in (("ionian", _IONIAN), ("mixolydian", _MIXOLYDIAN),
                                               ("dorian", _DORIAN), ("minor", _MINOR))}
_TRIADS = np.vstack([_rotations(_MAJOR_TRIAD), _rotations(_MINOR_TRIAD)])       # (24, 12)

#: A modal reading (mixolydian for a major key, dorian for a minor key) must
#: fit this much better (in share of energy outside the scale) than the
#: plain major / minor reading before it counts.
MODAL_PENALTY = 0.05
#: Seconds of tonal material heard as "the opening chord" and "the opening"
#: / "the ending" of a track or loop.
OPENING_CHORD_SECONDS = 1.0
EDGE_SECONDS = 4.0
#: Log-energy range (natural-log units of the chroma, about 10 dB) below a
#: frame's loudest pitch class within which a pitch class counts as a note
#: (:func:`note_presence`).
PRESENCE_RANGE = 1.2
#: Frames whose tonality x energy is below this are skipped when finding
#: where the music starts and ends (drum intros, silence, reverb tails).
MIN_FRAME_ACTIVITY = 0.1

#: :func:`segment_keys`: the track's evidence scores weigh
#: ``TRACK_SCORE_GAIN * track_weight`` in each span's (on the GM key bench,
#: 2-bar loops at track_weight 0.5: 0.68 exact without the track's scores,
#: 0.87 with them).
TRACK_SCORE_GAIN = 2.0
#: With a track prior, a span's own evidence is scaled by its pitch-class
#: cover (0 at one triad, 1 at a full scale), but never below this.
SPAN_MIN_WEIGHT = 0.25

#: Weights of the evidence terms (log-odds per unit), fitted as a
#: conditional logit (softmax over the 24 keys) on the dev split of the
#: General-MIDI key bench (bench/keybench/) plus synthetic tracks (the 24-key
#: set and half of the trap progressions of tests/test_key.py);
#: held-out progressions and instruments are reported separately by
#: bench/bench_key.py. Each dev track also entered three times started one,
#: two and three bars late (weight 0.15 in all), so that a track that does not
#: open on its tonic (an intro, a cut mid-phrase) is not read from its first
#: chord alone: started one bar late, the dev tracks drop from 0.93 to 0.59
#: exact with these weights, against 0.51 when the opening is trusted fully.
EVIDENCE_WEIGHTS = {
    "profile": 5.83,         # Pearson correlation with the key profile (whole chroma)
    "scale": 34.27,          # minus the share of notes outside the key's scale
    "opening_chord": 5.32,   # tonic triad's share of the first second of music
    "opening_bass": 1.06,    # tonic's share of the bass in the first second
    "opening": 0.60,         # tonic triad's share of the first 4 s
    "ending": 4.40,          # tonic triad's share of the last 4 s
}

#: Weights when the bar grid is known (:func:`track_key` with ``downbeats``;
#: the pipeline passes the rhythm stage's bar lines). Fitted like
#: :data:`EVIDENCE_WEIGHTS` (same dev split, started-late copies at total
#: weight 0.15) with the bar lines the rhythm stage detects on each render
#: (right tempo and bar phase on about 70% of them), weights constrained
#: to be >= 0 (a cue can only speak for a key). Terms fitted at 0 are
#: left out: the opening's 4 s (bar one and phrase starts took its place),
#: the bass on every downbeat, and V->I at phrase boundaries alone.
GRID_EVIDENCE_WEIGHTS = {
    "profile": 7.67,         # Pearson correlation with the key profile (whole chroma)
    "scale_plain": 1.79,     # minus the share of notes outside the major / minor scale
    "scale_modal": 52.60,    # ... outside the better of it and mixolydian / dorian
    "leading": 1.74,         # presence of the leading tone (minor: or the flat 7th)
    "opening_chord": 4.24,   # tonic triad's share of the first second of music
    "opening_bass": 1.06,    # tonic's share of the bass in the first second
    "ending": 4.38,          # tonic triad's share of the last 4 s
    "bar_one": 0.06,         # tonic triad's share of the chord on bar one, all bars
    "phrase_one": 1.40,      # ... on the first bar of each 4-bar phrase
    "cadence": 3.00,         # V at a bar's end giving way to I on the next bar one
}


def _shares(v) -> np.ndarray:
    """Non-negative shares summing to 1 (the vector's minimum is the floor)."""
    v = np.asarray(v, np.float64).reshape(12)
    v = v - v.min()
    tot = float(v.sum())
    return v / tot if tot > 0 else np.full(12, 1.0 / 12)


def scale_fit(chroma_vector) -> np.ndarray:
    """Diatonic-set fit of all 24 keys: minus the share of energy outside each key's scale.

    Major keys use the major scale (or, less :data:`MODAL_PENALTY`, the
    mixolydian scale on the same tonic); minor keys the natural minor plus
    its leading tone (or, less the penalty, dorian). Absent notes count as
    much as present ones: C major material holds F and no F#, so G major
    (which needs F#, not F) fits worse however much G and D sound.

    Returns
    -------
    ndarray, shape (24,), values in [-1, 0]; index as :func:`key_scores`.
    """
    p = _shares(chroma_vector)
    out = {name: (1.0 - m) @ p for name, m in _SETS.items()}
    major = np.maximum(-out["ionian"], -out["mixolydian"] - MODAL_PENALTY)
    minor = np.maximum(-out["minor"], -out["dorian"] - MODAL_PENALTY)
    return np.concatenate([major, minor])


def _scale_split(notes) -> dict[str, np.ndarray]:
    """"scale_plain" and "scale_modal" fits of the 24 keys (see :func:`key_evidence`)."""
    p = _shares(notes)
    out = {name: -((1.0 - m) @ p) for name, m in _SETS.items()}
    return {"scale_plain": np.concatenate([out["ionian"], out["minor"]]),
            "scale_modal": np.concatenate([np.maximum(out["ionian"], out["mixolydian"]),
                                           np.maximum(out["minor"], out["dorian"])])}


def note_presence(values: np.ndarray, activity: np.ndarray | None = None) -> np.ndarray:
    """(12,) share of (active) frames in which each pitch class sounds as a note.

    A pitch class is present in a frame when its log energy is within
    :data:`PRESENCE_RANGE` of the frame's loudest one; frames are weighted
    by ``activity`` (tonality x energy). Unlike the mean chroma this ignores
    quiet overtones (an organ's fifth partial of D is an F#) and counts a
    chord heard in one bar out of four as fully as its loudness allows.
    """
    V = np.asarray(values, np.float64)
    top = V.max(axis=0, keepdims=True)
    pres = ((V >= top - PRESENCE_RANGE) & (top > 0)).astype(np.float64)
    w = np.ones(V.shape[1]) if activity is None else np.asarray(activity, np.float64).reshape(-1)
    tot = float(w.sum())
    if tot <= 0:
        return pres.mean(axis=1)
    return pres @ w / tot


def _triad_fit(v) -> np.ndarray:
    """(24,) share of the tonic triad of each key in ``v`` (chance = 0.25)."""
    return _TRIADS @ _shares(v) - 0.25


def _tonic_fit(v) -> np.ndarray:
    """(24,) share of each key's tonic pitch class in ``v`` (chance = 1/12)."""
    p = _shares(v) - 1.0 / 12
    return np.concatenate([p, p])


def _edges(values: np.ndarray, bass: np.ndarray | None, activity: np.ndarray | None,
           frame_rate: float) -> dict:
    """Opening / ending chroma of frames (12, T): the listener's "where it starts and lands"."""
    T = values.shape[1]
    idx = np.nonzero(activity > MIN_FRAME_ACTIVITY)[0] if activity is not None else np.arange(T)
    if idx.size == 0:
        idx = np.arange(T)
    i0, i1 = int(idx[0]), int(idx[-1]) + 1
    n1 = max(1, int(round(OPENING_CHORD_SECONDS * frame_rate)))
    n4 = max(1, int(round(EDGE_SECONDS * frame_rate)))
    out = {"opening_chord": values[:, i0:i0 + n1].mean(axis=1),
           "opening": values[:, i0:i0 + n4].mean(axis=1),
           "ending": values[:, max(i0, i1 - n4):i1].mean(axis=1)}
    if bass is not None:
        out["opening_bass"] = bass[:, i0:i0 + n1].mean(axis=1)
    return out


# --------------------------------------------------------------------------- bar grid

#: Share of a bar, from its downbeat, whose frames are "the chord on bar one"
#: (frame centres in [HEAD_START, HEAD_END) x bar length: the 0.74 s window
#: of a frame centred earlier would still hear the previous bar).
HEAD_START, HEAD_END = 0.12, 0.5
#: Half the chroma window (seconds): frames are taken this far inside a bar's
#: edges when the bar is long enough.
WINDOW_HALF = 0.5 * CHROMA_N_FFT / CHROMA_SR
#: ... and "the chord that ends the bar" (the one that resolves, or not, into
#: the next bar's head).
TAIL_START, TAIL_END = 0.62, 1.0
#: Bars per phrase: phrase starts are every PHRASE_BARS bars counted from the
#: first bar that holds music.
PHRASE_BARS = 4

#: (24, 12): the major dominant triad (V) of each key, and for minor keys
#: also the natural-minor v.
_DOMINANT = np.vstack([_rotations(np.roll(_MAJOR_TRIAD, 7))] * 2)
_DOMINANT_MINOR = np.vstack([_rotations(np.roll(_MAJOR_TRIAD, 7)),
                             _rotations(np.roll(_MINOR_TRIAD, 7))])


@dataclass(frozen=True)
class BarChroma:
    """Chroma pooled on the bar grid: what sounds on bar one and at each bar's end.

    Attributes
    ----------
    head, tail : ndarray, shape (12, B)
        Mean chroma of the first half (after the downbeat) and of the last
        third of each bar.
    bass_head, bass_tail : ndarray, shape (12, B) or None
        Bass-register chroma under each bar's head and tail.
    weight : ndarray, shape (B,)
        Tonal activity of each bar (0 for bars of drums or silence).
    phrase : ndarray of bool, shape (B,)
        True for bars that start a phrase (every :data:`PHRASE_BARS` bars
        from the first bar with music).
    """

    head: np.ndarray
    tail: np.ndarray
    bass_head: np.ndarray | None
    bass_tail: np.ndarray | None
    weight: np.ndarray
    phrase: np.ndarray

    @property
    def n_bars(self) -> int:
        return int(self.weight.size)


def bar_chroma(values: np.ndarray, times: np.ndarray, downbeats, *, bass=None,
               activity=None) -> BarChroma | None:
    """Pool frames (12, T) at ``times`` on the bar grid given by ``downbeats`` (s).

    Bars are the spans between consecutive downbeats (the last one lasts the
    median bar). Returns None when fewer than two bars hold frames.
    """
    db = np.asarray(downbeats, np.float64).reshape(-1)
    db = db[np.isfinite(db)]
    if db.size < 2 or values.shape[1] == 0:
        return None
    db = np.sort(db)
    bar_len = float(np.median(np.diff(db)))
    if bar_len <= 0:
        return None
    ends = np.append(db[1:], db[-1] + bar_len)
    lens = ends - db
    T = values.shape[1]
    act = np.ones(T) if activity is None else np.asarray(activity, np.float64).reshape(-1)

    def pool(mat, a, b):
        i0 = np.searchsorted(times, db + np.asarray(a) * lens)
        i1 = np.maximum(np.searchsorted(times, db + np.asarray(b) * lens), i0 + 1)
        ok = i0 < T
        out = np.zeros((mat.shape[0], db.size))
        cs = np.concatenate([np.zeros((mat.shape[0], 1)), np.cumsum(mat, axis=1)], axis=1)
        i1c = np.minimum(i1, T)
        out[:, ok] = (cs[:, i1c[ok]] - cs[:, i0[ok]]) / np.maximum(i1c[ok] - i0[ok], 1)
        return out, ok

    V = np.asarray(values, np.float64)
    # keep each frame's window (WINDOW_HALF either side of its centre) inside its half of the bar
    guard = np.minimum(WINDOW_HALF / lens, 0.25)
    hs, te = np.maximum(HEAD_START, guard), np.maximum(1.0 - guard, TAIL_START + 0.05)
    head, ok = pool(V, hs, HEAD_END)
    tail, _ = pool(V, TAIL_START, te)
    wbar, _ = pool(act[None, :], 0.0, 1.0)
    weight = np.where(ok, wbar[0], 0.0)
    bh = bt = None
    if bass is not None:
        bh = pool(np.asarray(bass, np.float64), hs, HEAD_END)[0]
        bt = pool(np.asarray(bass, np.float64), TAIL_START, te)[0]
    live = np.nonzero(weight > MIN_FRAME_ACTIVITY)[0]
    if live.size < 2:
        return None
    first = int(live[0])
    idx = np.arange(db.size)
    phrase = (idx >= first) & ((idx - first) % PHRASE_BARS == 0)
    return BarChroma(head=head, tail=tail, bass_head=bh, bass_tail=bt, weight=weight, phrase=phrase)


def _row_shares(M: np.ndarray) -> np.ndarray:
    """Column-wise :func:`_shares` of (12, B)."""
    M = M - M.min(axis=0, keepdims=True)
    tot = M.sum(axis=0, keepdims=True)
    return np.where(tot > 0, M / np.where(tot > 0, tot, 1.0), 1.0 / 12)


def _pair_mean(M: np.ndarray, w: np.ndarray) -> np.ndarray:
    tot = float(w.sum())
    return M @ w / tot if tot > 0 else np.zeros(M.shape[0])


def bar_evidence(bars: BarChroma) -> dict[str, np.ndarray]:
    """Evidence of the 24 keys from where a listener hears resolution (each (24,)).

    "bar_one": the tonic triad's share of the chord on bar one, averaged
    over all bars (weighted by their tonal activity); "phrase_one": the same
    on the first bar of each phrase; "downbeat_bass": the tonic's share of
    the bass on the downbeats; "cadence": how often a bar ending on the
    key's dominant chord resolves into its tonic chord on the next bar one
    (product of the two shares above chance, V->I across the bar line);
    "phrase_cadence": the same across phrase boundaries only.
    """
    w = bars.weight
    H, Tl = _row_shares(bars.head), _row_shares(bars.tail)
    ton = _TRIADS @ H - 0.25                                        # (24, B)
    dom = np.maximum(_DOMINANT @ Tl, _DOMINANT_MINOR @ Tl) - 0.25  # (24, B)

    def avg(M, mask):
        ww = w * mask
        tot = float(ww.sum())
        return M @ ww / tot if tot > 0 else np.zeros(24)

    one = np.ones_like(w)
    ev = {"bar_one": avg(ton, one), "phrase_one": avg(ton, bars.phrase.astype(np.float64))}
    if bars.bass_head is not None:
        B = _row_shares(bars.bass_head) - 1.0 / 12
        ev["downbeat_bass"] = avg(np.vstack([B, B]), one)
    # V at the end of bar b-1 giving way to I on bar one of bar b (a chord
    # held across the bar line resolves nothing)
    dom_head = np.maximum(_DOMINANT @ H, _DOMINANT_MINOR @ H) - 0.25
    ton_tail = _TRIADS @ Tl - 0.25
    res = (np.maximum(dom[:, :-1] - dom_head[:, 1:], 0.0)
           * np.maximum(ton[:, 1:] - ton_tail[:, :-1], 0.0))
    wpair = np.minimum(w[:-1], w[1:])
    def pair_avg(mask):
        ww = wpair * mask
        tot = float(ww.sum())
        return res @ ww / tot if tot > 0 else np.zeros(24)
    ev["cadence"] = pair_avg(np.ones(res.shape[1]))
    if bars.bass_head is not None and bars.bass_tail is not None:
        bh = _row_shares(bars.bass_head) - 1.0 / 12
        bt = _row_shares(bars.bass_tail) - 1.0 / 12
        five = np.roll(bt, -7, axis=0)[:, :-1]          # row k: bass on k's fifth at the bar end
        bres = np.maximum(five - np.roll(bh, -7, axis=0)[:, 1:], 0.0) * np.maximum(
            bh[:, 1:] - bt[:, :-1], 0.0)
        bass_res = _pair_mean(bres, wpair)
        ev["bass_cadence"] = np.concatenate([bass_res, bass_res])
    ev["phrase_cadence"] = pair_avg(bars.phrase[1:].astype(np.float64))
    return ev


def key_evidence(chroma_vector, edges: dict | None = None, *, presence=None,
                 profile: str = DEFAULT_PROFILE, bars: BarChroma | None = None) -> dict[str, np.ndarray]:
    """The evidence terms for all 24 keys (each shape (24,), index as :func:`key_scores`).

    Parameters
    ----------
    chroma_vector : array_like, shape (12,)
        Mean chroma of the material.
    edges : dict, optional
        12-bin chroma vectors "opening_chord", "opening", "ending" and
        "opening_bass" (bass register); missing terms are left out.
    presence : array_like, shape (12,), optional
        :func:`note_presence` of the frames: the "scale" term is then
        measured on which notes sound rather than on the mean chroma.
    profile : str
        Key profile for the "profile" term.
    bars : BarChroma, optional
        The material pooled on its bar grid (:func:`bar_chroma`): adds the
        :func:`bar_evidence` terms.

    Returns
    -------
    dict
        "profile" (Krumhansl-Schmuckler correlation), "scale"
        (:func:`scale_fit` of ``presence``, else of the mean chroma),
        "scale_plain" / "scale_modal" (the same split: major / minor scale
        alone, and the better of it and mixolydian / dorian, no penalty:
        which of the modes sharing a scale is meant is left to where the
        music resolves), "leading" (presence of the leading tone: B in C
        major, B or B flat in C minor), and, when given, "opening_chord", "opening",
        "ending" (tonic triad share), "opening_bass" (tonic share in the
        bass) and the bar-grid terms. :data:`EVIDENCE_WEIGHTS` (no bar grid)
        or :data:`GRID_EVIDENCE_WEIGHTS` combine them.
    """
    notes = chroma_vector if presence is None else presence
    ev = {"profile": key_scores(chroma_vector, profile), "scale": scale_fit(notes)}
    ev.update(_scale_split(notes))
    pres = np.asarray(notes, np.float64).reshape(12)
    if presence is None:
        pres = _shares(pres) * 12 / 7
    lead = pres[(np.arange(12) + 11) % 12]
    ev["leading"] = np.concatenate([lead, np.maximum(lead, pres[(np.arange(12) + 10) % 12])])
    if bars is not None:
        ev.update(bar_evidence(bars))
    for name, vec in (edges or {}).items():
        if vec is None:
            continue
        ev[name] = _tonic_fit(vec) if name == "opening_bass" else _triad_fit(vec)
    return ev


def estimate_key(chroma_values, *, tonal_share: float | None = None,
                 profile: str = DEFAULT_PROFILE, bass=None, activity=None,
                 frame_rate: float | None = None, prior=None, prior_scores=None,
                 weights: dict | None = None, bars: BarChroma | None = None) -> KeyEstimate:
    """Key of a chroma (one vector or frames), weighing what a listener uses.

    The 24 keys are scored by a weighted sum of evidence terms
    (:func:`key_evidence`, weights :data:`EVIDENCE_WEIGHTS`): the profile
    correlation of the mean chroma (Krumhansl-Schmuckler), the diatonic-set
    fit (present *and absent* pitch classes, :func:`scale_fit`) and, when
    frames and ``frame_rate`` are given, where the music starts and lands:
    the tonic triad in the opening chord, the first and the last seconds, and
    the tonic in the bass under the opening chord.

    Parameters
    ----------
    chroma_values : array_like, shape (12, T) or (12,)
        Non-negative pitch-class energies, row 0 = C; frames are averaged.
        :attr:`Chroma.values` (or a slice of it) is the intended input; any
        chroma works (e.g. librosa's), but only with ``tonal_share`` can
        drum-only material be told apart reliably.
    tonal_share : float, optional
        Share of tonal energy in the material (:meth:`Chroma.tonal_share`);
        below :data:`MIN_TONAL_SHARE` the answer is "no clear key".
    profile : str
        Key profile name in :data:`PROFILES`.
    bass : array_like, shape (12, T), optional
        Bass-register chroma of the same frames (:attr:`Chroma.bass`).
    activity : array_like, shape (T,), optional
        Per-frame tonal activity (tonality x energy); frames under
        :data:`MIN_FRAME_ACTIVITY` do not count as the opening or ending.
    frame_rate : float, optional
        Frames per second; needed for the opening / ending terms (without
        it only the whole-chroma terms are used).
    prior : array_like, shape (12,), optional
        Added to the mean chroma before matching (a track's chroma pulling a
        short loop towards the track's key).
    prior_scores : array_like, shape (24,), optional
        Added to the 24 evidence scores (log-odds): a track's verdict
        informing its loops (:func:`segment_keys`).
    weights : dict, optional
        Overrides :data:`EVIDENCE_WEIGHTS` / :data:`GRID_EVIDENCE_WEIGHTS`
        (benchmarks and ablations).
    bars : BarChroma, optional
        The same frames pooled on the bar grid (:func:`bar_chroma`): adds
        where the music resolves (:func:`bar_evidence`: the chord and bass
        on bar one and on phrase starts, V->I across bar lines) and switches
        to :data:`GRID_EVIDENCE_WEIGHTS`.

    Returns
    -------
    KeyEstimate
        ``key == "no clear key"`` (tonic None, confidence 0) for material
        with too little tonal energy, a flat chroma or no fitting profile.
    """
    v = np.asarray(chroma_values, dtype=np.float64)
    frames = None
    if v.ndim == 2:
        if v.shape[0] != 12:
            raise ValueError(f"chroma must have 12 rows, got shape {v.shape}")
        if v.shape[1] == 0:
            return _no_key(tonal_share=tonal_share)
        frames = v
        v = v.mean(axis=1)
    elif v.shape != (12,):
        raise ValueError(f"chroma must have shape (12,) or (12, T), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("chroma contains NaN or infinite values")
    if prior is not None:
        v = v + np.asarray(prior, np.float64).reshape(12)
    if tonal_share is not None:
        tonal_share = float(tonal_share)
    mean = float(v.mean())
    if mean <= 0 or float(v.std()) < MIN_CHROMA_CONTRAST * mean:
        return _no_key(tonal_share=tonal_share)
    edges = None
    if frames is not None and frame_rate:
        b = None if bass is None else np.asarray(bass, np.float64)
        if b is not None and b.shape != frames.shape:
            raise ValueError(f"bass chroma shape {b.shape} differs from chroma {frames.shape}")
        act = None if activity is None else np.asarray(activity, np.float64).reshape(-1)
        edges = _edges(frames, b, act, float(frame_rate))
        presence = note_presence(frames, act)
    else:
        presence = None
    ev = key_evidence(v, edges, presence=presence, profile=profile, bars=bars)
    w = _weights(weights, bars)
    score = sum(w.get(name, 0.0) * term for name, term in ev.items())
    spread = _pitch_class_spread(v)
    if prior_scores is not None:
        # a span holding one triad has no key of its own: its evidence counts
        # in proportion to how much of a scale it covers
        notes = _pitch_class_spread(v if presence is None else presence)
        own = float(np.clip((notes - 3.5) / 3.0, SPAN_MIN_WEIGHT, 1.0))
        score = own * score + np.asarray(prior_scores, np.float64).reshape(24)
    order = np.argsort(score)[::-1]
    best, second = int(order[0]), int(order[1])
    r_max = float(ev["profile"].max())
    margin = float(score[best] - score[second])
    if (tonal_share is not None and tonal_share < MIN_TONAL_SHARE) or r_max < MIN_CORRELATION:
        return _no_key(r_max, margin, tonal_share)
    prob = np.exp(score - score[best])
    prob = float(1.0 / prob.sum())
    tonic, mode = best % 12, _MODES[best // 12]
    runner = f"{PITCH_CLASSES[second % 12]} {_MODES[second // 12]}"
    return KeyEstimate(tonic=tonic, mode=mode, key=f"{PITCH_CLASSES[tonic]} {mode}",
                       camelot=camelot_code(tonic, mode), open_key=open_key_code(tonic, mode),
                       confidence=_confidence(prob, r_max, tonal_share, spread),
                       correlation=float(ev["profile"][best]),
                       margin=margin, tonal_share=tonal_share, runner_up=runner)


def _weights(weights: dict | None, bars) -> dict:
    if weights is not None:
        return weights
    return EVIDENCE_WEIGHTS if bars is None else GRID_EVIDENCE_WEIGHTS


def track_bars(chroma: Chroma, downbeats, i0: int = 0, i1: int | None = None) -> BarChroma | None:
    """:func:`bar_chroma` of frames ``i0:i1`` of a track on its detected bar lines.

    ``downbeats`` are the bar-line times in seconds (:attr:`engine.rhythm.RhythmGrid.downbeats`);
    only those inside the frames' span are used. None when ``downbeats`` is None
    or fewer than two bars hold music.
    """
    if downbeats is None:
        return None
    i1 = chroma.n_frames if i1 is None else i1
    if i1 <= i0:
        return None
    db = np.asarray(downbeats, np.float64).reshape(-1)
    t = chroma.times[i0:i1]
    db = db[(db >= t[0] - 0.5 / chroma.frame_rate) & (db < t[-1])]
    return bar_chroma(chroma.values[:, i0:i1], t, db,
                      bass=None if chroma.bass is None else chroma.bass[:, i0:i1],
                      activity=_activity(chroma, i0, i1))


def evidence_scores(chroma: Chroma, *, profile: str = DEFAULT_PROFILE,
                    weights: dict | None = None, downbeats=None) -> np.ndarray:
    """(24,) weighted evidence scores (log-odds) of a whole track's keys.

    With ``downbeats`` (bar-line times, s) the bar-grid terms count too
    (:data:`GRID_EVIDENCE_WEIGHTS`).
    """
    if chroma.n_frames == 0:
        return np.zeros(24)
    v = chroma.values.astype(np.float64)
    act = _activity(chroma)
    edges = _edges(v, None if chroma.bass is None else chroma.bass.astype(np.float64),
                   act, chroma.frame_rate)
    bars = track_bars(chroma, downbeats)
    ev = key_evidence(v.mean(axis=1), edges, presence=note_presence(v, act), profile=profile,
                      bars=bars)
    w = _weights(weights, bars)
    return sum(w.get(name, 0.0) * term for name, term in ev.items())


def _activity(chroma: Chroma, i0: int = 0, i1: int | None = None) -> np.ndarray:
    return chroma.tonality[i0:i1] * np.minimum(chroma.energy[i0:i1], 1.0)


def segment_keys(chroma: Chroma, starts_sec, ends_sec, *, profile: str = DEFAULT_PROFILE,
                 track_weight: float = 0.0, downbeats=None) -> list[KeyEstimate]:
    """Key of each time span of a track's chroma (loop candidates).

    Each span is judged like a track (:func:`estimate_key`): its mean chroma,
    its scale fit, and its own opening (a loop cut on the bar line opens on
    its bar-one chord) and ending.

    Parameters
    ----------
    chroma : Chroma
        From :func:`track_chroma`, computed once for the track.
    starts_sec, ends_sec : array_like of float
        Span bounds in seconds (same length). Frames whose centres fall in
        [start, end) are pooled; spans outside the track give "no clear key".
    profile : str
        Key profile name.
    track_weight : float
        0 (default): each span's own key. Above 0 the whole track informs
        each span, a prior that pulls short loops (one or two chords, often
        ambiguous on their own: a bar of V is not in V's key) towards the
        track's key: the track's mean chroma is added to the span's with
        this weight, and the track's evidence scores
        (:func:`evidence_scores`) times ``TRACK_SCORE_GAIN * track_weight``
        to the span's scores. 0.5 (the pipeline's setting) lets a loop whose
        own material clearly says otherwise (a modulating section) keep its
        own key. Tonal share (and so "no clear key") stays the span's own.
    downbeats : array_like, optional
        The track's bar lines (s): each span (and the track prior) also
        weighs the bar-grid evidence (:func:`bar_evidence`) of the bars inside it.

    Returns
    -------
    list of KeyEstimate, one per span.
    """
    starts = np.atleast_1d(np.asarray(starts_sec, dtype=np.float64))
    ends = np.atleast_1d(np.asarray(ends_sec, dtype=np.float64))
    if starts.shape != ends.shape:
        raise ValueError(f"starts_sec and ends_sec differ in length ({starts.size} vs {ends.size})")
    if track_weight < 0:
        raise ValueError("track_weight must be >= 0")
    use_prior = track_weight > 0 and chroma.n_frames > 0
    prior = track_weight * chroma.values.mean(axis=1, dtype=np.float64) if use_prior else None
    prior_scores = (TRACK_SCORE_GAIN * track_weight
                    * evidence_scores(chroma, profile=profile, downbeats=downbeats)
                    if use_prior else None)
    out = []
    for s, e in zip(starts, ends):
        i0, i1 = chroma.frame_range(float(s), float(e))
        if i1 <= i0:
            out.append(_no_key(tonal_share=0.0))
            continue
        out.append(estimate_key(
            chroma.values[:, i0:i1], tonal_share=chroma.tonal_share(i0, i1), profile=profile,
            bass=None if chroma.bass is None else chroma.bass[:, i0:i1],
            activity=_activity(chroma, i0, i1), frame_rate=chroma.frame_rate, prior=prior,
            prior_scores=prior_scores, bars=track_bars(chroma, downbeats, i0, i1)))
    return out


def track_key(chroma: Chroma, *, profile: str = DEFAULT_PROFILE, downbeats=None) -> KeyEstimate:
    """Key of a whole track from its :class:`Chroma` (all evidence terms).

    ``downbeats``: the track's bar lines in seconds (the rhythm stage's
    :attr:`~engine.rhythm.RhythmGrid.downbeats`); with them the chord and
    bass on bar one, on phrase starts and across bar lines count as well
    (:func:`bar_evidence`, :data:`GRID_EVIDENCE_WEIGHTS`).
    """
    return estimate_key(chroma.values, tonal_share=chroma.tonal_share(), profile=profile,
                        bass=chroma.bass, activity=_activity(chroma),
                        frame_rate=chroma.frame_rate, bars=track_bars(chroma, downbeats))


def key_of_audio(y, sr: int, *, profile: str = DEFAULT_PROFILE, downbeats=None) -> KeyEstimate:
    """Key of a mono signal: :func:`track_chroma` then :func:`estimate_key`.

    Parameters
    ----------
    y : array_like, shape (n,)
        Mono audio.
    sr : int
        Sample rate.
    profile : str
        Key profile name.
    downbeats : array_like, optional
        Bar-line times in seconds (e.g. from :func:`engine.rhythm.analyse_rhythm`):
        adds the bar-grid evidence (see :func:`track_key`).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:                      # (n, channels) -> mono
        y = y.mean(axis=1)
    # A whole-track key needs no fine time grid: one frame every ~93 ms (the
    # window is 0.74 s, so frames still overlap 8x) costs a quarter of hop 512.
    ch = track_chroma(y, sr, hop_length=max(1, int(round(sr * KEY_HOP_SECONDS))))
    return track_key(ch, profile=profile, downbeats=downbeats)
