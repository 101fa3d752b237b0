"""``python -m engine train-contact``: train the contact head on contact-map pseudo-labels."""
from __future__ import annotations

NAME = "train-contact"
HELP = ("Train the contact-map tag head on contact_map_labels.csv (written by contact-map): "
        "contact_tags plus contact_bin per loop, the same model and report as train-tags.")


def add_arguments(p):
    from ..tags.cliutil import add_training_args

    p.add_argument("--labels_csv", required=True, help="contact_map_labels.csv")
    p.add_argument("--dataset_out",
                   default="training/models/contact_map/contact_multilabel_dataset.csv")
    p.add_argument("--model_out",
                   default="training/models/contact_map/contact_multilabel_classifier.joblib")
    p.add_argument("--report_out",
                   default="training/models/contact_map/contact_multilabel_report.json")
    add_training_args(p)


def run(args) -> int:
    from ..tags.cliutil import (Bar, config_from_args, print_summary, runtime_kwargs,
                                show_progress)
    from ..tags.train import train_contact, write_outputs

    bar = Bar(show_progress(args), "features")
    try:
        res = train_contact(args.labels_csv, cfg=config_from_args(args),
                            max_files=args.max_files, progress=bar, **runtime_kwargs(args))
    finally:
        bar.close()
    write_outputs(res, args.model_out, args.report_out, args.dataset_out)
    print_summary(res.report)
    print(f"model: {args.model_out}\nreport: {args.report_out}\ndataset: {args.dataset_out}")
    return 0
