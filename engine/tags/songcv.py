"""Roles heads trained on a mix of generated and real loops, judged on held-out songs.

Loops cut from one song share its instruments, mix and tempo, so a split by
loop lets a model recognise the song instead of the roles. Everything here
groups by *song* (:func:`engine.tags.roles.song_of`): no song's loops (full
mixes or part renders) are on both sides of a split.

* :func:`song_folds` assigns songs (and generated loops, each its own group)
  to k folds;
* :func:`grouped_oof` fits one model per fold on the other folds' rows and
  predicts the held-out rows (out-of-fold probabilities);
* :func:`crossfit_decisions` turns out-of-fold probabilities into tags with
  per-label thresholds calibrated on the *other* folds' out-of-fold rows
  (so the thresholds applied to a song never saw that song's labels);
* :func:`mix_weights` weighs rows so the generated loops, however many, carry
  a fixed share of the total weight (``synth_share``) and real material is
  not drowned out;
* :func:`train_roles_mix` fits the final model on every row, with thresholds
  calibrated on the grouped out-of-fold probabilities of the real rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .model import TrainConfig, calibrate_thresholds, fit_model
from .model import binary_f1 as _f1
from .roles import ROLES


@dataclass(frozen=True)
class MixConfig:
    """A training mix and its learner settings.

    Attributes
    ----------
    synth_share : float
        Share of the total training weight carried by generated loops (0 =
        no generated loops; 0.5 = as much as all real rows together).
    use_parts : bool
        Include part renders (songs re-rendered with a subset of their parts).
    learner : str
        ``"lr"`` (standardised logistic regression, C = ``lr_c``) or ``"rf"``
        (random forest: ``n_estimators``, ``min_samples_leaf``); one per role.
    folds : int
        Song folds for the out-of-fold thresholds.
    calibrate_on : str
        Rows whose out-of-fold probabilities calibrate the thresholds:
        ``"full"`` (real full mixes) or ``"full+synth"`` (and the generated
        loops, so one threshold serves both kinds of material).
    seed : int
    """

    synth_share: float = 0.3
    use_parts: bool = True
    learner: str = "lr"
    lr_c: float = 0.1
    n_estimators: int = 200
    min_samples_leaf: int = 3
    folds: int = 5
    seed: int = 0
    calibrate_on: str = "full+synth"

    def train_config(self) -> TrainConfig:
        return TrainConfig(n_estimators=self.n_estimators,
                           min_samples_leaf=self.min_samples_leaf, random_state=42,
                           learner=self.learner, lr_c=self.lr_c).clamped()


def song_folds(groups, k: int, seed: int = 0) -> np.ndarray:
    """Fold index per row: groups shuffled and dealt round-robin to ``k`` folds
    (every row of a group in the same fold)."""
    groups = np.asarray(groups)
    uniq = np.array(sorted(set(groups)))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    return np.array([fold_of[g] for g in groups])


def mix_weights(kind, synth_share: float) -> np.ndarray:
    """Row weights: real rows 1; generated rows share ``synth_share`` of the total.

    Parameters
    ----------
    kind : array of str
        ``"synth"`` for generated rows, anything else for real rows.
    """
    kind = np.asarray(kind)
    synth = kind == "synth"
    w = np.ones(len(kind))
    n_s, n_r = int(synth.sum()), int((~synth).sum())
    if n_s and n_r and 0 < synth_share < 1:
        w[synth] = synth_share / (1 - synth_share) * n_r / n_s
    return w


def _fit(X, Y, w, classes, cfg: TrainConfig):
    feats = {c: list(X.columns) for c in classes}
    return fit_model(X, Y, classes, feats, cfg, cfg.learner, None, w)


def grouped_oof(X: pd.DataFrame, Y: np.ndarray, w: np.ndarray, folds: np.ndarray,
                classes, cfg: TrainConfig, eval_mask=None, progress=None) -> np.ndarray:
    """Out-of-fold probabilities (n, L); rows outside ``eval_mask`` are NaN
    (they are training-only rows, e.g. part renders)."""
    eval_mask = np.ones(len(X), bool) if eval_mask is None else np.asarray(eval_mask)
    out = np.full(Y.shape, np.nan)
    ks = sorted(set(folds))
    for i, k in enumerate(ks):
        tr, te = folds != k, (folds == k) & eval_mask
        if not te.any():
            continue
        m = _fit(X[tr], Y[tr], w[tr], classes, cfg)
        out[te] = m.predict_proba(X[te])
        if progress:
            progress(i + 1, len(ks), f"song fold {k}")
    return out


def decide(proba: np.ndarray, classes, thresholds: dict) -> np.ndarray:
    """0/1 tags as :func:`engine.tags.classify.head_columns` decides them
    (calibrated thresholds; the most probable label when none passes)."""
    t = np.array([thresholds.get(c, 0.5) for c in classes])
    on = (proba >= t[None, :]).astype(int)
    empty = on.sum(axis=1) == 0
    on[empty, np.argmax(proba[empty], axis=1)] = 1
    return on


def calibrate_roles(Y: np.ndarray, proba: np.ndarray, classes, cfg: TrainConfig) -> dict:
    """Per-label thresholds (:func:`engine.tags.model.calibrate_thresholds`,
    the seed's guardrails), then a fallback: a label whose best threshold does
    not beat always predicting it on these rows gets threshold 0 (always on),
    so a role the model cannot tell apart on held-out songs falls back to the
    majority answer instead of doing worse than it."""
    th = calibrate_thresholds(Y, proba, classes, cfg)
    for j, c in enumerate(classes):
        y = Y[:, j]
        if y.mean() < 0.5:
            continue
        best = _f1(y, (proba[:, j] >= th[c]).astype(int))
        if _f1(y, np.ones_like(y)) >= best:
            th[c] = 0.0
    return th


def crossfit_decisions(oof: np.ndarray, Y: np.ndarray, folds: np.ndarray, classes,
                       cfg: TrainConfig, calib_mask=None) -> np.ndarray:
    """Tags for out-of-fold rows, each fold decided with thresholds calibrated
    on the other folds' out-of-fold rows (restricted to ``calib_mask``)."""
    ok = ~np.isnan(oof).any(axis=1)
    calib = ok if calib_mask is None else ok & np.asarray(calib_mask)
    P = np.zeros(Y.shape, int)
    for k in sorted(set(folds[ok])):
        te, cal = ok & (folds == k), calib & (folds != k)
        th = calibrate_roles(Y[cal], oof[cal], classes, cfg)
        P[te] = decide(oof[te], classes, th)
    return P


def role_report(Y: np.ndarray, P: np.ndarray, classes) -> dict:
    """Per-label F1, prevalence and the majority baseline (each label's majority
    value in ``Y``), and the macro-F1 of both over labels with positives."""
    per = {}
    for j, c in enumerate(classes):
        maj = int(Y[:, j].mean() >= 0.5) if len(Y) else 0
        per[c] = {"prevalence": float(Y[:, j].mean()) if len(Y) else 0.0,
                  "support": int(Y[:, j].sum()),
                  "f1": _f1(Y[:, j], P[:, j]),
                  "majority_value": maj,
                  "majority_f1": _f1(Y[:, j], np.full(len(Y), maj)),
                  "predicted_rate": float(P[:, j].mean()) if len(Y) else 0.0}
    present = [c for c in classes if per[c]["support"] > 0]
    return {"n": int(len(Y)), "per_label": per, "labels_scored": present,
            "macro_f1": float(np.mean([per[c]["f1"] for c in present])) if present else 0.0,
            "majority_macro_f1": float(np.mean([per[c]["majority_f1"] for c in present]))
            if present else 0.0}


def _calib_mask(kind, mix: MixConfig) -> np.ndarray:
    kinds = {"full": ("full",), "full+synth": ("full", "synth")}.get(mix.calibrate_on)
    if kinds is None:
        raise ValueError(f"calibrate_on must be 'full' or 'full+synth', not {mix.calibrate_on!r}")
    return np.isin(np.asarray(kind), kinds)


def label_matrix(tag_lists, classes=ROLES) -> np.ndarray:
    return np.array([[c in set(t) for c in classes] for t in tag_lists], int)


def _mix_rows(X: pd.DataFrame, tags, kind, song, mix: MixConfig):
    """The rows a mix trains on (no generated rows when its share is 0, no
    part renders unless asked) and their role matrix, kinds and songs."""
    kind, song = np.asarray(kind), np.asarray(song)
    keep = np.ones(len(X), bool)
    if mix.synth_share <= 0:
        keep &= kind != "synth"
    if not mix.use_parts:
        keep &= kind != "part"
    Y = label_matrix([t for t, k in zip(tags, keep) if k])
    return X[keep].reset_index(drop=True), Y, kind[keep], song[keep]


def _mix_oof(X, Y, kind, song, classes, mix: MixConfig, progress=None):
    """Song-grouped out-of-fold probabilities of a mix's rows.

    Returns ``(cfg, folds, full, calib, oof)``: the training config, the song
    folds, the masks of the real full-mix rows and of the calibration rows,
    and the (n_rows, n_classes) out-of-fold probabilities (NaN outside the
    evaluated rows).
    """
    cfg = mix.train_config()
    folds = song_folds(song, mix.folds, mix.seed)
    w = mix_weights(kind, mix.synth_share)
    full = kind == "full"
    calib = _calib_mask(kind, mix)
    oof = grouped_oof(X, Y, w, folds, classes, cfg, eval_mask=full | calib,
                      progress=progress)
    return cfg, folds, full, calib, oof


def evaluate_mix(X: pd.DataFrame, tags, kind, song, mix: MixConfig, progress=None) -> dict:
    """Grouped-by-song cross-validation of one training mix.

    Parameters
    ----------
    X : features (numeric columns only), one row per loop
    tags : list of role lists
    kind : per row ``"synth"`` (generated), ``"full"`` (a real song's full
        mix) or ``"part"`` (a part render of a real song)
    song : per row the song (generated rows: their own file name)
    mix : MixConfig

    Returns
    -------
    dict
        ``role_report`` of the real full-mix rows (out-of-fold, cross-fitted
        thresholds) plus the mix settings.
    """
    X, Y, kind, song = _mix_rows(X, tags, kind, song, mix)
    classes = list(ROLES)
    cfg, folds, full, calib, oof = _mix_oof(X, Y, kind, song, classes, mix, progress)
    P = crossfit_decisions(oof, Y, folds, classes, cfg, calib_mask=calib)
    rep = role_report(Y[full], P[full], classes)
    rep["mix"] = asdict(mix)
    return rep


def train_roles_mix(X: pd.DataFrame, tags, kind, song, mix: MixConfig, progress=None):
    """Fit the final roles model on every row of the mix.

    Thresholds are calibrated on grouped out-of-fold probabilities of the real
    full-mix rows (``mix.folds`` song folds); the report carries those
    out-of-fold scores (:func:`role_report`, cross-fitted thresholds).

    Returns
    -------
    bundle : dict
        A tag-head bundle (:func:`engine.tags.model.save_bundle`).
    report : dict
    """
    X, Y, kind, song = _mix_rows(X, tags, kind, song, mix)
    present = Y.sum(axis=0) > 0
    classes = [c for c, p in zip(ROLES, present) if p]
    Y = Y[:, present]
    cfg, folds, full, calib, oof = _mix_oof(X, Y, kind, song, classes, mix, progress)
    ok = calib & ~np.isnan(oof).any(axis=1)
    thresholds = calibrate_roles(Y[ok], oof[ok], classes, cfg)
    P = crossfit_decisions(oof, Y, folds, classes, cfg, calib_mask=calib)
    cv = role_report(Y[full], P[full], classes)
    model = _fit(X, Y, mix_weights(kind, mix.synth_share), classes, cfg)
    params = cfg.model_params()
    params["learner_chosen"] = cfg.learner
    policy = cfg.calibration_policy()
    label_features = {c: list(X.columns) for c in classes}
    bundle = {"model": model, "feature_cols": model.feature_cols, "classes": classes,
              "label_source": "roles", "thresholds": thresholds,
              "calibration_policy": policy,
              "split_strategy": f"grouped_by_song_{mix.folds}_fold_oof_thresholds",
              "random_state": cfg.random_state, "model_params": params,
              "head_name": "tags", "label_features": label_features}
    report = {"label_source": "roles", "classes": classes, "n_rows": int(len(X)),
              "rows_by_kind": {k: int(np.sum(kind == k)) for k in sorted(set(kind))},
              "n_songs": int(len(set(song[kind != "synth"]))),
              "thresholds": thresholds, "model_params": params,
              "calibration_policy": policy, "mix": asdict(mix),
              "split_strategy": bundle["split_strategy"],
              "song_cv": cv,
              "prevalence": {c: float(Y[:, j].mean()) for j, c in enumerate(classes)}}
    return bundle, report
