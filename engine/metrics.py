"""Ranking metrics: precision@k, recall@k, NDCG@k, average precision.

Inputs are validated the way ``mir_eval`` validates its inputs (a bad input
raises ``ValueError`` naming the problem; an empty ranking is allowed and
scores 0 with a warning), and :func:`ranking_metrics` returns the results by
name, like ``mir_eval``'s ``evaluate`` functions.

A ranking is given as the relevance of its items **in rank order** (best
first). Relevance is a non-negative number: binary metrics (precision,
recall, AP) count an item as relevant when its relevance is at least
``threshold``; NDCG uses the graded gain ``2**rel - 1`` and log2 discounts.
Ties in scores are broken by :func:`rank_by_score` in input order (stable),
so every metric is deterministic.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np


def validate_relevance(relevance) -> np.ndarray:
    """Check a relevance vector; returns it as a float array.

    Raises
    ------
    ValueError
        Not one-dimensional, not numeric, NaN/inf, or negative values.
    """
    try:
        rel = np.asarray(relevance, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("relevance must be numeric") from None
    if rel.ndim != 1:
        raise ValueError(f"relevance must be one-dimensional, got shape {rel.shape}")
    if not np.all(np.isfinite(rel)):
        raise ValueError("relevance contains NaN or infinite values")
    if np.any(rel < 0):
        raise ValueError("relevance must be non-negative")
    if rel.size == 0:
        warnings.warn("empty ranking: metrics are 0", stacklevel=3)
    return rel


def validate_k(k) -> int:
    """k must be a positive whole number."""
    if isinstance(k, bool) or not float(k).is_integer() or int(k) < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def rank_by_score(scores, relevance) -> np.ndarray:
    """Relevance reordered by descending score; ties keep input order."""
    s = np.asarray(scores, float)
    rel = validate_relevance(relevance)
    if s.shape != rel.shape:
        raise ValueError(f"scores {s.shape} and relevance {rel.shape} differ in shape")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    return rel[np.argsort(-s, kind="mergesort")]


def precision_at_k(ranked, k, threshold: float = 1.0) -> float:
    """Fraction of the first ``k`` items that are relevant.

    When the list is shorter than ``k`` the missing items count as not
    relevant (the denominator stays ``k``), as in trec_eval.
    """
    rel = validate_relevance(ranked)
    k = validate_k(k)
    return float(np.count_nonzero(rel[:k] >= threshold) / k)


def recall_at_k(ranked, k, n_relevant: int | None = None, threshold: float = 1.0) -> float:
    """Fraction of all relevant items found in the first ``k``.

    ``n_relevant`` is the number of relevant items in the whole collection
    (default: those in ``ranked``). 0 when nothing is relevant.
    """
    rel = validate_relevance(ranked)
    k = validate_k(k)
    total = int(np.count_nonzero(rel >= threshold)) if n_relevant is None else int(n_relevant)
    if total < 0:
        raise ValueError("n_relevant must be non-negative")
    if total == 0:
        return 0.0
    return float(np.count_nonzero(rel[:k] >= threshold) / total)


def dcg_at_k(ranked, k) -> float:
    """Discounted cumulative gain: sum of (2**rel - 1) / log2(rank + 1)."""
    rel = validate_relevance(ranked)[: validate_k(k)]
    return float(np.sum((2.0 ** rel - 1.0) / np.log2(np.arange(2, rel.size + 2))))


def ndcg_at_k(ranked, k, ideal=None) -> float:
    """DCG@k over the DCG@k of the ideal ordering.

    ``ideal`` is the relevance of every candidate (any order; default: the
    items of ``ranked``), so a ranking that shows only a subset is compared
    with the best possible. 0 when nothing is relevant.
    """
    rel = validate_relevance(ranked)
    ideal = rel if ideal is None else validate_relevance(ideal)
    best = dcg_at_k(np.sort(ideal)[::-1], k)
    return float(dcg_at_k(rel, k) / best) if best > 0 else 0.0


def average_precision(ranked, n_relevant: int | None = None, threshold: float = 1.0) -> float:
    """Mean of precision@i over the ranks i of the relevant items (0 if none)."""
    rel = validate_relevance(ranked) >= threshold
    total = int(rel.sum()) if n_relevant is None else int(n_relevant)
    if total <= 0:
        return 0.0
    hits = np.cumsum(rel)
    prec = hits / np.arange(1, rel.size + 1)
    return float(np.sum(prec[rel]) / total)


def ranking_metrics(ranked, k: int = 5, *, ideal=None, n_relevant: int | None = None,
                    threshold: float = 2.0) -> "OrderedDict[str, float]":
    """All metrics of one ranking, by name (``P@k``, ``R@k``, ``NDCG@k``, ``AP``).

    Parameters
    ----------
    ranked : array_like
        Relevance of the shown items, best first.
    k : int
    ideal : array_like, optional
        Relevance of every candidate (for NDCG's ideal and the default
        ``n_relevant``).
    n_relevant : int, optional
        Relevant items in the collection (default: counted in ``ideal`` or
        ``ranked``).
    threshold : float
        Relevance at which an item counts as relevant for P, R and AP.
    """
    rel = validate_relevance(ranked)
    k = validate_k(k)
    pool = rel if ideal is None else validate_relevance(ideal)
    if n_relevant is None:
        n_relevant = int(np.count_nonzero(pool >= threshold))
    out = OrderedDict()
    out[f"P@{k}"] = precision_at_k(rel, k, threshold)
    out[f"R@{k}"] = recall_at_k(rel, k, n_relevant, threshold)
    out[f"NDCG@{k}"] = ndcg_at_k(rel, k, pool)
    out["AP"] = average_precision(rel, n_relevant, threshold)
    return out


def mean_metrics(per_track: list) -> "OrderedDict[str, float]":
    """Average named metrics over tracks (each track weighs the same)."""
    if not per_track:
        return OrderedDict()
    keys = list(per_track[0].keys())
    return OrderedDict((key, float(np.mean([m[key] for m in per_track]))) for key in keys)
