"""Tag classifiers: weak labels, instrument roles, the contact head, combined classification.

Public API (what the CLI commands and the dashboard call)::

    from engine.tags import train_tags, train_contact, compare_label_sources
    from engine.tags import classify_files, classify_folder, TrainConfig

    res = train_tags("loops/", label_source="roles", progress=cb)   # TrainResult
    res.report["test_metrics"]["macro_f1_calibrated"]; res.bundle; res.dataset
    write_outputs(res, "model.joblib", "report.json", "dataset.csv")
    df, failures = classify_folder("loops/", "model.joblib", contact_model=None)

Modules::

    features         per-loop features: one decode, one STFT, one HPSS; cached per content
    labels_filename  the seed's 17-tag filename table
    labels_audio     six audio rule groups (fixed), their inputs (leakage exclusions)
    roles            instrument-role truth: generated loops, MMA MIDI tracks, part renders
    truth            generated loops with known audio-label truth (tests, bench)
    split            vectorised iterative multi-label stratified split
    model            per-label learners, calibrated thresholds, report, bundle I/O
    train            train_tags / train_contact / compare_label_sources
    classify         both heads side by side in one table
    build_default    rebuilds the shipped roles model (engine/models/roles_model.joblib)
"""
from .classify import DEFAULT_ROLES_MODEL, classify_files, classify_folder
from .model import TrainConfig, TrainResult, load_bundle, save_bundle
from .roles import ROLES
from .train import (LABEL_SOURCES, compare_label_sources, train_contact, train_tags,
                    write_outputs)

__all__ = ["DEFAULT_ROLES_MODEL", "LABEL_SOURCES", "ROLES", "TrainConfig", "TrainResult",
           "classify_files", "classify_folder", "compare_label_sources", "load_bundle",
           "save_bundle", "train_contact", "train_tags", "write_outputs"]
