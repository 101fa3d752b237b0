"""Helpers shared by the contact-map stages (a leaf module: imports nothing of the package)."""
from __future__ import annotations

import numpy as np


def noop_progress(done, total, message):  # pragma: no cover - trivial
    """The ``progress(done, total, message)`` callback that does nothing."""
    return None


def row_ranks(rows, cols, vals, n):
    """Rank (0 = best) of each directed entry within its row, by value desc then column."""
    o = np.lexsort((cols, -vals, rows))
    ranks = np.empty(rows.size, np.int64)
    starts = np.searchsorted(rows[o], np.arange(n))
    ranks[o] = np.arange(rows.size) - starts[rows[o]]
    return ranks
