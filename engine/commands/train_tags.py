"""``python -m engine train-tags``: train a multi-label tag head on a folder of loops."""
from __future__ import annotations

NAME = "train-tags"
HELP = ("Train a multi-label tag classifier on a folder of loops from filename, audio-rule, "
        "hybrid or instrument-role labels (one-vs-rest, iterative stratified split, "
        "calibrated thresholds; audio labels never see their rule's inputs).")


def add_arguments(p):
    from ..tags.cliutil import add_training_args

    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--label_source", default="audio",
                   choices=("filename", "audio", "hybrid", "roles"))
    p.add_argument("--roles_csv", default=None,
                   help="role truth (file, roles) for --label_source roles "
                        "(default: <folder>/roles.csv)")
    p.add_argument("--dataset_out", default="training/models/loop_multilabel_dataset.csv")
    p.add_argument("--model_out", default="training/models/loop_multilabel_classifier.joblib")
    p.add_argument("--report_out", default="training/models/loop_multilabel_report.json")
    add_training_args(p)


def run(args) -> int:
    from ..tags.cliutil import (Bar, config_from_args, print_summary, runtime_kwargs,
                                show_progress)
    from ..tags.train import train_tags, write_outputs

    bar = Bar(show_progress(args), "features")
    try:
        res = train_tags(args.folder, label_source=args.label_source,
                         cfg=config_from_args(args), roles_csv=args.roles_csv,
                         max_files=args.max_files, progress=bar, **runtime_kwargs(args))
    finally:
        bar.close()
    write_outputs(res, args.model_out, args.report_out, args.dataset_out)
    print_summary(res.report)
    print(f"model: {args.model_out}\nreport: {args.report_out}\ndataset: {args.dataset_out}")
    return 0
