#!/usr/bin/env python3
"""Build the tempo-octave model (``engine/models/tempo_octave.json``).

Training data (all with exact tempo):

* **MMA grooves** other than the ones in the realbench dev and holdout sets,
  each rendered once at the usual tempo of its style (slow ballads at 64-84
  BPM, quicksteps and bluegrass at 190-210, waltzes in 3/4) over one of the
  realbench builder's 32-bar chord charts, by ``mma`` and ``fluidsynth``
  (FluidR3_GM) as the realbench builder does;
* the **realbench dev set** (``/tmp/looplab-devset``), for the LMMS and
  Hydrogen kinds MMA does not cover.

Each track gives two pairs of metrical levels, (truth/2, truth) and (truth,
2 x truth), labelled with which one is the beat; the features are
:func:`engine.tempo_octave.pair_features`. The model is a standardised L2
logistic regression. The script prints 5-fold cross-validated tempo accuracy
(folds by track) of the engine's estimate before and after the resolver, and
the same on ``--holdout`` (never trained on) when given.

Usage::

    python bench/train_tempo_octave.py [--work /tmp/looplab-octave-train]
        [--devset /tmp/looplab-devset] [--holdout /tmp/looplab-holdout]
        [--C 0.2] [--out engine/models/tempo_octave.json] [--no_write]

Needs ``mma``, ``fluidsynth`` and the FluidR3_GM soundfont (the realbench
builder's tools); renders are cached in ``--work`` (about 3 minutes the first
time on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import tempo as tempomod  # noqa: E402
from engine import tempo_octave as oct_  # noqa: E402
from engine.audio import load_mono  # noqa: E402
from engine.config import AnalysisConfig  # noqa: E402
from engine.features import compute_track_features  # noqa: E402
from engine.rhythm import TEMPO_WINDOW  # noqa: E402

MMA_LIB = "/usr/share/mma/lib"
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
# the realbench builder's 32-bar charts (one chord per bar) and final chords
CHARTS = {
    "pop_g": ["G", "D", "Em", "C", "G", "D", "C", "C", "G", "D", "Em", "C", "Am", "D", "G", "G",
              "Em", "C", "G", "D", "Em", "C", "D", "D", "C", "D", "Bm", "Em", "Am", "D7", "G", "G"],
    "minor_am": ["Am", "F", "C", "G", "Am", "F", "E", "E", "Am", "Dm", "G", "C", "F", "Dm", "E7", "E7",
                 "Dm", "Am", "Dm", "Am", "F", "G", "Am", "Am", "F", "G", "Em", "Am", "Dm", "E7", "Am", "Am"],
    "blues_f": ["F7", "Bb7", "F7", "F7", "Bb7", "Bb7", "F7", "F7", "C7", "Bb7", "F7", "C7",
                "F7", "Bb7", "F7", "F7", "Bb7", "Bb7", "F7", "F7", "C7", "Bb7", "F7", "C7",
                "Dm7", "G7", "Gm7", "C7", "Am7", "D7", "Gm7", "C7"],
}
CHART_END = {"pop_g": "G", "minor_am": "Am", "blues_f": "F7"}

# (library file, tempo, beats per bar): the usual tempo of each style; none of
# these grooves is in the realbench dev or holdout sets
GROOVES = [(f, t, 4) for f, t in [
    ("60srock", 128), ("basicrock", 120), ("bubblerock", 120), ("folkrock", 112), ("jazzrock", 126),
    ("ballad", 70), ("pianoballad", 66), ("guitarballad", 76), ("stringballad", 64), ("folkballad", 84),
    ("rb-ballad", 68), ("slowcountry", 78), ("slowjazz", 72), ("slowbroadway", 84), ("slowspiritual", 66),
    ("slowbolero", 80), ("spiritual", 96), ("popspiritual", 100), ("fastblues", 168), ("fastswing", 208),
    ("quickstep", 200), ("dixie", 184), ("twist", 156), ("jive", 172), ("zydeco", 148),
    ("bluegrass", 192), ("merengue", 140), ("salsa", 186), ("mambo", 192), ("son", 104),
    ("rhumba", 116), ("jazzrhumba", 108), ("chacha", 120), ("beguine", 118), ("bolero", 98),
    ("tango", 122), ("lighttango", 112), ("calypso", 112), ("afro-cuban", 108), ("strut", 96),
    ("dsoul", 104), ("lfusion", 110), ("modernjazz", 144), ("mellowjazz", 96), ("nitejazz", 88),
    ("jazzcombo", 156), ("jazzguitar", 132), ("easyswing", 112), ("westernswing", 152),
    ("countryblues", 98), ("hillcountry", 104), ("bluefolk", 92), ("folk", 116), ("folkyjazz", 124),
    ("showtune", 120), ("broadway", 126), ("softshoe", 108), ("ragtime", 100), ("march", 116),
    ("bwmarch", 112), ("dixiemarch", 120), ("desert", 100), ("cubanguitar", 110), ("blues", 96),
    ("boggiewoggie", 150), ("bigband", 160), ("foxtrot", 124), ("evansish", 92),
    ("descendingjazz", 120)]] + [
    ("fastwaltz", 190, 3), ("latinwaltz", 140, 3), ("rockwaltz", 128, 3), ("broadwaywaltz", 120, 3),
    ("modernjazzwaltz", 150, 3), ("fastjazzwaltz", 200, 3), ("arpeggiowaltz", 96, 3)]

CFG = AnalysisConfig()


def _features(y: np.ndarray, bpm: float, out: Path) -> None:
    tf, od = compute_track_features(y, CFG.sr, CFG)
    np.savez(out, env=od.envelope, low=od.low, mid=od.mid, chroma=tf.chroma,
             chroma_fps=tf.fps, fps=od.fps, bpm=bpm)


def render_grooves(work: Path) -> list[Path]:
    """Render every groove of :data:`GROOVES` (cached) and return the feature files."""
    (work / "mma").mkdir(parents=True, exist_ok=True)
    files = []
    for i, (lib, tempo, bpb) in enumerate(GROOVES):
        tid = f"{lib.replace('-', '')}_{tempo}"
        out = work / f"{tid}.npz"
        files.append(out)
        if out.exists():
            continue
        text = open(f"{MMA_LIB}/stdlib/{lib}.mma", errors="replace").read()
        m = re.search(r"^\s*DefGroove\s+(\S+)", text, re.M | re.I)
        if not m:
            raise RuntimeError(f"{lib}.mma defines no groove")
        chart = list(CHARTS)[i % 3]
        lines = [f"RndSeed {5000 + i}", f"Tempo {tempo}", f"Use stdlib/{lib}", f"Groove {m.group(1)}",
                 f"TimeSig {bpb} 4"]
        lines += [f"{n} {c}" for n, c in enumerate(CHARTS[chart], 1)]
        lines.append(f"{len(CHARTS[chart]) + 1} {CHART_END[chart]}")
        src = work / "mma" / f"{tid}.mma"
        mid, wav = src.with_suffix(".mid"), src.with_suffix(".wav")
        src.write_text("\n".join(lines) + "\n")
        subprocess.run(["mma", "-f", str(mid), str(src)], cwd=src.parent, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(CFG.sr), "-T", "wav",
                        "-F", str(wav), SF2, str(mid)], check=True, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        y, _ = load_mono(str(wav), CFG.sr)
        bar = bpb * 60.0 / tempo            # fluidsynth rings on: keep the music + 2 s
        y = y[: int(min(len(y), ((len(CHARTS[chart]) + 1) * bar + 2.0) * CFG.sr))]
        _features(y, float(tempo), out)
        wav.unlink()
        print("rendered", tid, flush=True)
    return files


def realbench_features(root: Path, work: Path) -> list[Path]:
    """Feature files of a realbench set's constant-tempo tracks (cached)."""
    work.mkdir(parents=True, exist_ok=True)
    files = []
    for j in sorted((root / "gt").glob("*.json")):
        g = json.loads(j.read_text())
        wav = j.with_suffix(".wav")
        if g.get("tempo_changes") or not g.get("bpm") or not wav.exists():
            continue
        out = work / f"{j.stem}.npz"
        files.append(out)
        if not out.exists():
            y, _ = load_mono(str(wav), CFG.sr)
            _features(y, float(g["bpm"]), out)
            print("features", j.stem, flush=True)
    return files


def track_row(path: Path) -> dict:
    """Engine estimate, the cues at the truth's octaves and at the estimate's."""
    z = np.load(path)
    fps, env, low, mid = float(z["fps"]), z["env"], z["low"], z["mid"]
    m = int(TEMPO_WINDOW * fps)
    lo = 0 if len(env) <= m else (len(env) - m) // 2
    env, low, mid = env[lo:lo + m], low[lo:lo + m], mid[lo:lo + m]
    te = tempomod.estimate_tempo(env, low, mid, fps, CFG.min_bpm, CFG.max_bpm)
    est, ctx = te.bpm, te.context
    ci = oct_.chord_change_interval(z["chroma"], float(z["chroma_fps"]))
    gt = float(z["bpm"])
    return {"id": path.stem, "gt": gt, "est": est, "ci": ci,
            "truth": {k: oct_.level_cues(ctx, gt * k) for k in (0.5, 1.0, 2.0)},
            "at_est": {k: oct_.level_cues(ctx, est * k) for k in (0.5, 1.0, 2.0)}}


def pairs(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    X, y = [], []
    for r in rows:
        L = r["truth"]
        X += [oct_.pair_features(L[0.5], L[1.0], r["ci"]), oct_.pair_features(L[1.0], L[2.0], r["ci"])]
        y += [1, 0]
    return np.array(X), np.array(y)


def choose(model: oct_.OctaveModel, r: dict) -> float:
    """The resolver's decision from cached cues (same rule as resolve_octave)."""
    lo_b, hi_b = oct_.octave_range(CFG.min_bpm, CFG.max_bpm)
    L, e = r["at_est"], r["est"]
    if e / 2 >= lo_b and model.prob_upper(oct_.pair_features(L[0.5], L[1.0], r["ci"])) < 0.5:
        return e / 2
    if e * 2 <= hi_b and model.prob_upper(oct_.pair_features(L[1.0], L[2.0], r["ci"])) > 0.5:
        return e * 2
    return e


def ok(bpm: float, gt: float) -> bool:
    return abs(bpm / gt - 1.0) <= 0.02


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/looplab-octave-train")
    ap.add_argument("--devset", default=os.environ.get("LOOPLAB_DEVSET", "/tmp/looplab-devset"))
    ap.add_argument("--holdout", default=None)
    ap.add_argument("--C", type=float, default=0.2)
    ap.add_argument("--out", default=str(oct_.MODEL_PATH))
    ap.add_argument("--no_write", action="store_true")
    a = ap.parse_args(argv)
    work = Path(a.work)
    if not Path(a.devset, "gt").is_dir():
        print(f"realbench dev set not built at {a.devset} (see /work/shared/realbench/README.md)")
        return 1
    mma_rows = [track_row(p) for p in render_grooves(work / "mma_grooves")]
    dev_rows = [track_row(p) for p in realbench_features(Path(a.devset), work / "devset")]
    rows = mma_rows + dev_rows
    kind = ["mma"] * len(mma_rows) + ["dev"] * len(dev_rows)

    # 5-fold cross-validation by track
    order = np.random.default_rng(0).permutation(len(rows))
    cv_hit = np.zeros(len(rows), bool)
    for k in range(5):
        test = set(order[k::5].tolist())
        X, y = pairs([r for i, r in enumerate(rows) if i not in test])
        mdl = oct_.fit_model(X, y, a.C)
        for i in test:
            cv_hit[i] = ok(choose(mdl, rows[i]), rows[i]["gt"])
    report = {}
    for name in ("mma", "dev"):
        idx = [i for i, kd in enumerate(kind) if kd == name]
        before = sum(ok(rows[i]["est"], rows[i]["gt"]) for i in idx)
        after = int(cv_hit[idx].sum())
        misses = [f"{rows[i]['id']}" for i in idx if not cv_hit[i]]
        report[name] = {"tracks": len(idx), "acc1_before": round(before / len(idx), 3),
                        "acc1_after_cv": round(after / len(idx), 3),
                        "misses_cv": misses}
        print(f"{name:5s} {len(idx):3d} tracks  tempo Acc1 before {before / len(idx):.3f}  "
              f"after (5-fold CV) {after / len(idx):.3f}  misses: {report[name]['misses_cv']}")
    X, y = pairs(rows)
    model = oct_.fit_model(X, y, a.C, info={
        "built_by": "python bench/train_tempo_octave.py", "C": a.C,
        "tracks": {"mma_grooves": len(mma_rows), "realbench_dev": len(dev_rows)},
        "cv": report})
    if a.holdout and Path(a.holdout, "gt").is_dir():
        hold = [track_row(p) for p in realbench_features(Path(a.holdout), work / "holdout")]
        before = sum(ok(r["est"], r["gt"]) for r in hold)
        after = [r for r in hold if not ok(choose(model, r), r["gt"])]
        print(f"holdout {len(hold)} tracks (never trained on)  tempo Acc1 before {before / len(hold):.3f}"
              f"  after {1 - len(after) / len(hold):.3f}  misses: "
              f"{[(r['id'], r['gt'], round(choose(model, r), 1)) for r in after]}")
    print("weights:", dict(zip(oct_.FEATURES, np.round(model.coef, 2))))
    if not a.no_write:
        Path(a.out).write_text(json.dumps(model.to_json(), indent=1) + "\n")
        print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
