"""Training entry points: tag heads from a folder of loops, the contact head
from ``contact_map_labels.csv``, and the label-source comparison.

Every function takes a ``progress(done, total, message)`` callback and
returns plain results (:class:`~engine.tags.model.TrainResult`, dicts); the
CLI commands and the dashboard only add files and printing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DEFAULT_CACHE_DIR
from ..errors import LoopLabError, ModelError
from .features import FeatureParams, compute_features
from .labels_audio import AudioRules, audio_tag_lists, excluded_features
from .labels_filename import filename_tags
from .model import TrainConfig, TrainResult, save_bundle, train_multilabel
from .roles import ROLES_CSV, read_roles_csv

LABEL_SOURCES = ("filename", "audio", "hybrid", "roles")


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


def list_loops(folder, max_files: int | None = None, random_state: int = 42) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted); ``max_files`` draws a
    seeded random sample (the seed took the first N alphabetically).

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist.
    """
    from ..audio import find_audio_files

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    files = sorted(find_audio_files(folder))
    if max_files and len(files) > max_files:
        rng = np.random.default_rng(random_state)
        files = sorted(files[i] for i in rng.choice(len(files), max_files, replace=False))
    return files


def tag_lists_for(source: str, frame: pd.DataFrame, roles_truth: dict | None = None,
                  rules: AudioRules = AudioRules()) -> list[list[str]]:
    """Tags per row of a feature frame for a label source.

    Parameters
    ----------
    source : {"filename", "audio", "hybrid", "roles"}
    frame : DataFrame
        Features with a ``file`` column.
    roles_truth : dict, optional
        ``{resolved path: [roles]}`` (needed for ``roles``; rows without
        truth get no tags and are dropped by training).
    """
    if source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {LABEL_SOURCES}, not {source!r}")
    files = list(frame["file"])
    if source == "filename":
        return [filename_tags(f) for f in files]
    if source == "audio":
        return audio_tag_lists(frame, rules)
    if source == "hybrid":
        return [sorted(set(a) | set(filename_tags(f)))
                for a, f in zip(audio_tag_lists(frame, rules), files)]
    if roles_truth is None:
        raise ValueError("label_source 'roles' needs role truth (a roles.csv)")
    return [list(roles_truth.get(str(Path(f).resolve()), [])) for f in files]


def leakage_exclusions(tag_lists) -> dict:
    """``{label: features it must not see}`` for every audio-derived label present."""
    labels = {t for tags in tag_lists for t in tags}
    return {t: list(excluded_features(t)) for t in sorted(labels) if excluded_features(t)}


def train_tags(folder=None, *, files=None, label_source: str = "audio",
               cfg: TrainConfig = TrainConfig(), roles_csv=None,
               max_files: int | None = None, params: FeatureParams = FeatureParams(),
               cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
               file_weight=None, progress=None) -> TrainResult:
    """Train a tag head on a folder of loops (or an explicit file list).

    Features come from :func:`engine.tags.features.compute_features` (cached);
    labels from ``label_source``; audio-derived labels never see their rule's
    inputs. The report gains ``n_files``, ``failures`` and the feature-extraction
    time.

    Parameters
    ----------
    folder : str or Path, optional
    files : list, optional
        Used instead of ``folder``.
    label_source : {"filename", "audio", "hybrid", "roles"}
    cfg : TrainConfig
    roles_csv : str or Path, optional
        Role truth for ``roles`` (default ``<folder>/roles.csv``).
    max_files : int, optional
        Seeded random sample of the folder.
    params : FeatureParams
    cache_dir, use_cache, n_jobs :
        Feature cache and parallel decoding.
    file_weight : callable, optional
        ``file_weight(path) -> float`` training weight of a loop (default 1).
    progress : callable, optional

    Raises
    ------
    FileNotFoundError
        Folder or roles CSV missing.
    ModelError
        Nothing usable to train on.
    """
    import time

    progress = progress or _noop
    if files is None:
        if folder is None:
            raise ValueError("give a folder or a list of files")
        files = list_loops(folder, max_files, cfg.random_state)
    if not files:
        raise ModelError(f"no audio files found in {folder}")
    roles_truth = None
    if label_source == "roles":
        if roles_csv is None:
            if folder is None:
                raise ValueError("label_source 'roles' needs roles_csv")
            roles_csv = Path(folder) / ROLES_CSV
        roles_truth = read_roles_csv(roles_csv)
    t0 = time.perf_counter()
    table = compute_features(files, params, cache_dir=cache_dir, use_cache=use_cache,
                             n_jobs=n_jobs, progress=progress)
    t_feat = time.perf_counter() - t0
    if len(table) == 0:
        detail = "; ".join(m for _, m in table.failures[:5])
        raise ModelError(f"no usable audio files ({detail})")
    tags = tag_lists_for(label_source, table.frame, roles_truth)
    excluded = leakage_exclusions(tags)
    weights = None if file_weight is None else [float(file_weight(f))
                                                 for f in table.frame["file"]]
    res = train_multilabel(table.frame, tags, label_source=label_source, cfg=cfg,
                           excluded=excluded, sample_weight=weights, progress=progress)
    res.report["n_files"] = len(files)
    res.report["failures"] = [{"file": f, "error": m} for f, m in table.failures]
    res.report["feature_seconds"] = round(t_feat, 3)
    return res


def contact_tag_lists(labels: pd.DataFrame) -> list[list[str]]:
    """Tags per row of ``contact_map_labels.csv``: comma-split ``contact_tags``
    plus ``contact_bin`` (a missing value adds nothing; the seed added "nan")."""
    if "file" not in labels.columns:
        raise ValueError("contact labels CSV needs a 'file' column")
    if not ({"contact_tags", "contact_bin"} & set(labels.columns)):
        raise ValueError("contact labels CSV needs 'contact_tags' and/or 'contact_bin'")
    out = []
    for _, row in labels.iterrows():
        tags = set()
        v = row.get("contact_tags")
        if isinstance(v, str):
            tags |= {t.strip() for t in v.split(",") if t.strip()}
        b = row.get("contact_bin")
        if b is not None and not (isinstance(b, float) and np.isnan(b)) and str(b).strip():
            tags.add(str(b).strip())
        out.append(sorted(tags))
    return out


def train_contact(labels_csv, *, cfg: TrainConfig = TrainConfig(),
                  max_files: int | None = None, params: FeatureParams = FeatureParams(),
                  cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                  progress=None) -> TrainResult:
    """Train the contact head on the contact-map command's ``contact_map_labels.csv``.

    Raises
    ------
    FileNotFoundError
        The CSV is missing.
    ModelError
        No usable rows.
    """
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise FileNotFoundError(f"contact labels CSV not found: {labels_csv}")
    labels = pd.read_csv(labels_csv)
    if max_files and len(labels) > max_files:
        labels = labels.sample(n=max_files, random_state=cfg.random_state)
    files = []
    for f in labels["file"] if "file" in labels else []:
        p = Path(str(f))
        files.append(p if p.is_absolute() or p.exists() else labels_csv.parent / p)
    tags = contact_tag_lists(labels)
    by_file = {str(Path(f).resolve()): t for f, t in zip(files, tags)}
    table = compute_features(files, params, cache_dir=cache_dir, use_cache=use_cache,
                             n_jobs=n_jobs, progress=progress)
    if len(table) == 0:
        raise ModelError(f"{labels_csv.name}: none of its files could be read")
    tl = [by_file.get(str(Path(f).resolve()), []) for f in table.frame["file"]]
    res = train_multilabel(table.frame, tl, label_source="contact_map", cfg=cfg,
                           head_name="contact_map", progress=progress)
    res.report["failures"] = [{"file": f, "error": m} for f, m in table.failures]
    return res


def write_outputs(res: TrainResult, model_out=None, report_out=None, dataset_out=None) -> None:
    """Save bundle, report JSON and dataset CSV (atomically; any may be None)."""
    from ..atomic import atomic_write_csv, atomic_write_text

    if model_out:
        save_bundle(res.bundle, model_out)
    if report_out:
        atomic_write_text(report_out, json.dumps(res.report, indent=2, default=json_default))
    if dataset_out and res.dataset is not None:
        atomic_write_csv(res.dataset, dataset_out)


def json_default(o):
    """``json.dumps(default=...)`` for NumPy scalars and paths."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


COMPARISON_COLUMNS = ["label_source", "n_rows", "n_classes", "val_micro_f1_calibrated",
                      "val_macro_f1_calibrated", "test_micro_f1_calibrated",
                      "test_macro_f1_calibrated", "test_micro_f1_default",
                      "test_macro_f1_default", "test_macro_f1_majority_baseline"]


def compare_label_sources(folder, out_dir, *, sources=("filename", "audio", "hybrid"),
                          cfg: TrainConfig = TrainConfig(), max_files: int | None = None,
                          params: FeatureParams = FeatureParams(), cache_dir=DEFAULT_CACHE_DIR,
                          use_cache: bool = True, n_jobs: int = 1, roles_csv=None,
                          progress=None) -> dict:
    """Train one head per label source and write the seed's comparison files.

    Writes ``loop_multilabel_dataset_<src>.csv``, ``loop_multilabel_report_<src>.json``,
    ``label_source_comparison.csv`` (sorted by test macro then micro F1,
    calibrated) and ``label_source_comparison.json``. A source with nothing to
    train on is recorded with ``status: empty_dataset``. Features are computed
    once (cached) and shared by every source.

    Returns
    -------
    dict
        The JSON written.
    """
    from ..atomic import atomic_write_csv, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list_loops(folder, max_files, cfg.random_state)
    result: dict = {}
    rows = []
    for src in sources:
        ds = out_dir / f"loop_multilabel_dataset_{src}.csv"
        rp = out_dir / f"loop_multilabel_report_{src}.json"
        try:
            res = train_tags(folder, files=files, label_source=src, cfg=cfg, roles_csv=roles_csv,
                             params=params, cache_dir=cache_dir, use_cache=use_cache,
                             n_jobs=n_jobs, progress=progress)
        except (ModelError, LoopLabError, FileNotFoundError, ValueError) as exc:
            result[src] = {"status": "empty_dataset", "error": str(exc)}
            continue
        write_outputs(res, None, rp, ds)
        r = res.report
        summary = {"label_source": src, "n_rows": r["n_rows"], "n_classes": r["n_classes"],
                   "val_micro_f1_calibrated": r["val_metrics"]["micro_f1_calibrated"],
                   "val_macro_f1_calibrated": r["val_metrics"]["macro_f1_calibrated"],
                   "test_micro_f1_calibrated": r["test_metrics"]["micro_f1_calibrated"],
                   "test_macro_f1_calibrated": r["test_metrics"]["macro_f1_calibrated"],
                   "test_micro_f1_default": r["test_metrics"]["micro_f1_default"],
                   "test_macro_f1_default": r["test_metrics"]["macro_f1_default"],
                   "test_macro_f1_majority_baseline": r["majority_baseline"]["test_macro_f1"]}
        rows.append(summary)
        result[src] = {"status": "ok", "dataset_csv": str(ds), "report_json": str(rp),
                       "summary": summary, "classes": r["classes"]}
    board = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    if len(board):
        board = board.sort_values(["test_macro_f1_calibrated", "test_micro_f1_calibrated"],
                                  ascending=False).reset_index(drop=True)
    csv_path = out_dir / "label_source_comparison.csv"
    atomic_write_csv(board, csv_path)
    result["leaderboard"] = {"ranking": list(board["label_source"]), "csv": str(csv_path),
                             "best": board["label_source"].iloc[0] if len(board) else None,
                             "rows": board.to_dict(orient="records")}
    atomic_write_text(out_dir / "label_source_comparison.json",
                      json.dumps(result, indent=2, default=json_default))
    return result
