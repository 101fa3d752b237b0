"""The workspace: a folder of tracks with their analyses, loop candidates, user labels and runs.

The dashboard keeps everything it learns here, so a browser refresh, a server
restart or two browser tabs at once lose nothing. Nothing in this module knows
about Streamlit; tests and scripts use it directly.

Layout under the workspace folder::

    looplab.sqlite      tracks, analyses, candidates, labels, runs (SQLite, WAL mode)
    audio/<hash><ext>   the tracks, named by content hash (the original name is data)
    cache/              the engine's analysis cache (:class:`engine.cache.DiskCache`)
    previews/<hash>/    rendered loop previews (the export's own cut, cached)
    exports/            ZIPs built for download (old ones are pruned)

Concurrency: SQLite in WAL mode lets readers run while one writer writes; every
write here is one short ``BEGIN IMMEDIATE`` transaction (one writer at a time,
others wait on the busy timeout), and within a process writers also queue on a
lock. Audio files are written atomically before their row exists, so a row
never points at a half-written file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .atomic import atomic_write_csv, atomic_write_text
from .audio import AudioInfo, content_hash, find_audio_files, probe
from .cache import DiskCache, make_key
from .config import MAX_GRID_SHIFT_MS, PROJECT_ROOT, AnalysisConfig, ExportConfig, RankConfig
from .errors import LoopLabError

#: Default workspace folder (git-ignored); ``$LOOPLAB_WORKSPACE`` overrides it.
DEFAULT_WORKSPACE = PROJECT_ROOT / "workspace"

#: Bumped when the database layout changes.
SCHEMA_VERSION = 1

#: Columns of the user-labels CSV read by the loop-quality model's training.
LABEL_CSV_COLUMNS = ("source_file", "start_time", "end_time", "label")

#: Labels a user can give a loop.
LABELS = ("good", "bad")

#: Tempo range a grid fix may set (the rhythm engine accepts 20-400 BPM).
MIN_FIXED_BPM, MAX_FIXED_BPM = 30.0, 300.0

#: Export ZIPs kept in ``exports/`` (older ones are deleted).
KEEP_EXPORTS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tracks (
    track_id TEXT PRIMARY KEY,          -- content hash of the file's bytes
    original_name TEXT NOT NULL,        -- as uploaded; data only, never a path
    stored_name TEXT NOT NULL,          -- <hash><ext> under audio/
    source TEXT NOT NULL,               -- upload / folder / demo / script
    size_bytes INTEGER, sr INTEGER, channels INTEGER, duration REAL,
    analysis_params TEXT,               -- the AnalysisConfig in use (grid fixes included)
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS analyses (
    track_id TEXT NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    params_key TEXT NOT NULL,
    params TEXT NOT NULL,
    bpm REAL, meter TEXT, beats_per_bar INTEGER, key TEXT, camelot TEXT,
    beat_confidence REAL, tempo_confidence REAL, bar_confidence REAL,
    bpm_fixed INTEGER, downbeat_offset INTEGER,
    n_candidates INTEGER, warnings TEXT, seconds REAL, created_at TEXT NOT NULL,
    PRIMARY KEY (track_id, params_key)
);
CREATE TABLE IF NOT EXISTS candidates (
    track_id TEXT NOT NULL, params_key TEXT NOT NULL, candidate_id INTEGER NOT NULL,
    start_time REAL, end_time REAL, start_sample INTEGER, end_sample INTEGER,
    bars INTEGER, bpm REAL, key TEXT, camelot TEXT, score REAL, score_source TEXT,
    rank_score REAL, default_rank INTEGER,
    PRIMARY KEY (track_id, params_key, candidate_id),
    FOREIGN KEY (track_id, params_key) REFERENCES analyses(track_id, params_key) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS labels (
    label_id INTEGER PRIMARY KEY AUTOINCREMENT,
    track_id TEXT NOT NULL REFERENCES tracks(track_id) ON DELETE CASCADE,
    start_time REAL NOT NULL, end_time REAL NOT NULL,
    start_sample INTEGER, end_sample INTEGER, bars INTEGER, bpm REAL,
    label TEXT NOT NULL CHECK (label IN ('good', 'bad')),
    client TEXT, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_track ON labels(track_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, started TEXT NOT NULL, finished TEXT,
    n_ok INTEGER, n_failed INTEGER, params TEXT, summary TEXT
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_workspace() -> Path:
    """``$LOOPLAB_WORKSPACE`` if set, else ``workspace/`` in the project folder."""
    env = os.environ.get("LOOPLAB_WORKSPACE", "").strip()
    return Path(env).expanduser() if env else DEFAULT_WORKSPACE


def config_to_json(cfg: AnalysisConfig) -> str:
    """An AnalysisConfig as JSON (sorted keys; stable across runs)."""
    return json.dumps(cfg.as_dict(), sort_keys=True, default=list)


def config_from_json(text: str | None, base: AnalysisConfig | None = None) -> AnalysisConfig:
    """The AnalysisConfig stored by :func:`config_to_json` (unknown keys are ignored)."""
    base = base or AnalysisConfig()
    if not text:
        return base
    data = json.loads(text)
    names = {f.name for f in dataclasses.fields(AnalysisConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return dataclasses.replace(base, **kw)


def params_key(cfg: AnalysisConfig) -> str:
    """Short stable id of an analysis configuration."""
    return hashlib.blake2b(config_to_json(cfg).encode(), digest_size=8).hexdigest()


def friendly_error(exc: BaseException, name: str) -> str:
    """A message a DJ understands, naming the file; never a traceback."""
    from .errors import AudioError

    if isinstance(exc, AudioError):
        hint = exc.hint if exc.hint and "said" not in exc.hint else None
        return f"{name}: {exc.problem}" + (f" ({hint})" if hint else "")
    if isinstance(exc, LoopLabError):
        text = str(exc)
        return text if name in text else f"{name}: {text}"
    if isinstance(exc, MemoryError):
        return f"{name}: too long to analyse in the memory available"
    if isinstance(exc, OSError):
        return f"{name}: could not be read or stored ({exc.strerror or exc})"
    return (f"{name}: could not be analysed (unexpected {type(exc).__name__}); "
            "the file may be damaged or in an unusual format")


def grid_fix(cfg: AnalysisConfig, current_bpm: float, action: str,
             bpm: float | None = None, shift_ms: float | None = None) -> AnalysisConfig:
    """The analysis settings after a grid correction.

    Parameters
    ----------
    cfg : AnalysisConfig
        The settings the track was analysed with.
    current_bpm : float
        The tempo the engine reported with ``cfg``.
    action : {"half", "double", "set", "nudge", "shift", "reset"}
        Half or double the tempo, or set it to ``bpm`` (the engine keeps
        finding beat phase, meter and bars at the fixed tempo), move the
        whole grid by ``shift_ms`` more milliseconds, shift bar one later by
        one beat, or go back to the engine's own reading.
    bpm : float, optional
        The tempo for ``"set"`` (e.g. 2/3 of a tempo read at 3/2).
    shift_ms : float, optional
        The nudge for ``"nudge"`` (positive: later), added to the current one.

    Raises
    ------
    LoopLabError
        The new tempo is outside ``MIN_FIXED_BPM``-``MAX_FIXED_BPM``.
    ValueError
        Unknown action, ``"set"`` without a finite ``bpm`` or ``"nudge"``
        without a finite ``shift_ms``.
    """
    if action in ("half", "double", "set"):
        if action == "set" and (bpm is None or not math.isfinite(float(bpm))):
            raise ValueError("grid fix 'set' needs a tempo (bpm=...)")
        new = {"half": current_bpm / 2.0, "double": current_bpm * 2.0}.get(action, bpm)
        if not MIN_FIXED_BPM <= new <= MAX_FIXED_BPM:
            raise LoopLabError(f"{new:.1f} BPM is outside the tempo range a grid fix can set "
                               f"({MIN_FIXED_BPM:.0f}-{MAX_FIXED_BPM:.0f} BPM)")
        # a new tempo: the engine finds the beat phase and bar one again, so the old
        # nudge and bar shift no longer apply
        return dataclasses.replace(cfg, bpm=round(float(new), 4), downbeat_offset=0,
                                   grid_shift_ms=0.0)
    if action == "nudge":
        if shift_ms is None or not math.isfinite(float(shift_ms)):
            raise ValueError("grid fix 'nudge' needs a shift in ms (shift_ms=...)")
        total = round(float(cfg.grid_shift_ms) + float(shift_ms), 1)
        if abs(total) > MAX_GRID_SHIFT_MS:
            raise LoopLabError(f"the grid can move at most {MAX_GRID_SHIFT_MS:g} ms either way")
        return dataclasses.replace(cfg, grid_shift_ms=total)
    if action == "shift":
        meter = cfg.beats_per_bar if cfg.beats_per_bar > 0 else 4
        return dataclasses.replace(cfg, downbeat_offset=(int(cfg.downbeat_offset) + 1) % meter)
    if action == "reset":
        return dataclasses.replace(cfg, bpm=None, downbeat_offset=0, grid_shift_ms=0.0)
    raise ValueError(f"unknown grid fix {action!r} (half, double, set, nudge, shift or reset)")


@dataclass
class IngestResult:
    """One file's outcome when added to the workspace.

    ``error`` is a plain-words reason when ``ok`` is False.
    """

    name: str
    ok: bool
    track_id: str | None = None
    bpm: float | None = None
    key: str | None = None
    camelot: str | None = None
    n_candidates: int = 0
    n_loops: int = 0
    already_there: bool = False
    error: str | None = None
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    detail: str | None = None       # the exception's last line, for bug reports (not shown)


@dataclass
class ExportResult:
    """A ZIP built from the workspace."""

    zip_path: Path
    n_tracks: int
    n_loops: int
    members: list
    failed: list = field(default_factory=list)


class Workspace:
    """A workspace folder (created when missing).

    Parameters
    ----------
    root : str or Path, optional
        Default :func:`default_workspace`.
    """

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_workspace()
        self.root = self.root.expanduser().resolve()
        for sub in ("audio", "cache", "previews", "exports", "incoming"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "looplab.sqlite"
        self.cache = DiskCache(self.root / "cache")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._init_schema()

    # ------------------------------------------------------------------ database
    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None,
                                  check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _write(self):
        """One write transaction; one writer at a time (process lock + BEGIN IMMEDIATE)."""
        con = self._connect()
        with self._write_lock:
            for attempt in range(50):
                try:
                    con.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:   # busy beyond the timeout
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))
            else:
                raise LoopLabError("the workspace database stayed busy; try again")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _init_schema(self) -> None:
        con = self._connect()
        with self._write_lock:
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),))

    def _query(self, sql: str, params=()) -> pd.DataFrame:
        con = self._connect()
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return pd.DataFrame([tuple(r) for r in cur.fetchall()], columns=cols)

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # ------------------------------------------------------------------ tracks
    def audio_path(self, track_id: str) -> Path:
        row = self._connect().execute("SELECT stored_name FROM tracks WHERE track_id=?",
                                      (track_id,)).fetchone()
        if row is None:
            raise LoopLabError(f"track {track_id} is not in this workspace")
        return self.root / "audio" / row["stored_name"]

    def track(self, track_id: str) -> dict | None:
        """The track's row joined with its current analysis, or None."""
        df = self.tracks()
        df = df[df["track_id"] == track_id]
        return None if df.empty else df.iloc[0].to_dict()

    def tracks(self) -> pd.DataFrame:
        """Every track with its current analysis (BPM, key, loops), newest first."""
        df = self._query(
            "SELECT t.track_id, t.original_name, t.source, t.duration, t.sr, t.channels, "
            "t.size_bytes, t.added_at, t.analysis_params, a.params_key, a.bpm, a.meter, a.key, "
            "a.camelot, a.beat_confidence, a.tempo_confidence, a.bar_confidence, a.bpm_fixed, "
            "a.downbeat_offset, a.n_candidates, a.warnings, "
            "(SELECT COUNT(*) FROM labels l WHERE l.track_id = t.track_id) AS n_labels "
            "FROM tracks t LEFT JOIN analyses a ON a.track_id = t.track_id "
            "AND a.params = t.analysis_params ORDER BY t.added_at DESC, t.rowid DESC")
        return df

    def n_tracks(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM tracks").fetchone()[0])

    def analysis_config(self, track_id: str, base: AnalysisConfig | None = None) -> AnalysisConfig:
        """The settings the track is analysed with (its grid fixes included)."""
        row = self._connect().execute("SELECT analysis_params FROM tracks WHERE track_id=?",
                                      (track_id,)).fetchone()
        if row is None:
            raise LoopLabError(f"track {track_id} is not in this workspace")
        return config_from_json(row["analysis_params"], base)

    def add_file(self, src, original_name: str | None = None, *, source: str = "upload",
                 data: bytes | None = None) -> tuple[str, bool, AudioInfo]:
        """Store a file under its content hash after checking it is audio.

        Parameters
        ----------
        src : str or Path or None
            A file on disk (copied), or None when ``data`` is given.
        original_name : str, optional
            The name the user knows (default: ``src``'s name). Kept as data.
        data : bytes, optional
            The file's bytes (an upload).

        Returns
        -------
        (track_id, already_there, info)

        Raises
        ------
        AudioError
            Not usable audio; nothing is stored.
        """
        from .naming import sanitize_name

        name = original_name or (Path(src).name if src is not None else "upload")
        ext = Path(name).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", ext or ""):
            ext = ""
        tmp_dir = self.root / "incoming" / uuid.uuid4().hex
        tmp_dir.mkdir(parents=True)
        try:
            tmp = tmp_dir / sanitize_name(name)     # errors name the file the user knows
            if data is not None:
                tmp.write_bytes(data)
            else:
                shutil.copyfile(src, tmp)
            info = probe(tmp, cache_dir=self.root / "cache")
            track_id = content_hash(tmp)
            stored = f"{track_id}{ext}"
            dest = self.root / "audio" / stored
            if not dest.exists():
                os.replace(tmp, dest)
            with self._write() as con:
                cur = con.execute(
                    "INSERT OR IGNORE INTO tracks(track_id, original_name, stored_name, source, "
                    "size_bytes, sr, channels, duration, analysis_params, added_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (track_id, str(name), stored, source, dest.stat().st_size, info.sr,
                     info.channels, info.duration, None, _now()))
                already = cur.rowcount == 0
            stored_now = self.root / "audio" / self._stored_name(track_id)
            info = dataclasses.replace(info, path=str(stored_now),
                                       readable_path=str(stored_now)
                                       if info.decoder == "soundfile" else info.readable_path)
            return track_id, already, info
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def _stored_name(self, track_id: str) -> str:
        return self._connect().execute("SELECT stored_name FROM tracks WHERE track_id=?",
                                       (track_id,)).fetchone()["stored_name"]

    def remove_track(self, track_id: str) -> None:
        """Forget a track: its rows, its audio, previews and labels."""
        try:
            path = self.audio_path(track_id)
        except LoopLabError:
            return
        with self._write() as con:
            con.execute("DELETE FROM tracks WHERE track_id=?", (track_id,))
        path.unlink(missing_ok=True)
        shutil.rmtree(self.root / "previews" / track_id, ignore_errors=True)

    # ------------------------------------------------------------------ analysis
    def analyse(self, track_id: str, cfg: AnalysisConfig | None = None, *, progress=None):
        """Analyse (or load from the cache) and record the result as the track's current one.

        Returns
        -------
        engine.pipeline.TrackAnalysis
        """
        from .loopview import rank_view
        from .pipeline import analyse_track, rhythm_summary

        cfg = cfg or self.analysis_config(track_id)
        t0 = time.perf_counter()
        analysis = analyse_track(self.audio_path(track_id), cfg, cache=self.cache,
                                 progress=progress)
        scored, selected = rank_view(analysis, top_k=RankConfig().top_k)
        rh = rhythm_summary(analysis.grid)
        pj, pk = config_to_json(cfg), params_key(cfg)
        ranks = dict(zip(selected["candidate_id"].astype(int), selected["rank"].astype(int)))
        rows = [(track_id, pk, int(r.candidate_id), float(r.start_time), float(r.end_time),
                 int(r.start_sample), int(r.end_sample), int(r.bars), float(r.bpm),
                 getattr(r, "key", None), getattr(r, "camelot", None), float(r.score),
                 str(r.score_source), float(r.rank_score), ranks.get(int(r.candidate_id)))
                for r in scored.itertuples(index=False)]
        with self._write() as con:
            con.execute("DELETE FROM analyses WHERE track_id=? AND params_key=?", (track_id, pk))
            con.execute(
                "INSERT INTO analyses(track_id, params_key, params, bpm, meter, beats_per_bar, "
                "key, camelot, beat_confidence, tempo_confidence, bar_confidence, bpm_fixed, "
                "downbeat_offset, n_candidates, warnings, seconds, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (track_id, pk, pj, rh["bpm"], rh["meter"], rh["beats_per_bar"],
                 analysis.key.get("key"), analysis.key.get("camelot"), rh["beat_confidence"],
                 rh["tempo_confidence"], rh["bar_confidence"], int(rh["bpm_fixed"]),
                 rh["downbeat_offset"], len(analysis.candidates),
                 json.dumps(list(analysis.warnings)), round(time.perf_counter() - t0, 3),
                 _now()))
            con.executemany("INSERT INTO candidates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            con.execute("UPDATE tracks SET analysis_params=? WHERE track_id=?", (pj, track_id))
        return analysis

    def load_analysis(self, track_id: str, cfg: AnalysisConfig | None = None, *, progress=None):
        """The track's analysis with ``cfg`` (default: its current settings), from the cache
        when possible (no re-analysis), else analysed now and recorded."""
        cfg = cfg or self.analysis_config(track_id)
        if cfg.embedding == "none":
            hit = self.cache.get(make_key(track_id, cfg.as_dict()))
            if hit is not None and self._has_analysis(track_id, cfg):
                hit.path, hit.from_cache = str(self.audio_path(track_id)), True
                return hit
        return self.analyse(track_id, cfg, progress=progress)

    def _has_analysis(self, track_id: str, cfg: AnalysisConfig) -> bool:
        return self._connect().execute(
            "SELECT 1 FROM analyses WHERE track_id=? AND params_key=?",
            (track_id, params_key(cfg))).fetchone() is not None

    def set_analysis_config(self, track_id: str, cfg: AnalysisConfig, *, progress=None):
        """Make ``cfg`` the track's settings (a grid fix) and analyse with it."""
        return self.analyse(track_id, cfg, progress=progress)

    def candidates(self, track_id: str | None = None, *, top_only: bool = False) -> pd.DataFrame:
        """Candidates of the tracks' current analyses (every track when ``track_id`` is None).

        ``default_rank`` is the rank under the default settings (top 5 distinct), NaN
        for the others; ``top_only`` keeps those ranked rows.
        """
        sql = ("SELECT c.*, t.original_name FROM candidates c JOIN tracks t "
               "ON t.track_id = c.track_id JOIN analyses a ON a.track_id = c.track_id "
               "AND a.params_key = c.params_key AND a.params = t.analysis_params")
        where, params = [], []
        if track_id is not None:
            where.append("c.track_id = ?")
            params.append(track_id)
        if top_only:
            where.append("c.default_rank IS NOT NULL")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._query(sql + " ORDER BY c.track_id, c.default_rank, c.candidate_id", params)

    def ingest(self, files, cfg: AnalysisConfig | None = None, *, source: str = "upload",
               progress=None, prepare_previews: bool = True) -> list[IngestResult]:
        """Add and analyse files; a bad file is reported in words and skipped.

        Parameters
        ----------
        files : iterable
            Paths, or ``(name, bytes)`` pairs (uploads).
        cfg : AnalysisConfig, optional
            Settings for tracks new to the workspace (a track already there keeps
            its own, grid fixes included).
        progress : callable, optional
            ``progress(done, total, message)``; ``done`` is fractional within a file.
        prepare_previews : bool
            Render the default top loops' previews now (:meth:`loop_files`), so the
            loop finder's players are ready on first view.

        Returns
        -------
        list of IngestResult
            In input order. The run is recorded in the ``runs`` table.
        """
        from .loopview import rank_view

        files = list(files)
        total = len(files)
        started = _now()
        out = []
        for i, item in enumerate(files):
            if isinstance(item, tuple):
                name, data, path = str(item[0]), item[1], None
            else:
                path, data = Path(item), None
                name = path.name
            t0 = time.perf_counter()
            if progress:
                progress(i, total, f"{name}: checking the file")
            new_id = None
            try:
                track_id, already, _ = self.add_file(path, name, source=source, data=data)
                new_id = None if already else track_id
                use = self.analysis_config(track_id, cfg) if already else (cfg or AnalysisConfig())

                def stage(done, n, msg, _i=i, _name=name):
                    if progress:
                        progress(_i + min(done / max(n, 1), 0.99), total, f"{_name}: {msg}")

                analysis = self.load_analysis(track_id, use, progress=stage) if already else \
                    self.analyse(track_id, use, progress=stage)
                _, sel = rank_view(analysis, top_k=RankConfig().top_k)
                if prepare_previews:
                    stage(0.99, 1, "preparing the loop players")
                    with contextlib.suppress(LoopLabError, OSError, ValueError):
                        self.loop_files([track_id])     # the loop finder opens with them ready
                out.append(IngestResult(
                    name=name, ok=True, track_id=track_id, bpm=round(float(analysis.grid.bpm), 2),
                    key=analysis.key.get("key"), camelot=analysis.key.get("camelot"),
                    n_candidates=len(analysis.candidates), n_loops=len(sel), already_there=already,
                    warnings=list(analysis.warnings), seconds=round(time.perf_counter() - t0, 2)))
            except Exception as exc:  # noqa: BLE001 - every failure becomes a row, never a crash
                if new_id is not None:
                    self.remove_track(new_id)
                detail = traceback.format_exc(limit=2).strip().splitlines()[-1]
                out.append(IngestResult(name=name, ok=False, error=friendly_error(exc, name),
                                        seconds=round(time.perf_counter() - t0, 2),
                                        detail=detail))
            if progress:
                progress(i + 1, total, f"{name}: {'ok' if out[-1].ok else 'failed'}")
        self.record_run("ingest", started, {"source": source,
                                            "config": (cfg or AnalysisConfig()).as_dict()},
                        [dataclasses.asdict(r) for r in out])
        return out

    def ingest_folder(self, folder, cfg: AnalysisConfig | None = None, *, progress=None):
        """:meth:`ingest` every audio file under ``folder`` (recursive).

        Raises
        ------
        LoopLabError
            The folder does not exist or holds no audio files.
        """
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise LoopLabError(f"{folder}: not a folder on this computer")
        files = find_audio_files(folder)
        if not files:
            raise LoopLabError(f"{folder}: no audio files found (looked for WAV, AIFF, FLAC, "
                               "OGG, MP3, M4A)")
        return self.ingest(files, cfg, source="folder", progress=progress)

    def add_demo_track(self, *, bpm: float = 124.0, n_bars: int = 16, key: str = "A minor",
                       seed: int = 7, progress=None) -> IngestResult:
        """Generate a synthetic track (engine.synth), add and analyse it."""
        from .synth import synth_track

        track = synth_track(bpm, n_bars=n_bars, key=key, seed=seed)
        tmp_dir = self.root / "incoming" / f"demo-{uuid.uuid4().hex}"
        try:
            path = track.write(tmp_dir / f"LoopLab demo {bpm:g} BPM {key}.wav")
            return self.ingest([path], source="demo", progress=progress)[0]
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    # ------------------------------------------------------------------ runs
    def record_run(self, kind: str, started: str, params: dict, items: list) -> int:
        n_ok = sum(1 for r in items if r.get("ok"))
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO runs(kind, started, finished, n_ok, n_failed, params, summary) "
                "VALUES (?,?,?,?,?,?,?)",
                (kind, started, _now(), n_ok, len(items) - n_ok, json.dumps(params, default=str),
                 json.dumps(items, default=str)))
            return int(cur.lastrowid)

    def runs(self, kind: str | None = None, limit: int = 20) -> list[dict]:
        """Recent runs, newest first, with their per-item summaries."""
        sql = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + \
            " ORDER BY run_id DESC LIMIT ?"
        rows = self._connect().execute(sql, ((kind, limit) if kind else (limit,))).fetchall()
        return [dict(r, params=json.loads(r["params"] or "{}"),
                     summary=json.loads(r["summary"] or "[]")) for r in rows]

    # ------------------------------------------------------------------ labels
    def add_label(self, track_id: str, start_time: float, end_time: float, label: str, *,
                  start_sample: int | None = None, end_sample: int | None = None,
                  bars: int | None = None, bpm: float | None = None,
                  client: str | None = None) -> int:
        """Store a user's good/bad verdict on a loop (every click is kept)."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, not {label!r}")
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO labels(track_id, start_time, end_time, start_sample, end_sample, "
                "bars, bpm, label, client, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (track_id, float(start_time), float(end_time),
                 None if start_sample is None else int(start_sample),
                 None if end_sample is None else int(end_sample),
                 None if bars is None else int(bars), None if bpm is None else float(bpm),
                 label, client, _now()))
            return int(cur.lastrowid)

    def labels(self, track_id: str | None = None, *, latest_only: bool = True) -> pd.DataFrame:
        """User labels (the latest per loop by default), with the track's file and name."""
        sql = ("SELECT l.*, t.original_name, t.stored_name FROM labels l "
               "JOIN tracks t ON t.track_id = l.track_id")
        params: tuple = ()
        if track_id is not None:
            sql += " WHERE l.track_id = ?"
            params = (track_id,)
        df = self._query(sql + " ORDER BY l.label_id", params)
        if latest_only and not df.empty:
            key = ["track_id", df["start_time"].round(3), df["end_time"].round(3)]
            df = df.groupby(key, sort=False, as_index=False).tail(1)
        df.insert(0, "source_file", [str(self.root / "audio" / s) for s in df["stored_name"]])
        return df.reset_index(drop=True)

    def labels_frame(self, track_ids=None) -> pd.DataFrame:
        """User labels as ``source_file, start_time, end_time, label``.

        ``source_file`` is the track's file in the workspace (an absolute path the
        loop-quality model's training can open); the latest verdict per loop wins.
        """
        df = self.labels()
        if track_ids is not None:
            df = df[df["track_id"].isin(list(track_ids))]
        out = df.loc[:, list(LABEL_CSV_COLUMNS)].copy()
        out["start_time"] = out["start_time"].astype(float).round(6)
        out["end_time"] = out["end_time"].astype(float).round(6)
        return out.reset_index(drop=True)

    def labels_csv(self, out_path, track_ids=None) -> pd.DataFrame:
        """Write :meth:`labels_frame` to ``out_path`` (atomic); returns the frame."""
        out = self.labels_frame(track_ids)
        atomic_write_csv(out, out_path)
        return out

    # ------------------------------------------------------------------ previews and export
    def loop_preview(self, track_id: str, start_sample: int, end_sample: int,
                     cfg: ExportConfig | None = None) -> Path:
        """The loop as it would be exported (cut, seam, loudness), as a 16-bit WAV preview.

        Rendered with :func:`engine.export.export_loop` (the CLI's function) and kept
        under ``previews/`` so a second play costs nothing.
        """
        from .export import export_loop

        cfg = dataclasses.replace(cfg or ExportConfig(), export_mp3=False, subtype="PCM_16")
        tag = hashlib.blake2b(json.dumps(cfg.as_dict(), sort_keys=True).encode(),
                              digest_size=6).hexdigest()
        out = self.root / "previews" / track_id / f"{int(start_sample)}_{int(end_sample)}_{tag}.wav"
        if not out.is_file():
            info = probe(self.audio_path(track_id), cache_dir=self.root / "cache")
            export_loop(info, int(start_sample), int(end_sample), out, cfg)
        return out

    def loop_files(self, track_ids=None, cfg: ExportConfig | None = None, *,
                   progress=None) -> pd.DataFrame:
        """The workspace's ranked loops as audio files (for contact maps, neighbours, maps).

        Each track's default top loops (``default_rank``) are rendered once with
        :meth:`loop_preview` and listed with ``track_id, original_name, default_rank,
        start_time, end_time, bars, bpm, key, camelot, score, file``.
        """
        df = self.candidates(top_only=True)
        if track_ids is not None:
            df = df[df["track_id"].isin(list(track_ids))]
        files = []
        for i, r in enumerate(df.itertuples(index=False)):
            files.append(str(self.loop_preview(r.track_id, r.start_sample, r.end_sample, cfg)))
            if progress:
                progress(i + 1, len(df), f"{r.original_name} loop {r.default_rank}")
        cols = ["track_id", "original_name", "default_rank", "start_time", "end_time", "bars",
                "bpm", "key", "camelot", "score"]
        out = df.loc[:, cols].reset_index(drop=True)
        out["file"] = files
        return out

    def export_zip(self, items, cfg: ExportConfig | None = None, *, include_labels: bool = True,
                   progress=None) -> ExportResult:
        """Export loops of one or more tracks as a ZIP, with the CLI's export functions.

        Parameters
        ----------
        items : iterable of (track_id, DataFrame)
            The loops per track: rows of the ranked table (``rank``, ``bars``,
            ``bpm``, ``start_sample``/``end_sample``, features ...).
        cfg : ExportConfig
            WAV format, MP3 previews, seam, loudness target.
        include_labels : bool
            Add ``user_labels.csv`` for these tracks when there are labels.

        Returns
        -------
        ExportResult
            The ZIP holds one folder per track (``<track>/<track>__01_4bars_124bpm.wav``
            and its ``loops_metadata.csv``), ``all_loops_metadata.csv`` and
            ``run_summary.json``, as ``python -m engine extract --zip`` writes.
        """
        from .export import export_track_loops, make_zip, write_aggregate_csv
        from .pipeline import unique_dir_names

        cfg = cfg or ExportConfig()
        items = [(tid, df) for tid, df in items if df is not None and len(df)]
        if not items:
            raise LoopLabError("nothing to export: choose at least one loop")
        started = _now()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        run_dir = self.root / "exports" / f"looplab-loops-{stamp}"
        run_dir.mkdir(parents=True)
        names = {}
        meta = self._query("SELECT track_id, original_name FROM tracks")
        names = dict(zip(meta["track_id"], meta["original_name"]))
        stems = [Path(names.get(tid, tid)).stem for tid, _ in items]
        folders = unique_dir_names(stems)
        tables, failed, summary = [], [], []
        total = sum(len(df) for _, df in items)
        done = 0
        for (tid, df), stem, folder in zip(items, stems, folders):
            try:
                info = probe(self.audio_path(tid), cache_dir=self.root / "cache")
                sel = df.copy()
                sel["track_id"] = stem
                sel["original_file"] = names.get(tid, "")

                def step(d, n, msg, _base=done):
                    if progress:
                        progress(_base + d, total, msg)

                table = export_track_loops(info, sel, run_dir / folder, cfg, track_stem=stem,
                                           progress=step)
                tables.append(table)
                summary.append({"track": names.get(tid, tid), "ok": True, "loops": len(table)})
            except Exception as exc:  # noqa: BLE001 - one bad track never stops the export
                failed.append(friendly_error(exc, names.get(tid, tid)))
                summary.append({"track": names.get(tid, tid), "ok": False,
                                "error": failed[-1]})
            done += len(df)
        if not tables:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise LoopLabError("export failed: " + "; ".join(failed))
        write_aggregate_csv(tables, run_dir / "all_loops_metadata.csv")
        if include_labels:
            tids = [tid for tid, _ in items]
            if not self.labels().query("track_id in @tids").empty:
                self.labels_csv(run_dir / "user_labels.csv", tids)
        atomic_write_text(run_dir / "run_summary.json", json.dumps(
            {"started": started, "finished": _now(), "tracks": summary,
             "n_loops": int(sum(len(t) for t in tables)), "export": cfg.as_dict()},
            indent=2, default=str))
        zip_path = make_zip(run_dir, run_dir.with_suffix(".zip"))
        shutil.rmtree(run_dir, ignore_errors=True)
        self._prune_exports()
        import zipfile

        with zipfile.ZipFile(zip_path) as zf:
            members = zf.namelist()
        n_loops = int(sum(len(t) for t in tables))
        self.record_run("export", started, {"export": cfg.as_dict()},
                        [dict(s) for s in summary])
        return ExportResult(zip_path=zip_path, n_tracks=len(tables), n_loops=n_loops,
                            members=members, failed=failed)

    def _prune_exports(self) -> None:
        zips = sorted((self.root / "exports").glob("*.zip"), key=lambda p: p.stat().st_mtime)
        for p in zips[:-KEEP_EXPORTS]:
            p.unlink(missing_ok=True)

    def stats(self) -> dict:
        """Counts for the sidebar: tracks, analysed tracks, labelled loops."""
        con = self._connect()
        one = lambda sql: int(con.execute(sql).fetchone()[0])  # noqa: E731
        return {"tracks": one("SELECT COUNT(*) FROM tracks"),
                "analysed": one("SELECT COUNT(*) FROM tracks t JOIN analyses a ON "
                                "a.track_id=t.track_id AND a.params=t.analysis_params"),
                "labels": one("SELECT COUNT(*) FROM (SELECT DISTINCT track_id, "
                              "ROUND(start_time, 3), ROUND(end_time, 3) FROM labels)")}
