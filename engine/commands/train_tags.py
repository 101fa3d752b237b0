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
    from ..tags.cliutil import run_training
    from ..tags.train import train_tags

    return run_training(args, train_tags, args.folder, label_source=args.label_source,
                        roles_csv=args.roles_csv)
