"""``python -m engine evaluate``: ranking metrics of the loop model against baselines."""
from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "evaluate"
HELP = ("Precision@K, Recall@K, NDCG@K and AP of the loop-quality model, the heuristic, the "
        "earlier composite and random ranking, per track then averaged, on tracks with ground "
        "truth (synth .truth.json or realbench .json beside the audio) or people's labels; "
        "writes eval_metrics.json and eval_rows.csv.")


def add_arguments(p):
    p.add_argument("--folder", default=None,
                   help="audio with ground truth beside it (<stem>.truth.json or <stem>.json)")
    p.add_argument("--labels", default=None,
                   help="people's labels CSV (source_file, start_time, end_time, label)")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--model", default=None, help="model to evaluate (default: the shipped model)")
    p.add_argument("--grid", default="engine", choices=("engine", "truth"),
                   help="cut candidates on the engine's grid (as extract does) or the true grid")
    p.add_argument("--beats_per_bar", type=int, default=0, choices=(0, 3, 4),
                   help="meter: 0 lets the engine choose (as extract does), 3 or 4 forces it")
    p.add_argument("--out_dir", default=".", help="where eval_metrics.json and eval_rows.csv go")
    p.add_argument("--rows_out", default=None, help="rows CSV (default: OUT_DIR/eval_rows.csv)")
    p.add_argument("--metrics_out", default=None,
                   help="metrics JSON (default: OUT_DIR/eval_metrics.json)")
    p.add_argument("--cache_dir", default=None, help="analysis cache (default: none)")


def run(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from ..atomic import atomic_write_csv, atomic_write_text
    from ..audio import find_audio_files, load_mono
    from ..cache import DiskCache
    from ..config import AnalysisConfig
    from ..evaluation import (engine_grid_rows, format_table, pooled_in_section,
                              pooled_in_section_interval, score_table, truth_for, truth_grid_rows)
    from ..ranker import DEFAULT_MODEL_PATH, label_csv_rows
    from ..scoring import LoopScorer

    if not args.folder and not args.labels:
        print("error: give --folder and/or --labels", file=sys.stderr)
        return 2
    if args.top_k < 1:
        print("error: --top_k must be at least 1", file=sys.stderr)
        return 2
    scorer = LoopScorer.load(args.model or DEFAULT_MODEL_PATH)
    cfg = AnalysisConfig(beats_per_bar=args.beats_per_bar)
    cache = DiskCache(args.cache_dir, enabled=True) if args.cache_dir else None
    parts, skipped = [], []
    if args.folder:
        files = find_audio_files(args.folder)
        for path in tqdm(files, unit="file", desc="evaluate", disable=None):
            truth = truth_for(path)
            if truth is None:
                skipped.append(f"{path.name}: no ground truth beside it")
                continue
            try:
                if args.grid == "engine":
                    rows, _ = engine_grid_rows(path, truth, cfg, cache)
                else:
                    y, _ = load_mono(path, cfg.sr)
                    rows = truth_grid_rows(y, cfg.sr, truth, cfg.bars)
            except Exception as exc:  # noqa: BLE001 - report and go on
                skipped.append(f"{path.name}: {exc}")
                continue
            rows["group"] = truth.track_id
            rows["source_file"] = str(path)
            parts.append(rows)
    if args.labels:
        people = label_csv_rows(args.labels)
        people["one_section"] = True
        parts.append(people)
    if not parts:
        print("error: nothing to evaluate (" + "; ".join(skipped[:5]) + ")", file=sys.stderr)
        return 1
    df = pd.concat(parts, ignore_index=True)
    summary, per_track, rows = score_table(df, scorer, args.top_k)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {
        "model": {"path": str(scorer.path), "name": scorer.name},
        "grid": args.grid, "top_k": args.top_k, "tracks": int(df["group"].nunique()),
        "rows": int(len(df)), "rankers": summary,
        "in_section_pooled": {r: pooled_in_section(per_track, r) for r in summary},
        # 95% bootstrap interval over tracks (whole tracks resampled)
        "in_section_interval": {r: list(pooled_in_section_interval(per_track, r)) for r in summary},
        "per_track": per_track.to_dict(orient="records"), "skipped": skipped,
    }
    atomic_write_text(Path(args.metrics_out or out_dir / "eval_metrics.json"),
                      json.dumps(metrics, indent=1, default=float))
    atomic_write_csv(rows, Path(args.rows_out or out_dir / "eval_rows.csv"), index=False)
    print(f"{metrics['tracks']} tracks, {len(df)} candidates, {args.grid} grid, top {args.top_k}:")
    print(format_table(summary, args.top_k))
    for s in skipped:
        print(f"skipped {s}")
    return 0
