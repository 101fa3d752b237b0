"""Folder to contact map in one call: the ``contact-map`` command's work."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_CACHE_DIR
from ..errors import AnalysisError
from .artifacts import write_artifacts
from .contact_map import ContactMap, SharpenParams
from .frames import SequenceParams
from .graph import build_contact_map
from .pairwise import DTWParams, DTWResult, pairwise_dtw
from .common import noop_progress
from .sequences import SequenceSet, compute_sequences


@dataclass
class ContactRun:
    """Everything one ``contact-map`` run produced."""

    seqset: SequenceSet
    dtw: DTWResult
    cmap: ContactMap
    artifacts: dict
    timings: dict


def run_contact_map(folder, out_dir, *, max_files: int = 200,
                    seq_params: SequenceParams = SequenceParams(),
                    dtw_params: DTWParams = DTWParams(),
                    sharpen_params: SharpenParams = SharpenParams(),
                    top_k_neighbors: int = 10, top_pairs_limit: int = 500,
                    estimate_bpm: bool = True, estimate_key: bool = True,
                    cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                    heatmaps: bool = True, shortlist_embedding: str = "none",
                    openl3_weights=None, progress=None) -> ContactRun:
    """Folder -> sequences -> DTW -> contact map -> artifacts (the CLI's work).

    ``max_files`` keeps the first N files in path order (seed); 0 or less: all.
    ``shortlist_embedding`` ("none", "auto", "spectral", "openl3"): in
    shortlist mode, propose DTW candidates by each loop's mean audio
    embedding (:func:`loop_embeddings`) instead of the bag-of-frames vector.

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist.
    AnalysisError
        Fewer than 3 usable files.
    """
    from ..audio import find_audio_files

    progress = progress or noop_progress
    files = find_audio_files(folder)
    if max_files and max_files > 0:
        files = files[: int(max_files)]
    if len(files) < 3:
        raise AnalysisError(f"need at least 3 audio files for a contact map, found {len(files)} "
                            f"in {folder}")
    t = {}
    t0 = time.perf_counter()
    seqset = compute_sequences(files, seq_params, estimate_bpm=estimate_bpm,
                               estimate_key=estimate_key, cache_dir=cache_dir,
                               use_cache=use_cache, n_jobs=n_jobs,
                               progress=lambda d, n, m: progress(d, n, f"sequences: {m}"))
    t["sequences_seconds"] = time.perf_counter() - t0
    vectors = None
    if shortlist_embedding != "none" and dtw_params.resolved_mode(len(seqset)) == "shortlist":
        t0 = time.perf_counter()
        vectors = loop_embeddings(seqset.files, shortlist_embedding, openl3_weights,
                                  sr=seq_params.sr, progress=progress)
        t["embedding_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dtw = pairwise_dtw(seqset, dtw_params, vectors=vectors, cache_dir=cache_dir,
                       use_cache=use_cache, progress=lambda d, n, m: progress(d, n, m))
    t["dtw_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cmap = build_contact_map(dtw, sharpen_params)
    t["contact_map_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    arts = write_artifacts(cmap, out_dir, seqset=seqset, top_k_neighbors=top_k_neighbors,
                           top_pairs_limit=top_pairs_limit, heatmaps=heatmaps,
                           extra_summary={"timings": {k: round(v, 3) for k, v in t.items()}})
    t["artifacts_seconds"] = time.perf_counter() - t0
    return ContactRun(seqset, dtw, cmap, arts, t)


def loop_embeddings(files, backend: str = "auto", weights=None, *, sr: int = 22050,
                    hop_size: float = 0.5, progress=None) -> np.ndarray:
    """Mean audio embedding of each loop, shape (n, D): shortlist vectors.

    Parameters
    ----------
    files : list of path
    backend : {"auto", "spectral", "openl3"}
        See :func:`engine.embeddings.get_embedder`.
    weights : path, optional
        OpenL3 weights file or folder.
    sr : int
        Decode rate.
    hop_size : float
        Seconds between embedding windows.
    """
    from ..audio import load_mono
    from ..embeddings import embedding_timeline, get_embedder

    progress = progress or noop_progress
    embedder = get_embedder(backend, weights)
    out = []
    for i, f in enumerate(files):
        y, _ = load_mono(f, sr)
        tl = embedding_timeline(y, sr, embedder, hop_size=hop_size)
        out.append(tl.values.mean(axis=0))
        progress(i + 1, len(files), f"embeddings ({embedder.name})")
    return np.vstack(out).astype(np.float64)
