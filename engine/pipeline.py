"""Per-track and batch orchestration.

``analyse_track`` (decode -> frame features -> rhythm -> candidates ->
candidate features -> key) is the expensive, cached part; ``rank_track``
(score, composite, distinct top K) is cheap and re-run freely, e.g. when the
dashboard's sliders move; ``extract_track`` adds the export; ``run_batch``
maps ``extract_track`` over files with joblib (locally or on a Dask cluster),
isolating every file so one bad file is reported and skipped.

Every function takes an optional ``progress(done, total, message)`` callable
and nothing here needs a terminal.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import CODE_VERSION, __version__
from .atomic import atomic_write_text
from .audio import AudioInfo, content_hash, find_audio_files, load_mono, probe
from .cache import DiskCache, make_key
from .candidates import choose_adaptive_bar_options, generate_candidates, select_distinct
from .config import AnalysisConfig, PipelineConfig, RankConfig
from .errors import AnalysisError, LoopLabError
from .features import candidate_features, compute_track_features
from .rhythm import RhythmGrid, analyse_rhythm
from .scoring import LoopScorer, score_candidates

#: Points in the stored waveform overview (for plots).
OVERVIEW_POINTS = 4000


@dataclass
class TrackAnalysis:
    """Everything the engine knows about one track, before ranking.

    ``candidates`` holds one row per bar-aligned candidate with its
    features; times are seconds, ``start_sample``/``end_sample`` are at the
    source rate.
    """

    path: str
    info: AudioInfo
    audio_hash: str
    grid: RhythmGrid
    candidates: pd.DataFrame
    key: dict
    overview: np.ndarray            # (2, OVERVIEW_POINTS) min/max of the mono signal
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    from_cache: bool = False
    embedding_backend: str = "none"

    @property
    def track_id(self) -> str:
        return Path(self.path).stem


@dataclass
class TrackResult:
    """One file's outcome in a batch."""

    path: str
    ok: bool
    error: str | None = None
    n_candidates: int = 0
    n_exported: int = 0
    bpm: float | None = None
    key: str | None = None
    out_dir: str | None = None
    metadata: pd.DataFrame | None = None
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    from_cache: bool = False
    embedding_backend: str = "none"
    rhythm: dict = field(default_factory=dict)


def rhythm_summary(grid: RhythmGrid) -> dict:
    """The grid facts a user checks per track (run_summary.json, dashboard)."""
    return {"bpm": round(float(grid.bpm), 3), "meter": grid.meter,
            "beats_per_bar": int(grid.beats_per_bar),
            "tempo_confidence": round(float(grid.tempo_confidence), 3),
            "bar_confidence": round(float(grid.bar_confidence), 3),
            "beat_confidence": round(float(grid.confidence), 3),
            "meter_confidence": round(float(grid.meter_confidence), 3),
            "constant_tempo": bool(grid.constant_tempo),
            "first_downbeat": round(float(grid.downbeats[0]), 4) if len(grid.downbeats) else None,
            "bpm_fixed": bool(grid.bpm_fixed), "downbeat_offset": int(grid.downbeat_offset)}


@dataclass
class BatchResult:
    """A batch's outcome; ``summary`` is what run_summary.json holds."""

    results: list
    summary: dict
    out_dir: str
    aggregate_csv: str | None = None
    zip_path: str | None = None

    @property
    def n_failed(self) -> int:
        return sum(not r.ok for r in self.results)


def _overview(y: np.ndarray, points: int = OVERVIEW_POINTS) -> np.ndarray:
    n = max(1, len(y) // points)
    m = (len(y) // n) * n
    blocks = y[:m].reshape(-1, n)
    return np.vstack([blocks.min(axis=1), blocks.max(axis=1)]).astype(np.float32)


def _key_estimates(y: np.ndarray, sr: int, candidates: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Track key and per-candidate ``key``, ``camelot``, ``key_confidence`` columns.

    The chroma is computed once per track (:func:`engine.key.track_chroma`)
    and sliced per candidate.
    """
    from . import key as keymod

    chroma = keymod.track_chroma(y, sr)
    est = keymod.track_key(chroma)
    # short loops often hold a single chord: lean half-way on the track's key
    # (2-bar loops: 0.68 -> 0.92 exact on bench_key's set)
    seg = keymod.segment_keys(chroma, candidates["start_time"].to_numpy(),
                              candidates["end_time"].to_numpy(), track_weight=0.5)
    cols = pd.DataFrame({"key": [s.key for s in seg], "camelot": [s.camelot for s in seg],
                         "key_confidence": [round(float(s.confidence), 3) for s in seg]},
                        index=candidates.index)
    track = {"key": est.key, "camelot": est.camelot, "open_key": est.open_key,
             "confidence": round(float(est.confidence), 3)}
    return track, cols


def analyse_track(path, cfg: AnalysisConfig = AnalysisConfig(), *, cache: DiskCache | None = None,
                  progress=None) -> TrackAnalysis:
    """Decode and analyse one file: rhythm grid, candidates with features, key.

    Parameters
    ----------
    path : str or Path
    cfg : AnalysisConfig
    cache : DiskCache, optional
        Reuse/store the result keyed by content hash, ``cfg`` and code version.
    progress : callable, optional
        ``progress(done, total, message)`` over the stages.

    Raises
    ------
    AudioError, AnalysisError
        With the file name and the problem.
    """
    stages = 7

    def step(i, msg):
        if progress:
            progress(i, stages, msg)

    t = {}
    t0 = time.perf_counter()
    info = probe(path)
    audio_hash = content_hash(path)
    embedder = None
    params = cfg.as_dict()
    if cfg.embedding != "none":
        from .embeddings import get_embedder

        embedder = get_embedder(cfg.embedding, cfg.openl3_weights)
        params["embedder"] = getattr(embedder, "cache_key", embedder.name)
    key = make_key(audio_hash, params)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            hit.path, hit.from_cache = str(path), True
            step(stages, "loaded from cache")
            return hit
    step(0, "decoding")
    y, info = load_mono(path, cfg.sr, min_duration=cfg.min_duration, info=info)
    t["decode"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    step(1, "frame features")
    tf, onsets = compute_track_features(y, cfg.sr, cfg)
    t["features_track"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    step(2, "tempo, beats and bars")
    grid = analyse_rhythm(y, cfg.sr, cfg, onsets=onsets, chroma=tf.chroma, chroma_fps=tf.fps,
                          path=info.name)
    t["rhythm"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    step(3, "loop candidates")
    bars = list(cfg.bars)
    if cfg.adaptive_4_vs_8:
        bars = choose_adaptive_bar_options(grid.beats, grid.bpm, bars, grid.beats_per_bar,
                                           cfg.adaptive_margin)
    cands = generate_candidates(grid, len(y) / cfg.sr, bars)
    if cands.empty:
        raise AnalysisError(f"{info.name}: no whole bar fits in the audio "
                            f"({info.duration:.2f} s at {grid.bpm:.1f} BPM)")
    cands["start_sample"] = np.round(cands["start_time"] * info.sr).astype(np.int64)
    cands["end_sample"] = np.round(cands["end_time"] * info.sr).astype(np.int64)
    t["candidates"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    step(4, "candidate features")
    feats = candidate_features(tf, onsets, cands, grid.beat_period)
    t["features_candidates"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    step(5, "key")
    track_key, key_cols = _key_estimates(y, cfg.sr, cands)
    t["key"] = time.perf_counter() - t1

    emb_cols = pd.DataFrame(index=cands.index)
    if embedder is not None:
        from .embeddings import embedding_timeline, pool_segments, pooled_feature_names

        t1 = time.perf_counter()
        step(6, f"embeddings ({embedder.name})")
        timeline = embedding_timeline(y, cfg.sr, embedder, hop_size=cfg.embedding_hop)
        pooled = pool_segments(timeline, cands["start_time"].to_numpy(), cands["end_time"].to_numpy())
        emb_cols = pd.DataFrame(pooled, columns=pooled_feature_names(timeline), index=cands.index)
        t["embeddings"] = time.perf_counter() - t1

    table = pd.concat([cands, key_cols, feats, emb_cols], axis=1)
    table.insert(0, "track_id", Path(path).stem)
    result = TrackAnalysis(path=str(path), info=info, audio_hash=audio_hash, grid=grid,
                           candidates=table, key=track_key, overview=_overview(y),
                           timings=t, warnings=list(info.warnings),
                           embedding_backend=embedder.name if embedder is not None else "none")
    if embedder is not None and getattr(embedder, "note", ""):
        result.warnings.append(f"embedding: {embedder.note}")
    if grid.bar_confidence < 0.2:
        result.warnings.append("bar lines are uncertain (weak downbeat cues); check the grid")
    step(stages, "done")
    if cache is not None:
        cache.put(key, result)
    return result


def rank_track(analysis: TrackAnalysis, cfg: RankConfig = RankConfig(),
               scorer: LoopScorer | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every candidate and choose the distinct top K.

    Returns
    -------
    scored : DataFrame
        All candidates with ``score``, ``score_source``,
        ``beatmatch_composite_score`` and ``rank_score``.
    selected : DataFrame
        The top ``cfg.top_k`` distinct loops with a 1-based ``rank``.
    """
    scored = score_candidates(analysis.candidates, cfg, scorer)
    selected = select_distinct(scored, "rank_score", cfg.top_k, cfg.max_overlap)
    return scored, selected


def load_scorer(cfg: RankConfig) -> LoopScorer | None:
    """The configured model, the shipped default model, or None (heuristic scoring).

    ``model_path`` None means the shipped default (:data:`engine.ranker.DEFAULT_MODEL_PATH`);
    if that cannot be loaded, the heuristic is used and a warning says why.
    ``"heuristic"`` asks for the heuristic. A model given explicitly must load
    (its errors are raised). Loaded once per file version.
    """
    if cfg.model_path == "heuristic":
        return None
    if not cfg.model_path:
        from .ranker import DEFAULT_MODEL_PATH

        p = DEFAULT_MODEL_PATH
        try:
            return _load_scorer_cached(str(p), p.stat().st_mtime_ns if p.exists() else 0)
        except LoopLabError as exc:
            _warn_default_model(str(exc))
            return None
    p = Path(cfg.model_path)
    return _load_scorer_cached(str(p), p.stat().st_mtime_ns if p.exists() else 0)


@lru_cache(maxsize=1)
def _warn_default_model(reason: str) -> None:
    import warnings

    warnings.warn(f"default loop-quality model unavailable ({reason}); ranking by the heuristic",
                  RuntimeWarning, stacklevel=3)


@lru_cache(maxsize=4)
def _load_scorer_cached(path: str, mtime_ns: int) -> LoopScorer:
    return LoopScorer.load(path)


def extract_track(path, out_dir, cfg: PipelineConfig = PipelineConfig(), *,
                  track_dir_name: str | None = None, progress=None) -> TrackResult:
    """Analyse, rank and export one file; never raises for a bad file.

    Loops go to ``out_dir/<track_dir_name>/`` with its ``loops_metadata.csv``.
    """
    from .export import export_track_loops
    from .naming import sanitize_name

    t0 = time.perf_counter()
    try:
        cache = DiskCache(cfg.cache_dir, enabled=cfg.use_cache)
        analysis = analyse_track(path, cfg.analysis, cache=cache, progress=progress)
        _, selected = rank_track(analysis, cfg.rank, load_scorer(cfg.rank))
        folder = Path(out_dir) / (track_dir_name or sanitize_name(Path(path).stem))
        t1 = time.perf_counter()
        meta = export_track_loops(analysis.info, selected, folder, cfg.export,
                                  track_stem=Path(path).stem)
        timings = dict(analysis.timings, export=time.perf_counter() - t1,
                       total=time.perf_counter() - t0)
        return TrackResult(path=str(path), ok=True, n_candidates=len(analysis.candidates),
                           n_exported=len(meta), bpm=round(analysis.grid.bpm, 3),
                           key=analysis.key.get("key"), out_dir=str(folder), metadata=meta,
                           timings=timings, warnings=list(analysis.warnings),
                           from_cache=analysis.from_cache,
                           embedding_backend=analysis.embedding_backend,
                           rhythm=rhythm_summary(analysis.grid))
    except (LoopLabError, OSError, ValueError) as exc:
        return TrackResult(path=str(path), ok=False, error=str(exc),
                           timings={"total": time.perf_counter() - t0})
    except Exception as exc:  # noqa: BLE001 - isolate the file, keep the trace for bug reports
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return TrackResult(path=str(path), ok=False,
                           error=f"{Path(path).name}: unexpected error ({type(exc).__name__}: {exc}) [{tb}]",
                           timings={"total": time.perf_counter() - t0})


def collect_inputs(input_path=None, folder=None) -> list[Path]:
    """The files a run will process: one file, or a folder walked recursively."""
    if input_path:
        return [Path(input_path)]
    if folder:
        return find_audio_files(folder)
    raise ValueError("give an input file or a folder")


def unique_dir_names(paths) -> list[str]:
    """Output folder names per input, sanitised and unique within the run."""
    from .naming import sanitize_name

    names, seen = [], {}
    for p in paths:
        base = sanitize_name(Path(p).stem)
        n = seen.get(base.lower(), 0)
        seen[base.lower()] = n + 1
        names.append(base if n == 0 else f"{base}_{n + 1}")
    return names


def _run_parallel(paths, out_dir, cfg: PipelineConfig, names, progress):
    """Yield TrackResults as they finish (joblib locally or on Dask)."""
    from joblib import Parallel, delayed, parallel_config

    jobs = [delayed(extract_track)(p, out_dir, cfg, track_dir_name=n) for p, n in zip(paths, names)]
    if cfg.backend == "dask":
        from dask.distributed import Client

        client = Client(cfg.scheduler) if cfg.scheduler else Client(processes=False)
        try:
            with parallel_config(backend="dask"):
                yield from Parallel(n_jobs=-1, return_as="generator_unordered")(jobs)
        finally:
            client.close()
    elif cfg.n_jobs == 1 or len(jobs) == 1:
        for p, n in zip(paths, names):
            yield extract_track(p, out_dir, cfg, track_dir_name=n)
    else:
        yield from Parallel(n_jobs=cfg.n_jobs, return_as="generator_unordered")(jobs)


def run_batch(paths, out_dir, cfg: PipelineConfig = PipelineConfig(), *, progress=None) -> BatchResult:
    """Extract loops from every file; bad files are reported and skipped.

    Writes, in ``out_dir``: one folder per track (loops and
    ``loops_metadata.csv``), ``all_loops_metadata.csv``, ``run_summary.json``
    and, if ``cfg.make_zip``, ``loops_export.zip``.

    Parameters
    ----------
    paths : list of Path
    out_dir : str or Path
    cfg : PipelineConfig
    progress : callable, optional
        ``progress(done, total, message)`` after each file.
    """
    from .export import make_zip, write_aggregate_csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    if cfg.rank.model_path:        # fail fast on a bad model, before any file is touched
        load_scorer(cfg.rank)
    names = unique_dir_names(paths)
    results = []
    for r in _run_parallel(paths, out_dir, cfg, names, progress):
        results.append(r)
        if progress:
            status = "ok" if r.ok else "FAILED"
            progress(len(results), len(paths), f"{Path(r.path).name}: {status}")
    order = {str(p): i for i, p in enumerate(paths)}
    results.sort(key=lambda r: order.get(r.path, 0))
    tables = [r.metadata for r in results if r.ok and r.metadata is not None]
    agg = out_dir / "all_loops_metadata.csv"
    write_aggregate_csv(tables, agg)
    zip_path = make_zip(out_dir, out_dir / "loops_export.zip") if cfg.make_zip else None
    timing_keys = ("decode", "features_track", "rhythm", "candidates", "features_candidates",
                   "key", "embeddings", "export", "total")
    stage_totals = {k: round(sum(r.timings.get(k, 0.0) for r in results), 3) for k in timing_keys}
    summary = {
        "looplab_version": __version__, "code_version": CODE_VERSION,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "n_files": len(results), "n_ok": sum(r.ok for r in results),
        "n_failed": sum(not r.ok for r in results),
        "n_loops": int(sum(r.n_exported for r in results)),
        "files_ok": [{"file": r.path, "bpm": r.bpm, "key": r.key, "n_candidates": r.n_candidates,
                      "n_exported": r.n_exported, "out_dir": r.out_dir, "from_cache": r.from_cache,
                      "embedding": r.embedding_backend, **{k: v for k, v in r.rhythm.items()
                                                           if k != "bpm"},
                      "seconds": round(r.timings.get("total", 0.0), 3), "warnings": r.warnings}
                     for r in results if r.ok],
        "files_failed": [{"file": r.path, "error": r.error} for r in results if not r.ok],
        "stage_seconds": stage_totals,
        "config": cfg.as_dict(),
        "artifacts": {"aggregate_csv": str(agg), "zip": str(zip_path) if zip_path else None},
    }
    atomic_write_text(out_dir / "run_summary.json", json.dumps(summary, indent=2, default=str))
    return BatchResult(results=results, summary=summary, out_dir=str(out_dir),
                       aggregate_csv=str(agg), zip_path=str(zip_path) if zip_path else None)


def default_jobs() -> int:
    """Worker processes for local batches: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))
