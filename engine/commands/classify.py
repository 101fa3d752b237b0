"""``python -m engine classify``: tag a folder of loops with a tag head (and the contact head)."""
from __future__ import annotations

NAME = "classify"
HELP = ("Predict tags for every loop in a folder: predicted_tags and prob_<class> from the "
        "tag model (default: the shipped instrument-roles model), and with --contact_model "
        "predicted_contact_tags and prob_contact_<class> side by side.")


def add_arguments(p):
    from ..tags.cliutil import add_runtime_args

    p.add_argument("--model", default=None,
                   help="tag model bundle (default: the shipped roles model, "
                        "engine/models/roles_model.joblib)")
    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--out", default="training/models/loop_multilabel_predictions.csv")
    p.add_argument("--min_prob", type=float, default=0.35,
                   help="threshold when calibrated thresholds are disabled")
    p.add_argument("--disable_calibrated_thresholds", action="store_true")
    p.add_argument("--contact_model", default=None, help="contact head bundle (train-contact)")
    p.add_argument("--contact_min_prob", type=float, default=0.35)
    p.add_argument("--contact_disable_calibrated_thresholds", action="store_true")
    p.add_argument("--contact_prefix", default="contact")
    add_runtime_args(p)


def run(args) -> int:
    from ..atomic import atomic_write_csv
    from ..tags.classify import classify_folder
    from ..tags.cliutil import Bar, runtime_kwargs

    bar = Bar(not args.quiet, "features")
    try:
        df, failures = classify_folder(
            args.folder, args.model, contact_model=args.contact_model, min_prob=args.min_prob,
            disable_calibrated_thresholds=args.disable_calibrated_thresholds,
            contact_min_prob=args.contact_min_prob,
            contact_disable_calibrated_thresholds=args.contact_disable_calibrated_thresholds,
            contact_prefix=args.contact_prefix, progress=bar, **runtime_kwargs(args))
    finally:
        bar.close()
    atomic_write_csv(df, args.out)
    print(f"{len(df)} loop(s) classified -> {args.out}")
    for f, msg in failures:
        print(f"skipped {f}: {msg}")
    return 1 if failures else 0
