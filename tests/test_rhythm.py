"""Tempo, beat and downbeat accuracy on generated tracks with known ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import AnalysisConfig
from engine.features import compute_track_features
from engine.rhythm import analyse_rhythm, fold_tempo
from engine.synth import synth_track

SR = 22050

# (bpm, beats_per_bar, swing, key, patterns)
CASES = [
    (70, 4, 0.0, "A minor", None),
    (85, 4, 0.0, "C major", ("breakbeat", "four_on_floor")),
    (100, 4, 0.3, "D minor", None),                 # swung
    (124, 4, 0.0, "F# major", None),
    (128, 4, 0.0, None, None),                      # drums only
    (140, 4, 0.0, "E minor", ("four_on_floor", "breakbeat")),
    (160, 4, 0.0, "B minor", ("breakbeat",)),
    (175, 4, 0.0, "C minor", None),
    (90, 3, 0.0, "G major", None),                  # 3/4
]


def _analyse(track, beats_per_bar):
    y = track.audio.mean(axis=1)
    cfg = AnalysisConfig(beats_per_bar=beats_per_bar)
    tf, onsets = compute_track_features(y, SR, cfg)
    return analyse_rhythm(y, SR, cfg, onsets=onsets, chroma=tf.chroma, chroma_fps=tf.fps)


@pytest.mark.parametrize("bpm,bpb,swing,key,patterns", CASES)
def test_tempo_beats_and_downbeats(bpm, bpb, swing, key, patterns):
    track = synth_track(bpm, beats_per_bar=bpb, n_bars=20, swing=swing, key=key, sr=SR,
                        stereo=False, seed=bpm, patterns=patterns,
                        instruments=("drums", "bass", "chords") if key else ("drums",),
                        lead_in_beats=1 + bpm % 3)
    grid = _analyse(track, bpb)
    truth = track.truth
    assert abs(grid.bpm - bpm) / bpm < 0.02, (grid.bpm, bpm)
    # beats: every estimated beat within 30 ms of a true beat
    beat_err = np.array([np.min(np.abs(truth.beats - b)) for b in grid.beats])
    assert np.mean(beat_err < 0.030) >= 0.95
    # downbeats: estimated downbeats inside the music fall on true downbeats
    inside = grid.downbeats[(grid.downbeats > truth.downbeats[0] - 0.05)
                            & (grid.downbeats < truth.downbeats[-1] + 0.05)]
    db_err = np.array([np.min(np.abs(truth.downbeats - d)) for d in inside])
    assert len(inside) >= len(truth.downbeats) - 1
    assert np.mean(db_err < 0.030) >= 0.95, db_err


def test_fold_tempo_into_dj_range():
    assert fold_tempo(60.0, 70, 180) == 120.0
    assert fold_tempo(200.0, 70, 180) == 100.0
    assert fold_tempo(69.8, 70, 180) == 69.8          # slack at the range edge
    assert fold_tempo(350.0, 70, 180) == 175.0


def test_three_four_can_be_detected_automatically():
    track = synth_track(120, beats_per_bar=3, n_bars=16, key="E minor", sr=SR, stereo=False,
                        seed=3)
    grid = _analyse(track, 0)
    assert grid.beats_per_bar == 3
