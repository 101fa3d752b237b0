"""The session's workspace and the cached engine calls every page shares.

Heavy engine results are cached: the workspace object per folder and the
loaded analyses with ``st.cache_resource`` (shared, never mutated), rankings and
preview bytes with ``st.cache_data``. The engine's own disk cache sits below, so
a server restart re-reads results instead of re-analysing.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import streamlit as st

from engine.config import AnalysisConfig, ExportConfig, RankConfig
from engine.errors import LoopLabError
from engine.library import Workspace, config_from_json, config_to_json, default_workspace
from engine.loopview import rank_view

#: session_state key of the workspace folder chosen in the sidebar
WORKSPACE_KEY = "workspace_root"


@st.cache_resource(show_spinner=False, max_entries=8)
def _open_workspace(root: str) -> Workspace:
    return Workspace(root)


def workspace_root() -> str:
    root = st.session_state.get(WORKSPACE_KEY)
    return str(root) if root else str(default_workspace())


def workspace() -> Workspace:
    """The workspace for this session (opened once per folder per server)."""
    return _open_workspace(workspace_root())


def analysed_tracks():
    """The workspace's tracks that have an analysis (a ``params_key``)."""
    tracks = workspace().tracks()
    return tracks[tracks["params_key"].notna()]


def client_id() -> str:
    """A random id per browser session (stored with labels; no personal data)."""
    if "client_id" not in st.session_state:
        st.session_state["client_id"] = uuid.uuid4().hex[:12]
    return st.session_state["client_id"]


def analysis_defaults() -> AnalysisConfig:
    """Settings for newly added tracks (the sidebar's analysis settings)."""
    meter = st.session_state.get("set_meter") or "Detect"
    lo, hi = st.session_state.get("set_tempo_range", (70, 180))
    beats = {"4/4": 4, "3/4": 3, "Detect": 0}.get(meter, 0)
    try:
        return AnalysisConfig(beats_per_bar=beats, min_bpm=float(lo), max_bpm=float(hi))
    except LoopLabError:              # a range narrower than an octave: the sidebar says so
        return AnalysisConfig(beats_per_bar=beats)


@st.cache_resource(show_spinner=False, max_entries=12)
def load_analysis(root: str, track_id: str, params_json: str):
    """The track's analysis for these settings (engine disk cache; analyses on a miss)."""
    return _open_workspace(root).load_analysis(track_id, config_from_json(params_json))


def current_params(track_id: str) -> str:
    return config_to_json(workspace().analysis_config(track_id))


@st.cache_data(show_spinner=False, max_entries=128)
def ranked(root: str, track_id: str, params_json: str, top_k: int, bars: tuple,
           section_guard: bool = True):
    """The distinct top K for the chosen loop lengths, from the cached analysis.

    ``section_guard`` False ranks by the model alone, as ``extract --no_section_guard``
    does (phrase-length loops first, even where a part enters or leaves inside them).
    """
    analysis = load_analysis(root, track_id, params_json)
    _, selected = rank_view(analysis, top_k=top_k, bars=bars,
                            rank_cfg=RankConfig(section_guard=bool(section_guard)))
    return selected.sort_values("rank", kind="stable").reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=512, max_size="512MB")
def preview_bytes(root: str, track_id: str, start_sample: int, end_sample: int,
                  export_json: str) -> bytes:
    """The loop's own bytes as the export renders them (WAV), for a looping player."""
    cfg = ExportConfig(**json.loads(export_json))
    path = _open_workspace(root).loop_preview(track_id, start_sample, end_sample, cfg)
    return Path(path).read_bytes()


def export_json(cfg: ExportConfig) -> str:
    return json.dumps(cfg.as_dict(), sort_keys=True)


def forget_analysis_caches() -> None:
    """After a grid fix: the next render reads the new analysis."""
    ranked.clear()


__all__ = ["LoopLabError", "workspace", "workspace_root", "client_id", "analysis_defaults",
           "load_analysis", "current_params", "ranked", "preview_bytes", "export_json",
           "forget_analysis_caches"]
