"""Loop-ranking benchmark: the shipped model against the heuristic, the old composite and random.

Held-out data only:

* generated tracks with random arrangements, seeds from ``BENCH_SEED_BASE``
  (training uses ``TRAIN_SEED_BASE``...: disjoint);
* the realbench tracks in ``engine.ranker.HELD_OUT_REALBENCH`` (the shipped
  model never saw them), when the dev set is built.

For each set, candidates are cut on the engine's own grid (what ``extract``
does) and on the true grid (ranking quality apart from rhythm errors). Each
ranker's distinct top-5 is scored per track against ground-truth labels
(:mod:`engine.loop_truth`), then averaged. The product acceptance figure is
the share of top-5 loops that stay inside one arrangement section on the
LMMS (DAW) renders.

    python bench/bench_ranker.py [--n_synth 30] [--realbench /tmp/looplab-devset]
           [--model engine/models/loop_ranker.ubj] [--json out.json]
    python bench/bench_ranker.py --n_synth 0 --realbench /tmp/looplab-holdout --all_tracks
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-bench-ranker")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from engine.cache import DiskCache  # noqa: E402
from engine.config import AnalysisConfig  # noqa: E402
from engine.evaluation import (engine_grid_rows, format_table, pooled_in_section,  # noqa: E402
                               pooled_in_section_interval,
                               score_table, truth_grid_rows)
from engine.loop_truth import truth_from_synth  # noqa: E402
from engine.ranker import (BENCH_SEED_BASE, DEFAULT_MODEL_PATH, HELD_OUT_REALBENCH,  # noqa: E402
                           realbench_sources)
from engine.scoring import LoopScorer  # noqa: E402
from engine.synth import random_arranged_track  # noqa: E402


def synth_rows(n: int, work: Path, cache) -> dict:
    cfg = AnalysisConfig()
    eng, tru = [], []
    for i in range(n):
        seed = BENCH_SEED_BASE + i
        tr = random_arranged_track(seed, sr=22050)
        tid = f"bench_{seed}"
        path = tr.write(work / f"{tid}.wav", subtype="FLOAT")
        truth = truth_from_synth(tr.truth, tid)
        try:
            rows, _ = engine_grid_rows(path, truth, cfg, cache)
            rows["group"] = tid
            eng.append(rows)
        except Exception as exc:  # noqa: BLE001
            print(f"  engine grid failed on {tid}: {exc}")
        y = tr.audio.mean(axis=1).astype(np.float32)
        rows = truth_grid_rows(y, 22050, truth, cfg.bars)
        rows["group"] = tid
        tru.append(rows)
    return {"engine grid": pd.concat(eng, ignore_index=True),
            "true grid": pd.concat(tru, ignore_index=True)}


def realbench_rows(folder, ids, cache) -> dict:
    from engine.audio import load_mono

    cfg = AnalysisConfig()
    eng, tru = [], []
    for src in realbench_sources(folder, include=ids):
        y, truth, _ = src.load(cfg.sr)
        try:
            rows, _ = engine_grid_rows(src.path, truth, cfg, cache)
            rows["group"], rows["source"] = src.track_id, truth.source
            eng.append(rows)
        except Exception as exc:  # noqa: BLE001
            print(f"  engine grid failed on {src.track_id}: {exc}")
        rows = truth_grid_rows(y, cfg.sr, truth, cfg.bars)
        rows["group"], rows["source"] = src.track_id, truth.source
        tru.append(rows)
    return {"engine grid": pd.concat(eng, ignore_index=True),
            "true grid": pd.concat(tru, ignore_index=True)}


def top_lengths(rows: pd.DataFrame, col: str, k: int = 5) -> dict:
    """How many of the distinct top-k loops (over all tracks) have each length in bars."""
    from engine.candidates import select_distinct

    counts: dict = {}
    for _, t in rows.groupby("group"):
        for b in select_distinct(t, col, k)["bars"]:
            counts[int(b)] = counts.get(int(b), 0) + 1
    return dict(sorted(counts.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n_synth", type=int, default=30)
    ap.add_argument("--realbench", default="/tmp/looplab-devset")
    ap.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    ap.add_argument("--cache_dir", default="/tmp/bench-ranker-cache",
                    help="analysis cache for the engine-grid runs")
    ap.add_argument("--json", default=None)
    ap.add_argument("--all_tracks", action="store_true",
                    help="use every track of --realbench (a set the model never saw, e.g. the "
                         "second real set /tmp/looplab-holdout), not only the held-out list")
    args = ap.parse_args(argv)

    scorer = LoopScorer.load(args.model)
    meta_path = Path(args.model).with_suffix(".meta.json")
    trained_on = set(json.loads(meta_path.read_text())["data"].get("realbench_tracks", [])) \
        if meta_path.is_file() else set()
    cache = DiskCache(args.cache_dir, enabled=True)
    report = {"model": scorer.path}
    with tempfile.TemporaryDirectory(prefix="bench-ranker-") as tmp:
        t0 = time.perf_counter()
        sets = {}
        if args.n_synth > 0:
            sets[f"generated ({args.n_synth} held-out tracks)"] = synth_rows(args.n_synth, Path(tmp), cache)
            print(f"generated tracks built and analysed in {time.perf_counter() - t0:.0f} s")
    gt = Path(args.realbench) / "gt"
    if (gt / "manifest.csv").is_file() or any(gt.glob("*.json")):
        pool = ([src.track_id for src in realbench_sources(args.realbench)] if args.all_tracks
                else list(HELD_OUT_REALBENCH))
        ids = [i for i in pool if i not in trained_on]
        leaked = sorted(set(pool) & trained_on)
        if leaked:
            print(f"note: the model was trained on {leaked}; they are left out here")
        t0 = time.perf_counter()
        rb = realbench_rows(args.realbench, ids, cache)
        print(f"realbench held-out tracks ({', '.join(ids)}) analysed in "
              f"{time.perf_counter() - t0:.0f} s")
        sets["realbench " + ("(every track)" if args.all_tracks else "held-out")] = rb
    else:
        print(f"(no realbench set at {args.realbench}: generated tracks only)")

    for set_name, grids in sets.items():
        for grid_name, df in grids.items():
            summary, per_track, scored = score_table(df, scorer, 5)
            print(f"\n== {set_name}, {grid_name}: {df['group'].nunique()} tracks, "
                  f"{len(df)} candidates, {df['good'].mean():.0%} of them good loops")
            print(format_table(summary, 5))
            # the best any ranker can do under the labels (relevance as the score)
            from engine.ranker import per_track_metrics
            orc = per_track_metrics(df, df["relevance"].to_numpy(float)
                                    + 1e-3 * np.random.default_rng(0).random(len(df)), 5)
            oracle = {c: float(orc[c].mean()) for c in ("P@5", "R@5", "NDCG@5", "in_section@5")}
            print(f"oracle (labels as scores): P@5 {oracle['P@5']:.2f} R@5 {oracle['R@5']:.3f} "
                  f"NDCG@5 {oracle['NDCG@5']:.2f} in-section@5 {oracle['in_section@5']:.2f}")
            h = summary["heuristic"]["NDCG@5"]
            d = summary["default model"]["NDCG@5"]
            print(f"NDCG@5 default model - heuristic: {d - h:+.2f}")
            entry = {"summary": summary, "oracle": oracle}
            lengths = {r: top_lengths(scored, c) for r, c in (("default model", "pred_default_model"),
                                                              ("model, no guard", "pred_model,_no_guard"),
                                                              ("model + guard", "pred_model___guard"),
                                                              ("heuristic", "pred_heuristic"))
                       if c in scored.columns}
            entry["top5_bars"] = lengths
            print("top-5 loop lengths (bars: count): " + "; ".join(f"{r} {v}" for r, v in lengths.items()))
            ok = df.groupby("group")["good"].any()
            if grid_name == "engine grid" and not ok.all():
                sub = df[df["group"].isin(ok[ok].index)]
                s2, _, _ = score_table(sub, scorer, 5)
                print(f"-- the {int(ok.sum())} of {len(ok)} tracks where the engine's grid offers "
                      f"at least one good loop (rhythm right):")
                print(format_table(s2, 5))
                entry["grid_right_tracks"] = {"n": int(ok.sum()), "of": int(len(ok)), "summary": s2}
            if "source" in df.columns:
                lmms = per_track[per_track["group"].isin(df.loc[df["source"] == "lmms", "group"])]
                if len(lmms):
                    pooled = {r: pooled_in_section(lmms, r) for r in summary}
                    entry["lmms_in_section_pooled"] = pooled
                    print(f"top-5 inside one arrangement section on {lmms['group'].nunique()} "
                          f"held-out LMMS renders ({grid_name}): " + ", ".join(
                              f"{r} {pooled[r]:.0%}" for r in ("default model", "model, no guard",
                                                                "model + guard",
                                                                "model+composite",
                                                                "heuristic", "old composite",
                                                                "random") if r in pooled))
                    lo, hi = pooled_in_section_interval(lmms, "default model")
                    entry["lmms_in_section_interval"] = [lo, hi]
                    print(f"  default model, 95% interval over tracks (bootstrap, whole tracks "
                          f"resampled): {lo:.0%}-{hi:.0%}")
            report[f"{set_name} | {grid_name}"] = entry
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
