"""Benchmark: tempo, beats, bar lines and loop cuts on real music (the realbench set).

The realbench set (``/work/shared/realbench/README.md``) holds renders of real
songs (LMMS demo projects, a Hydrogen drum-machine song, MMA General-MIDI
grooves in 4/4 and 3/4, 72-200 BPM) with their exact beat and bar grid. This
script measures, per track and in total, in the same run:

* **LoopLab** (``--mode rhythm``, the default): the rhythm stage alone
  (frame features + :func:`engine.rhythm.analyse_rhythm`) and every loop
  candidate it allows (:func:`engine.candidates.generate_candidates`, 1, 2, 4
  and 8 bars);
* **LoopLab** (``--mode extract``): the whole ``extract`` pipeline (top 5 loops
  per track, default flags), scored on the exported loops' metadata as
  ``score_extract.py`` does;
* **librosa**: plain ``librosa.beat.beat_track`` with the first beat taken as
  bar one and 4 beats per bar (the earlier implementation's approach), its
  candidates cut from the tracked beats.

Printed figures (tolerance 30 ms, tempo 2 %):

``acc1`` / ``acc2``
    share of tracks whose tempo is within 2 % of the truth (acc2 also
    accepts x2, x1/2, x3, x1/3);
``beats``
    F-measure of the beats against the true beats (content part only);
``dbeats``
    F-measure of the downbeats against the true downbeats;
``onbar``
    share of loops (candidates, or exported loops in extract mode) starting
    within 30 ms of a true downbeat;
``whole``
    share of loops whose length is a whole number of true bars within 30 ms;
``meter``
    share of tracks cut with the true beats per bar;
``s/track``
    seconds per track (rhythm mode: frame features + rhythm; extract mode:
    the whole pipeline).

Usage::

    python bench/bench_rhythm_real.py [DEVSET] [--mode rhythm|extract] [--only ID,ID]
        [--json out.json] [--no_baseline] [--beats_per_bar N]

``DEVSET`` defaults to ``$LOOPLAB_DEVSET`` or ``/tmp/looplab-devset``; the
script exits with a message (status 0) when the set is not built.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.audio import load_mono  # noqa: E402
from engine.candidates import generate_candidates  # noqa: E402
from engine.config import AnalysisConfig, PipelineConfig, RankConfig  # noqa: E402
from engine.features import compute_track_features  # noqa: E402
from engine.rhythm import analyse_rhythm  # noqa: E402

SR = 22050
TOL = 0.030
TEMPO_TOL = 0.02
BARS = (1, 2, 4, 8)


def load_truth(devset: Path) -> list[dict]:
    gt = devset / "gt" if (devset / "gt").is_dir() else devset
    out = []
    for p in sorted(gt.glob("*.json")):
        try:
            g = json.loads(p.read_text())
        except ValueError:
            continue
        if not isinstance(g, dict) or "downbeats_s" not in g or g.get("tempo_changes"):
            continue
        wav = p.with_suffix(".wav")
        if wav.is_file():
            g["_wav"] = str(wav)
            g["_id"] = p.stem
            out.append(g)
    return out


def f_measure(est, ref, tol=TOL) -> float:
    """Beat-tracking F-measure: one-to-one matches within ``tol``."""
    est, ref = np.sort(np.asarray(est, float)), np.sort(np.asarray(ref, float))
    if len(est) == 0 or len(ref) == 0:
        return 0.0
    used = np.zeros(len(est), bool)
    hits = 0
    for r in ref:
        j = np.searchsorted(est, r)
        best, bj = tol + 1e-9, -1
        for k in (j - 1, j):
            if 0 <= k < len(est) and not used[k] and abs(est[k] - r) <= best:
                best, bj = abs(est[k] - r), k
        if bj >= 0:
            used[bj] = True
            hits += 1
    p, r = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)


def loop_scores(starts, ends, g) -> tuple[int, int, int]:
    """(n, on bar line, whole bars) of loops against the truth."""
    bpb = max(g["beat_in_bar"])
    bar = bpb * 60.0 / float(g["bpm"])
    db = np.asarray(g["downbeats_s"], float)
    on = whole = 0
    for s, e in zip(starts, ends):
        on += bool(np.min(np.abs(db - s)) <= TOL)
        n = round((e - s) / bar)
        whole += bool(n >= 1 and abs((e - s) - n * bar) <= TOL)
    return len(starts), on, whole


def content_mask(times, g):
    end = float(g.get("content_end_s") or g.get("duration_s") or 1e9)
    return (np.asarray(times) >= -TOL) & (np.asarray(times) <= end + TOL)


def truth_in_content(g):
    end = float(g.get("content_end_s") or 1e9)
    b = np.asarray(g["beats_s"], float)
    d = np.asarray(g["downbeats_s"], float)
    return b[b <= end], d[d <= end]


def score_track(g, bpm, beats, downbeats, starts, ends, bpb, seconds) -> dict:
    ratio = bpm / float(g["bpm"])
    acc1 = abs(ratio - 1) <= TEMPO_TOL
    acc2 = any(abs(ratio / k - 1) <= TEMPO_TOL for k in (1, 2, 0.5, 3, 1 / 3))
    tb, td = truth_in_content(g)
    beats, downbeats = np.asarray(beats), np.asarray(downbeats)
    n, on, whole = loop_scores(starts, ends, g)
    return {"id": g["_id"], "gt_bpm": float(g["bpm"]), "gt_bpb": max(g["beat_in_bar"]),
            "bpm": round(float(bpm), 3), "ratio": round(ratio, 4), "acc1": acc1, "acc2": acc2,
            "bpb": int(bpb), "meter_ok": int(bpb) == max(g["beat_in_bar"]),
            "beats": f_measure(beats[content_mask(beats, g)], tb),
            "dbeats": f_measure(downbeats[content_mask(downbeats, g)], td),
            "n_loops": n, "n_onbar": on, "n_whole": whole, "seconds": seconds}


def run_looplab_rhythm(g, cfg: AnalysisConfig) -> dict:
    y, _ = load_mono(g["_wav"], cfg.sr)
    t0 = time.perf_counter()
    tf, od = compute_track_features(y, cfg.sr, cfg)
    grid = analyse_rhythm(y, cfg.sr, cfg, onsets=od, chroma=tf.chroma, chroma_fps=tf.fps,
                          mel=tf.mel)
    dt = time.perf_counter() - t0
    cands = generate_candidates(grid, len(y) / cfg.sr, BARS)
    keep = content_mask(cands["start_time"].to_numpy(), g)
    r = score_track(g, grid.bpm, grid.beats, grid.downbeats,
                    cands["start_time"].to_numpy()[keep], cands["end_time"].to_numpy()[keep],
                    grid.beats_per_bar, dt)
    r.update(tempo_conf=round(grid.tempo_confidence, 3), bar_conf=round(grid.bar_confidence, 3))
    return r


def run_librosa(g) -> dict:
    import librosa

    y, _ = load_mono(g["_wav"], SR)
    t0 = time.perf_counter()
    tempo, frames = librosa.beat.beat_track(y=y, sr=SR, hop_length=512)
    beats = librosa.frames_to_time(frames, sr=SR, hop_length=512)
    dt = time.perf_counter() - t0
    bpm = float(np.atleast_1d(tempo)[0])
    downbeats = beats[::4]
    starts, ends = [], []
    for n in BARS:
        for i in range(0, len(beats) - 4 * n, 4):
            starts.append(beats[i])
            ends.append(beats[i + 4 * n])
    starts, ends = np.asarray(starts), np.asarray(ends)
    keep = content_mask(starts, g)
    return score_track(g, bpm, beats, downbeats, starts[keep], ends[keep], 4, dt)


def run_looplab_extract(truths, cfg: AnalysisConfig) -> list[dict]:
    import pandas as pd

    from engine.pipeline import run_batch

    out = []
    with tempfile.TemporaryDirectory(prefix="rhythm-bench-") as tmp:
        pcfg = PipelineConfig(analysis=cfg, rank=RankConfig(top_k=5), n_jobs=1, use_cache=False)
        for g in truths:
            res = run_batch([Path(g["_wav"])], Path(tmp) / g["_id"], pcfg)
            r0 = res.results[0]
            if not r0.ok:
                print(f"  {g['_id']}: FAILED {r0.error}")
                out.append(score_track(g, 0.0, [], [], [], [], 0, r0.timings.get("total", 0)) |
                           {"ratio": 0, "acc1": False, "acc2": False})
                continue
            meta: pd.DataFrame = r0.metadata
            bpm = float(np.median(meta["bpm"]))
            bpb = int(np.median(meta["beats_per_bar"]))
            r = score_track(g, bpm, [], [], meta["start_time"].to_numpy(),
                            meta["end_time"].to_numpy(), bpb, r0.timings.get("total", 0.0))
            r["beats"] = r["dbeats"] = float("nan")        # not measured from exported loops
            out.append(r)
    return out


def totals(rows: list[dict]) -> dict:
    n = len(rows)
    nl = sum(r["n_loops"] for r in rows) or 1
    return {"tracks": n, "acc1": sum(r["acc1"] for r in rows) / n,
            "acc2": sum(r["acc2"] for r in rows) / n,
            "meter": sum(r["meter_ok"] for r in rows) / n,
            "beats": float(np.mean([r["beats"] for r in rows])),   # nan in extract mode
            "dbeats": float(np.mean([r["dbeats"] for r in rows])),
            "onbar": sum(r["n_onbar"] for r in rows) / nl,
            "whole": sum(r["n_whole"] for r in rows) / nl,
            "s_per_track": float(np.mean([r["seconds"] for r in rows]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", nargs="?", default=os.environ.get("LOOPLAB_DEVSET", "/tmp/looplab-devset"))
    ap.add_argument("--mode", choices=("rhythm", "extract"), default="rhythm")
    ap.add_argument("--only", default="", help="comma-separated track ids (substrings)")
    ap.add_argument("--json", default=None, help="write per-track results to this file")
    ap.add_argument("--no_baseline", action="store_true", help="skip the librosa baseline")
    ap.add_argument("--beats_per_bar", type=int, default=None,
                    help="force the meter (default: the engine's default)")
    args = ap.parse_args()

    devset = Path(args.devset)
    if not (devset / "gt" / "manifest.csv").is_file() and not (devset / "manifest.csv").is_file():
        print(f"realbench set not built at {devset} (no gt/manifest.csv): build it with "
              f"shared/realbench/build_devset.sh, or pass its folder / set LOOPLAB_DEVSET. Skipping.")
        return 0
    truths = load_truth(devset)
    if args.only:
        keys = [k for k in args.only.split(",") if k]
        truths = [g for g in truths if any(k in g["_id"] for k in keys)]
    if not truths:
        print(f"no usable tracks in {devset}")
        return 0
    cfg = AnalysisConfig() if args.beats_per_bar is None else AnalysisConfig(beats_per_bar=args.beats_per_bar)

    import librosa
    librosa.beat.beat_track(y=np.random.default_rng(0).standard_normal(SR * 4).astype(np.float32), sr=SR)

    ours, base = [], []
    if args.mode == "extract":
        ours = run_looplab_extract(truths, cfg)
    hdr = (f"{'track':28s} {'gt':>6s} {'bpm':>7s} {'b':>1s} {'beats':>5s} {'dbeat':>5s} "
           f"{'onbar':>5s} {'whole':>5s} {'tconf':>5s} {'bconf':>5s} {'s':>5s} | "
           f"{'lr bpm':>7s} {'dbeat':>5s} {'onbar':>5s} {'whole':>5s}")
    print(f"LoopLab ({args.mode} mode) | librosa beat_track, first beat = bar one")
    print(hdr)
    print("-" * len(hdr))
    for i, g in enumerate(truths):
        r = ours[i] if args.mode == "extract" else run_looplab_rhythm(g, cfg)
        if args.mode == "rhythm":
            ours.append(r)
        b = None if args.no_baseline else run_librosa(g)
        if b:
            base.append(b)
        mark = "" if r["acc1"] else ("~" if r["acc2"] else "x")
        nl = max(r["n_loops"], 1)
        line = (f"{g['_id'][:28]:28s} {r['gt_bpm']:6.1f} {r['bpm']:7.2f}{mark:1s}{r['bpb']:1d} "
                f"{r['beats']:5.2f} {r['dbeats']:5.2f} {r['n_onbar'] / nl:5.2f} "
                f"{r['n_whole'] / nl:5.2f} {r.get('tempo_conf', float('nan')):5.2f} "
                f"{r.get('bar_conf', float('nan')):5.2f} {r['seconds']:5.2f} |")
        if b:
            nb = max(b["n_loops"], 1)
            line += (f" {b['bpm']:7.2f} {b['dbeats']:5.2f} {b['n_onbar'] / nb:5.2f} "
                     f"{b['n_whole'] / nb:5.2f}")
        print(line, flush=True)
    print("-" * len(hdr))
    to = totals(ours)
    print(f"LoopLab ({args.mode}): tempo Acc1 {to['acc1']:.3f}  Acc2 {to['acc2']:.3f}  meter "
          f"{to['meter']:.3f}  beats F {to['beats']:.3f}  downbeats F {to['dbeats']:.3f}  "
          f"loops on bar line {to['onbar']:.3f}  whole-bar loops {to['whole']:.3f}  "
          f"{to['s_per_track']:.2f} s/track")
    if base:
        tb = totals(base)
        print(f"librosa beat_track:  tempo Acc1 {tb['acc1']:.3f}  Acc2 {tb['acc2']:.3f}  meter "
              f"{tb['meter']:.3f}  beats F {tb['beats']:.3f}  downbeats F {tb['dbeats']:.3f}  "
              f"loops on bar line {tb['onbar']:.3f}  whole-bar loops {tb['whole']:.3f}  "
              f"{tb['s_per_track']:.2f} s/track")
        print(f"ratio LoopLab/librosa: Acc1 x{to['acc1'] / max(tb['acc1'], 1e-9):.2f}, on bar line "
              f"x{to['onbar'] / max(tb['onbar'], 1e-9):.2f}, time x{to['s_per_track'] / max(tb['s_per_track'], 1e-9):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": args.mode, "looplab": ours, "librosa": base,
                                               "totals": {"looplab": to, "librosa": totals(base) if base else None}},
                                              indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
