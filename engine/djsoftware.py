"""Beat grids and loops for DJ software: rekordbox XML and Traktor NML.

:func:`write_dj_exports` reads an extract run folder (``run_summary.json``
for each analysed track's grid, key and format; ``all_loops_metadata.csv``
for its loops) and writes, beside them:

``rekordbox.xml`` (rekordbox "DJ_PLAYLISTS" 1.0.0, the format rekordbox documents
for developers and pyrekordbox describes)
    one ``TRACK`` per analysed file in ``COLLECTION`` (``Location`` as a
    ``file://localhost/...`` URI, ``TotalTime`` in whole seconds,
    ``AverageBpm``, ``SampleRate``, ``Tonality`` such as "Am" or "F#" when
    the key is known); a ``TEMPO`` element for the grid (``Inizio`` = first
    downbeat in seconds, ``Bpm``, ``Metro`` "4/4" or "3/4", ``Battito`` 1,
    i.e. bar one; one per bar when the tempo is not constant); one
    ``POSITION_MARK`` per exported loop (``Type`` 4 = loop, ``Start`` /
    ``End`` in seconds, ``Num`` -1 = memory loop), plus hot loops
    (``Num`` 0 = A, 1 = B, ...) for the best ``hot_cues`` loops; and a
    playlist node named after the run folder.
``collection.nml`` (Traktor collection, NML version 19)
    one ``ENTRY`` per file with ``LOCATION`` (``VOLUME``, ``DIR`` with "/:"
    separators, ``FILE``), ``INFO`` (playtime, Open Key), ``TEMPO`` (BPM),
    ``MUSICAL_KEY``, the grid marker ``CUE_V2 TYPE="4"`` at the first
    downbeat and each loop as ``CUE_V2 TYPE="5"`` with ``START`` and ``LEN``
    in milliseconds (hot cue slots 2.. for the best ``hot_cues`` loops; slot
    1 holds the grid marker, as Traktor does), plus a playlist named after the run.

Positions refer to the ORIGINAL tracks' timeline (``start_time`` /
``end_time`` of the metadata CSV, which are ``start_sample / sr`` at the
file's own sample rate); the exported WAVs are untouched. Files that failed
get no entry. For MP3 sources other programs may place the timeline's zero a
few tens of milliseconds differently (encoder delay / decoder padding);
``mp3_offset_ms`` shifts every position of MP3 sources by that much (see the
README, "DJ software").
"""
from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote, urlparse
from xml.etree import ElementTree as ET

import pandas as pd

from .errors import LoopLabError

#: Export formats and their file names.
DJ_FORMATS = {"rekordbox": "rekordbox.xml", "traktor": "collection.nml"}
#: rekordbox and Traktor offer 8 hot cues.
MAX_HOT_CUES = 8
#: rekordbox "Kind" per container format.
_KINDS = {"WAV": "WAV File", "AIFF": "AIFF File", "FLAC": "FLAC File", "MPEG": "MP3 File",
          "MP3": "MP3 File", "OGG": "OGG File", "M4A": "M4A File", "MP4": "M4A File"}


class DJExportError(LoopLabError):
    """A run folder cannot be exported (message says why)."""


@dataclass(frozen=True)
class DJLoop:
    """One loop on its source track (seconds on the source timeline)."""

    start: float
    end: float
    rank: int
    bars: int | None = None
    name: str = ""


@dataclass
class DJTrack:
    """One analysed source file and its loops."""

    path: str
    duration: float
    sample_rate: int
    bpm: float
    first_downbeat: float
    beats_per_bar: int = 4
    key: str | None = None
    open_key: str | None = None
    format: str = ""
    downbeats: list | None = None
    loops: list = field(default_factory=list)

    @property
    def is_mp3(self) -> bool:
        return Path(self.path).suffix.lower() == ".mp3" or self.format.upper() in ("MPEG", "MP3")


# --------------------------------------------------------------------------- paths

def file_uri(path) -> str:
    """rekordbox ``Location``: ``file://localhost/`` + the absolute path, percent-encoded
    as UTF-8 (spaces -> %20). Windows paths keep their drive: ``file://localhost/C:/...``."""
    p = str(path)
    if PureWindowsPath(p).drive and not p.startswith("/"):
        body = PureWindowsPath(p).as_posix()
    else:
        body = Path(os.path.abspath(p)).as_posix()
    return "file://localhost/" + quote(body.lstrip("/"), safe="/:")


def path_from_uri(uri: str) -> str:
    """Inverse of :func:`file_uri` (POSIX paths get their leading slash back)."""
    u = urlparse(uri)
    if u.scheme != "file":
        raise ValueError(f"not a file URI: {uri!r}")
    p = unquote(u.path)
    if len(p) > 2 and p[0] == "/" and p[2] == ":":      # /C:/...
        return p[1:]
    return p


def nml_location(path) -> tuple[str, str, str]:
    """(VOLUME, DIR, FILE) of Traktor's ``LOCATION``: DIR joins folders with "/:"
    ("/:Users/:me/:Music/:"); VOLUME is the drive ("C:") on Windows, "" elsewhere
    (Traktor on macOS names the disk, e.g. "Macintosh HD"; it relocates a file
    whose volume differs by its path)."""
    p = str(path)
    if PureWindowsPath(p).drive and not p.startswith("/"):
        w = PureWindowsPath(p)
        volume, parts, name = w.drive, w.parts[1:-1], w.name
    else:
        q = PurePosixPath(Path(os.path.abspath(p)).as_posix())
        volume, parts, name = "", q.parts[1:-1], q.name
    return volume, "".join(f"/:{d}" for d in parts) + "/:", name


# --------------------------------------------------------------------------- keys

def _tonic_mode(key):
    from .synth import parse_key

    if not key or not isinstance(key, str):
        return None
    try:
        return parse_key(key)
    except (ValueError, KeyError):
        return None


def rekordbox_tonality(key) -> str:
    """ "A minor" -> "Am", "F# major" -> "F#"; "" when unknown."""
    from .synth import PITCH_CLASSES

    tm = _tonic_mode(key)
    if tm is None:
        return ""
    tonic, mode = tm
    return PITCH_CLASSES[tonic] + ("m" if mode == "minor" else "")


def traktor_key_value(key) -> int | None:
    """Traktor ``MUSICAL_KEY VALUE``: 0-11 = C..B major, 12-23 = C..B minor."""
    tm = _tonic_mode(key)
    if tm is None:
        return None
    tonic, mode = tm
    return int(tonic) + (12 if mode == "minor" else 0)


# --------------------------------------------------------------------------- run folder

def _num(x, default=None):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def tracks_from_run(run_dir, *, top_k: int | None = None) -> tuple[list, str]:
    """The analysed tracks of an extract run and their loops, and the run's name.

    Reads ``run_summary.json`` (``files_ok[].grid``, written by
    :func:`engine.pipeline.run_batch`) and ``all_loops_metadata.csv``.

    Raises
    ------
    DJExportError
        Missing files, or a summary from a LoopLab version that did not
        record the grid (re-run ``extract``; the analysis cache makes it quick).
    """
    run = Path(run_dir)
    summ = run / "run_summary.json"
    csv = run / "all_loops_metadata.csv"
    if not summ.is_file():
        raise DJExportError(f"{run}: no run_summary.json (is this an extract output folder?)")
    try:
        summary = json.loads(summ.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DJExportError(f"{summ}: unreadable ({exc})") from None
    ok = summary.get("files_ok", [])
    missing = [f.get("file") for f in ok if not f.get("grid")]
    if missing:
        raise DJExportError(f"{summ.name} does not record the beat grid of "
                            f"{len(missing)} file(s) (made by an older LoopLab); run extract "
                            f"again into this folder (the analysis cache makes it quick)")
    loops = pd.DataFrame()
    if csv.is_file() and csv.stat().st_size > 0:
        try:
            loops = pd.read_csv(csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            loops = pd.DataFrame()
    tracks = []
    for f in ok:
        g = f["grid"]
        path = str(f["file"])
        t = DJTrack(path=path, duration=float(g["duration"]), sample_rate=int(g["sample_rate"]),
                    bpm=float(g["bpm"]), first_downbeat=float(g["first_downbeat"]),
                    beats_per_bar=int(g.get("beats_per_bar") or 4), key=g.get("key"),
                    open_key=g.get("open_key"), format=str(g.get("format") or ""),
                    downbeats=g.get("downbeats"))
        if len(loops) and "source_file" in loops.columns:
            rows = loops[loops["source_file"].astype(str) == path]
            if "rank" in rows.columns:
                rows = rows.sort_values("rank", kind="stable")
            for _, r in rows.iterrows():
                rank = int(_num(r.get("rank"), 0) or 0)
                if top_k is not None and rank > top_k:
                    continue
                bars = _num(r.get("bars"))
                t.loops.append(DJLoop(start=float(r["start_time"]), end=float(r["end_time"]),
                                      rank=rank, bars=int(bars) if bars else None,
                                      name=f"LoopLab #{rank}"
                                           + (f" {int(bars)} bars" if bars else "")))
        tracks.append(t)
    return tracks, run.resolve().name


# --------------------------------------------------------------------------- writers

def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")


def _f(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def _shift(t: DJTrack, mp3_offset_ms: float) -> float:
    return mp3_offset_ms / 1000.0 if t.is_mp3 else 0.0


def rekordbox_xml(tracks, playlist_name: str, *, hot_cues: int = 0,
                  mp3_offset_ms: float = 0.0) -> bytes:
    """The rekordbox XML document (bytes, UTF-8) for ``tracks``."""
    from . import __version__

    hot_cues = int(max(0, min(MAX_HOT_CUES, hot_cues)))
    root = ET.Element("DJ_PLAYLISTS", Version="1.0.0")
    ET.SubElement(root, "PRODUCT", Name="LoopLab", Version=__version__, Company="LoopLab")
    coll = ET.SubElement(root, "COLLECTION", Entries=str(len(tracks)))
    today = date.today().isoformat()
    for i, t in enumerate(tracks, start=1):
        p = Path(t.path)
        size = p.stat().st_size if p.is_file() else 0
        kind = _KINDS.get(t.format.upper(), _KINDS.get(p.suffix.lstrip(".").upper(),
                                                       f"{p.suffix.lstrip('.').upper()} File"))
        tr = ET.SubElement(coll, "TRACK", TrackID=str(i), Name=p.stem, Artist="", Album="",
                           Genre="", Kind=kind, Size=str(size),
                           TotalTime=str(int(round(t.duration))),
                           AverageBpm=_f(t.bpm, 2), DateAdded=today,
                           SampleRate=str(int(t.sample_rate)), Comments="LoopLab",
                           PlayCount="0", Rating="0", Location=file_uri(t.path),
                           Tonality=rekordbox_tonality(t.key))
        dt = _shift(t, mp3_offset_ms)
        metro = f"{int(t.beats_per_bar)}/4"
        if t.downbeats:
            db = [float(x) for x in t.downbeats]
            for k, x in enumerate(db):
                nxt = db[k + 1] if k + 1 < len(db) else None
                bpm = (60.0 * t.beats_per_bar / (nxt - x)) if nxt and nxt > x else t.bpm
                ET.SubElement(tr, "TEMPO", Inizio=_f(x + dt), Bpm=_f(bpm, 2), Metro=metro,
                              Battito="1")
        else:
            ET.SubElement(tr, "TEMPO", Inizio=_f(t.first_downbeat + dt), Bpm=_f(t.bpm, 2),
                          Metro=metro, Battito="1")
        for lp in t.loops:
            ET.SubElement(tr, "POSITION_MARK", Name=lp.name, Type="4", Start=_f(lp.start + dt),
                          End=_f(lp.end + dt), Num="-1")
        for n, lp in enumerate(t.loops[:hot_cues]):
            ET.SubElement(tr, "POSITION_MARK", Name=lp.name, Type="4", Start=_f(lp.start + dt),
                          End=_f(lp.end + dt), Num=str(n))
    pls = ET.SubElement(root, "PLAYLISTS")
    top = ET.SubElement(pls, "NODE", Type="0", Name="ROOT", Count="1")
    node = ET.SubElement(top, "NODE", Name=playlist_name, Type="1", KeyType="0",
                         Entries=str(len(tracks)))
    for i in range(1, len(tracks) + 1):
        ET.SubElement(node, "TRACK", Key=str(i))
    return _xml_bytes(root)


def traktor_nml(tracks, playlist_name: str, *, hot_cues: int = 0,
                mp3_offset_ms: float = 0.0) -> bytes:
    """The Traktor NML collection (bytes, UTF-8) for ``tracks``."""
    hot_cues = int(max(0, min(MAX_HOT_CUES - 1, hot_cues)))
    root = ET.Element("NML", VERSION="19")
    ET.SubElement(root, "HEAD", COMPANY="www.native-instruments.com", PROGRAM="Traktor")
    ET.SubElement(root, "MUSICFOLDERS")
    coll = ET.SubElement(root, "COLLECTION", ENTRIES=str(len(tracks)))
    d = date.today()
    keys = []
    for t in tracks:
        p = Path(t.path)
        volume, dirs, fname = nml_location(t.path)
        keys.append(f"{volume}{dirs}{fname}")
        e = ET.SubElement(coll, "ENTRY", MODIFIED_DATE=f"{d.year}/{d.month}/{d.day}",
                          TITLE=p.stem, ARTIST="")
        ET.SubElement(e, "LOCATION", DIR=dirs, FILE=fname, VOLUME=volume, VOLUMEID=volume)
        size_kb = (p.stat().st_size // 1024) if p.is_file() else 0
        info = {"PLAYTIME": str(int(round(t.duration))), "PLAYTIME_FLOAT": _f(t.duration, 6),
                "FILESIZE": str(size_kb), "COMMENT": "LoopLab",
                "IMPORT_DATE": f"{d.year}/{d.month}/{d.day}"}
        if t.open_key:
            info["KEY"] = str(t.open_key)
        ET.SubElement(e, "INFO", **info)
        ET.SubElement(e, "TEMPO", BPM=_f(t.bpm, 6), BPM_QUALITY="100.000000")
        kv = traktor_key_value(t.key)
        if kv is not None:
            ET.SubElement(e, "MUSICAL_KEY", VALUE=str(kv))
        dt = _shift(t, mp3_offset_ms)
        ET.SubElement(e, "CUE_V2", NAME="AutoGrid", DISPL_ORDER="0", TYPE="4",
                      START=_f((t.first_downbeat + dt) * 1000.0, 6), LEN="0.000000",
                      REPEATS="-1", HOTCUE="0")
        for n, lp in enumerate(t.loops):
            ET.SubElement(e, "CUE_V2", NAME=lp.name, DISPL_ORDER="0", TYPE="5",
                          START=_f((lp.start + dt) * 1000.0, 6),
                          LEN=_f((lp.end - lp.start) * 1000.0, 6), REPEATS="-1",
                          HOTCUE=str(n + 1) if n < hot_cues else "-1")
    pls = ET.SubElement(root, "PLAYLISTS")
    rootnode = ET.SubElement(pls, "NODE", TYPE="FOLDER", NAME="$ROOT")
    sub = ET.SubElement(rootnode, "SUBNODES", COUNT="1")
    node = ET.SubElement(sub, "NODE", TYPE="PLAYLIST", NAME=playlist_name)
    pl = ET.SubElement(node, "PLAYLIST", ENTRIES=str(len(tracks)), TYPE="LIST",
                       UUID=uuid.uuid5(uuid.NAMESPACE_URL, "looplab:" + playlist_name).hex)
    for k in keys:
        ent = ET.SubElement(pl, "ENTRY")
        ET.SubElement(ent, "PRIMARYKEY", TYPE="TRACK", KEY=k)
    return _xml_bytes(root)


def parse_formats(text) -> tuple:
    """ "rekordbox,traktor" -> ("rekordbox", "traktor"); raises ValueError on unknown names."""
    if isinstance(text, (list, tuple)):
        items = [str(x) for x in text]
    else:
        items = str(text or "").split(",")
    out = []
    for x in items:
        x = x.strip().lower()
        if not x:
            continue
        if x not in DJ_FORMATS:
            raise ValueError(f"unknown DJ export format {x!r}; use {', '.join(DJ_FORMATS)}")
        if x not in out:
            out.append(x)
    return tuple(out)


def dj_export_bytes(run_dir, fmt: str, *, hot_cues: int = 0, mp3_offset_ms: float = 0.0,
                    top_k: int | None = None, playlist_name: str | None = None) -> bytes:
    """One export ("rekordbox" or "traktor") as bytes, written nowhere (dashboard downloads).

    Raises
    ------
    DJExportError
        Unknown format or an unusable run folder.
    """
    try:
        (f,) = parse_formats(fmt) or ("",)
    except ValueError as exc:
        raise DJExportError(str(exc)) from None
    if f not in DJ_FORMATS:
        raise DJExportError(f"give one DJ export format ({', '.join(DJ_FORMATS)}), got {fmt!r}")
    tracks, name = tracks_from_run(run_dir, top_k=top_k)
    writer = rekordbox_xml if f == "rekordbox" else traktor_nml
    return writer(tracks, playlist_name or f"LoopLab {name}", hot_cues=hot_cues,
                  mp3_offset_ms=mp3_offset_ms)


def write_dj_exports(run_dir, formats=("rekordbox", "traktor"), *, hot_cues: int = 0,
                     mp3_offset_ms: float = 0.0, top_k: int | None = None,
                     playlist_name: str | None = None) -> dict:
    """Write ``rekordbox.xml`` / ``collection.nml`` into an extract run folder.

    Parameters
    ----------
    run_dir : path
        Folder holding ``run_summary.json`` and ``all_loops_metadata.csv``.
    formats : str or sequence
        "rekordbox", "traktor" or both ("rekordbox,traktor").
    hot_cues : int
        Also put the best N loops on hot cues (0-8).
    mp3_offset_ms : float
        Shift every position of MP3 sources by this many ms (positive = later).
    top_k : int, optional
        Only loops ranked 1..top_k (default: every exported loop).
    playlist_name : str, optional
        Default: the run folder's name.

    Returns
    -------
    dict
        Format -> written path.

    Raises
    ------
    DJExportError
        Unknown format or an unusable run folder.
    """
    from .atomic import atomic_write_bytes

    try:
        fmts = parse_formats(formats)
    except ValueError as exc:
        raise DJExportError(str(exc)) from None
    tracks, name = tracks_from_run(run_dir, top_k=top_k)
    name = playlist_name or f"LoopLab {name}"
    out = {}
    for f in fmts:
        writer = rekordbox_xml if f == "rekordbox" else traktor_nml
        data = writer(tracks, name, hot_cues=hot_cues, mp3_offset_ms=mp3_offset_ms)
        out[f] = str(atomic_write_bytes(Path(run_dir) / DJ_FORMATS[f], data))
    return out
