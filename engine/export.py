"""Write loops a DJ can drop on a deck: seamless, loud enough, never clipped.

The export stage takes bar-aligned loop positions (source-rate samples) and
writes one audio file per loop plus a metadata table:

1. **Cut** at sample level, reading only the samples needed
   (:func:`engine.audio.read_segment`), at the source rate and with every
   channel.
2. **Seam**: each cut is snapped to the nearest zero crossing of the mid
   signal within ``zero_cross_ms`` (:func:`snap_to_zero_crossing`), then either
   short raised-cosine fades are applied at both ends (``seam_mode="fade"``,
   default) or the loop's tail is crossfaded with the audio just before its
   start (``seam_mode="crossfade"``, the sampler technique that keeps the
   downbeat transient intact). Either way the last sample flows into the first
   one without a step, so the loop repeats without a click.
3. **Loudness**: integrated loudness per ITU-R BS.1770 (pyloudnorm,
   :mod:`engine.loudness`) is brought to ``target_lufs``, unless a sample would then exceed
   ``ceiling_dbfs``: the gain is reduced to fit and the loop is recorded as
   ``ceiling_limited``. No sample ever reaches full scale. Layouts pyloudnorm
   does not weight itself are mapped onto its L, R, C, Ls, Rs slots (5.1 drops
   the LFE, as BS.1770 says); loops shorter than the 400 ms gating block are
   measured repeated, the way they will be heard.
4. **Files**: WAV (24-bit by default) and an optional MP3 preview
   (:mod:`engine.mp3`), both written by soundfile/libsndfile (no ffmpeg). The
   preview only is downmixed to stereo and resampled (soxr) when MP3 cannot
   carry the source layout or rate. Names are sanitised
   (:mod:`engine.naming`): ``<track>__01_4bars_124bpm.wav`` with the *rank*,
   never a candidate index.
5. **Metadata**: ``loops_metadata.csv`` per output folder (merged per source
   file, so several tracks can share a folder without overwriting each
   other), an aggregated ``all_loops_metadata.csv`` across a batch
   (:func:`write_aggregate_csv`) and a ZIP with safe member names
   (:func:`make_zip`).

Every file is written atomically (:mod:`engine.atomic`): a failure never
leaves a half-written file under the final name.

Loudness lives in :mod:`engine.loudness`, MP3 previews in :mod:`engine.mp3`,
file and ZIP member names in :mod:`engine.naming`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import schema
from .atomic import atomic_path, atomic_write_csv
from .audio import AudioInfo, as_2d, read_segment
from .config import ExportConfig
from .errors import AudioError, LoopLabError
from .loudness import measure_loudness, peak_to_dbfs
from .mp3 import write_mp3
from .naming import loop_filename, sanitize_name, unique_member_name, zip_member_name

#: Per-track metadata file name.
METADATA_NAME = "loops_metadata.csv"

#: Batch-level metadata file name.
AGGREGATE_NAME = "all_loops_metadata.csv"

#: The earlier scripts' columns, always first and in this order (:mod:`engine.schema`).
SEED_COLUMNS = schema.LEADING_COLUMNS

#: Columns the export adds, after those (names and units: :data:`engine.schema.EXPORT`).
EXPORT_COLUMNS = schema.EXPORT_COLUMNS

#: WAV sample formats the export writes.
WAV_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class RenderedLoop:
    """A loop ready to write.

    Attributes
    ----------
    audio : ndarray, shape (n, channels), float32
        Faded/crossfaded, gain applied, every sample within the ceiling.
    gain_db : float
        Gain applied by loudness normalisation.
    loudness_lufs_before, loudness_lufs_after : float
        Integrated loudness (BS.1770) before and after the gain; ``-inf`` for
        a loop that is silent below the -70 LUFS absolute gate.
    peak_dbfs : float
        Sample peak after the gain.
    ceiling_limited : bool
        The gain was reduced to keep the peak under the ceiling, so the
        loudness is below the target.
    gain_capped : bool
        The gain was limited by ``max_gain_db`` (a very quiet loop).
    seam : str
        "fade", "crossfade" or "none" (what was actually applied).
    """

    audio: np.ndarray
    gain_db: float
    loudness_lufs_before: float
    loudness_lufs_after: float
    peak_dbfs: float
    ceiling_limited: bool
    gain_capped: bool = False
    seam: str = "fade"


@dataclass(frozen=True)
class ExportedLoop:
    """One loop written to disk.

    Attributes
    ----------
    path : Path
        The WAV file.
    mp3_path : Path or None
        The MP3 preview, if one was written.
    start_sample, end_sample : int
        The cut actually used (after zero-crossing snapping), source-rate
        samples, end exclusive.
    requested_start_sample, requested_end_sample : int
        The cut asked for.
    sr, channels, frames : int
        Of the WAV (sr and channels are the source's).
    gain_db, loudness_lufs, loudness_lufs_before, peak_dbfs : float
    ceiling_limited, gain_capped : bool
    seam : str
    mp3_sr, mp3_channels : int or None
        Of the preview (may differ from the WAV's when MP3 needed it).
    """

    path: Path
    mp3_path: Path | None
    start_sample: int
    end_sample: int
    requested_start_sample: int
    requested_end_sample: int
    sr: int
    channels: int
    frames: int
    gain_db: float
    loudness_lufs: float
    loudness_lufs_before: float
    peak_dbfs: float
    ceiling_limited: bool
    gain_capped: bool
    seam: str
    mp3_sr: int | None = None
    mp3_channels: int | None = None


# --------------------------------------------------------------------------- seams

def snap_to_zero_crossing(x: np.ndarray, index: int, max_shift: int) -> int:
    """The cut position nearest ``index`` where the signal crosses zero.

    A cut position ``k`` is the boundary between samples ``k - 1`` and ``k``
    (a loop starting at ``k`` begins with sample ``k``; one ending at ``k``
    ends with sample ``k - 1``). It is a crossing when the mid signal (mean
    of the channels) changes sign between those two samples or is exactly
    zero at ``k``.

    Parameters
    ----------
    x : ndarray, shape (n,) or (n, channels)
    index : int
        Wanted cut position, ``0 <= index <= n``.
    max_shift : int
        Farthest the cut may move, in samples.

    Returns
    -------
    int
        The nearest crossing within ``index ± max_shift`` (ties go to the
        earlier one); if there is none, the position in that window where
        the summed absolute level of the two neighbouring samples is lowest.
        ``index`` itself (clipped to ``[0, n]``) when ``max_shift <= 0``.
    """
    x = as_2d(x)
    n = x.shape[0]
    index = int(min(max(int(index), 0), n))
    max_shift = int(max_shift)
    lo, hi = max(1, index - max_shift), min(n - 1, index + max_shift)
    if max_shift <= 0 or lo > hi:
        return index
    ks = np.arange(lo, hi + 1)
    mid = x[lo - 1:hi + 1].astype(np.float64).mean(axis=1)
    a, b = mid[:-1], mid[1:]
    crossing = (np.signbit(a) != np.signbit(b)) | (b == 0.0)
    dist = np.abs(ks - index)
    if crossing.any():
        cand = np.flatnonzero(crossing)
        return int(ks[cand[np.argmin(dist[cand])]])     # argmin: first (earliest) on ties
    level = np.abs(x[lo - 1:hi + 1]).astype(np.float64).sum(axis=1)
    cost = level[:-1] + level[1:]
    best = np.flatnonzero(cost <= cost.min() * (1 + 1e-9) + 1e-15)
    return int(ks[best[np.argmin(dist[best])]])


def _joint_shift(x: np.ndarray, start: int, end: int, max_shift: int) -> int:
    """One shift ``s`` for both cuts minimising the level around them."""
    x = as_2d(x)
    n = x.shape[0]
    lo = max(-max_shift, 1 - start)
    hi = min(max_shift, n - 1 - end)
    if max_shift <= 0 or lo > hi:
        return 0
    level = np.abs(x).astype(np.float64).sum(axis=1)
    shifts = np.arange(lo, hi + 1)

    def cost(k):
        return level[k - 1] + level[k]

    total = cost(start + shifts) + cost(end + shifts)
    best = np.flatnonzero(total <= total.min() * (1 + 1e-9) + 1e-15)
    return int(shifts[best[np.argmin(np.abs(shifts[best]))]])


def _fade_in_curve(length: int) -> np.ndarray:
    """Raised-cosine ramp from exactly 0 (first sample) towards 1."""
    i = np.arange(length, dtype=np.float64)
    return np.sin(0.5 * np.pi * i / length) ** 2


def apply_fades(x: np.ndarray, fade_len: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``fade_len`` samples (new array).

    The first and the last sample become exactly 0, so the loop's end meets
    its start without a step. ``fade_len`` is capped at a quarter of the loop.
    """
    y = np.array(as_2d(x), dtype=np.float32, copy=True)
    n = y.shape[0]
    fade_len = int(min(max(fade_len, 0), n // 4))
    if fade_len < 1:
        return y
    ramp = _fade_in_curve(fade_len).astype(np.float32)[:, None]
    y[:fade_len] *= ramp
    y[n - fade_len:] *= ramp[::-1]
    return y


def apply_crossfade(x: np.ndarray, pre_roll: np.ndarray) -> np.ndarray:
    """Crossfade the loop's tail into the audio that precedes its start.

    ``pre_roll`` holds the ``L`` samples just before the loop's first sample.
    The last ``L`` samples of the loop fade out while ``pre_roll`` fades in
    (equal-gain raised cosine: the two are nearly the same musical moment,
    one loop apart, so they add coherently); the final sample equals
    ``pre_roll[-1]``, so on repeat the loop flows into its first sample
    exactly as the source did. The start is untouched.
    """
    y = np.array(as_2d(x), dtype=np.float32, copy=True)
    pre = as_2d(pre_roll).astype(np.float32)
    L = min(pre.shape[0], y.shape[0] // 2)
    if L < 1:
        return y
    pre = pre[pre.shape[0] - L:]
    i = np.arange(1, L + 1, dtype=np.float64)
    w = (np.sin(0.5 * np.pi * i / L) ** 2).astype(np.float32)[:, None]   # ends at exactly 1
    y[-L:] = y[-L:] * (1.0 - w) + pre * w
    return y


# --------------------------------------------------------------------------- render

def _check_config(cfg: ExportConfig) -> None:
    if cfg.seam_mode not in ("fade", "crossfade"):
        raise ValueError(f"seam_mode must be 'fade' or 'crossfade', not {cfg.seam_mode!r}")
    if cfg.snap_mode not in ("each", "joint", "none"):
        raise ValueError(f"snap_mode must be 'each', 'joint' or 'none', not {cfg.snap_mode!r}")
    for name in ("fade_ms", "zero_cross_ms", "crossfade_ms", "max_gain_db"):
        value = getattr(cfg, name)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    if not (np.isfinite(cfg.ceiling_dbfs) and cfg.ceiling_dbfs <= 0):
        raise ValueError(f"ceiling_dbfs must be <= 0 dBFS, not {cfg.ceiling_dbfs!r}")
    if not np.isfinite(cfg.target_lufs):
        raise ValueError(f"target_lufs must be finite, not {cfg.target_lufs!r}")
    if cfg.subtype not in WAV_SUBTYPES:
        raise ValueError(f"WAV subtype must be one of {WAV_SUBTYPES}, not {cfg.subtype!r}")


def render_loop(x: np.ndarray, sr: int, cfg: ExportConfig | None = None, *,
                pre_roll: np.ndarray | None = None) -> RenderedLoop:
    """Seam handling, loudness normalisation and peak ceiling for a cut loop.

    Parameters
    ----------
    x : ndarray, shape (n,) or (n, channels)
        The loop, already cut (float).
    sr : int
        Its sample rate.
    cfg : ExportConfig
    pre_roll : ndarray, optional
        Audio just before the loop's start (same channels), used by
        ``seam_mode="crossfade"``. Without enough of it (at least
        ``min(crossfade_ms, fade_ms)``), the fade seam is used instead.

    Returns
    -------
    RenderedLoop
        Gain = ``target_lufs - loudness`` (at most ``max_gain_db``), reduced
        when the sample peak would exceed ``ceiling_dbfs``; no sample ever
        exceeds the ceiling.
    """
    cfg = cfg or ExportConfig()
    _check_config(cfg)
    x = as_2d(np.asarray(x, dtype=np.float32))
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot render an empty loop")
    seam = "none"
    if cfg.seam_mode == "crossfade" and pre_roll is not None:
        want = int(round(cfg.crossfade_ms * sr / 1000.0))
        have = min(as_2d(pre_roll).shape[0], want, n // 2)
        if have >= max(1, min(want, int(round(cfg.fade_ms * sr / 1000.0)))):
            y = apply_crossfade(x, as_2d(pre_roll)[-have:])
            seam = "crossfade"
    if seam == "none":
        fade_len = int(round(cfg.fade_ms * sr / 1000.0))
        y = apply_fades(x, fade_len)
        seam = "fade" if min(fade_len, n // 4) >= 1 else "none"

    before = measure_loudness(y, sr)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    ceiling = 10 ** (cfg.ceiling_dbfs / 20.0)
    gain_capped = False
    if np.isfinite(before):
        gain_db = cfg.target_lufs - before
        if gain_db > cfg.max_gain_db:
            gain_db, gain_capped = float(cfg.max_gain_db), True
    else:                                   # silent below the gate: leave the level alone
        gain_db = 0.0
    gain = 10 ** (gain_db / 20.0)
    ceiling_limited = False
    if peak * gain > ceiling:
        gain = ceiling / peak * (1.0 - 1e-6)
        gain_db = float(20 * np.log10(gain))
        ceiling_limited = True
    out = (y.astype(np.float64) * gain).astype(np.float32)
    np.clip(out, -ceiling, ceiling, out=out)      # float rounding only; gain already fits
    after = before + gain_db if np.isfinite(before) else float("-inf")
    return RenderedLoop(audio=out, gain_db=float(gain_db), loudness_lufs_before=float(before),
                        loudness_lufs_after=float(after),
                        peak_dbfs=peak_to_dbfs(float(np.max(np.abs(out)))),
                        ceiling_limited=ceiling_limited, gain_capped=gain_capped, seam=seam)


# --------------------------------------------------------------------------- files

def write_wav(path, audio: np.ndarray, sr: int, subtype: str = "PCM_24") -> Path:
    """Write a WAV atomically (the temp file is removed if anything fails)."""
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, audio, sr, subtype=subtype, format="WAV")
    return path


# --------------------------------------------------------------------------- one loop

def export_loop(info: AudioInfo, start_sample: int, end_sample: int, out_path,
                cfg: ExportConfig | None = None, *, mp3_path=None) -> ExportedLoop:
    """Cut one loop from the source and write it (WAV, plus MP3 if asked).

    Parameters
    ----------
    info : AudioInfo
        From :func:`engine.audio.probe`.
    start_sample, end_sample : int
        The loop at the source rate, end exclusive.
    out_path : str or Path
        The WAV to write.
    cfg : ExportConfig
    mp3_path : str or Path, optional
        Where the preview goes when ``cfg.export_mp3``; default: ``out_path``
        with ``.mp3``.

    Returns
    -------
    ExportedLoop

    Raises
    ------
    AudioError
        The loop lies outside the file or is too short to export.
    """
    cfg = cfg or ExportConfig()
    _check_config(cfg)
    sr = int(info.sr)
    req_start, req_end = int(start_sample), int(end_sample)
    start = max(0, req_start)
    end = min(int(info.frames), req_end)
    min_len = max(8, int(0.01 * sr))
    if end - start < min_len:
        raise AudioError(info.path, f"loop {req_start}-{req_end} (samples) is empty or too short "
                                    f"inside a file of {info.frames} samples")
    shift = int(round(cfg.zero_cross_ms * sr / 1000.0)) if cfg.snap_mode != "none" else 0
    xfade = int(round(cfg.crossfade_ms * sr / 1000.0)) if cfg.seam_mode == "crossfade" else 0
    read_from = max(0, start - shift - xfade)
    read_to = min(int(info.frames), end + shift)
    seg = read_segment(info, read_from, read_to)
    s, e = start - read_from, end - read_from
    if cfg.snap_mode == "each" and shift > 0:
        s2 = snap_to_zero_crossing(seg, s, shift)
        e2 = snap_to_zero_crossing(seg, e, shift)
        if e2 - s2 >= min_len:
            s, e = s2, e2
    elif cfg.snap_mode == "joint" and shift > 0:
        d = _joint_shift(seg, s, e, shift)
        s, e = s + d, e + d
    pre = seg[max(0, s - xfade):s] if xfade > 0 else None
    rendered = render_loop(seg[s:e], sr, cfg, pre_roll=pre)
    out_path = Path(out_path)
    write_wav(out_path, rendered.audio, sr, cfg.subtype)
    mp3_written, mp3_sr, mp3_ch = None, None, None
    if cfg.export_mp3:
        target = Path(mp3_path) if mp3_path is not None else out_path.with_suffix(".mp3")
        mp3_written, mp3_sr, mp3_ch = write_mp3(target, rendered.audio, sr,
                                                cfg.mp3_bitrate_kbps, cfg.ceiling_dbfs)
    return ExportedLoop(path=out_path, mp3_path=mp3_written,
                        start_sample=read_from + s, end_sample=read_from + e,
                        requested_start_sample=req_start, requested_end_sample=req_end,
                        sr=sr, channels=int(rendered.audio.shape[1]),
                        frames=int(rendered.audio.shape[0]), gain_db=rendered.gain_db,
                        loudness_lufs=rendered.loudness_lufs_after,
                        loudness_lufs_before=rendered.loudness_lufs_before,
                        peak_dbfs=rendered.peak_dbfs, ceiling_limited=rendered.ceiling_limited,
                        gain_capped=rendered.gain_capped, seam=rendered.seam,
                        mp3_sr=mp3_sr, mp3_channels=mp3_ch)


# --------------------------------------------------------------------------- tables

def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Seed columns first, then the export's, then everything else as given."""
    first = [c for c in (*SEED_COLUMNS, *EXPORT_COLUMNS) if c in df.columns]
    rest = [c for c in df.columns if c not in first]
    return df[first + rest]


def _prepare_selection(info: AudioInfo, selected: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(selected, pd.DataFrame):
        raise TypeError("selected must be a pandas DataFrame")
    df = selected.copy().reset_index(drop=True)
    if df.empty:
        for col in ("rank", "bars", "bpm", "start_sample", "end_sample", "start_time",
                    "end_time"):
            if col not in df.columns:
                df[col] = pd.Series(dtype="float64")
        return df
    missing = [c for c in ("bars", "bpm") if c not in df.columns]
    if missing:
        raise ValueError(f"{info.name}: selected loops lack column(s) {missing}")
    sr = int(info.sr)
    for kind in ("start", "end"):
        samp, sec = f"{kind}_sample", f"{kind}_time"
        if samp not in df.columns:
            if sec not in df.columns:
                raise ValueError(f"{info.name}: selected loops need {samp} or {sec}")
            df[samp] = np.round(df[sec].astype(float) * sr).astype(np.int64)
        if sec not in df.columns:
            df[sec] = df[samp].astype(float) / sr
    if "rank" not in df.columns:
        df["rank"] = np.arange(1, len(df) + 1)
    if df["rank"].duplicated().any():
        raise ValueError(f"{info.name}: duplicate ranks in the selected loops")
    return df


def _read_metadata(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        warnings.warn(f"{path}: unreadable metadata ({exc}); starting a new one", stacklevel=3)
        return None


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """Exclusive lock on a folder (POSIX flock on the directory itself)."""
    try:
        import fcntl
    except ImportError:                       # Windows: no lock; tracks rarely share a folder
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def export_track_loops(info: AudioInfo, selected: pd.DataFrame, out_dir,
                       cfg: ExportConfig | None = None, track_stem: str | None = None,
                       progress=None) -> pd.DataFrame:
    """Write a track's selected loops and its ``loops_metadata.csv``.

    Parameters
    ----------
    info : AudioInfo
        The source track (:func:`engine.audio.probe`).
    selected : DataFrame
        One row per loop with at least ``bars``, ``bpm`` and either
        ``start_sample``/``end_sample`` (source-rate samples) or
        ``start_time``/``end_time``; ``rank`` defaults to the row order.
        Every other column (scores, features, key, ...) is carried into the
        metadata.
    out_dir : str or Path
        Output folder (created). Several tracks may share it: the metadata
        file is merged per ``source_file`` (this track's old rows and their
        stale files are replaced, other tracks' rows are kept) and a name
        clash with another source's files gets a short hash suffix.
    cfg : ExportConfig
    track_stem : str, optional
        Name used in file names and ``track_id`` (default: the source's stem).
    progress : callable, optional
        ``progress(done, total, message)`` after each loop.

    Returns
    -------
    DataFrame
        This track's rows of ``loops_metadata.csv``: ``track_id, start_time,
        end_time, bars, bpm``, then ``source_file, rank, file, mp3_file,
        folder, start_sample, end_sample, export_start_sample, export_end_sample, sr,
        channels, gain_db, loudness_lufs, peak_dbfs, ceiling_limited,
        loudness_lufs_before, gain_capped, seam, mp3_sr, mp3_channels``, then
        the other input columns. ``file``/``mp3_file`` are names inside
        ``out_dir``; ``folder`` is ``out_dir``'s name (a batch writes one
        folder per track under the run folder, so an aggregated row locates
        its file as ``<run>/<folder>/<file>``).
    """
    cfg = cfg or ExportConfig()
    _check_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _prepare_selection(info, selected).sort_values("rank", kind="stable")
    df = df.reset_index(drop=True)
    raw_stem = track_stem if track_stem is not None else Path(info.path).stem
    stem = sanitize_name(raw_stem)
    source = str(info.path)
    meta_path = out_dir / METADATA_NAME
    total = len(df)
    with _folder_lock(out_dir):
        old = _read_metadata(meta_path)
        others = old.iloc[0:0] if old is not None else None
        mine_old = None
        if old is not None and "source_file" in old.columns:
            is_mine = old["source_file"].astype(str) == source
            others, mine_old = old[~is_mine], old[is_mine]
        elif old is not None:
            others = old
        taken = set()
        if others is not None:
            for col in ("file", "mp3_file"):
                if col in others.columns:
                    taken |= {str(v) for v in others[col].dropna() if str(v)}

        def names_for(stem_):
            return [(loop_filename(stem_, r.rank, r.bars, r.bpm, "wav"),
                     loop_filename(stem_, r.rank, r.bars, r.bpm, "mp3"))
                    for r in df.itertuples(index=False)]

        names = names_for(stem)
        if any(w in taken or m in taken for w, m in names):
            suffix = hashlib.blake2b(source.encode("utf-8"), digest_size=3).hexdigest()
            stem = sanitize_name(f"{stem[:70]}~{suffix}")
            names = names_for(stem)

        rows = []
        for i, (r, (wav_name, mp3_name)) in enumerate(zip(df.to_dict("records"), names)):
            wav_path = out_dir / wav_name
            if wav_path.resolve().parent != out_dir.resolve():      # defence in depth
                raise LoopLabError(f"{info.name}: refusing to write outside {out_dir}")
            done = export_loop(info, int(r["start_sample"]), int(r["end_sample"]), wav_path,
                               cfg, mp3_path=out_dir / mp3_name)
            row = dict(r)
            track_id = r.get("track_id")
            row.update({
                "track_id": raw_stem if track_id is None or pd.isna(track_id) else track_id,
                "source_file": source, "file": wav_name,
                "mp3_file": mp3_name if done.mp3_path is not None else "",
                "folder": out_dir.name,
                "start_sample": int(r["start_sample"]), "end_sample": int(r["end_sample"]),
                "export_start_sample": done.start_sample, "export_end_sample": done.end_sample,
                "sr": done.sr, "channels": done.channels, "gain_db": round(done.gain_db, 3),
                "loudness_lufs": round(done.loudness_lufs, 3),
                "peak_dbfs": round(done.peak_dbfs, 3), "ceiling_limited": done.ceiling_limited,
                "loudness_lufs_before": round(done.loudness_lufs_before, 3),
                "gain_capped": done.gain_capped, "seam": done.seam,
                "mp3_sr": done.mp3_sr, "mp3_channels": done.mp3_channels,
            })
            rows.append(row)
            if progress is not None:
                progress(i + 1, total, f"exported {wav_name}")
        table = order_columns(pd.DataFrame(rows, columns=_union_columns(df, rows)))

        # drop this track's files from an earlier export that are not rewritten now
        if mine_old is not None:
            keep = {n for pair in names for n in pair}
            for col in ("file", "mp3_file"):
                if col not in mine_old.columns:
                    continue
                for name in mine_old[col].dropna().astype(str):
                    if name and name not in keep and _is_plain_name(out_dir, name):
                        with contextlib.suppress(OSError):
                            (out_dir / name).unlink()
        merged = table if others is None or others.empty else \
            order_columns(pd.concat([others, table], ignore_index=True, sort=False))
        atomic_write_csv(merged, meta_path)
    return table


def _is_plain_name(folder: Path, name: str) -> bool:
    """True if ``name`` is a visible file directly inside ``folder``."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        return False
    return (folder / name).resolve().parent == folder.resolve()


def _union_columns(df: pd.DataFrame, rows: list[dict]) -> list:
    cols = list(dict.fromkeys([*SEED_COLUMNS, *EXPORT_COLUMNS, *df.columns]))
    extra = [k for r in rows for k in r if k not in cols]
    return cols + list(dict.fromkeys(extra))


def write_aggregate_csv(tables, out_path) -> pd.DataFrame:
    """Concatenate per-track metadata into one CSV (atomically).

    Parameters
    ----------
    tables : iterable of DataFrame or path
        Tables from :func:`export_track_loops`, or ``loops_metadata.csv``
        paths (a folder means its ``loops_metadata.csv``).
    out_path : str or Path
        Usually ``<run>/all_loops_metadata.csv``.

    Returns
    -------
    DataFrame
        The union of the columns (seed columns first); rows in input order.
    """
    frames = []
    for t in tables:
        if isinstance(t, pd.DataFrame):
            frames.append(t)
            continue
        p = Path(t)
        if p.is_dir():
            p = p / METADATA_NAME
        frames.append(pd.read_csv(p))
    frames = [f for f in frames if not f.empty]
    if frames:
        out = order_columns(pd.concat(frames, ignore_index=True, sort=False))
    else:
        out = pd.DataFrame(columns=[*SEED_COLUMNS, *EXPORT_COLUMNS])
    atomic_write_csv(out, out_path)
    return out


def make_zip(source, zip_path, arcname_root: str | None = None, *, only=None) -> Path:
    """Pack exported files into a ZIP with safe member names (atomically).

    Parameters
    ----------
    source : str, Path or iterable of paths
        A folder (packed recursively, hidden files such as in-progress temp
        files skipped) or a list of files (packed flat, by base name).
    zip_path : str or Path
        The archive; if it lies inside ``source`` it is not packed into itself.
    arcname_root : str, optional
        A top folder inside the archive (sanitised).
    only : iterable of paths, optional
        With a folder ``source``: pack just these files (inside ``source``,
        names relative to it), e.g. the files one run wrote.

    Returns
    -------
    Path

    Notes
    -----
    Each member name component goes through :func:`sanitize_name`: no
    absolute paths, no ``..``, no backslashes, no control characters.
    Duplicate names get `` (2)``, `` (3)`` ... Audio is stored (already
    dense), text is deflated.
    """
    zip_path = Path(zip_path)
    entries: list[tuple[Path, list[str]]] = []
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        root = Path(source)
        files = sorted(root.rglob("*")) if only is None else [Path(p) for p in only]
        for p in files:
            rel = p.resolve().relative_to(root.resolve())
            if not p.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            if p.resolve() == zip_path.resolve():
                continue
            entries.append((p, list(rel.parts)))
    else:
        items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        for p in items:
            p = Path(p)
            if not p.is_file():
                raise FileNotFoundError(f"cannot zip {p}: not a file")
            entries.append((p, [p.name]))
    prefix = [arcname_root] if arcname_root else []
    used: set[str] = set()
    with atomic_path(zip_path, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for p, parts in entries:
                name = unique_member_name(zip_member_name(prefix + parts), used)
                stored = p.suffix.lower() in (".wav", ".mp3", ".flac", ".ogg", ".zip")
                zf.write(p, name, compress_type=zipfile.ZIP_STORED if stored
                         else zipfile.ZIP_DEFLATED)
    return zip_path
