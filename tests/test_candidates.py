"""Candidate generation, adaptive lengths and near-duplicate suppression."""
from __future__ import annotations

import numpy as np
import pandas as pd

from engine.candidates import (choose_adaptive_bar_options, generate_candidates, overlap_fraction,
                               select_distinct)
from engine.rhythm import RhythmGrid


def _grid(bpm=120.0, n_beats=64, first=0.5, bpb=4):
    beats = first + np.arange(n_beats) * 60.0 / bpm
    return RhythmGrid(bpm=bpm, beats=beats, downbeats=beats[::bpb], beats_per_bar=bpb, bar_phase=0,
                      confidence=1.0, bar_confidence=1.0, constant_tempo=True)


def test_candidates_start_and_end_on_bar_lines():
    g = _grid()
    df = generate_candidates(g, duration=40.0, bars=(1, 2, 4, 8))
    lines = np.append(g.downbeats, g.downbeats[-1] + g.bar_duration)
    for _, r in df.iterrows():
        assert np.min(np.abs(lines - r.start_time)) < 1e-9
        assert np.min(np.abs(lines - r.end_time)) < 1e-9
        assert abs((r.end_time - r.start_time) - r.bars * g.bar_duration) < 1e-9
    assert set(df.bars) == {1, 2, 4, 8}
    # 16 full bars fit: 16 one-bar loops, 9 eight-bar loops
    assert (df.bars == 1).sum() == 16 and (df.bars == 8).sum() == 9


def test_no_candidate_runs_past_the_audio():
    g = _grid()
    df = generate_candidates(g, duration=10.0, bars=(1, 4))
    assert (df.end_time <= 10.0 + 1e-9).all()


def test_adaptive_choice_keeps_both_when_close():
    beats = np.arange(80) * 0.5
    assert choose_adaptive_bar_options(beats, 120.0, (4, 8)) == [4, 8]
    assert choose_adaptive_bar_options(beats[:20], 120.0, (4, 8)) == [4, 8]   # < 40 beats
    assert choose_adaptive_bar_options(beats, 120.0, (1, 4)) == [1, 4]


def test_select_distinct_skips_overlaps():
    df = pd.DataFrame({"start_time": [0.0, 2.0, 0.0, 16.0, 8.0],
                       "end_time": [8.0, 10.0, 2.0, 24.0, 16.0],
                       "score": [0.9, 0.85, 0.8, 0.7, 0.6]})
    top = select_distinct(df, "score", k=3, max_overlap=0.5)
    assert list(top.index) == [0, 3, 4]
    assert list(top["rank"]) == [1, 2, 3]
    assert overlap_fraction(0, 8, 2, 10) == 0.75
    assert overlap_fraction(0, 1, 2, 3) == 0.0
