"""Multi-label tag model: one binary learner per label, calibrated thresholds, report.

One-vs-rest over a strong tabular learner (random forest, as the seed, or
XGBoost; ``learner="auto"`` fits both and keeps the one with the higher
validation macro-F1). Each label may see its own feature subset: labels
derived from audio rules never see the rule's inputs
(:func:`engine.tags.labels_audio.excluded_features`).

Thresholds are calibrated per label on the validation split with the
seed's guardrails (scan ``min..max`` by ``step``; lowest threshold reaching
the best F1; 0.5 without validation positives; at least ``floor`` below
``low_support_cutoff`` positives). The report keeps the seed's keys and adds
per-label ``prevalence`` and the ``majority_baseline`` (always predicting a
label's majority value).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..config import setting
from ..errors import ModelError


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the seed's flags and defaults). Each field with help
    text is a command-line flag of train-tags / train-contact /
    compare-label-sources (:func:`engine.config.add_arguments`)."""

    min_tag_count: int = setting(8, "drop tags seen on fewer loops")
    calibration_min_threshold: float = setting(0.12, "lowest calibrated threshold")
    calibration_max_threshold: float = setting(0.80, "highest calibrated threshold")
    calibration_step: float = setting(0.02, "threshold scan step")
    low_support_cutoff: int = setting(
        6, "labels with fewer validation positives get at least the floor")
    low_support_floor: float = setting(0.24, "threshold floor for low-support labels")
    val_size: float = setting(0.2, "validation share (iterative stratified split)")
    test_size: float = setting(0.2, "test share")
    random_state: int = setting(42, "seed of the split and the learners")
    n_estimators: int = setting(600, "trees per label (forest / XGBoost)")
    max_depth: int = setting(0, "tree depth (0 = unlimited)")
    min_samples_leaf: int = setting(2, "smallest leaf (forest; XGBoost min_child_weight)")
    learner: str = setting("rf", "random forest (the seed's), XGBoost, standardised logistic "
                           "regression, or auto: rf and xgb, keep the one with the higher "
                           "validation macro-F1", choices=("rf", "xgb", "lr", "auto"))
    n_jobs: int = -1
    lr_c: float = setting(0.1, "inverse L2 strength of the lr learner")

    def clamped(self) -> "TrainConfig":
        """The seed's input clamping."""
        lo = float(np.clip(self.calibration_min_threshold, 0, 1))
        hi = float(np.clip(self.calibration_max_threshold, 0, 1))
        hi = max(hi, lo)
        step = float(np.clip(self.calibration_step, 0.005, 0.2))
        floor = float(np.clip(self.low_support_floor, lo, hi))
        val = float(np.clip(self.val_size, 0.05, 0.45))
        test = float(np.clip(self.test_size, 0.05, 0.45))
        if val + test >= 0.8:
            val = test = 0.2
        if self.learner not in ("rf", "xgb", "lr", "auto"):
            raise ValueError(f"learner must be rf, xgb, lr or auto, not {self.learner!r}")
        return replace(self, calibration_min_threshold=lo, calibration_max_threshold=hi,
                       calibration_step=step, low_support_floor=floor, val_size=val,
                       test_size=test, n_estimators=max(100, int(self.n_estimators)),
                       min_samples_leaf=max(1, int(self.min_samples_leaf)))

    def calibration_policy(self) -> dict:
        return {"min_threshold": self.calibration_min_threshold,
                "max_threshold": self.calibration_max_threshold,
                "step": self.calibration_step, "low_support_cutoff": self.low_support_cutoff,
                "low_support_floor": self.low_support_floor}

    def model_params(self) -> dict:
        return {"n_estimators": self.n_estimators, "max_depth": self.max_depth,
                "min_samples_leaf": self.min_samples_leaf, "learner": self.learner,
                "lr_c": self.lr_c}


class _Constant:
    """A label with one class in the training rows: predicts its rate."""

    def __init__(self, p: float):
        self.p = float(p)

    def predict_proba(self, X):
        n = len(X)
        return np.column_stack([np.full(n, 1 - self.p), np.full(n, self.p)])


@dataclass
class MultiLabelModel:
    """Per-label binary learners over a feature table.

    Attributes
    ----------
    classes : list of str
    feature_cols : list of str
        Every column the model reads (union of the per-label subsets).
    label_features : dict
        label -> the columns its learner sees.
    estimators : list
        One fitted binary classifier per label (``predict_proba``).
    learner : str
        "rf" or "xgb".
    """

    classes: list
    feature_cols: list
    label_features: dict
    estimators: list
    learner: str = "rf"

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities (n_rows, n_classes); missing columns are filled with 0."""
        X = X.reindex(columns=self.feature_cols, fill_value=0.0).astype(float)
        out = np.zeros((len(X), len(self.classes)))
        for j, (c, est) in enumerate(zip(self.classes, self.estimators)):
            out[:, j] = est.predict_proba(X[self.label_features[c]].to_numpy())[:, 1]
        return out


class ScaledLogistic:
    """Standardised features + L2 logistic regression (class-balanced), a
    linear learner for small, grouped real data sets where forests learn
    the songs instead of the roles (:mod:`engine.tags.songcv`)."""

    def __init__(self, C: float = 0.1, seed: int = 0):
        self.C, self.seed = float(C), int(seed)

    def fit(self, X, y, sample_weight=None):
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, float)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ < 1e-12] = 1.0
        self.lr_ = LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000,
                                      random_state=self.seed)
        self.lr_.fit((X - self.mean_) / self.scale_, y, sample_weight=sample_weight)
        return self

    def predict_proba(self, X):
        Z = (np.asarray(X, float) - self.mean_) / self.scale_
        return self.lr_.predict_proba(np.nan_to_num(Z, posinf=0.0, neginf=0.0))


def _make_learner(kind: str, cfg: TrainConfig, y: np.ndarray, seed: int):
    if kind == "lr":
        return ScaledLogistic(C=cfg.lr_c, seed=seed)
    if kind == "xgb":
        from xgboost import XGBClassifier

        pos = max(int(y.sum()), 1)
        return XGBClassifier(n_estimators=min(cfg.n_estimators, 400),
                             max_depth=cfg.max_depth or 6, learning_rate=0.08,
                             subsample=0.9, colsample_bytree=0.8,
                             min_child_weight=float(cfg.min_samples_leaf),
                             scale_pos_weight=(len(y) - pos) / pos, n_jobs=cfg.n_jobs,
                             random_state=seed, tree_method="hist", verbosity=0)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=cfg.n_estimators,
                                  max_depth=cfg.max_depth or None,
                                  min_samples_leaf=cfg.min_samples_leaf,
                                  class_weight="balanced_subsample", n_jobs=cfg.n_jobs,
                                  random_state=seed)


def fit_model(X: pd.DataFrame, Y: np.ndarray, classes, label_features: dict, cfg: TrainConfig,
              learner: str = "rf", progress=None, sample_weight=None) -> MultiLabelModel:
    """Fit one binary learner per label on the rows of ``X`` (optional row weights)."""
    ests = []
    for j, c in enumerate(classes):
        y = Y[:, j].astype(int)
        cols = label_features[c]
        if y.min() == y.max():
            ests.append(_Constant(float(y[0])))
        else:
            est = _make_learner(learner, cfg, y, cfg.random_state + j)
            est.fit(X[cols].to_numpy(float), y, sample_weight=sample_weight)
            ests.append(est)
        if progress:
            progress(j + 1, len(classes), f"fitted {c} ({learner})")
    feature_cols = sorted({col for c in classes for col in label_features[c]},
                          key=list(X.columns).index)
    return MultiLabelModel(list(classes), feature_cols, dict(label_features), ests, learner)


def binary_f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of the positive class of 0/1 arrays (0 when nothing is positive)."""
    tp = float(np.sum((y == 1) & (p == 1)))
    fp = float(np.sum((y == 0) & (p == 1)))
    fn = float(np.sum((y == 1) & (p == 0)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


_f1 = binary_f1


def _micro_macro(Y: np.ndarray, P: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    if Y.size == 0:
        return 0.0, 0.0
    micro = float(f1_score(Y, P, average="micro", zero_division=0))
    macro = float(np.mean([_f1(Y[:, j], P[:, j]) for j in range(Y.shape[1])]))
    return micro, macro


def calibrate_thresholds(Y_val: np.ndarray, proba_val: np.ndarray, classes,
                         cfg: TrainConfig) -> dict:
    """Per-label thresholds on the validation split (the seed's guardrails)."""
    grid = np.arange(cfg.calibration_min_threshold, cfg.calibration_max_threshold + 1e-9,
                     cfg.calibration_step)
    out = {}
    for j, c in enumerate(classes):
        y = Y_val[:, j]
        support = int(y.sum())
        if support == 0:
            t = 0.5
        else:
            f1s = [_f1(y, (proba_val[:, j] >= t).astype(int)) for t in grid]
            t = float(grid[int(np.argmax(f1s))])          # first (lowest) best
            if support < cfg.low_support_cutoff:
                t = max(t, cfg.low_support_floor)
        out[c] = float(np.clip(t, cfg.calibration_min_threshold,
                               cfg.calibration_max_threshold))
    return out


def predict_tags(proba: np.ndarray, classes, thresholds: dict | None, min_prob: float = 0.35
                 ) -> np.ndarray:
    """0/1 decisions: each label's calibrated threshold (or ``min_prob``)."""
    t = np.array([thresholds.get(c, min_prob) if thresholds else min_prob for c in classes])
    return (proba >= t[None, :]).astype(int)


def majority_baseline(Y_train: np.ndarray, Y_eval: np.ndarray, classes) -> dict:
    """F1 of always predicting each label's majority value (from the training rows)."""
    maj = (Y_train.mean(axis=0) >= 0.5).astype(int)
    P = np.tile(maj, (len(Y_eval), 1))
    micro, macro = _micro_macro(Y_eval, P)
    return {"micro_f1": micro, "macro_f1": macro,
            "per_label": {c: {"majority_value": int(maj[j]), "f1": _f1(Y_eval[:, j], P[:, j])}
                          for j, c in enumerate(classes)}}


@dataclass
class TrainResult:
    """What :func:`train_multilabel` returns: the bundle to save and the report."""

    bundle: dict
    report: dict
    dataset: pd.DataFrame = field(default=None)


def _metrics(Y, proba, classes, thresholds, cfg) -> dict:
    d_micro, d_macro = _micro_macro(Y, predict_tags(proba, classes, None, 0.5))
    c_micro, c_macro = _micro_macro(Y, predict_tags(proba, classes, thresholds))
    return {"micro_f1_default": d_micro, "macro_f1_default": d_macro,
            "micro_f1_calibrated": c_micro, "macro_f1_calibrated": c_macro}


def train_multilabel(features: pd.DataFrame, tag_lists, *, label_source: str,
                     cfg: TrainConfig = TrainConfig(), feature_cols=None,
                     excluded: dict | None = None, head_name: str = "tags",
                     sample_weight=None, progress=None) -> TrainResult:
    """Fit and evaluate a multi-label tag model.

    Parameters
    ----------
    features : DataFrame
        One row per loop; a ``file`` column and numeric features.
    tag_lists : list of list of str
        Tags per row.
    label_source : str
        Recorded in bundle and report ("audio", "filename", "hybrid", "roles",
        "contact_map").
    cfg : TrainConfig
    feature_cols : list of str, optional
        Columns to learn from (default: every numeric column but ``file``).
    excluded : dict, optional
        label -> columns that label must not see (leakage guard).
    head_name : str
        "tags" or "contact_map" (stored in the bundle).
    sample_weight : array-like, optional
        One weight per row of ``features`` (e.g. to give real recordings more
        say than generated loops); used for fitting, not for the metrics.
    progress : callable, optional
        ``progress(done, total, message)``.

    Returns
    -------
    TrainResult

    Raises
    ------
    ModelError
        Too few usable rows or labels.
    """
    from sklearn.preprocessing import MultiLabelBinarizer

    from .labels_audio import constant_labels
    from .split import train_val_test_split

    cfg = cfg.clamped()
    excluded = excluded or {}
    if feature_cols is None:
        feature_cols = [c for c in features.columns if c != "file"
                        and pd.api.types.is_numeric_dtype(features[c])]
    feature_cols = list(feature_cols)
    tag_lists = [sorted(set(t)) for t in tag_lists]
    counts: dict = {}
    for tags in tag_lists:
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    rare = sorted(t for t, k in counts.items() if k < cfg.min_tag_count)
    keep_tags = sorted(t for t, k in counts.items() if k >= cfg.min_tag_count)
    filtered = [[t for t in tags if t in keep_tags] for tags in tag_lists]
    constant = constant_labels(filtered, keep_tags)
    keep_tags = [t for t in keep_tags if t not in constant]
    filtered = [[t for t in tags if t in keep_tags] for tags in filtered]
    rows = [i for i, tags in enumerate(filtered) if tags]
    if len(rows) < 10 or not keep_tags:
        raise ModelError(f"not enough labelled rows to train ({len(rows)} rows with tags, "
                         f"{len(keep_tags)} usable labels; dropped rare {rare}, "
                         f"constant {constant})")
    if constant:
        import warnings

        warnings.warn(f"{label_source}: labels constant in this data set were dropped: "
                      f"{', '.join(constant)}", UserWarning, stacklevel=2)
    data = features.iloc[rows].reset_index(drop=True)
    tags_kept = [filtered[i] for i in rows]
    mlb = MultiLabelBinarizer(classes=keep_tags)
    Y = mlb.fit_transform(tags_kept)
    classes = list(mlb.classes_)
    label_features = {c: [f for f in feature_cols if f not in set(excluded.get(c, ()))]
                      for c in classes}
    X = data[feature_cols].astype(float).fillna(0.0)
    w = None if sample_weight is None else np.asarray(sample_weight, float)[rows]
    tr, va, te = train_val_test_split(Y, cfg.val_size, cfg.test_size, cfg.random_state)

    learners = ["rf", "xgb"] if cfg.learner == "auto" else [cfg.learner]
    fitted = {}
    for lk in learners:
        m = fit_model(X.iloc[tr], Y[tr], classes, label_features, cfg, lk, progress,
                      None if w is None else w[tr])
        pv = m.predict_proba(X.iloc[va])
        th = calibrate_thresholds(Y[va], pv, classes, cfg)
        fitted[lk] = (m, th, _micro_macro(Y[va], predict_tags(pv, classes, th))[1])
    best = max(fitted, key=lambda k: fitted[k][2])
    model, thresholds, _ = fitted[best]
    p_val, p_test = model.predict_proba(X.iloc[va]), model.predict_proba(X.iloc[te])
    val_m = _metrics(Y[va], p_val, classes, thresholds, cfg)
    test_m = _metrics(Y[te], p_test, classes, thresholds, cfg)
    base = majority_baseline(Y[tr], Y[te], classes)
    P_def, P_cal = predict_tags(p_test, classes, None, 0.5), predict_tags(p_test, classes,
                                                                          thresholds)
    label_metrics = {}
    for j, c in enumerate(classes):
        label_metrics[c] = {"support": int(Y[te, j].sum()),
                            "f1_default": _f1(Y[te, j], P_def[:, j]),
                            "f1_calibrated": _f1(Y[te, j], P_cal[:, j]),
                            "prevalence": float(Y[:, j].mean()),
                            "majority_baseline": base["per_label"][c]["f1"]}
    policy = cfg.calibration_policy()
    params = cfg.model_params()
    params["learner_chosen"] = best
    report = {
        "n_rows": int(len(rows)), "n_train": int(len(tr)), "n_val": int(len(va)),
        "n_test": int(len(te)), "n_classes": len(classes), "classes": classes,
        "label_source": label_source, "random_state": cfg.random_state,
        "split_strategy": "iterative_multilabel_stratified",
        "val_metrics": val_m, "test_metrics": test_m,
        "label_metrics_test": label_metrics, "thresholds": thresholds,
        "model_params": params, "calibration_policy": policy,
        "prevalence": {c: float(Y[:, j].mean()) for j, c in enumerate(classes)},
        "majority_baseline": {"test_micro_f1": base["micro_f1"],
                              "test_macro_f1": base["macro_f1"],
                              "per_label": base["per_label"]},
        "excluded_features": {c: sorted(set(excluded.get(c, ())) & set(feature_cols))
                              for c in classes},
        "dropped_labels": {"rare": rare, "constant": constant},
        "learner_val_macro_f1": {k: v[2] for k, v in fitted.items()},
        "head_name": head_name,
    }
    bundle = {"model": model, "feature_cols": model.feature_cols, "classes": classes,
              "label_source": label_source, "thresholds": thresholds,
              "calibration_policy": policy, "split_strategy": "iterative_multilabel_stratified",
              "random_state": cfg.random_state, "model_params": params,
              "head_name": head_name, "label_features": label_features}
    dataset = data[["file"]].copy() if "file" in data else pd.DataFrame(index=data.index)
    dataset["tags"] = [",".join(t) for t in tags_kept]
    dataset = pd.concat([dataset, X.reset_index(drop=True)], axis=1)
    return TrainResult(bundle=bundle, report=report, dataset=dataset)


def save_bundle(bundle: dict, path) -> None:
    """Write a model bundle atomically (joblib, compressed)."""
    import joblib

    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump(bundle, tmp, compress=3)


def load_bundle(path) -> dict:
    """Read a bundle written by :func:`save_bundle`.

    Raises
    ------
    ModelError
        Missing or not a tag-model bundle.
    """
    import joblib
    from pathlib import Path

    p = Path(str(path))
    if not p.is_file():
        raise ModelError(f"{p}: model file not found")
    try:
        b = joblib.load(p)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{p.name}: not a readable model bundle ({exc})") from None
    if not isinstance(b, dict) or not {"model", "classes", "thresholds"} <= set(b):
        raise ModelError(f"{p.name}: not a LoopLab tag-model bundle")
    return b
