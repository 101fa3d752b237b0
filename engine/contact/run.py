"""Folder to contact map in one call: the ``contact-map`` command's work."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import DEFAULT_CACHE_DIR
from ..errors import AnalysisError
from .artifacts import write_artifacts
from .contact_map import ContactMap, SharpenParams
from .frames import SequenceParams
from .graph import build_contact_map
from .pairwise import DTWParams, DTWResult, pairwise_dtw
from .sequences import SequenceSet, _noop, compute_sequences


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
                    heatmaps: bool = True, progress=None) -> ContactRun:
    """Folder -> sequences -> DTW -> contact map -> artifacts (the CLI's work).

    ``max_files`` keeps the first N files in path order (seed); 0 or less: all.

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist.
    AnalysisError
        Fewer than 3 usable files.
    """
    from ..audio import find_audio_files

    progress = progress or _noop
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
    t0 = time.perf_counter()
    dtw = pairwise_dtw(seqset, dtw_params, cache_dir=cache_dir, use_cache=use_cache,
                       progress=lambda d, n, m: progress(d, n, m))
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
