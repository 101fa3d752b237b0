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


@pytest.fixture(scope="session")
def short_track(synth_dir):
    """A 16-bar, 124 BPM, A minor stereo track (quick to analyse; room for several distinct
    phrase-length loops) and its path."""
    from engine.synth import synth_track

    track = synth_track(124.0, n_bars=16, seed=11)
    return track, track.write(synth_dir / "short 124bpm.wav")


@pytest.fixture(scope="session")
def populated_workspace(tmp_path_factory, short_track):
    """A workspace folder holding one analysed track (the short track)."""
    from engine.library import Workspace

    root = tmp_path_factory.mktemp("workspace")
    ws = Workspace(root)
    res = ws.ingest([short_track[1]])
    assert res[0].ok, res[0].error
    ws.close()
    return root
