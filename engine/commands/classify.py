"""``python -m engine classify``: tag a folder of loops with a tag head (and the contact head)."""
from __future__ import annotations

NAME = "classify"
HELP = ("Predict tags for every loop in a folder: predicted_tags and prob_<class> from the "
        "tag model (default: the shipped instrument-roles model), and with --contact_model "
        "predicted_contact_tags and prob_contact_<class> side by side.")


def add_arguments(p):
    from ..config import add_arguments as add_settings
    from ..tags.cliutil import ClassifySettings, add_runtime_args

    p.add_argument("--model", default=None,
                   help="tag model bundle (default: the shipped roles model, "
                        "engine/models/roles_model.joblib)")
    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--out", default="training/models/loop_multilabel_predictions.csv")
    p.add_argument("--contact_model", default=None, help="contact head bundle (train-contact)")
    add_settings(p, ClassifySettings)
    add_runtime_args(p)


def run(args) -> int:
    from ..atomic import atomic_write_csv
    from ..tags.classify import classify_folder
    from dataclasses import asdict

    from ..config import from_args
    from ..tags.cliutil import Bar, ClassifySettings, runtime_kwargs, show_progress

    bar = Bar(show_progress(args), "features")
    try:
        df, failures = classify_folder(
            args.folder, args.model, contact_model=args.contact_model,
            progress=bar, **asdict(from_args(ClassifySettings, args)), **runtime_kwargs(args))
    finally:
        bar.close()
    atomic_write_csv(df, args.out)
    print(f"{len(df)} loop(s) classified -> {args.out}")
    for f, msg in failures:
        print(f"skipped {f}: {msg}")
    return 1 if failures else 0
