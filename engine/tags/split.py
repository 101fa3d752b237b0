"""Iterative multi-label stratified split (Sechidis et al. 2011), vectorised.

The seed assigned one row per step and rescored every row in Python
(O(n^2 L)). Here each step takes the label with the fewest unassigned
positives and decides all its rows at once: the subset's remaining need for
that label is filled by the rows whose other labels the subset needs most
(NumPy scoring, seeded random tie-break); the rest go to the other side.
That is at most L steps of O(n L) array work, then a random top-up of rows
with no label to the target size.
"""
from __future__ import annotations

import numpy as np


def iterative_split(Y, fraction: float, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into (rest, subset) with ``subset`` ≈ ``fraction`` of rows
    and of every label's positives.

    Parameters
    ----------
    Y : array-like, shape (n, L), 0/1
    fraction : float
        Share of rows in the subset.
    seed : int

    Returns
    -------
    rest_idx, subset_idx : ndarray of int (sorted)

    Raises
    ------
    ValueError
        Fewer than 5 rows.
    """
    Y = np.asarray(Y, dtype=np.int8)
    if Y.ndim != 2:
        raise ValueError("Y must be 2-D (rows x labels)")
    n, L = Y.shape
    if n < 5:
        raise ValueError(f"need at least 5 rows to split, got {n}")
    rng = np.random.default_rng(seed)
    target = int(np.clip(round(n * fraction), 1, n - 1))
    counts = Y.sum(axis=0).astype(float)
    need = np.round(counts * fraction)                  # positives the subset still wants
    need_rest = counts - need
    in_sub = np.zeros(n, bool)
    assigned = np.zeros(n, bool)
    jitter = rng.random(n) * 1e-6                       # seeded tie-break
    active = counts > 0
    while True:
        remaining = Y[~assigned].sum(axis=0)
        cand = active & (remaining > 0)
        if not cand.any():
            break
        # label with the fewest unassigned positives; ties: the larger need
        order = np.lexsort((-need, remaining + np.where(cand, 0, 1 << 30)))
        lab = int(order[0])
        rows = np.flatnonzero(~assigned & (Y[:, lab] == 1))
        k = int(np.clip(need[lab], 0, rows.size))
        if k < rows.size and need_rest[lab] <= 0 and need[lab] > 0:
            k = rows.size
        room = target - int(in_sub.sum())
        k = int(min(k, max(room, 0)))
        if k > 0:
            # rows whose labels the subset still needs (relative to the rest) go first
            # (above or below the subset's fair share of each label)
            want = np.maximum(need, 0) / (np.maximum(need, 0) + np.maximum(need_rest, 0) + 1e-6)
            score = Y[rows] @ (want - fraction) + jitter[rows]
            take = rows[np.argsort(-score)[:k]]
            in_sub[take] = True
            need -= Y[take].sum(axis=0)
        give = np.setdiff1d(rows, rows[in_sub[rows]], assume_unique=True)
        need_rest -= Y[give].sum(axis=0)
        assigned[rows] = True
        active[lab] = False
    # top up (or trim) to the target size with the unassigned rows first
    short = target - int(in_sub.sum())
    if short > 0:
        pool = np.flatnonzero(~in_sub & ~assigned)
        if pool.size < short:
            pool = np.concatenate([pool, rng.permutation(np.flatnonzero(~in_sub & assigned))])
        else:
            pool = rng.permutation(pool)
        in_sub[pool[:short]] = True
    return np.flatnonzero(~in_sub), np.flatnonzero(in_sub)


def train_val_test_split(Y, val_size: float = 0.2, test_size: float = 0.2,
                         random_state: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's two-stage split: test first (``random_state``), then
    validation from the rest (fraction ``val/(1-test)`` clamped to [0.05, 0.5],
    seed ``random_state + 17``).

    Returns
    -------
    train_idx, val_idx, test_idx : ndarray of int
    """
    Y = np.asarray(Y)
    rest, test = iterative_split(Y, test_size, random_state)
    frac = float(np.clip(val_size / max(1.0 - test_size, 1e-6), 0.05, 0.5))
    tr, va = iterative_split(Y[rest], frac, random_state + 17)
    return rest[tr], rest[va], test
