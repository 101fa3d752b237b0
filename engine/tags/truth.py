"""Generated loops whose audio-label truth is known (tests and bench_tags).

:func:`audio_truth_loops` makes loops with a known tempo class (the
generator's BPM, kept away from the 95 / 130 boundaries), density class
(distinct note/hit onsets per second from :attr:`GroundTruth.onsets`) and
percussive-vs-harmonic character (drum-only vs pitched-only loops), and
:func:`agreement` compares the audio rules with that truth.

Which loops count for which check:

* tempo: loops with a drum pattern that fixes the beat (four-on-the-floor,
  breakbeat, electro); pitched-only loops and halftime grooves are
  ambiguous by nature (a halftime groove *is* half its tempo to many DJs);
* density: loops whose true onset rate is not within 12 % of a class
  boundary (2 or 4 onsets per second);
* percussive: drum-only loops (truth "high") and pitched-only loops without
  fx (truth "low").
"""
from __future__ import annotations

import numpy as np

TEMPO_RANGES = {"tempo_slow": (74.0, 88.0), "tempo_mid": (102.0, 122.0),
                "tempo_fast": (138.0, 166.0)}
_BEAT_PATTERNS = ("four_on_floor", "breakbeat", "electro")
_PITCHED = ("bass", "chords", "melody", "vocal")


def density_class(rate: float) -> str:
    return "density_sparse" if rate < 2 else "density_mid" if rate < 4 else "density_dense"


def audio_truth_loops(n: int = 36, seed: int = 0, sr: int = 22050):
    """``n`` loops: ``[(y, truth)]``, truth = {tempo_class, bpm, density_rate,
    density_class, parts, percussive (True/False/None), tempo_checked,
    density_checked}``."""
    from ..synth import PITCH_CLASSES, synth_track

    rng = np.random.default_rng(seed)
    out = []
    classes = list(TEMPO_RANGES)
    for i in range(n):
        tc = classes[i % 3]
        bpm = float(rng.uniform(*TEMPO_RANGES[tc]))
        kind = i % 4
        if kind == 0:
            parts = ["drums"]
        elif kind == 1:
            parts = [p for p in _PITCHED if rng.random() < 0.5] or [str(rng.choice(_PITCHED))]
        else:
            parts = ["drums"] + [p for p in _PITCHED + ("fx",) if rng.random() < 0.4]
        pattern = str(rng.choice(_BEAT_PATTERNS))
        bars = int(rng.choice([2, 4]))
        key = f"{PITCH_CLASSES[int(rng.integers(0, 12))]} minor"
        tr = synth_track(bpm, n_bars=bars, section_bars=bars, patterns=(pattern,), key=key,
                         instruments=tuple(parts), lead_in_beats=0, lead_in_silence=0.0,
                         tail_seconds=0.0, sr=sr, stereo=False, seed=seed * 1000 + i)
        n_s = int(round(bars * 4 * 60.0 / bpm * sr))
        dur = n_s / sr
        on = tr.truth.onsets[tr.truth.onsets < dur]
        rate = len(on) / dur
        near = min(abs(rate - 2) / 2, abs(rate - 4) / 4) < 0.12
        perc = True if parts == ["drums"] else (False if "drums" not in parts else None)
        out.append((tr.audio[:n_s, 0].copy(),
                    {"tempo_class": tc, "bpm": bpm, "density_rate": rate,
                     "density_class": density_class(rate), "parts": parts, "percussive": perc,
                     "tempo_checked": "drums" in parts, "density_checked": not near,
                     "duration": dur}))
    return out


def agreement(tags_per_loop, truths) -> dict:
    """Share of checked loops whose audio tags match the truth, per group."""
    res = {}
    for group, key, checked, want in (
            ("tempo", "tempo_class", "tempo_checked", lambda t: t["tempo_class"]),
            ("density", "density_class", "density_checked", lambda t: t["density_class"]),
            ("percussive", "percussive", None,
             lambda t: "percussive_high" if t["percussive"] else "percussive_low")):
        hits = total = 0
        for tags, t in zip(tags_per_loop, truths):
            if checked and not t[checked]:
                continue
            if group == "percussive" and t["percussive"] is None:
                continue
            total += 1
            hits += want(t) in tags
        res[group] = {"n": total, "agreement": hits / total if total else float("nan")}
    return res
