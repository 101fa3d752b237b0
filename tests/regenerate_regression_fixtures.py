"""Regenerate tests/fixtures/regression/ (frozen features, scores, ranks, loop bounds).

Run this ONLY when a change is meant to alter analysis or ranking results
(e.g. a new tempo method or a trained ranker), then review the diff of the
fixture files and commit them with the change that explains them::

    python tests/regenerate_regression_fixtures.py
    git diff --stat tests/fixtures/regression/
"""
from __future__ import annotations

from regression_cases import CASES, FIXTURES, write

if __name__ == "__main__":
    for name in CASES:
        write(name)
        print(f"wrote {FIXTURES / name}.csv and .json")
