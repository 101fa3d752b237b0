"""Synthetic multi-section tracks with exact ground truth.

Tests, benchmarks, the dashboard's demo track and the loop-quality model's
training data all come from here. A track is drums, bass and chords laid on a
sample-exact grid; sections change the drum pattern and the chord progression.
Everything the engine should find is returned as :class:`GroundTruth`: tempo,
every beat, every downbeat, section starts and the key.

The sounds are simple but carry the cues real dance music carries: a pickup
before the first downbeat, accented kicks on beat one, chord and bass changes
on the bar line, a crash at each section start, swing on the off-beats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .music import PITCH_CLASSES

_FLAT_ALIASES = {"DB": 1, "EB": 3, "GB": 6, "AB": 8, "BB": 10, "CB": 11, "FB": 4, "E#": 5, "B#": 0}

#: Drum patterns on a 16th-note grid per 4/4 bar (12 steps per 3/4 bar).
#: Each maps an instrument to step indices; "accent" steps play louder.
DRUM_PATTERNS: dict[str, dict[str, tuple]] = {
    "four_on_floor": {"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": (2, 6, 10, 14),
                      "ohat": (), "accent": (0,)},
    "breakbeat": {"kick": (0, 10), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14),
                  "ohat": (), "accent": (0,)},
    "halftime": {"kick": (0, 3), "snare": (8,), "hat": tuple(range(0, 16, 2)),
                 "ohat": (14,), "accent": (0,)},
    "electro": {"kick": (0, 3, 6, 10), "snare": (4, 12), "hat": tuple(range(1, 16, 2)),
                "ohat": (), "accent": (0,)},
    "waltz": {"kick": (0,), "snare": (4, 8), "hat": (0, 2, 4, 6, 8, 10),
              "ohat": (), "accent": (0,)},
    "hats_only": {"kick": (), "snare": (), "hat": tuple(range(0, 16, 2)), "ohat": (),
                  "accent": ()},
}

#: Diatonic chord progressions (scale degrees, 0-based) per mode; each starts
#: on the tonic and passes through the dominant so the key is unambiguous.
PROGRESSIONS = {
    "major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 5, 4), (0, 4, 0, 3)),
}
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def parse_key(key) -> tuple[int, str] | None:
    """``"F# minor"``, ``"Bb major"``, ``"Am"``, ``(9, "minor")`` -> (tonic, mode).

    Returns None for ``None`` (no tonal material).
    """
    if key is None:
        return None
    if isinstance(key, tuple):
        tonic, mode = key
        return int(tonic) % 12, str(mode)
    text = str(key).strip()
    parts = text.split()
    if len(parts) == 1:  # "Am", "C", "F#m"
        name, mode = (parts[0][:-1], "minor") if parts[0].endswith("m") else (parts[0], "major")
    else:
        name, mode = parts[0], parts[1].lower()
    mode = {"maj": "major", "min": "minor"}.get(mode, mode)
    if mode not in _SCALES:
        raise ValueError(f"unknown mode in key {key!r}")
    up = name.upper()
    if up in _FLAT_ALIASES:
        return _FLAT_ALIASES[up], mode
    names = [p.upper() for p in PITCH_CLASSES]
    if up not in names:
        raise ValueError(f"unknown tonic in key {key!r}")
    return names.index(up), mode


#: Roman numerals -> semitones above the tonic (degrees of the major scale).
CHORD_NUMERALS = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}


def parse_numeral(chord: str) -> tuple[int, int]:
    """``"vi"`` -> (9, 3): root semitones above the tonic and the third (4 major, 3 minor).

    Upper case is a major triad, lower case minor; a leading "b" or "#"
    moves the root a semitone (``"bVII"`` -> (10, 4)).
    """
    text = str(chord).strip()
    shift = 0
    if text[:1] in ("b", "#"):
        shift = -1 if text[0] == "b" else 1
        text = text[1:]
    if text.upper() not in CHORD_NUMERALS or not (text.isupper() or text.islower()):
        raise ValueError(f"not a Roman-numeral chord: {chord!r}")
    return (CHORD_NUMERALS[text.upper()] + shift) % 12, 4 if text.isupper() else 3


def key_name(tonic: int, mode: str) -> str:
    """(9, "minor") -> "A minor"."""
    return f"{PITCH_CLASSES[int(tonic) % 12]} {mode}"


@dataclass
class GroundTruth:
    """What a synthetic track really contains (times in seconds)."""

    bpm: float
    beats_per_bar: int
    beats: np.ndarray
    downbeats: np.ndarray
    sections: np.ndarray
    section_patterns: list
    key: str | None
    tonic: int | None
    mode: str | None
    swing: float
    duration: float
    #: Parts that sound (subset of :data:`PARTS`), and the sorted times of every
    #: distinct note/hit onset of every part (within 5 ms counted once).
    parts: tuple = ()
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: instruments playing in each section ("drums", "bass", "chords"), aligned with ``sections``
    section_instruments: list = field(default_factory=list)
    #: bars per section, aligned with ``sections``
    section_lengths: list = field(default_factory=list)
    #: chord progression length in bars (the music repeats every this many bars inside a
    #: section); 1 when no section has chords
    harmonic_period: int = 4
    #: the chord of every bar (root pitch class and triad intervals; None when the
    #: track has no key), so loop labels can compare bars note for note
    bar_chords: list = field(default_factory=list)
    #: the parts playing in each bar when they differ from the section's within it
    #: (empty: every bar plays its section's ``section_instruments``)
    bar_instruments: list = field(default_factory=list)

    def bar_sections(self) -> np.ndarray:
        """Section index of every bar (aligned with ``downbeats``)."""
        return np.repeat(np.arange(len(self.section_lengths)), self.section_lengths)[
            : len(self.downbeats)]


@dataclass
class SynthTrack:
    """Audio (n, channels) float32 at ``sr`` plus its :class:`GroundTruth`."""

    audio: np.ndarray
    sr: int
    truth: GroundTruth
    meta: dict = field(default_factory=dict)

    def write(self, path, subtype: str = "PCM_24") -> Path:
        """Write the audio to ``path`` (format from the extension)."""
        import soundfile as sf

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), self.audio, self.sr, subtype=subtype if path.suffix.lower() in
                 (".wav", ".aiff", ".aif", ".flac") else None)
        return path


# --------------------------------------------------------------------------- sounds

def _env(n: int, sr: int, decay: float, attack: float = 0.001) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.exp(-t / decay)
    a = max(1, int(attack * sr))
    env[:a] *= np.linspace(0.0, 1.0, a)
    return env


def _kick(sr: int, rng) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    freq = 48 + 110 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    body = np.sin(phase) * _env(n, sr, 0.18, 0.0015)
    click = rng.standard_normal(n) * _env(n, sr, 0.004)
    return (body + 0.25 * click).astype(np.float32)


def _snare(sr: int, rng) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0) * 0.6 + noise * 0.4  # tilt up
    tone = np.sin(2 * np.pi * 185 * t) * _env(n, sr, 0.05)
    return (0.7 * noise * _env(n, sr, 0.09) + 0.5 * tone).astype(np.float32) * 0.8


def _hat(sr: int, rng, decay: float) -> np.ndarray:
    n = int(max(decay * 6, 0.05) * sr)
    noise = rng.standard_normal(n)
    for _ in range(2):
        noise = np.diff(noise, prepend=0.0)
    noise /= np.max(np.abs(noise)) + 1e-9
    return (noise * _env(n, sr, decay, 0.0005)).astype(np.float32) * 0.35


def _crash(sr: int, rng) -> np.ndarray:
    n = int(1.6 * sr)
    noise = np.diff(rng.standard_normal(n), prepend=0.0)
    noise /= np.max(np.abs(noise)) + 1e-9
    return (noise * _env(n, sr, 0.5, 0.001)).astype(np.float32) * 0.3


def _tone(freqs, n: int, sr: int, timbre: str) -> np.ndarray:
    """Sum of harmonic tones for ``n`` samples; ``freqs`` in Hz."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    harmonics = {"pad": (1.0, 0.5, 0.25, 0.12), "pluck": (1.0, 0.6, 0.35, 0.2, 0.1),
                 "organ": (1.0, 0.0, 0.45, 0.0, 0.25)}[timbre]
    for f in np.atleast_1d(freqs):
        for h, amp in enumerate(harmonics, start=1):
            if amp and f * h < sr / 2.2:
                out += amp * np.sin(2 * np.pi * f * h * t)
    if timbre == "pluck":
        out *= _env(n, sr, 0.35, 0.003)
    else:
        a = min(n // 4, int(0.02 * sr))
        r = min(n // 4, int(0.05 * sr))
        shape = np.ones(n)
        shape[:a] = np.linspace(0, 1, a)
        shape[n - r:] = np.linspace(1, 0, r)
        out *= shape * (0.85 + 0.15 * np.exp(-t / 0.4))
    return out


def _midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _place(buf: np.ndarray, sample: np.ndarray, at: int, gain: float, pan: float = 0.0):
    """Add a mono ``sample`` into stereo ``buf`` at sample index ``at``."""
    if at >= buf.shape[0] or at + sample.size <= 0:
        return
    s0 = max(0, -at)
    end = min(buf.shape[0], at + sample.size)
    seg = sample[s0:end - at] * gain
    left, right = np.sqrt(0.5 * (1 - pan)), np.sqrt(0.5 * (1 + pan))
    buf[at + s0:end, 0] += seg * left * np.sqrt(2)
    buf[at + s0:end, 1] += seg * right * np.sqrt(2)


# --------------------------------------------------------------------------- tracks

#: Every part :func:`synth_track` can play. "melody" is a monophonic lead
#: line, "fx" risers / noise sweeps / pitch zaps, "vocal" formant-synthesised
#: sung vowels (a glottal pulse train through vowel formant resonators).
PARTS = ("drums", "bass", "chords", "melody", "fx", "vocal")

#: Formant frequencies (Hz) and bandwidths of five sung vowels (F1-F4).
_VOWELS = {"a": ((730, 1090, 2440, 3400), (90, 110, 160, 250)),
           "e": ((530, 1840, 2480, 3500), (70, 100, 160, 250)),
           "i": ((300, 2290, 3010, 3700), (60, 100, 170, 250)),
           "o": ((570, 840, 2410, 3300), (80, 90, 160, 250)),
           "u": ((320, 870, 2240, 3300), (60, 90, 150, 250))}


def _lead_note(freq: float, n: int, sr: int, rng) -> np.ndarray:
    """A bright monophonic synth-lead note (band-limited saw, light vibrato)."""
    t = np.arange(n) / sr
    vib = 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(freq * vib) / sr
    out = np.zeros(n)
    for h in range(1, 9):
        if freq * h < sr / 2.2:
            out += np.sin(h * phase) / h
    return out * _env(n, sr, 0.6, 0.005) * np.minimum(1.0, (n - np.arange(n)) / (0.01 * sr + 1))


def _fx_sound(kind: str, n: int, sr: int, rng) -> np.ndarray:
    """Riser (noise band sweeping up), downlifter (sweeping down) or a pitch zap."""
    from scipy.signal import lfilter

    t = np.arange(n) / sr
    if kind == "zap":
        f = 2400 * np.exp(-t / 0.08) + 120
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(n, sr, 0.25, 0.002)
    noise = rng.standard_normal(n)
    lo, hi = (300.0, 7000.0) if kind == "riser" else (7000.0, 300.0)
    centre = lo * (hi / lo) ** (t / max(t[-1], 1e-9))
    out = np.zeros(n)
    blk = 512
    zi = np.zeros(2)
    for i in range(0, n, blk):                       # time-varying 2-pole resonator
        fc = float(centre[min(i + blk // 2, n - 1)])
        r = np.exp(-np.pi * 0.15 * fc / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
        out[i:i + blk], zi = lfilter([1 - r], a, noise[i:i + blk], zi=zi)
    amp = t / max(t[-1], 1e-9) if kind == "riser" else 1.0 - t / max(t[-1], 1e-9)
    return out * (0.2 + 0.8 * amp) / (np.max(np.abs(out)) + 1e-9)


def _vowel(freq: float, vowel: str, n: int, sr: int, rng) -> np.ndarray:
    """One sung syllable: glottal pulses at ``freq`` with vibrato and jitter
    through four formant resonators, a breathy onset and a soft release."""
    from scipy.signal import lfilter

    t = np.arange(n) / sr
    vib = 1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(4.8, 6.2) * t) * np.minimum(1, t / 0.15)
    f0 = freq * vib * (1 + 0.003 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(n) + 1))
    phase = np.cumsum(f0) / sr
    frac = phase - np.floor(phase)
    src = np.where(frac < 0.6, np.sin(np.pi * frac / 0.6) ** 2, 0.0)   # Rosenberg-like pulse
    src = np.diff(src, prepend=0.0)
    src += 0.02 * rng.standard_normal(n)                                 # breath
    freqs, bws = _VOWELS[vowel]
    out = np.zeros(n)
    for fc, bw in zip(freqs, bws):
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
        out += lfilter([1 - r], a, src) * (1.0 if fc < 1000 else 0.6)
    cons = int(0.03 * sr)                                                # consonant-ish burst
    if n > cons:
        burst = np.diff(rng.standard_normal(cons), prepend=0.0) * np.linspace(1, 0, cons)
        out[:cons] += burst * 0.3 * np.max(np.abs(out[:cons * 3])) if n > cons * 3 else 0
    shape = np.minimum(1.0, t / 0.04) * np.minimum(1.0, (n - np.arange(n)) / (0.06 * sr + 1))
    return out * shape / (np.max(np.abs(out)) + 1e-9)


def synth_track(bpm: float = 124.0, *, beats_per_bar: int = 4, n_bars: int = 32,
                section_bars: int = 8, patterns=None, swing: float = 0.0,
                key="A minor", timbre: str = "pad", instruments=("drums", "bass", "chords"),
                lead_in_beats: int = 1, lead_in_silence: float = 0.25,
                tail_seconds: float = 1.0, sr: int = 44100, stereo: bool = True,
                seed: int = 0, level_db: float = -6.0, return_stems: bool = False,
                progression=None, section_instruments=None, mix=None,
                noise_db: float | None = None, crash: bool = True,
                bar_instruments=None) -> SynthTrack:
    """Generate a multi-section track and its ground truth.

    Parameters
    ----------
    bpm : float
        Tempo (constant).
    beats_per_bar : int
        3 or 4.
    n_bars : int
        Bars after the pickup.
    section_bars : int or sequence of int
        Bars per section (or each section's length, in order; the last one
        repeats if they do not cover ``n_bars``); each section changes drum
        pattern and progression.
    patterns : sequence of str, optional
        Drum pattern per section, cycled (names in :data:`DRUM_PATTERNS`, or
        dicts of the same form).
        Default: four_on_floor, breakbeat, four_on_floor, halftime (4/4) or
        waltz (3/4).
    swing : float
        Delay of off-beat 8th and 16th notes as a fraction of a 16th note
        (0 straight, 0.33 ≈ triplet feel).
    key : str, tuple or None
        "A minor", "F# major", (tonic, mode), or None for drums only.
    timbre : {"pad", "pluck", "organ"}
        Chord instrument.
    instruments : tuple of str
        Any of :data:`PARTS`: "drums", "bass", "chords", "melody" (a lead
        line), "fx" (a riser, downlifter or zaps), "vocal" (formant-synthesised
        sung vowels). Tonal parts need ``key``.
    lead_in_beats : int
        Pickup beats (hats only) before the first downbeat.
    lead_in_silence : float
        Silence before the pickup, in seconds.
    tail_seconds : float
        Ring-out after the last bar.
    sr : int
        Sample rate.
    stereo : bool
        Two channels (hats and chords spread) or one.
    seed : int
        Random seed for noise and humanised velocities.
    level_db : float
        Peak level of the mix in dBFS.
    return_stems : bool
        Also return each part's mono signal (same gain as the mix) in
        ``meta["stems"]``.
    progression : sequence of str, optional
        One chord per bar, cycled through every section instead of the
        diatonic :data:`PROGRESSIONS`: Roman numerals relative to the key's
        tonic, upper case major and lower case minor, "b" for a flattened
        degree of the major scale (:data:`CHORD_NUMERALS`), e.g.
        ``("I", "V", "vi", "IV")``, ``("i", "bVI", "bIII", "bVII")`` or the
        mixolydian ``("I", "bVII", "IV", "I")``. For key tests on
        progressions that trap profile matching.
    section_instruments : sequence of tuple, optional
        Arrangement: the instruments playing in each section (cycled), e.g.
        ``[("drums",), ("drums", "bass"), (), ("drums", "bass", "chords")]``
        (an empty tuple is a silent break). Default: ``instruments`` everywhere.
    mix : dict, optional
        Gain per instrument (``drums``, ``bass``, ``chords``), default 1.
    noise_db : float, optional
        Level of a white-noise bed relative to the mix peak (e.g. -40).
    crash : bool
        A crash cymbal on each section start (when drums play).
    bar_instruments : sequence of tuple, optional
        The parts playing in each bar, overriding its section's (a part that
        plays every other bar, a break bar before a section change, a part
        entering a bar late). Recorded in the truth's ``bar_instruments``.

    Returns
    -------
    SynthTrack
    """
    if beats_per_bar not in (3, 4):
        raise ValueError("beats_per_bar must be 3 or 4")
    rng = np.random.default_rng(seed)
    steps_per_beat = 4
    steps_per_bar = beats_per_bar * steps_per_beat
    beat_sec = 60.0 / bpm
    step_sec = beat_sec / steps_per_beat
    t0 = lead_in_silence + lead_in_beats * beat_sec          # first downbeat
    total_beats = lead_in_beats + n_bars * beats_per_bar
    duration = lead_in_silence + total_beats * beat_sec + tail_seconds
    n = int(np.ceil(duration * sr))
    stems = {p: np.zeros((n, 2), np.float64) for p in PARTS}
    onsets: list = []

    if patterns is None:
        patterns = (("four_on_floor", "breakbeat", "four_on_floor", "halftime")
                    if beats_per_bar == 4 else ("waltz",))
    patterns = list(patterns)
    if np.ndim(section_bars) == 0:
        lengths = [int(section_bars)] * int(np.ceil(n_bars / int(section_bars)))
    else:
        lengths = [int(b) for b in section_bars]
        while sum(lengths) < n_bars:
            lengths.append(lengths[-1])
    lengths = [max(1, b) for b in lengths]
    while sum(lengths[:-1]) >= n_bars:
        lengths.pop()
    lengths[-1] -= sum(lengths) - n_bars
    n_sections = len(lengths)
    sec_start_bar = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    bar_section = np.repeat(np.arange(n_sections), lengths)
    section_patterns = [patterns[s % len(patterns)] for s in range(n_sections)]
    if section_instruments is None:
        sec_instr = [tuple(instruments)] * n_sections
    else:
        section_instruments = list(section_instruments)
        sec_instr = [tuple(section_instruments[s % len(section_instruments)])
                     for s in range(n_sections)]
    gains = {"drums": 1.0, "bass": 1.0, "chords": 1.0}
    gains.update(mix or {})
    tonal = parse_key(key)
    chords = None if progression is None else [parse_numeral(c) for c in progression]
    if chords is not None and not chords:
        raise ValueError("progression must hold at least one chord")

    kick, snare = _kick(sr, rng), _snare(sr, rng)
    hat, ohat, crash_snd = _hat(sr, rng, 0.025), _hat(sr, rng, 0.14), _crash(sr, rng)
    crash_on = crash

    def step_time(bar: int, step: int) -> float:
        t = t0 + bar * beats_per_bar * beat_sec + step * step_sec
        if step % 2 == 1:                       # off 16ths
            t += swing * step_sec
        elif step % 4 == 2:                     # off 8ths
            t += swing * step_sec
        return t

    def at(t: float) -> int:
        return int(round(t * sr))

    # pickup: hats on the lead-in beats
    if "drums" in (sec_instr[0] if sec_instr else ()):
        for b in range(lead_in_beats):
            for s in (0, 2):
                tt = lead_in_silence + b * beat_sec + s * step_sec + (swing * step_sec if s else 0)
                _place(stems["drums"], hat, at(tt), 0.6, 0.3)
                onsets.append(tt)

    prng = np.random.default_rng([seed, 7])      # own stream: older parts stay bit-identical
    lead_rhythm = _LEAD_RHYTHMS[int(prng.integers(0, len(_LEAD_RHYTHMS)))]
    lead_steps = steps_per_bar
    voc_phase = 0
    bar_chords = []
    for bar in range(n_bars):
        sec = int(bar_section[bar])
        pat = section_patterns[sec]
        pat = pat if isinstance(pat, dict) else DRUM_PATTERNS[pat]
        playing = (tuple(bar_instruments[bar]) if bar_instruments is not None
                   and bar < len(bar_instruments) else sec_instr[sec])
        gd = gains["drums"]
        if "drums" in playing:
            onsets.extend(step_time(bar, s) for s in set(pat["kick"]) | set(pat["snare"])
                          | set(pat["hat"]) | set(pat["ohat"]) if s < steps_per_bar)
            if bar == sec_start_bar[sec] and crash_on:
                _place(stems["drums"], crash_snd, at(step_time(bar, 0)), 0.8 * gd, -0.2)
                onsets.append(step_time(bar, 0))
            for s in pat["kick"]:
                if s < steps_per_bar:
                    g = 1.0 if s in pat["accent"] else 0.82
                    _place(stems["drums"], kick, at(step_time(bar, s)), gd * g * rng.uniform(0.95, 1.0))
            for s in pat["snare"]:
                if s < steps_per_bar:
                    _place(stems["drums"], snare, at(step_time(bar, s)),
                           gd * 0.75 * rng.uniform(0.93, 1.0), 0.05)
            for s in pat["hat"]:
                if s < steps_per_bar:
                    g = 0.7 if s % 4 == 0 else 0.5
                    _place(stems["drums"], hat, at(step_time(bar, s)), gd * g * rng.uniform(0.85, 1.0), 0.35)
            for s in pat["ohat"]:
                if s < steps_per_bar:
                    _place(stems["drums"], ohat, at(step_time(bar, s)), gd * 0.45, -0.35)
        if tonal is not None:
            tonic, mode = tonal
            scale = _SCALES[mode]
            if chords is not None:
                root, third = chords[bar % len(chords)]
                root_pc = (tonic + root) % 12
                low = root - (12 if root > 7 else 0)
                triad = [low, low + third, low + 7]
            else:
                prog = PROGRESSIONS[mode][sec % len(PROGRESSIONS[mode])]
                degree = prog[bar % len(prog)]
                scale = _SCALES[mode]
                root_pc = (tonic + scale[degree]) % 12
                triad = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
                if mode == "minor" and degree == 4:   # harmonic minor: major dominant
                    triad[1] += 1
            bar_chords.append((int(root_pc), tuple(int(v) for v in triad)))
            bar_start = at(step_time(bar, 0))
            bar_len = at(t0 + (bar + 1) * beats_per_bar * beat_sec) - bar_start
            if "chords" in playing:
                base = 60 + tonic - (12 if tonic > 6 else 0)
                freqs = [_midi_hz(base + iv) for iv in triad]
                chord = _tone(freqs, bar_len, sr, timbre) * 0.11
                _place(stems["chords"], chord.astype(np.float32), bar_start, gains["chords"], 0.0)
                onsets.append(bar_start / sr)
            if "bass" in playing:
                bass_midi = 36 + root_pc - (12 if root_pc > 7 else 0)
                note_steps = (0, 6, 10) if beats_per_bar == 4 else (0, 6)
                for k, s in enumerate(note_steps):
                    start = at(step_time(bar, s))
                    end = at(step_time(bar, note_steps[k + 1])) if k + 1 < len(note_steps) \
                        else bar_start + bar_len
                    m = bass_midi + (12 if k == 2 else 0)
                    note = _tone([_midi_hz(m)], max(end - start, 1), sr, "pad")
                    note *= _env(note.size, sr, 0.5, 0.004)
                    _place(stems["bass"], (note * (0.5 if k == 0 else 0.4)).astype(np.float32),
                           start, gains["bass"])
                    onsets.append(start / sr)
            if "melody" in playing:
                _melody_bar(stems["melody"], onsets, prng, bar, lead_rhythm, lead_steps,
                            step_time, at, bar_start + bar_len, tonic, scale, triad, sr)
            if "vocal" in playing and bar % 2 == voc_phase:
                _vocal_bar(stems["vocal"], onsets, prng, bar, step_time, at, steps_per_bar,
                           tonic, scale, triad, sr, 2 * bar_len)

    if "fx" in instruments:
        _fx_part(stems["fx"], onsets, prng, t0, n_bars * beats_per_bar * beat_sec, sr,
                 beats_per_bar * beat_sec)

    buf = sum(stems.values())
    if noise_db is not None:
        peak = np.max(np.abs(buf)) + 1e-12
        buf += rng.standard_normal(buf.shape) * peak * 10 ** (noise_db / 20) / 3.0
    buf += rng.standard_normal(buf.shape) * 1e-5          # noise floor: never digital silence
    peak = np.max(np.abs(buf)) + 1e-12
    gain = (10 ** (level_db / 20)) / peak
    buf *= gain
    audio = buf.astype(np.float32) if stereo else buf.mean(axis=1, keepdims=True).astype(np.float32)

    beats = lead_in_silence + np.arange(total_beats) * beat_sec
    downbeats = t0 + np.arange(n_bars) * beats_per_bar * beat_sec
    sections = t0 + sec_start_bar * beats_per_bar * beat_sec
    has_chords = tonal is not None and any("chords" in p or "bass" in p for p in sec_instr)
    truth = GroundTruth(bpm=float(bpm), beats_per_bar=beats_per_bar, beats=beats,
                        downbeats=downbeats, sections=sections,
                        section_patterns=section_patterns,
                        key=key_name(*tonal) if tonal else None,
                        tonic=tonal[0] if tonal else None, mode=tonal[1] if tonal else None,
                        swing=float(swing), duration=n / sr,
                        parts=tuple(p for p in PARTS if p in instruments
                                    and (p in ("drums", "fx") or tonal is not None)),
                        onsets=_distinct([t for t in onsets if t < n / sr]),
                        section_instruments=[tuple(p) for p in sec_instr],
                        section_lengths=[int(b) for b in lengths],
                        harmonic_period=4 if has_chords else 1,
                        bar_chords=bar_chords if tonal is not None else [],
                        bar_instruments=([tuple(bar_instruments[b]) if b < len(bar_instruments)
                                          else sec_instr[int(bar_section[b])] for b in range(n_bars)]
                                         if bar_instruments is not None else []))
    meta = {"timbre": timbre, "instruments": tuple(instruments), "seed": seed}
    if return_stems:
        meta["stems"] = {p: (stems[p].mean(axis=1) * gain).astype(np.float32)
                         for p in truth.parts}
    return SynthTrack(audio=audio, sr=sr, truth=truth, meta=meta)


def _distinct(times, tol: float = 0.005) -> np.ndarray:
    t = np.sort(np.asarray(times, float))
    if t.size == 0:
        return t
    keep = np.concatenate([[True], np.diff(t) > tol])
    return t[keep]


#: Lead-line rhythms (16th steps of a 4/4 bar where a note starts).
_LEAD_RHYTHMS = ((0, 3, 6, 8, 10, 12, 14), (0, 2, 4, 6, 8, 11, 14), (0, 4, 6, 10, 12),
                 (0, 1, 2, 4, 7, 8, 10, 12, 13, 14), (2, 6, 8, 12, 14))


def _melody_bar(buf, onsets, rng, bar, rhythm, steps_per_bar, step_time, at, bar_end,
                tonic, scale, triad, sr):
    """One bar of a monophonic lead (scale notes, chord tones on strong steps)."""
    steps = [s for s in rhythm if s < steps_per_bar]
    for k, s in enumerate(steps):
        start = at(step_time(bar, s))
        end = at(step_time(bar, steps[k + 1])) if k + 1 < len(steps) else bar_end
        if s % 4 == 0:
            iv = triad[int(rng.integers(0, 3))]
        else:
            iv = scale[int(rng.integers(0, 7))]
        m = 72 + tonic - (12 if tonic > 6 else 0) + iv
        note = _lead_note(_midi_hz(m), max(end - start, 32), sr, rng)
        _place(buf, (note * 0.16).astype(np.float32), start, 1.0, 0.15)
        onsets.append(start / sr)


def _vocal_bar(buf, onsets, rng, bar, step_time, at, steps_per_bar, tonic, scale, triad, sr,
               phrase_len):
    """A two-bar sung phrase starting at ``bar``: 3-6 syllables on chord tones."""
    n_syl = int(rng.integers(3, 7))
    cands = sorted(rng.choice(np.arange(0, 2 * steps_per_bar, 2), n_syl, replace=False))
    bar_start = at(step_time(bar, 0))
    for k, s in enumerate(cands):
        start = at(step_time(bar + s // steps_per_bar, s % steps_per_bar))
        nxt = (at(step_time(bar + cands[k + 1] // steps_per_bar, cands[k + 1] % steps_per_bar))
               if k + 1 < len(cands) else bar_start + phrase_len)
        length = max(int(0.85 * (nxt - start)), int(0.08 * sr))
        iv = triad[int(rng.integers(0, 3))] if k % 2 == 0 else scale[int(rng.integers(0, 7))]
        m = 57 + tonic - (12 if tonic > 6 else 0) + iv
        v = "aeiou"[int(rng.integers(0, 5))]
        _place(buf, (_vowel(_midi_hz(m), v, length, sr, rng) * 0.32).astype(np.float32),
               start, 1.0, -0.1)
        onsets.append(start / sr)


def _fx_part(buf, onsets, rng, t0, span, sr, bar_sec):
    """A riser or downlifter across the span, or pitch zaps every bar."""
    kind = ("riser", "downlifter", "zap")[int(rng.integers(0, 3))]
    if kind == "zap":
        t = t0 + bar_sec * 0.75
        while t < t0 + span:
            z = _fx_sound("zap", int(0.3 * sr), sr, rng)
            _place(buf, (z * 0.18).astype(np.float32), int(round(t * sr)), 1.0, 0.4)
            onsets.append(t)
            t += bar_sec
    else:
        n = int(span * sr)
        _place(buf, (_fx_sound(kind, n, sr, rng) * 0.25).astype(np.float32),
               int(round(t0 * sr)), 1.0, -0.3)
        onsets.append(t0)


def synth_loop(pattern: str = "four_on_floor", bpm: float = 124.0, *, bars: int = 2,
               beats_per_bar: int = 4, key=None, swing: float = 0.0, sr: int = 22050,
               stereo: bool = False, seed: int = 0, instruments=("drums",)) -> SynthTrack:
    """A seamless loop: exactly ``bars`` bars of one drum pattern, no pickup.

    Used for contact-map and neighbour tests: loops that share ``pattern``
    share their rhythm whatever their tempo.
    """
    track = synth_track(bpm, beats_per_bar=beats_per_bar, n_bars=bars, section_bars=bars,
                        patterns=(pattern,), swing=swing, key=key, instruments=instruments,
                        lead_in_beats=0, lead_in_silence=0.0, tail_seconds=0.0, sr=sr,
                        stereo=stereo, seed=seed)
    n = int(round(bars * beats_per_bar * 60.0 / bpm * sr))
    track.audio = track.audio[:n]
    # crash only at the section start would ring across the seam; it is part of the loop
    track.truth.duration = n / sr
    return track


def random_arranged_track(seed: int, *, sr: int = 22050, max_seconds: float = 80.0,
                          meter=None) -> SynthTrack:
    """A track with a randomly drawn arrangement, for training and benchmarks.

    Tempo (70-178 BPM), meter (4/4 or 3/4), swing, key or none, chord timbre,
    drum patterns, section lengths (4-16 bars), which parts play in each
    section (parts enter and leave; sometimes a silent break), the mix, a noise
    bed, the level, crash cymbals, the pickup and the tail are all drawn from
    ``seed``, so a model trained on these cannot key on one generator setting.
    Consecutive sections always differ in their parts or drum pattern.

    Parameters
    ----------
    seed : int
    sr : int
    max_seconds : float
        Upper bound on the length (bars are dropped to fit).
    meter : int, optional
        Force 3 or 4 beats per bar.
    """
    rng = np.random.default_rng(seed + 7919)
    bpm = float(rng.uniform(70, 178))
    bpb = int(meter or (3 if rng.random() < 0.2 else 4))
    swing = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.1, 0.35))
    key = None if rng.random() < 0.15 else (int(rng.integers(12)), str(rng.choice(["major", "minor"])))
    pats = [p for p in DRUM_PATTERNS if p != "waltz"] if bpb == 4 else ["waltz", "hats_only",
                                                                       "breakbeat", "four_on_floor"]
    parts_all = [("drums",), ("drums", "bass"), ("drums", "bass", "chords"), ("bass", "chords"),
                 ("chords",), ("drums", "chords"), ("bass",)]
    bar_sec = bpb * 60.0 / bpm
    max_bars = max(8, int((max_seconds - 3) / bar_sec))
    lengths, instr, patterns = [], [], []
    while sum(lengths) < max_bars and len(lengths) < 7:
        n = int(rng.choice([4, 8, 8, 8, 16]))
        if sum(lengths) + n > max_bars:
            n = max_bars - sum(lengths)
            if n < 2:
                break
        while True:
            if lengths and rng.random() < 0.08:
                parts = ()                       # silent break
            else:
                parts = parts_all[int(rng.integers(len(parts_all)))]
                if key is None:              # no tonal parts without a key
                    parts = ("drums",)
            pat = str(rng.choice(pats))
            if (not instr or parts != instr[-1] or ("drums" in parts and pat != patterns[-1])
                    or (key is not None and ("bass" in parts or "chords" in parts))):
                break
        lengths.append(n)
        instr.append(parts)
        patterns.append(pat)
    mix = {"drums": float(rng.uniform(0.5, 1.2)), "bass": float(rng.uniform(0.4, 1.3)),
           "chords": float(rng.uniform(0.4, 1.6))}
    # bar-level arrangement, as DAW projects have it (own random stream, so the
    # section-level draws above stay what they were): a part playing every
    # other bar, a break bar before the next section, a part entering late
    brng = np.random.default_rng([seed, 11])
    bar_instr = []
    for n, parts in zip(lengths, instr):
        bars = [tuple(parts)] * n
        r = brng.random()
        if len(parts) >= 2 and r < 0.2:
            drop = parts[int(brng.integers(len(parts)))]
            phase = int(brng.integers(2))
            bars = [tuple(p for p in parts if p != drop) if (b % 2 == phase) else tuple(parts)
                    for b in range(n)]
        elif len(parts) >= 1 and r < 0.35 and n >= 4:
            drop = parts[int(brng.integers(len(parts)))]
            bars[-1] = tuple(p for p in parts if p != drop)
        elif len(parts) >= 2 and r < 0.45 and n >= 4:
            late = parts[int(brng.integers(len(parts)))]
            k = int(brng.choice([1, 2]))
            bars[:k] = [tuple(p for p in parts if p != late)] * k
        bar_instr.extend(bars)
    return synth_track(bpm, beats_per_bar=bpb, n_bars=int(sum(lengths)), section_bars=lengths,
                       patterns=patterns, swing=swing, key=key,
                       timbre=str(rng.choice(["pad", "pluck", "organ"])),
                       lead_in_beats=int(rng.integers(0, 4)),
                       lead_in_silence=float(rng.uniform(0.0, 1.0)),
                       tail_seconds=float(rng.uniform(0.5, 3.0)), sr=sr,
                       stereo=bool(rng.random() < 0.5), seed=seed,
                       level_db=float(rng.uniform(-12, -1)), section_instruments=instr, mix=mix,
                       noise_db=None if rng.random() < 0.5 else float(rng.uniform(-50, -25)),
                       crash=bool(rng.random() < 0.5), bar_instruments=bar_instr)
