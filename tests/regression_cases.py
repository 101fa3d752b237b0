"""The regression cases: two generated tracks through analysis and ranking.

Shared by tests/test_regression.py (compares) and
tests/regenerate_regression_fixtures.py (writes tests/fixtures/regression/).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.config import AnalysisConfig, RankConfig  # noqa: E402
from engine.pipeline import analyse_track, rank_track  # noqa: E402
from engine.schema import CANDIDATE_COLUMNS, FEATURE_COLUMNS, KEY_COLUMNS  # noqa: E402
from engine.synth import synth_track  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "regression"

#: name -> (synth_track arguments, AnalysisConfig arguments)
CASES = {
    "four_124": (dict(bpm=124.0, n_bars=16, seed=3, key="A minor"), dict()),
    "waltz_96_swing": (dict(bpm=96.0, beats_per_bar=3, n_bars=12, swing=0.3, key="E major",
                            seed=5), dict(beats_per_bar=3)),
}

#: Columns frozen per candidate.
SCORE_COLUMNS = ["score", "beatmatch_composite_score", "rank_score"]
FROZEN_COLUMNS = [*CANDIDATE_COLUMNS, *KEY_COLUMNS, *FEATURE_COLUMNS, *SCORE_COLUMNS,
                  "selected_rank"]


def compute(name: str):
    """(candidates table with the frozen columns, track summary dict) for one case."""
    track_args, cfg_args = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = synth_track(**track_args).write(Path(tmp) / f"{name}.wav")
        analysis = analyse_track(path, AnalysisConfig(**cfg_args))
    scored, selected = rank_track(analysis, RankConfig())
    scored = scored.copy()
    scored["selected_rank"] = 0
    scored.loc[selected.index, "selected_rank"] = selected["rank"].astype(int)
    grid = analysis.grid
    summary = {"bpm": round(float(grid.bpm), 6), "beats_per_bar": int(grid.beats_per_bar),
               "n_beats": int(len(grid.beats)), "n_downbeats": int(len(grid.downbeats)),
               "first_downbeats": [round(float(t), 6) for t in grid.downbeats[:4]],
               "key": analysis.key}
    return scored[FROZEN_COLUMNS].reset_index(drop=True), summary


def write(name: str) -> None:
    table, summary = compute(name)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    table.to_csv(FIXTURES / f"{name}.csv", index=False, float_format="%.10g")
    (FIXTURES / f"{name}.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
