"""Decode loops once: rhythm sequence, BPM and key per file (cached per content).

:func:`compute_sequences` turns a list of paths into a :class:`SequenceSet`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DEFAULT_CACHE_DIR
from ..errors import AnalysisError, AudioError, LoopLabError
from .common import noop_progress
from .frames import SequenceParams, rhythm_features
from .tempo import estimate_loop_bpm

#: Bumped when sequences, BPM or DTW results change for the same parameters
#: (part of every cache key in :mod:`engine.contact`, with :data:`engine.CODE_VERSION`).
CONTACT_VERSION = "4"

#: Fewer files to decode than this are decoded in-process (worker start-up
#: costs more than it saves).
PARALLEL_MIN_FILES = 32


@dataclass(frozen=True)
class LoopInfo:
    """What the contact map knows about one loop (stored in ``contact_loop_info.csv``)."""

    file: str
    content_hash: str
    duration: float
    n_frames: int
    bpm: float | None
    bpm_method: str
    key: str | None
    camelot: str | None
    key_confidence: float | None


@dataclass
class SequenceSet:
    """Rhythm sequences of the usable files, in input order.

    Attributes
    ----------
    files : list of str
    hashes : list of str
        Content hashes (cache keys).
    sequences : list of ndarray, each (T_k, 4) float32
    info : list of LoopInfo
    failures : list of (file, message)
        Files that could not be used, with the reason.
    params : SequenceParams
    """

    files: list
    hashes: list
    sequences: list
    info: list
    failures: list
    params: SequenceParams

    def __len__(self) -> int:
        return len(self.files)

    def info_frame(self) -> pd.DataFrame:
        """One row per loop: file, bpm, key, camelot, duration, ..."""
        cols = ["file", "bpm", "bpm_method", "key", "camelot", "key_confidence", "duration",
                "n_frames", "content_hash"]
        rows = [asdict(i) for i in self.info]
        return pd.DataFrame(rows, columns=[f for f in LoopInfo.__dataclass_fields__]).reindex(
            columns=cols)

    def subset(self, idx) -> "SequenceSet":
        """The loops at positions ``idx`` (failures kept)."""
        idx = [int(i) for i in idx]
        return SequenceSet([self.files[i] for i in idx], [self.hashes[i] for i in idx],
                           [self.sequences[i] for i in idx], [self.info[i] for i in idx],
                           list(self.failures), self.params)


def estimate_loop_key(y: np.ndarray, sr: int):
    """(key, camelot, confidence) of a loop's audio, or Nones when it has no clear key."""
    from ..key import key_of_audio

    try:
        k = key_of_audio(y, sr)
    except (LoopLabError, ValueError):
        return None, None, None
    if getattr(k, "tonic", None) is None:
        return None, None, float(getattr(k, "confidence", 0.0) or 0.0)
    return k.key, k.camelot, float(k.confidence)


def analyse_loop(path, params: SequenceParams = SequenceParams(), *, estimate_bpm: bool = True,
                 estimate_key: bool = True, content_hash: str | None = None
                 ) -> tuple[np.ndarray, LoopInfo]:
    """Decode one file and compute its rhythm sequence, BPM and key.

    Raises
    ------
    AudioError
        The file cannot be decoded or is too short/silent.
    AnalysisError
        Too few frames for a rhythm sequence.
    """
    from ..audio import load_mono

    y, info = load_mono(path, params.sr, min_duration=0.2)
    return analyse_decoded(y, float(info.duration), path, params, estimate_bpm=estimate_bpm,
                           estimate_key=estimate_key, content_hash=content_hash)


def analyse_decoded(y: np.ndarray, duration: float, path, params: SequenceParams = SequenceParams(),
                    *, estimate_bpm: bool = True, estimate_key: bool = True,
                    content_hash: str | None = None) -> tuple[np.ndarray, LoopInfo]:
    """:func:`analyse_loop` on samples already decoded at ``params.sr`` (mono).

    Lets a caller decode a loop once for its rhythm sequence and other
    analyses (:func:`engine.aspects.analyse_loop_set`).
    """
    from ..audio import content_hash as _hash

    if y.size < 4096:
        raise AudioError(path, f"too short for a rhythm sequence ({y.size / params.sr:.2f} s)")
    feats = rhythm_features(y, params.sr, params)
    seq = feats.sequence
    if seq.shape[0] < 8:
        raise AnalysisError(f"{Path(str(path)).name}: fewer than 8 onset frames")
    duration = float(duration)
    bpm, method = (estimate_loop_bpm(y, params.sr, feats, duration, params) if estimate_bpm
                   else (None, "disabled"))
    key, cam, kconf = estimate_loop_key(y, params.sr) if estimate_key else (None, None, None)
    li = LoopInfo(file=str(path), content_hash=content_hash or _hash(path), duration=duration,
                  n_frames=int(seq.shape[0]), bpm=bpm, bpm_method=method, key=key, camelot=cam,
                  key_confidence=kconf)
    return seq, li


def sequence_cache_key(chash: str, params: SequenceParams, estimate_bpm: bool = True,
                       estimate_key: bool = True) -> str:
    """Cache key of one file's (sequence, LoopInfo) entry (shared with engine.aspects)."""
    return _seq_cache_key(chash, params, estimate_bpm, estimate_key)


def _seq_cache_key(chash: str, params: SequenceParams, estimate_bpm: bool,
                   estimate_key: bool) -> str:
    from ..cache import make_key

    return make_key(chash, {"seq": params.as_dict(), "bpm": bool(estimate_bpm),
                            "key": bool(estimate_key), "v": CONTACT_VERSION},
                    kind="contact-seq")


def _analyse_job(path, chash, params, estimate_bpm, estimate_key):
    try:
        seq, li = analyse_loop(path, params, estimate_bpm=estimate_bpm,
                               estimate_key=estimate_key, content_hash=chash)
        return seq, li, None
    except (LoopLabError, FileNotFoundError, OSError, ValueError) as exc:
        return None, None, str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return None, None, f"{Path(str(path)).name}: analysis failed ({type(exc).__name__}: {exc})"


def cached_sequence(cache, path: str, file_hash: str, params, estimate_bpm: bool,
                    estimate_key: bool):
    """The cached ``(sequence, LoopInfo)`` of a file's content, or None.

    The entry is keyed by content, so ``LoopInfo.file`` is set to ``path``
    (the file may have moved since it was cached).
    """
    hit = cache.get(_seq_cache_key(file_hash, params, estimate_bpm, estimate_key))
    if hit is None:
        return None
    seq, li = hit
    return seq, replace(li, file=path)


def compute_sequences(paths, params: SequenceParams = SequenceParams(), *,
                      estimate_bpm: bool = True, estimate_key: bool = True,
                      cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                      min_files: int = 3, progress=None) -> SequenceSet:
    """Rhythm sequences of ``paths`` (decoded once; cached per file content).

    Files that fail are reported in ``failures`` (file, reason) and skipped;
    the rest continue.

    Parameters
    ----------
    paths : iterable of str or Path
    params : SequenceParams
    estimate_bpm, estimate_key : bool
        Also store each loop's BPM / key (used by neighbour queries).
    cache_dir : str or Path
        Analysis cache root; entries go under ``<cache_dir>/contact``.
    use_cache : bool
    n_jobs : int
        Parallel decoding processes (joblib/loky) for cache misses; 1 = serial,
        -1 = one per core.
    min_files : int
        Fewer usable files raise :class:`AnalysisError`.
    progress : callable, optional
        ``progress(done, total, message)``.

    Raises
    ------
    AnalysisError
        Fewer than ``min_files`` usable files (the message lists failures).
    """
    from ..audio import hash_files
    from ..cache import DiskCache

    progress = progress or noop_progress
    paths = [str(p) for p in paths]
    total = len(paths)
    cache = DiskCache(Path(cache_dir) / "contact", enabled=use_cache)
    results: list = [None] * total
    hashes, failures = hash_files(paths)
    todo = []
    for k, (p, h) in enumerate(zip(paths, hashes)):
        if h is None:
            continue
        results[k] = cached_sequence(cache, p, h, params, estimate_bpm, estimate_key)
        if results[k] is None:
            todo.append((k, p, h))
    done = total - len(todo)
    progress(done, total, "rhythm sequences (cached)")

    def _store(k, p, h, out):
        seq, li, err = out
        if err is not None:
            failures[k] = err
        else:
            results[k] = (seq, li)
            cache.put(_seq_cache_key(h, params, estimate_bpm, estimate_key), (seq, li))

    if n_jobs and n_jobs != 1 and len(todo) >= PARALLEL_MIN_FILES:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
        outs = par(delayed(_analyse_job)(p, h, params, estimate_bpm, estimate_key)
                   for _, p, h in todo)
        for (k, p, h), out in zip(todo, outs):
            _store(k, p, h, out)
            done += 1
            progress(done, total, Path(p).name)
    else:
        for k, p, h in todo:
            _store(k, p, h, _analyse_job(p, h, params, estimate_bpm, estimate_key))
            done += 1
            progress(done, total, Path(p).name)

    keep = [k for k in range(total) if results[k] is not None]
    fails = [(paths[k], failures[k]) for k in sorted(failures)]
    if len(keep) < min_files:
        detail = "; ".join(f"{Path(f).name}: {m}" for f, m in fails[:10])
        raise AnalysisError(
            f"need at least {min_files} usable audio files for a contact map, got {len(keep)} "
            f"of {total}" + (f" (failed: {detail})" if detail else ""))
    return SequenceSet(files=[paths[k] for k in keep],
                       hashes=[results[k][1].content_hash for k in keep],
                       sequences=[results[k][0] for k in keep],
                       info=[results[k][1] for k in keep], failures=fails, params=params)
