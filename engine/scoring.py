"""Loop-quality scoring and the composite re-rank.

Two sources of a per-candidate quality score, recorded in ``score_source``:

* ``"model:<name>"``: an XGBoost model saved as JSON/UBJ with its feature
  list (``<model>.json`` and ``<model>.features.json``, or the seed's
  separate ``features.json`` via ``features_path``); ``<name>`` is the model
  file's stem (the shipped default is ``model:loop_ranker``). Training lives
  in :mod:`engine.ranker`; this module only loads and applies.
* ``"heuristic"``: until a model is given, a transparent blend of the
  features that predict a clean, musical loop (drum periodicity, bar
  repetition, seam continuity, a strong first beat, steady energy).

A model may carry a *section guard* (:class:`SectionGuard`, stored in its
``<model>.meta.json``): multi-bar loops whose bars do not look like the same
parts playing (a part entering or leaving inside the loop), unless the bars
next to them repeat them bar for bar, are ranked below every loop that does,
so the top-k falls back to shorter loops (a 1-bar loop always passes) instead
of crossing an arrangement change. ``score`` stays the
model's own score; ``rank_score`` is the guarded one.

The composite re-rank keeps the earlier scripts' formula: weights for
the model score (min-max scaled within the track; 0.5 if constant),
periodicity and drum alignment; negative weights are clipped to 0 and the
rest renormalised (all zero -> 1/0/0). Sorting is stable.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import RankConfig
from .errors import ModelError

#: Heuristic weights: feature -> (weight, transform)
HEURISTIC_WEIGHTS = {
    "periodicity_score": 0.20,
    "bar_repetition": 0.15,
    "phrase_return": 0.15,
    "seam_spectral_continuity": 0.10,
    "drum_alignment_score": 0.15,
    "energy_stability": 0.10,
    "seam_onset_at_start": 0.05,
    "phrase_length": 0.10,
    "seam_rms_jump_db": -0.05,
}

#: DJ phrase prior: 4- and 8-bar loops are the working lengths of a DJ set;
#: 1-bar loops are for builds and stutters.
PHRASE_LENGTH_PRIOR = {1: 0.0, 2: 0.5, 4: 1.0, 8: 0.9, 16: 0.6}


def heuristic_quality(features: pd.DataFrame) -> np.ndarray:
    """Transparent loop-quality score in [0, 1] from candidate features."""
    f = features
    terms = {
        "periodicity_score": np.clip(f["periodicity_score"], 0, 1),
        "bar_repetition": np.clip(f["bar_repetition"], 0, 1),
        "phrase_return": np.clip(f["phrase_return"], 0, 1),
        "phrase_length": (np.array([PHRASE_LENGTH_PRIOR.get(int(b), 0.5) for b in f["bars"]])
                          if "bars" in f else np.zeros(len(f))),
        "seam_spectral_continuity": np.clip(f["seam_spectral_continuity"], 0, 1),
        "drum_alignment_score": np.clip(f["drum_alignment_score"], 0, 1),
        "energy_stability": np.clip(f["energy_stability"], 0, 1),
        "seam_onset_at_start": np.clip(f["seam_onset_at_start"] / 2.0, 0, 1),
        "seam_rms_jump_db": np.clip(f["seam_rms_jump_db"] / 12.0, 0, 1),
    }
    score = sum(HEURISTIC_WEIGHTS[k] * np.asarray(v, float) for k, v in terms.items())
    return np.clip(score / sum(w for w in HEURISTIC_WEIGHTS.values() if w > 0) + 0.05, 0, 1)


def composite_weights(cfg: RankConfig) -> tuple[float, float, float]:
    """The seed's weight normalisation: clip negatives, renormalise, 1/0/0 if all zero."""
    w = np.clip([cfg.weight_model_score, cfg.weight_periodicity, cfg.weight_drum_alignment], 0, None)
    if w.sum() <= 0:
        return 1.0, 0.0, 0.0
    w = w / w.sum()
    return float(w[0]), float(w[1]), float(w[2])


def minmax(x) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant input maps to 0.5."""
    x = np.asarray(x, float)
    lo, hi = np.nanmin(x) if x.size else 0.0, np.nanmax(x) if x.size else 0.0
    if not x.size or hi - lo < 1e-12:
        return np.full(x.shape, 0.5)
    return (x - lo) / (hi - lo)


@dataclass
class SectionGuard:
    """Which multi-bar loops may be ranked as staying inside one arrangement section.

    A loop of more than one bar passes when every guard feature of ``thresholds`` is at
    most its threshold (the features measure change between the loop's bars: a part
    entering or leaving), or when every feature of one of the ``alternatives`` rules is
    (e.g. the bars after the loop repeat it bar for bar: a chord progression that
    changes every bar, inside one section). Thresholds come from training
    (:data:`engine.ranker.GUARD_THRESHOLDS`, :data:`engine.ranker.GUARD_ALTERNATIVES`,
    recorded in the model's metadata by :func:`engine.ranker.section_guard_meta`).
    """

    thresholds: dict
    alternatives: tuple = ()

    @staticmethod
    def _rule(features: pd.DataFrame, rule: dict) -> np.ndarray:
        ok = np.ones(len(features), bool)
        for name, t in rule.items():
            if name not in features.columns:
                raise ModelError(f"section guard: candidates lack feature {name!r}")
            ok &= features[name].to_numpy(float) <= float(t)
        return ok

    def passes(self, features: pd.DataFrame) -> np.ndarray:
        """True for rows that pass (every 1-bar loop does)."""
        ok = self._rule(features, self.thresholds)
        for rule in self.alternatives:
            ok |= self._rule(features, rule)
        bars = features["bars"].to_numpy(float) if "bars" in features.columns else np.ones(len(features))
        return ok | (bars <= 1)

    def apply(self, scores, features: pd.DataFrame) -> np.ndarray:
        """``scores`` with every failing row moved below every passing one (order kept
        within each side)."""
        s = np.asarray(scores, float).copy()
        if not s.size:
            return s
        fail = ~self.passes(features)
        s[fail] -= float(np.nanmax(s) - np.nanmin(s)) + 1.0
        return s

    @classmethod
    def from_meta(cls, meta: dict) -> "SectionGuard | None":
        g = meta.get("section_guard") if isinstance(meta, dict) else None
        if not g or not g.get("thresholds"):
            return None
        alts = tuple({str(k): float(v) for k, v in rule.items()}
                     for rule in (g.get("alternatives") or []))
        return cls(thresholds={str(k): float(v) for k, v in g["thresholds"].items()},
                   alternatives=alts)


@dataclass
class LoopScorer:
    """An XGBoost loop-quality model, the feature columns it expects and its
    optional :class:`SectionGuard`."""

    booster: object
    feature_names: list
    path: str
    guard: SectionGuard | None = None

    @classmethod
    def load(cls, model_path, features_path=None) -> "LoopScorer":
        """Load ``model_path`` (XGBoost JSON/UBJ) and its feature list.

        The feature list is read from ``features_path``, else
        ``<model>.features.json``, else ``features.json`` beside the model
        (the seed's layout).
        """
        import xgboost as xgb

        mp = Path(model_path)
        if not mp.is_file():
            raise ModelError(f"loop-quality model not found: {mp}")
        cands = [Path(features_path)] if features_path else [
            mp.with_suffix(".features.json"), mp.parent / "features.json"]
        fp = next((p for p in cands if p.is_file()), None)
        if fp is None:
            raise ModelError(f"{mp.name}: no feature list found (looked for "
                             f"{', '.join(str(p) for p in cands)})")
        try:
            names = json.loads(fp.read_text())
            booster = xgb.Booster()
            booster.load_model(str(mp))
        except Exception as exc:  # noqa: BLE001 - report any decode problem clearly
            raise ModelError(f"{mp.name}: could not load model ({exc})") from None
        if not isinstance(names, list) or not names:
            raise ModelError(f"{fp.name}: feature list must be a non-empty JSON array")
        guard = None
        meta_path = mp.with_suffix(".meta.json")
        if meta_path.is_file():
            try:
                guard = SectionGuard.from_meta(json.loads(meta_path.read_text()))
            except (ValueError, TypeError, AttributeError) as exc:
                raise ModelError(f"{meta_path.name}: bad section_guard ({exc})") from None
        return cls(booster=booster, feature_names=[str(n) for n in names], path=str(mp),
                   guard=guard)

    @property
    def name(self) -> str:
        """The model's name (its file stem), reported in ``score_source``."""
        return Path(self.path).stem

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Model scores for each row of ``features``.

        Raises
        ------
        ModelError
            If columns the model needs are missing (the seed zero-filled
            them silently, which gave garbage scores).
        """
        import xgboost as xgb

        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise ModelError(f"{Path(self.path).name}: candidates lack features {missing[:8]}"
                             f"{' ...' if len(missing) > 8 else ''}")
        X = features[self.feature_names].to_numpy(np.float32)
        return self.booster.predict(xgb.DMatrix(X, feature_names=self.feature_names))

    def rank_scores(self, features: pd.DataFrame, scores=None) -> np.ndarray:
        """The scores to rank by: :meth:`predict` (or ``scores``) with the section
        guard applied when the model has one."""
        s = self.predict(features).astype(float) if scores is None else np.asarray(scores, float)
        return self.guard.apply(s, features) if self.guard is not None else s


def score_candidates(features: pd.DataFrame, cfg: RankConfig = RankConfig(),
                     scorer: LoopScorer | None = None) -> pd.DataFrame:
    """Add ``score``, ``score_source`` and ``beatmatch_composite_score``.

    Parameters
    ----------
    features : DataFrame
        One track's candidates with :data:`engine.schema.FEATURE_COLUMNS`.
    cfg : RankConfig
    scorer : LoopScorer, optional
        If absent, the heuristic score is used.

    Returns
    -------
    DataFrame
        A copy with the score columns added; ``rank_score`` is the column
        to rank by (composite if enabled, else ``score``; by default the
        composite applies to the heuristic only).
    """
    out = features.copy()
    if scorer is not None:
        out["score"] = scorer.predict(out).astype(float)
        out["score_source"] = f"model:{scorer.name}"
    else:
        out["score"] = heuristic_quality(out)
        out["score_source"] = "heuristic"
    w1, w2, w3 = composite_weights(cfg)
    out["beatmatch_composite_score"] = (
        w1 * minmax(out["score"]) + w2 * np.clip(out["periodicity_score"], 0, 1)
        + w3 * np.clip(out["drum_alignment_score"], 0, 1))
    # default: the heuristic needs the composite, a trained model does not
    use = cfg.use_composite_rerank and (scorer is None or cfg.composite_on_model)
    if use:
        out["rank_score"] = out["beatmatch_composite_score"]
    elif scorer is not None and cfg.section_guard:
        out["rank_score"] = scorer.rank_scores(out, out["score"].to_numpy())
    else:
        out["rank_score"] = out["score"]
    return out
