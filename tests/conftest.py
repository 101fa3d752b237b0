"""Shared fixtures: synthetic audio with known ground truth, written once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / "cache" / "numba"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def demo_track(synth_dir):
    """A 32-bar, 124 BPM, A minor stereo track at 44.1 kHz, and its path."""
    from engine.synth import synth_track

    track = synth_track(124.0, n_bars=32, seed=1)
    path = track.write(synth_dir / "demo 124bpm.wav")
    return track, path
