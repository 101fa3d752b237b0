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


def test_ring_out_after_the_last_played_bar_is_no_loop():
    """Trailing bars without a real onset (the last hit's decay) are left out;
    a silent break in the middle of the track is not."""
    from engine.candidates import music_end_line

    fps, bar = 100.0, 2.0
    lines = np.arange(13) * bar                     # 12 bars
    env = np.zeros(int(lines[-1] * fps) + 50)
    for k in range(12):
        if k in (4, 5) or k >= 10:                  # a 2-bar break, then 2 bars of ring-out
            continue
        for b in range(4):
            env[int((lines[k] + b * bar / 4) * fps)] = 1.0
    env[int(lines[10] * fps) + 3] = 0.1             # the decay's faint flux
    assert music_end_line(lines, env, fps) == 10
    assert music_end_line(lines, np.ones_like(env), fps) == 12     # plays to the end
    g = _grid(bpm=120.0, n_beats=48, first=0.0)
    df = generate_candidates(g, duration=26.0, bars=(1, 2), onset_envelope=env, fps=fps)
    assert df.end_time.max() == 20.0
    assert ((df.start_time < 10.0) & (df.end_time > 8.0)).any()    # loops over the break stay


def test_a_decaying_final_chord_gets_no_loop_on_generated_audio():
    import tempfile
    from pathlib import Path

    import soundfile as sf

    from engine.config import AnalysisConfig
    from engine.pipeline import analyse_track
    from engine.synth import synth_track

    sr, bpm = 22050, 120.0
    track = synth_track(bpm, n_bars=8, seed=2, sr=sr, stereo=False, tail_seconds=0.0)
    t = np.arange(int(6.0 * sr)) / sr              # 3 bars of a decaying A minor chord
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63)) * np.exp(-t / 0.6)
    y = np.concatenate([track.audio.mean(axis=1), 0.2 * chord])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ringout.wav"
        sf.write(path, y, sr)
        a = analyse_track(path, AnalysisConfig(), cache=None)
    # the chord's own bar (its attack) is the last played bar; the 2 bars of its decay are not
    chord_bar_end = track.truth.downbeats[-1] + 2 * 4 * 60.0 / bpm
    assert abs(a.candidates["end_time"].max() - chord_bar_end) < 0.05
