"""Flags and helpers shared by the tag commands (train-tags, train-contact,
compare-label-sources, classify); the seed's names and defaults."""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..config import add_arguments, from_args, setting
from .model import TrainConfig


@dataclass(frozen=True)
class TagRuntime:
    """Feature computation settings shared by the tag commands (flags from the fields)."""

    n_jobs: int = setting(0, "processes computing features (0 = one per core; 1 = in-process)",
                          flag="--jobs")
    use_cache: bool = setting(True, "ignore and do not write the cache", flag="--no_cache",
                              negate=True)
    cache_dir: str = setting(None, "analysis cache folder (default: ./cache)", type=str)
    quiet: bool = setting(False, "no progress bar")


@dataclass(frozen=True)
class ClassifySettings:
    """How ``classify`` turns probabilities into tags (the seed's flags)."""

    min_prob: float = setting(0.35, "threshold when calibrated thresholds are disabled")
    disable_calibrated_thresholds: bool = setting(False, "use --min_prob for every label")
    contact_min_prob: float = setting(0.35, "the contact head's --min_prob")
    contact_disable_calibrated_thresholds: bool = setting(
        False, "use --contact_min_prob for every contact label")
    contact_prefix: str = setting("contact", "column prefix of the contact head")


def add_training_args(p) -> None:
    """The seed's split, calibration and forest flags (and ours: --learner, --lr_c),
    generated from :class:`~engine.tags.model.TrainConfig`, plus --max_files and the
    runtime flags."""
    add_arguments(p, TrainConfig)
    p.add_argument("--max_files", type=int, default=None,
                   help="seeded random sample of N files (default: all)")
    add_runtime_args(p)


def add_runtime_args(p) -> None:
    add_arguments(p, TagRuntime)


def config_from_args(args) -> TrainConfig:
    return from_args(TrainConfig, args)


def runtime_kwargs(args) -> dict:
    from ..config import DEFAULT_CACHE_DIR

    rt = from_args(TagRuntime, args)
    return {"cache_dir": rt.cache_dir or DEFAULT_CACHE_DIR, "use_cache": rt.use_cache,
            "n_jobs": -1 if rt.n_jobs == 0 else rt.n_jobs}


def show_progress(args) -> bool:
    return not from_args(TagRuntime, args).quiet


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


def run_training(args, train, *inputs, **kwargs) -> int:
    """Run a tag-head trainer for a CLI command and write its outputs.

    ``train(*inputs, cfg=..., max_files=..., progress=..., **runtime, **kwargs)``
    is :func:`engine.tags.train.train_tags` or ``train_contact``; the bundle,
    report and dataset go to ``args.model_out``, ``args.report_out`` and
    ``args.dataset_out`` (atomically), then a summary is printed.
    """
    from .train import write_outputs

    bar = Bar(show_progress(args), "features")
    try:
        res = train(*inputs, cfg=config_from_args(args), max_files=args.max_files,
                    progress=bar, **runtime_kwargs(args), **kwargs)
    finally:
        bar.close()
    write_outputs(res, args.model_out, args.report_out, args.dataset_out)
    print_summary(res.report)
    print(f"model: {args.model_out}\nreport: {args.report_out}\ndataset: {args.dataset_out}")
    return 0
