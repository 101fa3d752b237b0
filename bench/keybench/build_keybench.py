"""Build the key benchmark: General-MIDI renders of chord loops in all 24 keys.

Not part of CI (it needs fluidsynth and a GM soundfont). Run from the
repository root::

    python bench/keybench/build_keybench.py [OUT_DIR] [--per-key N] [--jobs J]

Default output: ``/tmp/looplab-keybench`` (not committed). Requirements:
Debian ``fluidsynth`` and ``fluid-soundfont-gm``
(``/usr/share/sounds/sf2/FluidR3_GM.sf2``); no Python packages beyond NumPy
(the Standard MIDI File writer is :func:`write_midi` below).

What it writes
--------------
For each track ``<id>``: ``<id>.mid`` (the arrangement), ``<id>.wav``
(FluidSynth render, 22050 Hz stereo 16-bit, reverb and chorus on) and
``<id>.json`` with the truth::

    {"id": ..., "audio": "<id>.wav", "split": "dev" | "test",
     "key": {"tonic": "D", "tonic_pc": 2, "mode": "major", "label": "D major"},
     "scale": "ionian" | "aeolian" | "harmonic" | "mixolydian" | "dorian",
     "family": ..., "progression": "I-V-vi-IV", "bpm": ..., "meter": "4/4",
     "programs": {...}, "drums": true, ...}

plus ``manifest.csv`` (one row per track) and ``BUILD_INFO.json``. Drum-only
tracks (``key`` null) check that "no clear key" still holds on real drums.

Design (kept apart from the estimator's design)
-----------------------------------------------
* Progressions are written in Roman numerals relative to the tonic, in five
  scale families: major (ionian) pop with a strong dominant (I-V-vi-IV,
  ii-V-I, I-IV-V ...), natural minor (i-VI-III-VII ...), harmonic minor
  (major V with its leading tone), mixolydian (I-bVII-IV) and dorian
  (i-IV with a major IV) loops, and sparse two-chord vamps of each.
* **Key labels of modal loops** follow the MIREX / mir_eval convention, which
  is also what DJ software reports for modal dance music: the key is named by
  its *tonic* and the major/minor quality of the tonic triad. A mixolydian
  loop on G (G-F-C-G) is "G major" (not C major), a dorian loop on D
  (Dm-G-Dm-G) is "D minor" (not C major). The tonic is the chord the loop
  starts on, returns to and ends on.
* **Split.** Every family has progressions marked ``dev`` (to tune on) and
  ``test`` (held out: never looked at while tuning). Instruments are split
  the same way: test tracks use GM programs that dev tracks never use. Both
  splits cover all 24 keys, both meters, drums on/off and bass on/off.
* Arrangement per track (seeded, reproducible): tempo 70-160 BPM; 4/4 or
  3/4; one or two chords per bar; a chord instrument with a comping pattern
  (sustained, stabs, arpeggio, off-beat skank) and voice-led inversions; an
  optional bass line (root, root-fifth, octave eighths, with approach notes);
  an optional lead line on chord and scale tones; optional GM drums; an
  optional "ending" on the tonic (half of the tracks simply stop at the loop
  end, as loops do).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_SR = 22050
BUILDER_VERSION = 1

# --------------------------------------------------------------------------- harmony

#: Chord qualities as intervals above the root.
QUALITIES = {
    "": (0, 4, 7), "m": (0, 3, 7), "dim": (0, 3, 6), "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "sus4": (0, 5, 7), "add9": (0, 4, 7, 14),
    "m7b5": (0, 3, 6, 10),
}

#: Roman numerals = scale degrees of the progression's scale ("VI" in aeolian
#: is 8 semitones above the tonic); "b"/"#" alter the major scale's degree.
_DEGREES = ("I", "II", "III", "IV", "V", "VI", "VII")

#: Scales (semitones above the tonic) used for lead lines and passing notes.
SCALES = {
    "ionian": (0, 2, 4, 5, 7, 9, 11), "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "harmonic": (0, 2, 3, 5, 7, 8, 11), "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}
MODE_OF_SCALE = {"ionian": "major", "mixolydian": "major", "aeolian": "minor",
                 "harmonic": "minor", "dorian": "minor"}

# (family, scale, progression, split). Chords: numeral + quality, e.g. "vi" is
# "VI" minor; "bVII" major. Minor-key numerals are relative to the minor tonic.
PROGRESSIONS = [
    # --- major, dominant-heavy pop (the trap: reading V as the tonic)
    ("major-pop", "ionian", "I V vi IV", "dev"),
    ("major-pop", "ionian", "I IV V I", "dev"),
    ("major-pop", "ionian", "ii7 V7 Imaj7 Imaj7", "dev"),
    ("major-pop", "ionian", "I vi IV V", "dev"),
    ("major-pop", "ionian", "I V IV V", "dev"),
    ("major-pop", "ionian", "I V vi iii IV I IV V", "dev"),
    ("major-pop", "ionian", "I IV I V", "test"),
    ("major-pop", "ionian", "I V vi IV I V IV V", "test"),
    ("major-pop", "ionian", "I iii IV V", "test"),
    ("major-pop", "ionian", "I ii7 V7 I", "test"),
    ("major-pop", "ionian", "Iadd9 V/3 vi7 IVmaj7", "test"),
    # --- natural minor
    ("minor-natural", "aeolian", "i VI III VII", "dev"),
    ("minor-natural", "aeolian", "i iv v i", "dev"),
    ("minor-natural", "aeolian", "i VII VI VII", "dev"),
    ("minor-natural", "aeolian", "i iv VII III", "test"),
    ("minor-natural", "aeolian", "i VI iv v", "test"),
    ("minor-natural", "aeolian", "i III VII iv", "test"),
    # --- harmonic minor (major V, leading tone)
    ("minor-harmonic", "harmonic", "i iv V i", "dev"),
    ("minor-harmonic", "harmonic", "i VI iv V7", "dev"),
    ("minor-harmonic", "harmonic", "i iidim V7 i", "test"),
    ("minor-harmonic", "harmonic", "i VI III V", "test"),
    # --- mixolydian (label: tonic major)
    ("mixolydian", "mixolydian", "I bVII IV I", "dev"),
    ("mixolydian", "mixolydian", "I v bVII IV", "test"),
    ("mixolydian", "mixolydian", "I I bVII I", "test"),
    # --- dorian (label: tonic minor)
    ("dorian", "dorian", "i7 IV7 i7 IV7", "dev"),
    ("dorian", "dorian", "i ii i VII", "test"),
    ("dorian", "dorian", "i IV VII i", "test"),
    # --- sparse two-chord vamps
    ("vamp", "ionian", "I IV", "dev"),
    ("vamp", "aeolian", "i VI", "dev"),
    ("vamp", "ionian", "I V", "test"),
    ("vamp", "aeolian", "i iv", "test"),
    ("vamp", "aeolian", "i VII", "test"),
    ("vamp", "ionian", "Imaj7 IVmaj7", "test"),
]

#: GM programs (0-based) for chords / bass / lead, split dev vs test.
PROGRAMS = {
    "dev": {"chords": (0, 4, 16, 24, 48, 89), "bass": (32, 33, 38),
            "lead": (73, 80, 56, 65)},
    "test": {"chords": (1, 5, 18, 25, 27, 50, 88, 61, 11), "bass": (34, 35, 39, 43),
             "lead": (71, 81, 66, 40, 22)},
}

COMPING = ("sustain", "stabs", "arpeggio", "offbeat")


def parse_chord(token: str, scale: str) -> tuple[int, tuple[int, ...], int | None]:
    """``"V7"`` -> (7, (0, 4, 7, 10), None); ``"V/3"`` -> first inversion bass.

    Lower-case numerals are minor triads unless a quality follows
    (``"iidim"``, ``"ii7"`` = m7). Returns (root semitones above tonic,
    intervals, bass interval above the root or None).
    """
    inv = None
    if "/" in token:
        token, b = token.split("/")
        inv = {"3": 1, "5": 2}[b]
    acc = ""
    if token[0] in "b#":
        acc, token = token[0], token[1:]
    i = 0
    while i < len(token) and token[i].upper() in "IV":
        i += 1
    numeral, qual = token[:i], token[i:]
    degree = _DEGREES.index(numeral.upper())
    if acc:       # altered degree: relative to the major scale (bVII = 10)
        root = (SCALES["ionian"][degree] + (-1 if acc == "b" else 1)) % 12
    else:         # plain degree of the progression's own scale
        root = SCALES[scale][degree]
    minor = numeral.islower()
    if minor:
        qual = {"": "m", "7": "m7", "dim": "dim", "m7b5": "m7b5"}.get(qual, "m" + qual)
    ivs = QUALITIES[qual]
    bass = None if inv is None else ivs[inv]
    return root, ivs, bass


# --------------------------------------------------------------------------- MIDI

def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, events: list[tuple], tpq: int, bpm: float, meter: int) -> None:
    """Write a type-0 Standard MIDI File.

    ``events``: (tick, kind, channel, a, b) with kind "on", "off" or
    "program" (a = program). Note-offs sort before note-ons at equal ticks.
    """
    order = {"program": 0, "off": 1, "on": 2}
    events = sorted(events, key=lambda e: (e[0], order[e[1]]))
    body = bytearray()
    tempo = int(round(60_000_000 / bpm))
    body += b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    body += b"\x00\xff\x58\x04" + bytes((meter, 2, 24, 8))
    last = 0
    for tick, kind, ch, a, b in events:
        body += _vlq(tick - last)
        last = tick
        if kind == "program":
            body += bytes((0xC0 | ch, a))
        elif kind == "on":
            body += bytes((0x90 | ch, a, b))
        else:
            body += bytes((0x80 | ch, a, 0))
    body += b"\x00\xff\x2f\x00"
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(body)) + body
    path.write_bytes(data)


# --------------------------------------------------------------------------- arrangement

def _voice(root_pc: int, ivs, prev: list[int] | None, rng, low=52, high=76) -> list[int]:
    """Close voicing of the chord's pitch classes near ``prev`` (voice leading)."""
    pcs = sorted({(root_pc + iv) % 12 for iv in ivs})
    cands = []
    for base in range(low, low + 12):
        for inv in range(len(pcs)):
            rot = pcs[inv:] + pcs[:inv]
            notes, n = [], base
            for pc in rot:
                while n % 12 != pc:
                    n += 1
                notes.append(n)
            if notes[-1] <= high and notes[0] >= low:
                cands.append(notes)
    if not cands:
        return [60 + (root_pc + iv) % 12 for iv in ivs]
    if prev is None:
        return cands[int(rng.integers(len(cands)))]
    cost = [sum(min(abs(a - b) for b in prev) for a in c) + abs(np.mean(c) - 64) * 0.3 for c in cands]
    return cands[int(np.argmin(cost))]


def arrange(spec: dict, rng) -> tuple[list[tuple], int, float]:
    """MIDI events of one track. Returns (events, ticks per quarter, seconds)."""
    tpq = 480
    meter = spec["meter"]
    bar = meter * tpq
    tonic = spec["tonic_pc"]
    scale = SCALES[spec["scale"]]
    chords = [parse_chord(t, spec["scale"]) for t in spec["progression"].split()]
    per_bar = spec["chords_per_bar"]
    span = bar // per_bar
    n_chords = spec["n_bars"] * per_bar
    ev: list[tuple] = []
    ch_chord, ch_bass, ch_lead = 0, 1, 2
    ev.append((0, "program", ch_chord, spec["programs"]["chords"], 0))
    if spec["bass"]:
        ev.append((0, "program", ch_bass, spec["programs"]["bass"], 0))
    if spec["lead"]:
        ev.append((0, "program", ch_lead, spec["programs"]["lead"], 0))

    def note(t0, dur, ch, pitch, vel):
        vel = int(np.clip(vel + rng.integers(-6, 7), 20, 127))
        ev.append((int(t0), "on", ch, int(pitch), vel))
        ev.append((int(t0 + max(dur, 10)), "off", ch, int(pitch), 0))

    prev = None
    comp = spec["comping"]
    base_t = spec["pickup_beats"] * tpq
    for k in range(n_chords):
        t = base_t + k * span
        root, ivs, inv_bass = chords[k % len(chords)]
        root_pc = (tonic + root) % 12
        voicing = _voice(root_pc, ivs, prev, rng)
        prev = voicing
        # --- chords
        if comp == "sustain":
            for p in voicing:
                note(t, span - 20, ch_chord, p, 70)
        elif comp == "stabs":
            for b in range(0, span, tpq):
                for p in voicing:
                    note(t + b, tpq // 2, ch_chord, p, 78 if b == 0 else 66)
        elif comp == "arpeggio":
            seq = voicing + [voicing[0] + 12] + voicing[1:][::-1]
            for j, b in enumerate(range(0, span, tpq // 2)):
                note(t + b, tpq // 2, ch_chord, seq[j % len(seq)], 72 if b == 0 else 62)
        else:  # off-beat skank, with the chord held softly on the downbeat
            for p in voicing:
                note(t, tpq // 2, ch_chord, p, 60)
            for b in range(tpq // 2, span, tpq):
                for p in voicing:
                    note(t + b, tpq // 4, ch_chord, p, 74)
        # --- bass
        if spec["bass"]:
            bass_pc = (root_pc + (inv_bass or 0)) % 12
            lo = spec["bass_low"]                  # 28 (E1..D#2) or 40 (E2..D#3)
            bn = lo + (bass_pc - 4) % 12
            bstyle = spec["bass_style"]
            if bstyle == "root":
                note(t, span - 30, ch_bass, bn, 88)
            elif bstyle == "root-fifth":
                note(t, span // 2 - 20, ch_bass, bn, 88)
                note(t + span // 2, span // 2 - 20, ch_bass, bn + 7 if bn + 7 <= lo + 14 else bn - 5, 78)
            elif bstyle == "eighths":
                for j, b in enumerate(range(0, span, tpq // 2)):
                    note(t + b, tpq // 2 - 30, ch_bass, bn + (12 if j % 4 == 3 else 0), 84 if j == 0 else 70)
            else:  # "approach": root held, then a scale step into the next chord's root
                nroot, _, nb = chords[(k + 1) % len(chords)]
                nxt = lo + ((tonic + nroot + (nb or 0)) % 12 - 4) % 12
                note(t, span - tpq - 20, ch_bass, bn, 88)
                step_cands = [lo + (tonic + s - 4) % 12 for s in scale]
                step_cands += [c + 12 for c in step_cands]
                appr = min((c for c in step_cands if c != nxt), key=lambda c: abs(c - nxt))
                note(t + span - tpq, tpq - 20, ch_bass, appr, 74)
        # --- lead: chord tones on strong beats, scale steps between
        if spec["lead"] and (k // per_bar) % 4 < 3:
            pool_scale = [60 + (tonic + s) % 12 for s in scale] + [72 + (tonic + s) % 12 for s in scale]
            pool_chord = sorted({60 + (root_pc + iv) % 12 for iv in ivs} |
                                {72 + (root_pc + iv) % 12 for iv in ivs})
            # the leading tone of harmonic minor only over the dominant
            cur = int(rng.choice(pool_chord))
            for b in range(0, span, tpq):
                if b % (2 * tpq) == 0:
                    cur = min(pool_chord, key=lambda c: abs(c - cur) + rng.uniform(0, 3))
                else:
                    cands = [c for c in pool_scale if 0 < abs(c - cur) <= 4] or pool_scale
                    cur = int(rng.choice(cands))
                note(t + b, tpq - 40, ch_lead, cur, 80)
    end_t = base_t + n_chords * span
    # optional ending: tonic chord (and bass) for a bar
    if spec["ending"]:
        root, ivs, _ = chords[0]
        for p in _voice((tonic + root) % 12, ivs, prev, rng):
            note(end_t, bar - 40, ch_chord, p, 76)
        if spec["bass"]:
            note(end_t, bar - 40, ch_bass, spec["bass_low"] + ((tonic + root) % 12 - 4) % 12, 86)
        end_t += bar
    # --- drums (channel 10 = index 9)
    if spec["drums"]:
        kick, snare, hat, ohat, crash = 36, 38, 42, 46, 49
        for b in range(spec["pickup_beats"]):
            note(b * tpq, 60, 9, hat, 70)
        for bi in range(spec["n_bars"] + (1 if spec["ending"] else 0)):
            t = base_t + bi * bar
            if bi % 8 == 0:
                note(t, 200, 9, crash, 90)
            if meter == 4:
                kicks = (0, 2) if spec["drum_style"] == 0 else (0, 1, 2, 3) if spec["drum_style"] == 1 else (0, 1.5, 2.5)
                snares = (1, 3)
            else:
                kicks, snares = (0,), (1, 2)
            for q in kicks:
                note(t + q * tpq, 60, 9, kick, 100)
            for q in snares:
                note(t + q * tpq, 60, 9, snare, 90)
            for e in range(meter * 2):
                note(t + e * tpq // 2, 40, 9, ohat if (spec["drum_style"] == 1 and e % 2) else hat,
                     76 if e % 2 == 0 else 58)
    seconds = (end_t + 2 * tpq) / tpq * 60.0 / spec["bpm"]
    return ev, tpq, seconds


# --------------------------------------------------------------------------- plan

def plan(per_key: int, seed: int = 17) -> list[dict]:
    """Track specs: ``per_key`` renders of every key for each split ratio.

    For each of the 24 (tonic, mode) pairs, progressions of the matching mode
    (major: ionian + mixolydian families, minor: aeolian, harmonic, dorian)
    are cycled; roughly 45 % of each key's tracks use held-out (test)
    progressions and programs.
    """
    rng = np.random.default_rng(seed)
    specs = []
    by_mode = {m: {"dev": [p for p in PROGRESSIONS if MODE_OF_SCALE[p[1]] == m and p[3] == "dev"],
                   "test": [p for p in PROGRESSIONS if MODE_OF_SCALE[p[1]] == m and p[3] == "test"]}
               for m in ("major", "minor")}
    counters = {(m, s): 0 for m in ("major", "minor") for s in ("dev", "test")}
    for mode in ("major", "minor"):
        for tonic in range(12):
            for r in range(per_key):
                split = "test" if r % 9 in (1, 3, 5, 7) else "dev"
                pool = by_mode[mode][split]
                c = counters[(mode, split)]
                counters[(mode, split)] += 1
                family, scale, prog, _ = pool[c % len(pool)]
                n_ch = len(prog.split())
                progs = PROGRAMS[split]
                meter = 3 if rng.random() < 0.25 else 4
                per_bar = 2 if (n_ch >= 4 and meter == 4 and rng.random() < 0.2) else 1
                bpm = float(np.round(rng.uniform(70, 160)))
                loop_bars = max(1, n_ch // per_bar)
                n_bars = loop_bars * int(np.ceil(24 / loop_bars))
                spec = dict(
                    tonic_pc=tonic, mode=mode, scale=scale, family=family, progression=prog,
                    split=split, bpm=bpm, meter=meter, chords_per_bar=per_bar, n_bars=n_bars,
                    programs={"chords": int(rng.choice(progs["chords"])),
                              "bass": int(rng.choice(progs["bass"])),
                              "lead": int(rng.choice(progs["lead"]))},
                    comping=str(rng.choice(COMPING)),
                    bass=bool(rng.random() < 0.8),
                    bass_style=str(rng.choice(("root", "root-fifth", "eighths", "approach"))),
                    bass_low=int(rng.choice((28, 40))),
                    lead=bool(rng.random() < 0.45),
                    drums=bool(rng.random() < 0.65), drum_style=int(rng.integers(3)),
                    ending=bool(rng.random() < 0.4),
                    pickup_beats=int(rng.integers(0, 2)),
                    seed=int(rng.integers(1 << 30)))
                spec["id"] = (f"kb_{PITCH_CLASSES[tonic].replace('#', 's')}{'m' if mode == 'minor' else ''}"
                              f"_{r:02d}_{family}")
                specs.append(spec)
    # drum-only tracks: no key
    for j in range(6):
        specs.append(dict(tonic_pc=None, mode=None, scale=None, family="drums-only", progression="",
                          split="test" if j % 2 else "dev", bpm=float(90 + 12 * j), meter=4 if j % 3 else 3,
                          chords_per_bar=1, n_bars=16, programs={}, comping="", bass=False, bass_low=0,
                          bass_style="", lead=False, drums=True, drum_style=j % 3, ending=False,
                          pickup_beats=0, seed=900 + j, id=f"kb_drums_{j:02d}"))
    return specs


def _drum_events(spec) -> tuple[list[tuple], int, float]:
    tpq, meter = 480, spec["meter"]
    rng = np.random.default_rng(spec["seed"])
    ev = []
    for bi in range(spec["n_bars"]):
        t = bi * meter * tpq
        for q in ((0, 2) if meter == 4 else (0,)):
            ev += [(t + q * tpq, "on", 9, 36, 100), (t + q * tpq + 60, "off", 9, 36, 0)]
        for q in ((1, 3) if meter == 4 else (1, 2)):
            ev += [(t + q * tpq, "on", 9, 38, 90), (t + q * tpq + 60, "off", 9, 38, 0)]
        for e in range(meter * 2):
            v = int(70 + rng.integers(-8, 8))
            ev += [(t + e * tpq // 2, "on", 9, 42, v), (t + e * tpq // 2 + 40, "off", 9, 42, 0)]
        if bi % 4 == 0:
            ev += [(t, "on", 9, 49, 90), (t + 200, "off", 9, 49, 0)]
    return ev, tpq, (spec["n_bars"] * meter + 2) * 60.0 / spec["bpm"]


def build_one(spec: dict, out: Path, fluidsynth: str, soundfont: str) -> dict:
    rng = np.random.default_rng(spec["seed"])
    if spec["tonic_pc"] is None:
        ev, tpq, secs = _drum_events(spec)
    else:
        ev, tpq, secs = arrange(spec, rng)
    mid = out / f"{spec['id']}.mid"
    wav = out / f"{spec['id']}.wav"
    write_midi(mid, ev, tpq, spec["bpm"], spec["meter"])
    tmp = out / f".{spec['id']}.tmp.wav"
    subprocess.run([fluidsynth, "-ni", "-q", "-g", "0.5", "-r", str(RENDER_SR), "-F", str(tmp),
                    soundfont, str(mid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    os.replace(tmp, wav)
    key = None
    if spec["tonic_pc"] is not None:
        name = PITCH_CLASSES[spec["tonic_pc"]]
        key = {"tonic": name, "tonic_pc": spec["tonic_pc"], "mode": spec["mode"],
               "label": f"{name} {spec['mode']}"}
    truth = {k: v for k, v in spec.items() if k not in ("tonic_pc", "mode")}
    truth.update(audio=wav.name, midi=mid.name, key=key, duration_s=round(secs, 3),
                 builder_version=BUILDER_VERSION, renderer="fluidsynth + FluidR3_GM",
                 meter=f"{spec['meter']}/4")
    tmpj = out / f".{spec['id']}.json.tmp"
    tmpj.write_text(json.dumps(truth, indent=1))
    os.replace(tmpj, out / f"{spec['id']}.json")
    return truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/looplab-keybench")
    ap.add_argument("--per-key", type=int, default=9, help="tracks per key (24 keys)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--soundfont", default=SOUNDFONT)
    args = ap.parse_args(argv)
    fluidsynth = shutil.which("fluidsynth")
    if not fluidsynth or not Path(args.soundfont).exists():
        print("needs fluidsynth and a GM soundfont: apt-get install -y fluidsynth fluid-soundfont-gm",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan(args.per_key)
    t0 = time.time()
    todo = [s for s in specs if not (out / f"{s['id']}.json").exists()]
    print(f"{len(specs)} tracks planned, {len(todo)} to render into {out}")
    with ThreadPoolExecutor(args.jobs) as pool:
        for i, _ in enumerate(pool.map(lambda s: build_one(s, out, fluidsynth, args.soundfont), todo)):
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(todo)}  {time.time() - t0:.0f} s", flush=True)
    rows = [json.loads((out / f"{s['id']}.json").read_text()) for s in specs]
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "key", "family", "scale", "progression", "bpm", "meter", "drums",
                    "bass", "lead", "audio"])
        for r in rows:
            w.writerow([r["id"], r["split"], r["key"]["label"] if r["key"] else "", r["family"],
                        r["scale"] or "", r["progression"], r["bpm"], r["meter"], r["drums"],
                        r["bass"], r["lead"], r["audio"]])
    (out / "BUILD_INFO.json").write_text(json.dumps(
        {"builder_version": BUILDER_VERSION, "n_tracks": len(rows), "per_key": args.per_key,
         "soundfont": args.soundfont, "render_sr": RENDER_SR,
         "seconds": round(time.time() - t0, 1)}, indent=1))
    print(f"done: {len(rows)} tracks in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
