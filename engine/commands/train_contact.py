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
    from ..tags.cliutil import run_training
    from ..tags.train import train_contact

    return run_training(args, train_contact, args.labels_csv)
