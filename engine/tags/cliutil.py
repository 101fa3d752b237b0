"""Flags and helpers shared by the tag commands (train-tags, train-contact,
compare-label-sources, classify); the seed's names and defaults."""
from __future__ import annotations

import json

from .model import TrainConfig


def add_training_args(p) -> None:
    """The seed's split, calibration and forest flags (and ours: --learner)."""
    p.add_argument("--min_tag_count", type=int, default=8,
                   help="drop tags seen on fewer loops")
    p.add_argument("--max_files", type=int, default=None,
                   help="seeded random sample of N files (default: all)")
    p.add_argument("--calibration_min_threshold", type=float, default=0.12)
    p.add_argument("--calibration_max_threshold", type=float, default=0.80)
    p.add_argument("--calibration_step", type=float, default=0.02)
    p.add_argument("--low_support_cutoff", type=int, default=6,
                   help="labels with fewer validation positives get at least the floor")
    p.add_argument("--low_support_floor", type=float, default=0.24)
    p.add_argument("--val_size", type=float, default=0.2)
    p.add_argument("--test_size", type=float, default=0.2)
    p.add_argument("--random_state", type=int, default=42)
    p.add_argument("--n_estimators", type=int, default=600)
    p.add_argument("--max_depth", type=int, default=0, help="0 = unlimited")
    p.add_argument("--min_samples_leaf", type=int, default=2)
    p.add_argument("--learner", default="rf", choices=("rf", "xgb", "lr", "auto"),
                   help="random forest (the seed's), XGBoost, or auto: both, keep the one "
                        "with the higher validation macro-F1")
    add_runtime_args(p)


def add_runtime_args(p) -> None:
    p.add_argument("--jobs", type=int, default=0,
                   help="processes computing features (0 = one per core; 1 = in-process)")
    p.add_argument("--no_cache", action="store_true", help="ignore and do not write the cache")
    p.add_argument("--cache_dir", default=None, help="analysis cache folder (default: ./cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> TrainConfig:
    return TrainConfig(min_tag_count=args.min_tag_count,
                       calibration_min_threshold=args.calibration_min_threshold,
                       calibration_max_threshold=args.calibration_max_threshold,
                       calibration_step=args.calibration_step,
                       low_support_cutoff=args.low_support_cutoff,
                       low_support_floor=args.low_support_floor, val_size=args.val_size,
                       test_size=args.test_size, random_state=args.random_state,
                       n_estimators=args.n_estimators, max_depth=args.max_depth,
                       min_samples_leaf=args.min_samples_leaf, learner=args.learner)


def runtime_kwargs(args) -> dict:
    from ..config import DEFAULT_CACHE_DIR

    return {"cache_dir": args.cache_dir or DEFAULT_CACHE_DIR, "use_cache": not args.no_cache,
            "n_jobs": -1 if args.jobs == 0 else args.jobs}


class Bar:
    """tqdm progress for ``progress(done, total, message)`` (one bar per total)."""

    def __init__(self, enabled: bool, desc: str = "loops"):
        self.enabled, self.desc = enabled, desc
        self.bar, self.total = None, None

    def __call__(self, done, total, message):
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or total != self.total:
            self.close()
            self.total = total
            self.bar = tqdm(total=total, desc=self.desc, unit="step", leave=False)
        self.bar.n = done
        self.bar.set_postfix_str(str(message)[:40], refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def print_summary(report: dict) -> None:
    """The headline numbers of a training report."""
    tm = report["test_metrics"]
    print(f"label_source={report['label_source']} rows={report['n_rows']} "
          f"classes={report['n_classes']} learner={report['model_params'].get('learner_chosen')}")
    print(f"test macro F1 calibrated {tm['macro_f1_calibrated']:.3f} (default "
          f"{tm['macro_f1_default']:.3f}); majority baseline "
          f"{report['majority_baseline']['test_macro_f1']:.3f}")
    print(f"{'label':<18}{'prev':>6}{'support':>8}{'f1':>7}{'major':>7}  excluded features")
    for c, m in report["label_metrics_test"].items():
        ex = report.get("excluded_features", {}).get(c, [])
        print(f"{c:<18}{m['prevalence']:>6.2f}{m['support']:>8d}{m['f1_calibrated']:>7.3f}"
              f"{m['majority_baseline']:>7.3f}  {', '.join(ex) if ex else '-'}")
    dropped = report.get("dropped_labels", {})
    if dropped.get("constant"):
        print(f"warning: constant labels dropped: {', '.join(dropped['constant'])}")
    if report.get("failures"):
        print(f"{len(report['failures'])} file(s) skipped:")
        for f in report["failures"][:10]:
            print(f"  {f['file']}: {f['error']}")


def dumps(obj) -> str:
    from .train import json_default

    return json.dumps(obj, indent=2, default=json_default)
