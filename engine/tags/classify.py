"""Classify loops with a tag head and, optionally, the contact head.

One CSV row per loop: ``file``, ``predicted_tags`` and ``prob_<class>`` for
the tag head; with a contact model also ``predicted_<prefix>_tags`` and
``prob_<prefix>_<class>`` (prefix ``contact``), side by side. Features are
computed once per file (cached) and shared by both heads. A label passes
when its probability reaches its calibrated threshold (or ``min_prob`` with
calibration disabled); with none passing, the most probable tag is kept, so
every loop gets at least one tag (the seed's behaviour).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DEFAULT_CACHE_DIR
from .features import FeatureParams, compute_features
from .model import load_bundle

#: The shipped default roles model (``python -m engine.tags.build_default``).
DEFAULT_ROLES_MODEL = Path(__file__).resolve().parent.parent / "models" / "roles_model.joblib"


def head_columns(bundle: dict, X: pd.DataFrame, *, min_prob: float = 0.35,
                 use_calibrated: bool = True, prefix: str | None = None) -> pd.DataFrame:
    """``predicted[_prefix]_tags`` and ``prob[_prefix]_<class>`` for one head."""
    classes = list(bundle["classes"])
    proba = bundle["model"].predict_proba(X)
    th = bundle.get("thresholds") or {}
    t = np.array([th.get(c, min_prob) if use_calibrated else min_prob for c in classes])
    on = proba >= t[None, :]
    tags = []
    for i in range(len(X)):
        idx = np.flatnonzero(on[i])
        if idx.size == 0 and len(classes):
            idx = [int(np.argmax(proba[i]))]
        tags.append(",".join(classes[j] for j in idx))
    pre = f"{prefix}_" if prefix else ""
    out = pd.DataFrame({f"predicted_{pre}tags": tags}, index=X.index)
    for j, c in enumerate(classes):
        out[f"prob_{pre}{c}"] = proba[:, j]
    return out


def classify_files(files, model=None, *, contact_model=None, min_prob: float = 0.35,
                   disable_calibrated_thresholds: bool = False, contact_min_prob: float = 0.35,
                   contact_disable_calibrated_thresholds: bool = False,
                   contact_prefix: str = "contact", params: FeatureParams = FeatureParams(),
                   cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                   progress=None) -> tuple[pd.DataFrame, list]:
    """Predict tags for ``files``.

    Parameters
    ----------
    files : list of str or Path
    model : str, Path or dict, optional
        Tag-head bundle (path or loaded); default: the shipped roles model.
    contact_model : str, Path or dict, optional
        Contact-head bundle.
    min_prob, contact_min_prob : float
        Thresholds when calibration is disabled (clamped to [0, 1]).
    disable_calibrated_thresholds, contact_disable_calibrated_thresholds : bool
    contact_prefix : str
    params, cache_dir, use_cache, n_jobs :
        Feature computation (shared with training; cached).
    progress : callable, optional

    Returns
    -------
    predictions : DataFrame
        One row per usable file.
    failures : list of (file, message)
        Files that could not be read (not silently dropped as in the seed).
    """
    tag_b = model if isinstance(model, dict) else load_bundle(model or DEFAULT_ROLES_MODEL)
    con_b = None
    if contact_model is not None:
        con_b = contact_model if isinstance(contact_model, dict) else load_bundle(contact_model)
    table = compute_features(files, params, cache_dir=cache_dir, use_cache=use_cache,
                             n_jobs=n_jobs, progress=progress)
    X = table.frame
    out = X[["file"]].copy()
    if len(X):
        out = pd.concat([out, head_columns(tag_b, X, min_prob=float(np.clip(min_prob, 0, 1)),
                                           use_calibrated=not disable_calibrated_thresholds)],
                        axis=1)
        if con_b is not None:
            out = pd.concat([out, head_columns(
                con_b, X, min_prob=float(np.clip(contact_min_prob, 0, 1)),
                use_calibrated=not contact_disable_calibrated_thresholds,
                prefix=contact_prefix)], axis=1)
    return out.reset_index(drop=True), table.failures


def classify_folder(folder, model=None, **kwargs) -> tuple[pd.DataFrame, list]:
    """:func:`classify_files` on every audio file under ``folder`` (recursive)."""
    from .train import list_loops

    return classify_files(list_loops(folder), model, **kwargs)
