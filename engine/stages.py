"""The per-track analysis as an ordered list of stages.

Each stage is a plain function ``stage(state) -> None`` that reads what
earlier stages put on the :class:`AnalysisState` and adds its own part; the
runner (:func:`engine.pipeline.analyse_track`) calls them in the order of
:data:`STAGES`, timing each, reporting progress and checking the candidate
table's columns at every boundary (:mod:`engine.schema`).

=====================  ==============================================  =====================
stage                  reads                                           adds
=====================  ==============================================  =====================
decode                 path, cfg                                       y (mono, cfg.sr), info
features_track         y                                               track_features, onsets
rhythm                 y, onsets, track_features.chroma                grid
candidates             grid, y                                         candidates (seconds)
key                    y, candidates                                   key columns, track_key
features_candidates    track_features, onsets, candidates, grid        features columns
embeddings             y, candidates (only with cfg.embedding)         emb_* columns
=====================  ==============================================  =====================

Times stay in seconds; source-rate samples appear only at export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from . import schema
from .audio import AudioInfo, load_mono
from .candidates import choose_adaptive_bar_options, generate_candidates
from .config import AnalysisConfig
from .errors import AnalysisError
from .features import candidate_features, compute_track_features


@dataclass
class AnalysisState:
    """What the stages of one track share (filled in stage order)."""

    path: str
    cfg: AnalysisConfig
    info: AudioInfo
    embedder: object = None
    y: np.ndarray | None = None
    track_features: object = None          # engine.features.TrackFeatures
    onsets: object = None                  # engine.rhythm.OnsetData
    grid: object = None                    # engine.rhythm.RhythmGrid
    candidates: pd.DataFrame | None = None
    columns: list = field(default_factory=list)   # per-candidate column blocks, in order
    track_key: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One step: ``run(state)``.

    ``message`` is shown in progress (``{embedder}`` is replaced by the
    embedder's name); ``needs``/``makes`` are candidate-table columns the
    runner checks before/after; ``enabled(state)`` says whether it runs.
    """

    name: str
    message: str
    run: Callable
    needs: tuple = ()
    makes: tuple = ()
    enabled: Callable = staticmethod(lambda state: True)


def decode(state: AnalysisState) -> None:
    """Mono analysis copy at ``cfg.sr`` (validated: length, NaN, silence)."""
    state.y, state.info = load_mono(state.path, state.cfg.sr, min_duration=state.cfg.min_duration,
                                    info=state.info)


def frame_features(state: AnalysisState) -> None:
    """One blocked pass: STFT, HPSS, band envelopes, mel, chroma, onset envelopes."""
    state.track_features, state.onsets = compute_track_features(state.y, state.cfg.sr, state.cfg)


def rhythm(state: AnalysisState) -> None:
    """Tempo, beats and bar lines (:func:`engine.rhythm.analyse_rhythm`)."""
    from .rhythm import analyse_rhythm

    frames = state.track_features
    state.grid = analyse_rhythm(state.y, state.cfg.sr, state.cfg, onsets=state.onsets,
                                chroma=frames.chroma, chroma_fps=frames.fps, mel=frames.mel,
                                path=state.info.name)


def candidates(state: AnalysisState) -> None:
    """Bar-aligned candidates of every requested length (times in seconds)."""
    cfg, grid = state.cfg, state.grid
    bars = list(cfg.bars)
    if cfg.adaptive_4_vs_8:
        bars = choose_adaptive_bar_options(grid.beats, grid.bpm, bars, grid.beats_per_bar,
                                           cfg.adaptive_margin)
    cands = generate_candidates(grid, len(state.y) / cfg.sr, bars,
                                onset_envelope=state.onsets.envelope, fps=state.onsets.fps)
    if cands.empty:
        raise AnalysisError(f"{state.info.name}: no whole bar fits in the audio "
                            f"({state.info.duration:.2f} s at {grid.bpm:.1f} BPM)")
    state.candidates = cands


def features(state: AnalysisState) -> None:
    """Per-candidate features by slicing the frame features."""
    state.columns.append(candidate_features(state.track_features, state.onsets, state.candidates,
                                            state.grid.beat_period))


def key(state: AnalysisState) -> None:
    """Track key and per-candidate ``key``, ``camelot``, ``key_confidence``.

    The chroma is computed once per track (:func:`engine.key.track_chroma`)
    and sliced per candidate; short loops often hold a single chord, so each
    segment's estimate leans half-way on the track's key (2-bar loops: 0.68
    -> 0.92 exact on bench_key's set). The rhythm stage's bar lines tell the
    key where bar one and the phrase starts are (the chord and bass heard
    there, V->I over bar lines: :func:`engine.key.bar_evidence`).
    """
    from . import key as keymod

    cands = state.candidates
    downbeats = None if state.grid is None else state.grid.downbeats
    chroma = keymod.track_chroma(state.y, state.cfg.sr)
    est = keymod.track_key(chroma, downbeats=downbeats)
    seg = keymod.segment_keys(chroma, cands["start_time"].to_numpy(),
                              cands["end_time"].to_numpy(), track_weight=0.5,
                              downbeats=downbeats)
    state.columns.append(pd.DataFrame(
        {"key": [s.key for s in seg], "camelot": [s.camelot for s in seg],
         "key_confidence": [round(float(s.confidence), 3) for s in seg]}, index=cands.index))
    state.track_key = {"key": est.key, "camelot": est.camelot, "open_key": est.open_key,
                       "confidence": round(float(est.confidence), 3)}


def embeddings(state: AnalysisState) -> None:
    """Pooled embeddings per candidate from one timeline per track."""
    from .embeddings import embedding_timeline, pool_segments, pooled_feature_names

    cands = state.candidates
    timeline = embedding_timeline(state.y, state.cfg.sr, state.embedder,
                                  hop_size=state.cfg.embedding_hop)
    pooled = pool_segments(timeline, cands["start_time"].to_numpy(), cands["end_time"].to_numpy())
    state.columns.append(pd.DataFrame(pooled, columns=pooled_feature_names(timeline),
                                      index=cands.index))


#: The per-track stages, in order. ``name`` is also the key in the timings; the
#: candidate table's column blocks come in this order too.
STAGES = (
    Stage("decode", "decoding", decode),
    Stage("features_track", "frame features", frame_features),
    Stage("rhythm", "tempo, beats and bars", rhythm),
    Stage("candidates", "loop candidates", candidates, makes=tuple(schema.CANDIDATE_COLUMNS)),
    Stage("key", "key", key, needs=("start_time", "end_time"), makes=tuple(schema.KEY_COLUMNS)),
    Stage("features_candidates", "candidate features", features,
          needs=tuple(schema.CANDIDATE_COLUMNS), makes=tuple(schema.FEATURE_COLUMNS)),
    Stage("embeddings", "embeddings ({embedder})", embeddings, needs=("start_time", "end_time"),
          enabled=lambda state: state.embedder is not None),
)


def candidate_table(state: AnalysisState) -> pd.DataFrame:
    """The candidates with every stage's columns, ``track_id`` first."""
    table = pd.concat([state.candidates, *state.columns], axis=1)
    table.insert(0, "track_id", _stem(state.path))
    return table


def _stem(path) -> str:
    from pathlib import Path

    return Path(path).stem
