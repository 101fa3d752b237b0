"""``python -m engine train-ranker``: train the loop-quality model from ground truth."""
from __future__ import annotations

import json
import sys

NAME = "train-ranker"
HELP = ("Train the XGBoost loop-quality model on generated tracks and realbench renders "
        "labelled from ground truth (and/or people's labels); saves the model, its feature "
        "list and training metadata.")


def add_arguments(p):
    from ..ranker import DEFAULT_MODEL_PATH, DEFAULT_ROUNDS

    p.add_argument("--synthetic", type=int, default=120, help="generated training tracks")
    p.add_argument("--realbench", default=None,
                   help="realbench folder (e.g. /tmp/looplab-devset); held-out tracks are skipped")
    p.add_argument("--no_holdout", action="store_true",
                   help="also train on the realbench tracks the benchmark holds out")
    p.add_argument("--labels", default=None,
                   help="people's labels CSV: source_file, start_time, end_time, label")
    p.add_argument("--labels_only", action="store_true", help="train on --labels alone")
    p.add_argument("--tempo_augment", action="store_true",
                   help="add CDJ-style varispeed copies (+-10%%) of every track")
    p.add_argument("--tempo_min_pct", type=int, default=-10)
    p.add_argument("--tempo_max_pct", type=int, default=10)
    p.add_argument("--tempo_variants", type=int, default=1, help="varispeed copies per track")
    p.add_argument("--objective", default="auto",
                   choices=("auto", "rank:ndcg", "rank:pairwise", "binary:logistic"),
                   help="auto: chosen by grouped cross-validation")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="boosting rounds")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jobs", type=int, default=2, help="parallel workers for feature extraction")
    p.add_argument("--cache_rows", default=None, help="pickle of built rows to reuse between runs")
    p.add_argument("--out", default=str(DEFAULT_MODEL_PATH), help="model file (.ubj or .json)")


def run(args) -> int:
    from tqdm import tqdm

    from ..ranker import HELD_OUT_REALBENCH, train_default

    bar = tqdm(total=1, unit="step", desc="train-ranker", disable=None)

    def progress(done, total, message):
        bar.total = total
        bar.n = done
        bar.set_postfix_str(str(message)[-40:])
        bar.refresh()

    res = train_default(
        args.synthetic, args.realbench, args.out,
        holdout=() if args.no_holdout else HELD_OUT_REALBENCH, labels_csv=args.labels,
        labels_only=args.labels_only, tempo_augment=args.tempo_augment,
        tempo_variants=args.tempo_variants,
        tempo_range=(args.tempo_min_pct, args.tempo_max_pct), objective=args.objective, rounds=args.rounds,
        seed=args.seed, n_jobs=args.jobs, cache_rows=args.cache_rows, progress=progress,
        log=lambda m: tqdm.write(str(m)))
    bar.close()
    # record the exact command in the metadata
    from pathlib import Path

    meta_path = Path(res.model_path).with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text())
    meta["command"] = "python -m engine " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    meta["data"]["tempo_range_pct"] = [args.tempo_min_pct, args.tempo_max_pct]
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    print(f"model ({res.objective}) -> {res.model_path} in {meta['train_seconds']:.0f} s")
    for name, m in res.holdout.items():
        print(f"  held-out 25% of tracks, {name:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()
                                                              if not k.startswith("n_")))
    return 0
