"""Refit engine.key.EVIDENCE_WEIGHTS from the GM key bench (dev split) and synthetic traps.

Not part of CI. Run from the repository root after build_keybench.py::

    python bench/keybench/fit_key_weights.py [/tmp/looplab-keybench]

How the shipped weights were obtained
-------------------------------------
Every key-bench track of the ``dev`` split (held-out ``test`` tracks are only
scored, never fitted), the synthetic 24-key set of tests/test_key.py and the
synthetic trap progressions in even-numbered keys give one row of evidence
terms per key (:func:`engine.key.key_evidence`). A conditional logit
(softmax over the 24 keys, L2 0.01 on standardised terms) is fitted by
L-BFGS; synthetic rows weigh 0.5. Each dev track also enters three more times
started one, two and three bars late, with total weight 0.15, so that the
opening terms do not decide alone when a track does not open on its tonic.
The script prints the weights (paste them into engine/key.py) and exact /
MIREX scores per split, as is and started late.

``--grid`` fits :data:`engine.key.GRID_EVIDENCE_WEIGHTS` instead: the same
rows plus the bar-grid terms (:func:`engine.key.bar_evidence`) measured on
the bar lines the pipeline's rhythm stage detects on each render (cached as
``<folder>/grids/<id>.npz``; the synthetic tracks use their true bar lines),
weights bounded at >= 0, started-late copies at total weight 0.15::

    python bench/keybench/fit_key_weights.py --grid [/tmp/looplab-keybench]
"""
from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from engine import key as K  # noqa: E402
from engine.synth import parse_key, synth_track  # noqa: E402

SR = 22050
TERMS = ("profile", "scale", "opening_chord", "opening_bass", "opening", "ending")
GRID_TERMS = ("profile", "opening_chord", "opening_bass", "opening", "ending", "scale_plain",
              "scale_modal", "bar_one", "phrase_one", "downbeat_bass", "cadence", "phrase_cadence",
              "bass_cadence", "leading")
LATE_WEIGHT = 0.15
TRAPS = ((("I", "V", "vi", "IV"), "major"), (("I", "V", "IV", "V"), "major"),
         (("ii", "V", "I", "I"), "major"), (("i", "bVI", "bIII", "bVII"), "minor"),
         (("I", "bVII", "IV", "I"), "major"), (("I", "IV"), "major"), (("i", "bVII"), "minor"),
         (("I", "V", "I", "V", "IV", "V", "I", "V"), "major"), (("i", "iv", "v", "i"), "minor"))
CONFIGS = ((96.0, "pad", ("drums", "bass", "chords")), (128.0, "organ", ("chords",)),
           (150.0, "pluck", ("bass", "chords")), (172.0, "pad", ("drums", "chords")),
           (118.0, "pluck", ("drums", "chords")), (138.0, "organ", ("bass", "chords")))
MIREX = {"exact": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2}


def terms(ch: K.Chroma, start_sec: float = 0.0, downbeats=None, names=TERMS) -> np.ndarray:
    """(24, len(names)) evidence of the chroma from ``start_sec`` on."""
    i = int(np.searchsorted(ch.times, start_sec))
    v = ch.values[:, i:].astype(np.float64)
    b = ch.bass[:, i:].astype(np.float64)
    act = ch.tonality[i:] * np.minimum(ch.energy[i:], 1.0)
    edges = K._edges(v, b, act, ch.frame_rate)
    bars = K.track_bars(ch, downbeats, i) if downbeats is not None else None
    ev = K.key_evidence(v.mean(axis=1), edges, presence=K.note_presence(v, act), bars=bars)
    return np.stack([ev.get(t, np.zeros(24)) for t in names], axis=1)


def detected_downbeats(folder: Path, meta: dict) -> np.ndarray:
    """The rhythm stage's bar lines for one render (cached under ``folder/grids``)."""
    cache = folder / "grids" / f"{meta['id']}.npz"
    if cache.exists():
        return np.load(cache)["downbeats"]
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_key import detected_downbeats as detect

    db = detect(folder / meta["audio"])
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, downbeats=db)
    return db


def classify(truth: int, est: int) -> str:
    tt, tm, et, em = truth % 12, truth // 12, est % 12, est // 12
    if est == truth:
        return "exact"
    if em == tm and (et - tt) % 12 == 7:
        return "fifth"
    if tm == 0 and em == 1 and (et - tt) % 12 == 9 or tm == 1 and em == 0 and (et - tt) % 12 == 3:
        return "relative"
    return "parallel" if et == tt else "other"


def rows(folder: Path, grid: bool = False):
    """(X, y, group, late, weight) rows (``grid``: with the bar-grid terms)."""
    names = GRID_TERMS if grid else TERMS
    hop = int(round(SR * K.KEY_HOP_SECONDS))
    out = []
    for jf in sorted(folder.glob("kb_*.json")):
        meta = json.loads(jf.read_text())
        if not meta.get("key"):
            continue
        y, sr = sf.read(str(folder / meta["audio"]), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        y = soxr.resample(y, sr, SR) if sr != SR else y
        ch = K.track_chroma(y, SR, hop_length=hop)
        tonic, mode = parse_key(meta["key"]["label"])
        label = tonic + 12 * (mode == "minor")
        bpm, meter = float(meta["bpm"]), int(str(meta["meter"])[0])
        t0, bar = meta["pickup_beats"] * 60.0 / bpm, meter * 60.0 / bpm
        db = detected_downbeats(folder, meta) if grid else None
        out.append((terms(ch, 0.0, db, names), label, meta["split"], False, 1.0))
        for k in (1, 2, 3):
            out.append((terms(ch, t0 + k * bar - (0.05 if grid else 0.0), db, names), label, meta["split"], True,
                        LATE_WEIGHT / 3))
    i = 0
    for mode in ("major", "minor"):                   # tests/test_key.py's 24-key set
        for tonic in range(12):
            for _rep in range(2):
                bpm, timbre, inst = CONFIGS[i % 6]
                tr = synth_track(bpm, n_bars=8, section_bars=4, key=(tonic, mode), timbre=timbre,
                                 instruments=inst, sr=SR, stereo=False, seed=i)
                out.append((terms(K.track_chroma(tr.audio[:, 0], SR, hop_length=hop), 0.0,
                                  tr.truth.downbeats if grid else None, names),
                            tonic + 12 * (mode == "minor"), "synthetic", False, 0.5))
                i += 1
    i = 0
    for prog, mode in TRAPS:
        for tonic in range(12):
            bpm, timbre, inst = CONFIGS[i % 6]
            tr = synth_track(bpm, n_bars=8, key=(tonic, mode), timbre=timbre, instruments=inst,
                             progression=prog, sr=SR, stereo=False, seed=100 + i)
            group = "trap-fit" if tonic % 2 == 0 else "trap-check"
            out.append((terms(K.track_chroma(tr.audio[:, 0], SR, hop_length=hop), 0.0,
                              tr.truth.downbeats if grid else None, names),
                        tonic + 12 * (mode == "minor"), group, False, 0.5))
            i += 1
    return out


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    grid = "--grid" in args
    args = [a for a in args if a != "--grid"]
    if "--harmonic-discount" in args:             # try another engine.key.HARMONIC_DISCOUNT
        i = args.index("--harmonic-discount")
        K.HARMONIC_DISCOUNT = float(args[i + 1])
        del args[i:i + 2]
        print(f"HARMONIC_DISCOUNT = {K.HARMONIC_DISCOUNT}")
    folder = Path((args or ["/tmp/looplab-keybench"])[0])
    if not (folder / "BUILD_INFO.json").exists():
        print(f"{folder} is not built: python bench/keybench/build_keybench.py {folder}")
        return 2
    names = GRID_TERMS if grid else TERMS
    data = rows(folder, grid)
    X = np.array([r[0] for r in data])
    y = np.array([r[1] for r in data])
    group = np.array([r[2] for r in data])
    late = np.array([r[3] for r in data])
    weight = np.array([r[4] for r in data])
    sd = X.reshape(-1, X.shape[2]).std(axis=0)
    sd[sd == 0] = 1.0
    Xs = X / sd
    fit = np.isin(group, ("dev", "synthetic", "trap-fit"))

    def nll(w):
        s = Xs[fit] @ w
        s = s - s.max(axis=1, keepdims=True)
        lp = s[np.arange(fit.sum()), y[fit]] - np.log(np.exp(s).sum(axis=1))
        return -(lp * weight[fit]).sum() + 0.01 * (w ** 2).sum()

    bounds = [(0.0, None)] * len(names) if grid else None
    w = minimize(nll, np.ones(len(names)), method="L-BFGS-B", bounds=bounds).x / sd
    print(("GRID_EVIDENCE_WEIGHTS" if grid else "EVIDENCE_WEIGHTS") + " = {"
          + ", ".join(f'"{t}": {v:.2f}' for t, v in zip(names, w) if not grid or v > 0) + "}")
    for g in ("dev", "test", "synthetic", "trap-fit", "trap-check"):
        for is_late in (False, True):
            m = (group == g) & (late == is_late)
            if not m.any():
                continue
            cls = [classify(t, int(e)) for t, e in zip(y[m], (X[m] @ w).argmax(axis=1))]
            c = collections.Counter(cls)
            major = y[m] < 12
            up = sum(1 for x, mj in zip(cls, major) if x == "fifth" and mj)
            print(f"  {g:<10} {'started late' if is_late else 'as rendered':<12} n={len(cls):>4} "
                  f"exact {c['exact'] / len(cls):.3f} MIREX {np.mean([MIREX.get(x, 0) for x in cls]):.3f}"
                  f"  fifth-up {up}/{int(major.sum())} majors"
                  f"  ({', '.join(f'{k} {v}' for k, v in sorted(c.items()) if k != 'exact')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
