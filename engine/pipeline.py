"""Per-track and batch orchestration.

``analyse_track`` runs the per-track stages of :mod:`engine.stages` (decode
-> frame features -> rhythm -> candidates -> key -> candidate features ->
embeddings) and is the expensive, cached part; ``rank_track``
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
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import CODE_VERSION, __version__
from .atomic import atomic_write_text
from .audio import AudioInfo, content_hash, find_audio_files, probe
from .cache import DiskCache, make_key
from .candidates import select_distinct
from .config import AnalysisConfig, PipelineConfig, RankConfig
from .errors import LoopLabError
from .rhythm import RhythmGrid
from .scoring import LoopScorer, score_candidates

#: Points in the stored waveform overview (for plots).
OVERVIEW_POINTS = 4000
#: Below this :attr:`RhythmGrid.tempo_confidence` the user is asked to check the tempo.
#: On the generated arrangements a third of the wrong tempos (half, double, 2/3, 3/2)
#: score under it against 1 in 12 of the right ones; no right dev track does.
TEMPO_UNCERTAIN = 0.2
#: Below this :attr:`RhythmGrid.bar_confidence` the user is asked to check bar one.
BAR_UNCERTAIN = 0.2


@dataclass
class TrackAnalysis:
    """Everything the engine knows about one track, before ranking.

    ``candidates`` holds one row per bar-aligned candidate with its
    features (columns and units: :mod:`engine.schema`); times are seconds.
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
    grid: dict | None = None        # track_grid_info(): what DJ-software exports need


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
            "bpm_fixed": bool(grid.bpm_fixed), "downbeat_offset": int(grid.downbeat_offset),
            "grid_shift_ms": round(float(getattr(grid, "grid_shift_ms", 0.0)), 1)}


def track_grid_info(analysis: "TrackAnalysis") -> dict:
    """The track's beat grid, key and format in plain JSON types (``run_summary.json``'s
    ``files_ok[].grid``; read by :mod:`engine.djsoftware`).

    Keys: ``first_downbeat`` (s), ``bpm``, ``beats_per_bar``, ``constant_tempo``,
    ``duration`` (s), ``sample_rate``, ``channels``, ``format``, ``decoder``,
    ``key``, ``camelot``, ``open_key``; ``downbeats`` (s, every bar) only when
    the tempo is not constant.
    """
    g = analysis.grid
    info = analysis.info
    db = np.asarray(g.downbeats, dtype=float)
    out = {"first_downbeat": round(float(db[0]), 6) if db.size else 0.0,
           "bpm": round(float(g.bpm), 6), "beats_per_bar": int(g.beats_per_bar),
           "constant_tempo": bool(g.constant_tempo), "duration": round(float(info.duration), 6),
           "sample_rate": int(info.sr), "channels": int(info.channels),
           "format": info.format, "decoder": info.decoder,
           "key": analysis.key.get("key"), "camelot": analysis.key.get("camelot"),
           "open_key": analysis.key.get("open_key")}
    if not g.constant_tempo and db.size:
        out["downbeats"] = [round(float(x), 6) for x in db]
    return out


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


def waveform_overview(y: np.ndarray, points: int = OVERVIEW_POINTS) -> np.ndarray:
    """Min/max envelope of a signal in ``points`` blocks, shape (2, points) (for plots)."""
    n = max(1, len(y) // points)
    m = (len(y) // n) * n
    blocks = y[:m].reshape(-1, n)
    return np.vstack([blocks.min(axis=1), blocks.max(axis=1)]).astype(np.float32)


def analyse_track(path, cfg: AnalysisConfig = AnalysisConfig(), *, cache: DiskCache | None = None,
                  progress=None) -> TrackAnalysis:
    """Decode and analyse one file: rhythm grid, candidates with features, key.

    Runs :data:`engine.stages.STAGES` in order on one
    :class:`~engine.stages.AnalysisState`, timing each stage, reporting it to
    ``progress`` and checking the candidate table's columns at every stage
    boundary (:func:`engine.schema.require`).

    Parameters
    ----------
    path : str or Path
    cfg : AnalysisConfig
    cache : DiskCache, optional
        Reuse/store the result keyed by content hash, ``cfg``, the embedder
        and the engine's source (:func:`engine.cache.make_key`). A hit is
        re-pointed at ``path`` (:func:`relocate_analysis`).
    progress : callable, optional
        ``progress(done, total, message)`` over the stages.

    Raises
    ------
    AudioError, AnalysisError
        With the file name and the problem.
    """
    from . import schema
    from .stages import STAGES, AnalysisState, candidate_table

    total = len(STAGES)
    t0 = time.perf_counter()
    info = probe(path)
    audio_hash = content_hash(path)
    embedder = None
    params = cfg.as_dict()
    if cfg.embedding != "none":
        from .embeddings import get_embedder

        embedder = get_embedder(cfg.embedding, cfg.openl3_weights)
        params["embedder"] = getattr(embedder, "cache_key", embedder.name)
    cache_key = make_key(audio_hash, params)
    if cache is not None:
        hit = cache.get(cache_key)
        if hit is not None:
            if progress:
                progress(total, total, "loaded from cache")
            return relocate_analysis(hit, path, info)

    state = AnalysisState(path=str(path), cfg=cfg, info=info, embedder=embedder)
    timings = {}
    for i, stage in enumerate(STAGES):
        if not stage.enabled(state):
            continue
        if progress:
            progress(i, total, stage.message.format(embedder=getattr(embedder, "name", "")))
        if stage.needs:
            schema.require(state.candidates, stage.needs, stage.name, info.name)
        t1 = time.perf_counter()
        stage.run(state)
        timings[stage.name] = time.perf_counter() - (t0 if i == 0 else t1)
        if stage.makes:
            schema.require(candidate_table(state), stage.makes, stage.name, info.name)

    result = TrackAnalysis(path=str(path), info=state.info, audio_hash=audio_hash, grid=state.grid,
                           candidates=candidate_table(state), key=state.track_key,
                           overview=waveform_overview(state.y), timings=timings,
                           warnings=list(state.info.warnings),
                           embedding_backend=embedder.name if embedder is not None else "none")
    if embedder is not None and getattr(embedder, "note", ""):
        result.warnings.append(f"embedding: {embedder.note}")
    result.warnings.extend(grid_warnings(state.grid))
    if progress:
        progress(total, total, "done")
    if cache is not None:
        cache.put(cache_key, result)
    return result


def grid_warnings(grid: RhythmGrid) -> list[str]:
    """Warnings for a grid the user should check (none for what the user set).

    Parameters
    ----------
    grid : RhythmGrid

    Returns
    -------
    list of str
        ``"tempo is uncertain ..."`` when the tempo confidence is under
        :data:`TEMPO_UNCERTAIN` (and the tempo was not given), ``"bar lines are
        uncertain ..."`` when the bar confidence is under :data:`BAR_UNCERTAIN`
        (and bar one was not moved by the user).
    """
    out = []
    if not grid.bpm_fixed and grid.tempo_confidence < TEMPO_UNCERTAIN:
        out.append(f"tempo is uncertain (confidence {grid.tempo_confidence:.2f}): the track may be "
                   f"at half, double, 2/3 or 3/2 of {grid.bpm:.1f} BPM; check the grid")
    if not grid.downbeat_offset and grid.bar_confidence < BAR_UNCERTAIN:
        out.append("bar lines are uncertain (weak downbeat cues); check the grid")
    return out


def relocate_analysis(analysis: TrackAnalysis, path, info: AudioInfo) -> TrackAnalysis:
    """A cached analysis, re-pointed at the file it was just found under.

    The cache is keyed by content, so a hit may come from the same audio at
    another path (moved, renamed, or a byte-identical copy): everything that
    depends on where the file is (``path``, ``info.path``/``readable_path``
    and the file name, the candidates' ``track_id``) is taken from ``path``
    and its fresh ``info`` (:func:`engine.audio.probe`), never from the entry.
    """
    from dataclasses import replace

    analysis.path = str(path)
    analysis.info = replace(analysis.info, path=info.path, readable_path=info.readable_path)
    analysis.candidates = analysis.candidates.copy()
    analysis.candidates["track_id"] = Path(path).stem
    analysis.from_cache = True
    return analysis


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
    from . import schema

    schema.require(analysis.candidates, [*schema.CANDIDATE_COLUMNS, *schema.FEATURE_COLUMNS],
                   "rank", Path(analysis.path).name)
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
        with _replacing_folder(folder) as staging:
            meta = export_track_loops(analysis.info, selected, staging, cfg.export,
                                      track_stem=Path(path).stem)
        timings = dict(analysis.timings, export=time.perf_counter() - t1,
                       total=time.perf_counter() - t0)
        return TrackResult(path=str(path), ok=True, n_candidates=len(analysis.candidates),
                           n_exported=len(meta), bpm=round(analysis.grid.bpm, 3),
                           key=analysis.key.get("key"), out_dir=str(folder), metadata=meta,
                           timings=timings, warnings=list(analysis.warnings),
                           from_cache=analysis.from_cache,
                           embedding_backend=analysis.embedding_backend,
                           rhythm=rhythm_summary(analysis.grid),
                           grid=track_grid_info(analysis))
    except (LoopLabError, OSError, ValueError) as exc:
        return TrackResult(path=str(path), ok=False, error=str(exc),
                           timings={"total": time.perf_counter() - t0})
    except Exception as exc:  # noqa: BLE001 - isolate the file, keep the trace for bug reports
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return TrackResult(path=str(path), ok=False,
                           error=f"{Path(path).name}: unexpected error ({type(exc).__name__}: {exc}) [{tb}]",
                           timings={"total": time.perf_counter() - t0})


@contextmanager
def _replacing_folder(folder: Path):
    """Stage a track's export in a hidden sibling folder, then swap it in.

    Re-running into a non-empty output folder replaces this track's folder
    as a whole (no loop of an earlier run with other settings survives next
    to the new ones); a failed export leaves the earlier folder untouched.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name[:40]}.new-", dir=folder.parent))
    try:
        new = staging / folder.name          # same name: loops_metadata.csv's `folder` is right
        yield new
        old = None
        if folder.exists():
            old = staging / ".old"
            os.replace(folder, old)
        os.replace(new, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


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


#: Test-only hook: a worker process analysing a file of this name kills itself
#: with SIGSEGV (tests/test_batch_robustness.py proves batches survive it).
KILL_WORKER_TEST_ENV = "LOOPLAB_TEST_KILL_WORKER_ON"


def _extract_in_worker(path, out_dir, cfg, name, kill_on=None):
    """extract_track in a worker process (the test hook lives only here)."""
    if kill_on and Path(path).name == kill_on:
        os.kill(os.getpid(), signal.SIGSEGV)
    return extract_track(path, out_dir, cfg, track_dir_name=name)


def _pool_worker(conn, out_dir, cfg: PipelineConfig, kill_on, threads: int) -> None:
    """A worker process: analyse the files it is sent, one at a time, until told to stop."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, threads)):   # no oversubscription of the cores
        while True:
            job = conn.recv()
            if job is None:
                return
            path, name = job
            conn.send(_extract_in_worker(path, out_dir, cfg, name, kill_on))


@contextmanager
def _without_main_script():
    """Start spawned processes without re-running the parent's ``__main__`` script.

    A spawned child re-executes the parent's main script when ``__main__`` is a
    file rather than a module run with ``-m``. Streamlit installs the running
    page as ``__main__`` and never puts it back (also in ``AppTest``), so a batch
    started after a dashboard script would re-run ``app.py`` in every worker:
    rendering pages and opening the workspace database in each, where two at once
    fail with "database is locked" and the worker exits before analysing
    anything. The pool's workers need nothing from ``__main__`` (their target and
    arguments live in :mod:`engine`), so an empty module stands in while they start.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = main


def _run_pool(items, out_dir, cfg: PipelineConfig, kill_on):
    """Yield TrackResults as they finish, from ``cfg.n_jobs`` worker processes.

    Each worker holds one file at a time. A worker that dies (segfault,
    out-of-memory kill) costs only the file it held: that file is reported
    as failed with the signal, a fresh worker takes its place, and every
    other file goes on where it is. (A shared executor such as joblib's
    abandons all its files when one worker dies.)
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from .kernels import describe_exit

    ctx = mp.get_context("spawn")
    pending = list(items)
    n_workers = max(1, min(cfg.n_jobs, len(pending)))
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    busy = {}                              # connection -> (process, (path, name))

    def start_worker():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_pool_worker, args=(child, out_dir, cfg, kill_on, threads),
                           daemon=True)
        with _without_main_script():
            proc.start()
        child.close()
        return proc, parent

    def hand_out(proc, conn, fresh=False):
        if pending:
            try:
                conn.send(pending[0])
            except OSError as exc:         # the worker died between two files: replace it
                conn.close()
                proc.join()
                if fresh:
                    raise LoopLabError(f"could not start a worker process "
                                       f"({describe_exit(proc.exitcode)})") from exc
                return hand_out(*start_worker(), fresh=True)
            busy[conn] = (proc, pending.pop(0))
        else:                              # nothing left: let the worker exit
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
            proc.join(timeout=10)

    try:
        for _ in range(n_workers):
            hand_out(*start_worker(), fresh=True)
        while busy:
            for conn in wait(list(busy)):
                proc, (path, _name) = busy.pop(conn)
                try:
                    result = conn.recv()
                except (EOFError, OSError):      # the worker died holding this file
                    proc.join()
                    conn.close()
                    yield TrackResult(path=str(path), ok=False,
                                      error=f"{Path(path).name}: worker process died while "
                                      f"analysing it ({describe_exit(proc.exitcode)})")
                    if pending:
                        hand_out(*start_worker(), fresh=True)
                    continue
                yield result
                hand_out(proc, conn)
    finally:                               # an interrupted batch leaves no worker behind
        for proc, _job in busy.values():
            proc.kill()
            proc.join()


def _run_parallel(paths, out_dir, cfg: PipelineConfig, names, progress):
    """Yield TrackResults as they finish (worker processes locally, or on Dask).

    Locally, a worker process that dies costs only the file it held
    (see ``_run_pool``).
    """
    from joblib import Parallel, delayed, parallel_config

    kill_on = os.environ.get(KILL_WORKER_TEST_ENV)
    if cfg.backend == "dask":
        jobs = [delayed(extract_track)(p, out_dir, cfg, track_dir_name=n)
                for p, n in zip(paths, names)]
        from dask.distributed import Client

        client = Client(cfg.scheduler) if cfg.scheduler else Client(processes=False)
        try:
            with parallel_config(backend="dask"):
                yield from Parallel(n_jobs=-1, return_as="generator_unordered")(jobs)
        finally:
            client.close()
    elif cfg.n_jobs == 1 or len(paths) == 1:
        for p, n in zip(paths, names):
            yield extract_track(p, out_dir, cfg, track_dir_name=n)
    else:
        yield from _run_pool(list(zip(paths, names)), out_dir, cfg, kill_on)


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
    kernel_notes = []
    if cfg.backend == "local":      # compile numba kernels once, before any worker starts
        from .kernels import ensure_kernels

        kernel_notes = ensure_kernels().messages
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
    zip_path = out_dir / "loops_export.zip" if cfg.make_zip else None
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
                      "seconds": round(r.timings.get("total", 0.0), 3), "warnings": r.warnings,
                      "grid": r.grid}
                     for r in results if r.ok],
        "files_failed": [{"file": r.path, "error": r.error} for r in results if not r.ok],
        "stage_seconds": stage_totals,
        "config": cfg.as_dict(),
        "artifacts": {"aggregate_csv": str(agg), "zip": str(zip_path) if zip_path else None},
        "notes": kernel_notes,
    }
    summary_path = out_dir / "run_summary.json"
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str))
    if zip_path is not None:        # exactly this run's files: its track folders, CSV, summary
        members = [f for r in results if r.ok and r.out_dir
                   for f in sorted(Path(r.out_dir).rglob("*")) if f.is_file()]
        make_zip(out_dir, zip_path, only=[*members, agg, summary_path])
    return BatchResult(results=results, summary=summary, out_dir=str(out_dir),
                       aggregate_csv=str(agg), zip_path=str(zip_path) if zip_path else None)


def default_jobs() -> int:
    """Worker processes for local batches: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))
