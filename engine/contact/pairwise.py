"""DTW between loops: all pairs or a shortlist, cached per library.

:func:`pairwise_dtw` returns a :class:`DTWResult` (per-pair distance, overlap
and stretch); see :mod:`engine.contact` ("DTW", "Exact vs shortlist").
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DEFAULT_CACHE_DIR
from ..errors import AnalysisError
from .common import noop_progress
from .params import DTWParams
from .sequences import CONTACT_VERSION, SequenceSet
from .shortlist import shortlist_pairs

@dataclass
class DTWResult:
    """DTW of a set of pairs ``(pa[p] < pb[p])`` over ``files``.

    Per pair: ``distance`` (cost / path length), ``overlap``, ``stretch``
    (j over i, i = pa). ``mode`` is "exact" (all pairs) or "shortlist".
    """

    files: list
    hashes: list
    lengths: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    distance: np.ndarray
    overlap: np.ndarray
    stretch: np.ndarray
    mode: str
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    from_cache: bool = False

    @property
    def n(self) -> int:
        return len(self.files)

    @property
    def n_pairs(self) -> int:
        return int(self.pa.shape[0])

    def dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distance, overlap, stretch) as n x n matrices.

        Missing pairs: distance inf, overlap 0, stretch 1. Diagonal: 0, 1, 1.
        ``stretch[i, j]`` = s (j over i) and ``stretch[j, i]`` = 1 / s.
        """
        n = self.n
        D = np.full((n, n), np.inf)
        O = np.zeros((n, n))
        S = np.ones((n, n))
        D[self.pa, self.pb] = self.distance
        D[self.pb, self.pa] = self.distance
        O[self.pa, self.pb] = self.overlap
        O[self.pb, self.pa] = self.overlap
        S[self.pa, self.pb] = self.stretch
        S[self.pb, self.pa] = 1.0 / self.stretch
        np.fill_diagonal(D, 0.0)
        np.fill_diagonal(O, 1.0)
        np.fill_diagonal(S, 1.0)
        return D, O, S

    def permuted(self, new_index: np.ndarray, files: list) -> "DTWResult":
        """Same pairs with file ``k`` renumbered ``new_index[k]`` (pa < pb kept)."""
        a = new_index[self.pa]
        b = new_index[self.pb]
        swap = a > b
        pa = np.where(swap, b, a)
        pb = np.where(swap, a, b)
        st = np.where(swap, 1.0 / self.stretch, self.stretch)
        order = np.lexsort((pb, pa))
        lengths = np.empty_like(self.lengths)
        lengths[new_index] = self.lengths
        hashes = [None] * self.n
        for k, h in enumerate(self.hashes):
            hashes[new_index[k]] = h
        return DTWResult(list(files), hashes, lengths, pa[order], pb[order],
                         self.distance[order], self.overlap[order], st[order], self.mode,
                         dict(self.params), self.seconds, self.from_cache)


def _dtw_cache_key(hashes, seq_params: dict, dtw_params: dict, extra: dict) -> str:
    from ..cache import make_key

    blob = hashlib.blake2b("\n".join(sorted(hashes)).encode(), digest_size=16).hexdigest()
    return make_key(blob, {"seq": seq_params, "dtw": dtw_params, "v": CONTACT_VERSION, **extra},
                    kind="contact-dtw")


def pairwise_dtw(seqset: SequenceSet, params: DTWParams = DTWParams(), *,
                 vectors: np.ndarray | None = None, cache_dir=DEFAULT_CACHE_DIR,
                 use_cache: bool = True, progress=None) -> DTWResult:
    """DTW between the loops of ``seqset``: all pairs, or a shortlist (see :mod:`engine.contact`).

    Results are cached on disk under ``<cache_dir>/contact`` keyed by the
    sorted content hashes and all parameters, stored in content-hash order,
    so the same library in another file order is a cache hit too.

    Parameters
    ----------
    seqset : SequenceSet
    params : DTWParams
    vectors : ndarray, shape (n, d), optional
        Shortlist vectors (e.g. audio embeddings); default
        :func:`shortlist_vectors`.
    cache_dir, use_cache
        Disk cache location / switch.
    progress : callable, optional
        ``progress(done_pairs, total_pairs, message)``.
    """
    from ..cache import DiskCache
    from ..dtw import METRICS, all_pairs, dtw_pairs, pack_sequences

    progress = progress or noop_progress
    if params.distance_metric not in METRICS:
        raise ValueError(f"distance_metric must be one of {sorted(METRICS)}, "
                         f"got {params.distance_metric!r}")
    n = len(seqset)
    if n < 2:
        raise AnalysisError("need at least 2 loops for DTW")
    mode = params.resolved_mode(n)
    pdict = params.as_dict()
    pdict["mode"] = mode
    if mode == "exact":
        for k in ("shortlist_k", "candidate_factor", "coarse_pool"):
            pdict.pop(k)
    extra = {}
    if vectors is not None:
        extra["vectors"] = hashlib.blake2b(np.ascontiguousarray(vectors, dtype=np.float64)
                                           .tobytes(), digest_size=16).hexdigest()
    # canonical order: by content hash (stable), so file order does not matter;
    # canonical file c is input file canon[c]
    canon = np.array(sorted(range(n), key=lambda k: (seqset.hashes[k], k)), dtype=np.int64)
    cache = DiskCache(Path(cache_dir) / "contact", enabled=use_cache)
    key = _dtw_cache_key(seqset.hashes, seqset.params.as_dict(), pdict, extra)
    hit = cache.get(key)
    if hit is not None and hit.get("n") == n:
        res = DTWResult(files=[seqset.files[k] for k in canon],
                        hashes=[seqset.hashes[k] for k in canon],
                        lengths=np.asarray(hit["lengths"]), pa=hit["pa"], pb=hit["pb"],
                        distance=hit["distance"], overlap=hit["overlap"],
                        stretch=hit["stretch"], mode=mode, params=pdict,
                        seconds=float(hit.get("seconds", 0.0)), from_cache=True)
        progress(res.n_pairs, res.n_pairs, "DTW (cached)")
        return res.permuted(canon, seqset.files)
    t0 = time.perf_counter()
    seqs = [seqset.sequences[k] for k in canon]
    packed = pack_sequences(seqs, params.distance_metric)
    if mode == "exact":
        pairs = all_pairs(n)
    else:
        vec = None if vectors is None else np.asarray(vectors, dtype=np.float64)
        if vec is not None and vec.shape[0] != n:
            raise ValueError(f"vectors has {vec.shape[0]} rows for {n} loops")
        pairs = shortlist_pairs(seqset.subset(canon), params,
                                vectors=None if vec is None else vec[canon], progress=progress)
    raw = dtw_pairs(packed, pairs, band_rad=params.band_rad,
                    progress=lambda d, t, m: progress(d, t, "DTW"))
    seconds = time.perf_counter() - t0
    res = DTWResult(files=[seqset.files[k] for k in canon],
                    hashes=[seqset.hashes[k] for k in canon], lengths=packed.lengths.copy(),
                    pa=raw.pa.copy(), pb=raw.pb.copy(), distance=raw.distance,
                    overlap=raw.overlap, stretch=raw.stretch_b_over_a, mode=mode, params=pdict,
                    seconds=seconds)
    cache.put(key, {"n": n, "lengths": res.lengths, "pa": res.pa, "pb": res.pb,
                    "distance": res.distance, "overlap": res.overlap, "stretch": res.stretch,
                    "seconds": seconds})
    return res.permuted(canon, seqset.files)
