"""Neighbours by aspect: rhythm, timbre, harmony and tempo, and a weighted ``overall``.

A producer asking for "loops like this one" may mean the groove, the sound or
the key. Every pair of loops gets one similarity per aspect, each in [0, 1]:

``rhythm``
    the contact map's DTW similarity ``exp(-d / median d) * overlap`` over
    the 4-channel rhythm sequences (:mod:`engine.contact`).
``timbre``
    ``exp(-d / median d)`` of the Euclidean distance between the loops'
    timbre descriptors (:data:`engine.descriptors.TIMBRE_COLUMNS`: log-mel,
    MFCC, spectral contrast and shape, mean and spread), each column
    standardised over the library (z-score, clipped at +-6).
``harmony``
    ``exp(-d / median d)`` of the cosine distance between the loops' mean
    chroma vectors (mean-centred): loops in one key share their pitch-class
    profile. Loops without a clear pitch content (drums) get a flat profile
    and a neutral 0.5.
``tempo``
    half/double-time aware compatibility: the pitch-fader move needed to
    match tempos (folded by 1/2, 1 or 2, as :func:`engine.neighbors.tempo_hint`)
    through ``exp(-(pct / 6)^2 / 2)`` (6 % = one CDJ ±6 % range: 0.61); 0.5 when
    a BPM is unknown.

``overall`` is the weighted mean ``sum(w_a s_a) / sum(w_a)``. The default
weights (:data:`engine.config.AspectWeights`) were chosen by
``bench/bench_neighbors.py`` on half of the dev-set songs and checked on the
other half (see the README). Weights can be anything >= 0 (the dashboard's
sliders; ``query --aspects rhythm=1,timbre=0.5``); re-weighting is cheap
because the per-aspect similarities of every candidate pair are stored.

Candidate pairs
---------------
Up to ``auto_exact_max`` loops (500) the contact map already has exact DTW
for every pair, so every pair is a candidate. Above that, the candidates are
the contact map's shortlist pairs plus each loop's ``k_timbre`` (40) nearest
timbre vectors and ``k_harmony`` (20) nearest chroma vectors (scikit-learn
nearest neighbours); exact DTW is run on the candidates it does not have yet.
Cost stays O(n k) DTW pairs.

Files
-----
``contact_aspect_neighbors.csv`` (one row per loop and neighbour, by the
default weights: ``file, neighbor_rank, neighbor_file, overall, rhythm,
timbre, harmony, tempo, stretch_ratio_neighbor_over_file, file_bpm,
neighbor_bpm, file_camelot, neighbor_camelot``) and ``contact_aspects.npz``
(all candidate pairs with their aspect similarities; what ``query --aspects``
and the dashboard re-weight) are written beside the contact map's files,
whose names and columns do not change.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DEFAULT_CACHE_DIR, AspectWeights
from .errors import AnalysisError, LoopLabError
from .contact.shortlist import knn_pairs

#: Aspect names, in column order.
ASPECTS = ("rhythm", "timbre", "harmony", "tempo")
#: File names (written beside contact_nearest_neighbors.csv).
ASPECT_NEIGHBORS_CSV = "contact_aspect_neighbors.csv"
ASPECT_NPZ = "contact_aspects.npz"
#: Tempo similarity: Gaussian width in percent of pitch-fader move.
TEMPO_SIGMA_PCT = 6.0
#: Standardised descriptor columns are clipped at this many standard deviations.
Z_CLIP = 6.0
#: Chroma profiles flatter than this (std of the mean-normalised chroma) count as "no pitch".
FLAT_CHROMA = 0.02
#: Timbre standardisation: "column" (z-score per column) or "block" (one spread per
#: block of like columns). Measured on the bench_neighbors loop set (340 loops, 34 songs):
#: timbre-only P@5 0.918 (column) vs 0.905 (block).
TIMBRE_SCALING = "column"
#: Candidates per loop from the timbre and harmony kNN (shortlist mode).
K_TIMBRE = 40
K_HARMONY = 20

#: Version of the aspect computations (stored in the npz).
ASPECT_VERSION = "1"


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


# --------------------------------------------------------------------------- decode once

@dataclass
class LoopSet:
    """Everything per loop the neighbour aspects need, decoded once per file.

    Attributes
    ----------
    seqset : engine.contact.SequenceSet
        Rhythm sequences, BPM, key (input order; failures listed there).
    descriptors : ndarray (n, len(DESCRIPTOR_NAMES)) or None
        :func:`engine.descriptors.loop_descriptors` per loop, aligned with ``seqset.files``.
    embeddings : ndarray (n, D) or None
        Mean audio embedding per loop when asked for.
    embedding_name : str or None
        "openl3" or "spectral".
    seconds : dict
        Compute seconds summed over the files decoded in this call (``decode``,
        ``sequence``, ``descriptors``, ``embedding``; cache hits cost nothing).
    """

    seqset: object
    descriptors: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    embedding_name: str | None = None
    seconds: dict = field(default_factory=dict)

    @property
    def files(self) -> list:
        return self.seqset.files


_EMBEDDERS: dict = {}


def _embedder(backend: str, weights):
    key = (backend, str(weights))
    if key not in _EMBEDDERS:
        from .embeddings import get_embedder

        _EMBEDDERS[key] = get_embedder(backend, weights)
    return _EMBEDDERS[key]


def _emb_cache_key(chash: str, embedder_key: str, sr: int, hop: float) -> str:
    from .cache import make_key

    return make_key(chash, {"emb": embedder_key, "sr": int(sr), "hop": float(hop)},
                    kind="loop-emb")


def _loop_job(path, chash, params, estimate_bpm, estimate_key, need_seq, need_desc,
              emb_backend, emb_weights, emb_hop):
    """Decode ``path`` once and compute what is missing: (seq_li, desc, emb, error, seconds)."""
    import time

    from .audio import load_mono
    from .contact.sequences import analyse_decoded
    from .descriptors import loop_descriptors

    sec = {}
    try:
        t0 = time.perf_counter()
        y, info = load_mono(path, params.sr, min_duration=0.2)
        sec["decode"] = time.perf_counter() - t0
        seq_li = desc = emb = None
        if need_seq:
            t0 = time.perf_counter()
            seq_li = analyse_decoded(y, float(info.duration), path, params,
                                     estimate_bpm=estimate_bpm, estimate_key=estimate_key,
                                     content_hash=chash)
            sec["sequence"] = time.perf_counter() - t0
        if need_desc:
            t0 = time.perf_counter()
            desc = loop_descriptors(y, params.sr)
            sec["descriptors"] = time.perf_counter() - t0
        if emb_backend is not None:
            from .embeddings import embedding_timeline

            t0 = time.perf_counter()
            tl = embedding_timeline(y, params.sr, _embedder(emb_backend, emb_weights),
                                    hop_size=emb_hop)
            emb = np.asarray(tl.values, dtype=np.float64).mean(axis=0)
            sec["embedding"] = time.perf_counter() - t0
        return seq_li, desc, emb, None, sec
    except (LoopLabError, FileNotFoundError, OSError, ValueError) as exc:
        return None, None, None, str(exc) or type(exc).__name__, sec
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return None, None, None, (f"{Path(str(path)).name}: analysis failed "
                                  f"({type(exc).__name__}: {exc})"), sec


def analyse_loop_set(paths, seq_params=None, *, estimate_bpm: bool = True,
                     estimate_key: bool = True, descriptors: bool = True,
                     embedding: str = "none", openl3_weights=None, embedding_hop: float = 0.5,
                     cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                     min_files: int = 3, progress=None) -> LoopSet:
    """Rhythm sequence, BPM, key, descriptors and (optionally) embedding per loop.

    Each file is decoded at most once, and only when one of its results is
    not in the cache (content-hash keyed; the rhythm-sequence entries are the
    ones :func:`engine.contact.compute_sequences` reads, so a later contact
    map run reuses them).

    Parameters
    ----------
    paths : iterable of path
    seq_params : engine.contact.SequenceParams, optional
    estimate_bpm, estimate_key : bool
    descriptors : bool
        Compute :func:`engine.descriptors.loop_descriptors`.
    embedding : {"none", "auto", "spectral", "openl3"}
        Also the mean embedding per loop (:func:`engine.embeddings.get_embedder`).
    openl3_weights : path, optional
    embedding_hop : float
        Seconds between embedding windows.
    cache_dir, use_cache, n_jobs, min_files, progress
        As :func:`engine.contact.compute_sequences`.

    Raises
    ------
    AnalysisError
        Fewer than ``min_files`` usable files.
    """
    from .audio import hash_files
    from .cache import DiskCache
    from .contact.frames import SequenceParams
    from .contact.sequences import PARALLEL_MIN_FILES, SequenceSet, cached_sequence
    from .contact.sequences import sequence_cache_key as _seq_cache_key
    from .descriptors import descriptor_cache_key

    params = seq_params or SequenceParams()
    progress = progress or _noop
    paths = [str(p) for p in paths]
    total = len(paths)
    cache = DiskCache(Path(cache_dir) / "contact", enabled=use_cache)
    emb_backend = None if embedding in (None, "none") else embedding
    emb_name = emb_key = None
    if emb_backend is not None:
        emb = _embedder(emb_backend, openl3_weights)
        emb_name, emb_key = emb.name, emb.cache_key
        emb_backend = emb.name          # workers build the resolved backend
    seqs: list = [None] * total
    descs: list = [None] * total
    embs: list = [None] * total
    hashes, failures = hash_files(paths)
    todo = []
    for k, (p, h) in enumerate(zip(paths, hashes)):
        if h is None:
            continue
        seqs[k] = cached_sequence(cache, p, h, params, estimate_bpm, estimate_key)
        if descriptors:
            d = cache.get(descriptor_cache_key(h))
            descs[k] = None if d is None else d.values
        if emb_key is not None:
            embs[k] = cache.get(_emb_cache_key(h, emb_key, params.sr, embedding_hop))
        need = (seqs[k] is None, descriptors and descs[k] is None,
                emb_key is not None and embs[k] is None)
        if any(need):
            todo.append((k, p, h, need))
    done = total - len(todo)
    progress(done, total, "loops (cached)")

    seconds = {"decode": 0.0, "sequence": 0.0, "descriptors": 0.0, "embedding": 0.0}

    def _store(k, p, h, need, out):
        seq_li, desc, emb, err, sec = out
        for name, v in sec.items():
            seconds[name] += v
        if err is not None:
            failures[k] = err
            return
        if need[0]:
            seqs[k] = seq_li
            cache.put(_seq_cache_key(h, params, estimate_bpm, estimate_key), seq_li)
        if need[1]:
            descs[k] = desc.values
            cache.put(descriptor_cache_key(h), desc)
        if need[2]:
            embs[k] = emb
            cache.put(_emb_cache_key(h, emb_key, params.sr, embedding_hop), emb)

    args = [(p, h, params, estimate_bpm, estimate_key, need[0], need[1],
             emb_backend if need[2] else None, openl3_weights, embedding_hop)
            for _, p, h, need in todo]
    if n_jobs and n_jobs != 1 and len(todo) >= PARALLEL_MIN_FILES:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(_loop_job)(*a) for a in args)
    else:
        outs = (_loop_job(*a) for a in args)
    for (k, p, h, need), out in zip(todo, outs):
        _store(k, p, h, need, out)
        done += 1
        progress(done, total, Path(p).name)

    keep = [k for k in range(total) if k not in failures and seqs[k] is not None]
    fails = [(paths[k], failures[k]) for k in sorted(failures)]
    if len(keep) < min_files:
        detail = "; ".join(f"{Path(f).name}: {m}" for f, m in fails[:10])
        raise AnalysisError(
            f"need at least {min_files} usable audio files, got {len(keep)} of {total}"
            + (f" (failed: {detail})" if detail else ""))
    sset = SequenceSet(files=[paths[k] for k in keep],
                       hashes=[seqs[k][1].content_hash for k in keep],
                       sequences=[seqs[k][0] for k in keep], info=[seqs[k][1] for k in keep],
                       failures=fails, params=params)
    D = np.vstack([descs[k] for k in keep]).astype(np.float64) if descriptors else None
    E = np.vstack([embs[k] for k in keep]).astype(np.float64) if emb_key is not None else None
    return LoopSet(sset, D, E, emb_name, seconds)


# --------------------------------------------------------------------------- aspect vectors

def _blocks(names) -> list:
    """Column groups sharing a unit: ``logmel_mean_*``, ``mfcc_std_*``, ... (one per prefix)."""
    groups: dict = {}
    for i, n in enumerate(names):
        head = n.rsplit("_", 1)[0] if n[-1].isdigit() or n.split("_")[-1] in (
            "C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B") else n
        groups.setdefault(head, []).append(i)
    return list(groups.values())


def timbre_vectors(descriptors: np.ndarray, scaling: str | None = None) -> np.ndarray:
    """Standardised timbre columns, shape (n, 146).

    ``scaling="column"`` (default, :data:`TIMBRE_SCALING`): a plain z-score
    per column over the library. ``"block"``: columns sharing a
    unit (the 40 log-mel means, the 20 MFCC spreads, ...) are centred per
    column and divided by ONE spread per block (the root-mean-square of the
    block's column spreads over the library), so a band that hardly varies
    in this library (an empty top band) is not blown up to unit variance.
    Both are clipped at
    :data:`Z_CLIP`.
    """
    from .descriptors import TIMBRE_COLUMNS, TIMBRE_INDEX

    X = np.asarray(descriptors, dtype=np.float64)[:, TIMBRE_INDEX]
    Z = X - X.mean(axis=0)
    sd = X.std(axis=0)
    if (scaling or TIMBRE_SCALING) == "block":
        for ix in _blocks(TIMBRE_COLUMNS):
            s = float(np.sqrt(np.mean(sd[ix] ** 2)))
            Z[:, ix] /= s if s > 1e-9 else 1.0
    else:
        Z /= np.where(sd > 1e-9, sd, 1.0)
    return np.clip(Z, -Z_CLIP, Z_CLIP)


def harmony_vectors(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit mean-centred chroma (n, 12), has_pitch (n,) bool)."""
    from .descriptors import CHROMA_MEAN_INDEX

    C = np.asarray(descriptors, dtype=np.float64)[:, CHROMA_MEAN_INDEX]
    C = C / np.maximum(C.sum(axis=1, keepdims=True), 1e-12)
    spread = C.std(axis=1)
    C = C - C.mean(axis=1, keepdims=True)
    C = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
    return C, spread > FLAT_CHROMA


def tempo_similarity(bpm_a, bpm_b) -> np.ndarray:
    """Half/double-aware tempo compatibility in [0, 1]; 0.5 where a BPM is unknown."""
    a = np.asarray(bpm_a, dtype=np.float64)
    b = np.asarray(bpm_b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    r = np.where(ok, a / np.where(ok, b, 1.0), 1.0)
    moves = np.stack([np.abs(np.log(r * f)) for f in (1.0, 0.5, 2.0)])
    pct = (np.exp(moves.min(axis=0)) - 1.0) * 100.0
    return np.where(ok, np.exp(-0.5 * (pct / TEMPO_SIGMA_PCT) ** 2), 0.5)


def _scaled(d: np.ndarray) -> np.ndarray:
    pos = d[np.isfinite(d) & (d > 0)]
    med = float(np.median(pos)) if pos.size else 1.0
    return np.exp(-np.maximum(d, 0.0) / max(med, 1e-12))


# --------------------------------------------------------------------------- the graph

@dataclass
class AspectGraph:
    """Per-aspect similarities of candidate pairs ``(pa[p] < pb[p])`` of ``files``.

    Attributes
    ----------
    files : list of str
    pa, pb : ndarray of int
    sims : dict aspect -> ndarray, per pair, in [0, 1]
    stretch : ndarray
        DTW stretch, pb over pa.
    info : DataFrame
        Per file: ``file, bpm, key, camelot``.
    mode : str
        "exact" (all pairs) or "shortlist".
    """

    files: list
    pa: np.ndarray
    pb: np.ndarray
    sims: dict
    stretch: np.ndarray
    info: pd.DataFrame
    mode: str = "exact"
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.files)

    def overall(self, weights=None) -> np.ndarray:
        """Weighted mean of the aspect similarities per pair (see :class:`AspectWeights`)."""
        w = AspectWeights.coerce(weights).as_dict()
        tot = sum(w.values())
        if tot <= 0:
            raise ValueError("at least one aspect weight must be positive")
        return sum(w[a] * self.sims[a] for a in ASPECTS) / tot

    def neighbors(self, weights=None, top_k: int = 10, query=None) -> pd.DataFrame:
        """Each loop's (or only ``query``'s) ``top_k`` neighbours by weighted overall similarity.

        Ties are broken by the rhythm similarity, then by file name, so the
        result does not depend on the order the files were given in.
        """
        score = self.overall(weights)
        rows = np.concatenate([self.pa, self.pb])
        cols = np.concatenate([self.pb, self.pa])
        pid = np.concatenate([np.arange(self.pa.size)] * 2)
        st = np.concatenate([self.stretch, 1.0 / self.stretch])
        if query is not None:
            qi = self.files.index(query)
            sel = rows == qi
            rows, cols, pid, st = rows[sel], cols[sel], pid[sel], st[sel]
        names = np.asarray(self.files, dtype=object)
        name_rank = np.argsort(np.argsort(names.astype(str)))
        o = np.lexsort((name_rank[cols], -self.sims["rhythm"][pid], -score[pid], rows))
        rows, cols, pid, st = rows[o], cols[o], pid[o], st[o]
        starts = np.searchsorted(rows, rows, side="left")
        rank = np.arange(rows.size) - starts
        keep = rank < int(top_k)
        rows, cols, pid, st, rank = rows[keep], cols[keep], pid[keep], st[keep], rank[keep]
        df = pd.DataFrame({"file": names[rows], "neighbor_rank": rank + 1,
                           "neighbor_file": names[cols], "overall": score[pid]})
        for a in ASPECTS:
            df[a] = self.sims[a][pid]
        df["stretch_ratio_neighbor_over_file"] = st
        look = self.info.drop_duplicates("file").set_index("file")
        for col in ("bpm", "camelot"):
            if col in look.columns:
                df[f"file_{col}"] = df["file"].map(look[col]).to_numpy()
                df[f"neighbor_{col}"] = df["neighbor_file"].map(look[col]).to_numpy()
        return df.reset_index(drop=True)

    # ------------------------------------------------------------------ storage
    def save(self, path) -> Path:
        """Write the graph as a compressed npz (atomically)."""
        import io

        from .atomic import atomic_write_bytes

        buf = io.BytesIO()
        info = self.info.reindex(columns=["file", "bpm", "key", "camelot"])
        np.savez_compressed(
            buf, files=np.asarray(self.files, dtype=str), pa=self.pa, pb=self.pb,
            stretch=self.stretch, **{f"sim_{a}": self.sims[a] for a in ASPECTS},
            bpm=info["bpm"].to_numpy(dtype=np.float64),
            key=info["key"].fillna("").astype(str).to_numpy(dtype=str),
            camelot=info["camelot"].fillna("").astype(str).to_numpy(dtype=str),
            meta=np.asarray(json.dumps({"mode": self.mode, "version": ASPECT_VERSION,
                                        **self.meta})))
        return atomic_write_bytes(path, buf.getvalue())


def load_aspect_graph(path) -> AspectGraph:
    """Read :meth:`AspectGraph.save`'s file (a folder means ``<folder>/contact_aspects.npz``).

    Raises
    ------
    FileNotFoundError
        No such file (the message says how to make one).
    """
    p = Path(path)
    if p.is_dir():
        p = p / ASPECT_NPZ
    if not p.is_file():
        raise FileNotFoundError(f"aspect file not found: {p} (run `python -m engine contact-map` "
                                f"to make it)")
    z = np.load(p, allow_pickle=False)
    files = [str(f) for f in z["files"]]
    info = pd.DataFrame({"file": files, "bpm": z["bpm"],
                         "key": [k or None for k in z["key"].tolist()],
                         "camelot": [c or None for c in z["camelot"].tolist()]})
    meta = json.loads(str(z["meta"]))
    return AspectGraph(files, z["pa"], z["pb"], {a: z[f"sim_{a}"] for a in ASPECTS},
                       z["stretch"], info, meta.pop("mode", "exact"), meta)


def build_aspect_graph(lset: LoopSet, dtw, *, k_timbre: int = K_TIMBRE,
                       k_harmony: int = K_HARMONY, timbre: str = "descriptors",
                       progress=None) -> AspectGraph:
    """Aspect similarities for the contact map's pairs (plus kNN candidates in shortlist mode).

    Parameters
    ----------
    lset : LoopSet
        With descriptors (and embeddings when ``timbre="embedding"``).
    dtw : engine.contact.DTWResult
        The contact map's DTW over ``lset.files`` (same order).
    k_timbre, k_harmony : int
        Extra candidates per loop in shortlist mode.
    timbre : {"descriptors", "embedding"}
        What the timbre aspect compares (embedding: standardised mean embeddings).
    progress : callable, optional
    """
    from .dtw import dtw_pairs, pack_sequences

    progress = progress or _noop
    files = list(lset.files)
    if list(dtw.files) != files:
        raise ValueError("the DTW result and the loop set list different files")
    if lset.descriptors is None:
        raise ValueError("the loop set has no descriptors")
    n = len(files)
    if timbre == "embedding":
        if lset.embeddings is None:
            raise ValueError("timbre='embedding' needs a loop set with embeddings")
        E = lset.embeddings
        sd = E.std(axis=0)
        T = np.clip((E - E.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0), -Z_CLIP, Z_CLIP)
    else:
        T = timbre_vectors(lset.descriptors)
    H, has_pitch = harmony_vectors(lset.descriptors)
    pa, pb = np.asarray(dtw.pa, np.int64), np.asarray(dtw.pb, np.int64)
    dist, overlap, stretch = (np.asarray(dtw.distance, np.float64),
                              np.asarray(dtw.overlap, np.float64),
                              np.asarray(dtw.stretch, np.float64))
    if dtw.mode != "exact":
        extra = np.concatenate([knn_pairs(T, k_timbre), knn_pairs(H, k_harmony)])
        have = set(zip(pa.tolist(), pb.tolist()))
        extra = np.unique(extra, axis=0)
        extra = np.array([p for p in extra.tolist() if tuple(p) not in have],
                         dtype=np.int64).reshape(-1, 2)
        if extra.size:
            # canonical (content-hash) order, as pairwise_dtw, so equal-length
            # pairs do not depend on the file order
            canon = np.array(sorted(range(n), key=lambda k: (dtw.hashes[k], k)), np.int64)
            pos = np.empty(n, np.int64)
            pos[canon] = np.arange(n)
            ca, cb = pos[extra[:, 0]], pos[extra[:, 1]]
            swap = ca > cb
            cpairs = np.stack([np.where(swap, cb, ca), np.where(swap, ca, cb)], axis=1)
            packed = pack_sequences([lset.seqset.sequences[k] for k in canon],
                                    dtw.params.get("distance_metric", "cosine"))
            raw = dtw_pairs(packed, cpairs, band_rad=dtw.params.get("band_rad"),
                            progress=lambda d, t, m: progress(d, t, "DTW (aspect candidates)"))
            st = np.where(swap, 1.0 / raw.stretch_b_over_a, raw.stretch_b_over_a)
            pa = np.concatenate([pa, extra[:, 0]])
            pb = np.concatenate([pb, extra[:, 1]])
            dist = np.concatenate([dist, raw.distance])
            overlap = np.concatenate([overlap, raw.overlap])
            stretch = np.concatenate([stretch, st])
    rhythm = _scaled(dist) * overlap
    td = np.sqrt(((T[pa] - T[pb]) ** 2).sum(axis=1) / T.shape[1])
    timbre_sim = _scaled(td)
    hd = 1.0 - (H[pa] * H[pb]).sum(axis=1)
    both = has_pitch[pa] & has_pitch[pb]
    harmony = np.where(both, _scaled(np.where(both, hd, np.nan)), 0.5)
    info = lset.seqset.info_frame()[["file", "bpm", "key", "camelot"]].copy()
    bpm = info["bpm"].to_numpy(dtype=np.float64)
    tempo = tempo_similarity(bpm[pa], bpm[pb])
    sims = {"rhythm": rhythm, "timbre": timbre_sim, "harmony": harmony, "tempo": tempo}
    return AspectGraph(files, pa, pb, sims, stretch, info, dtw.mode,
                       {"timbre": timbre, "n_pairs": int(pa.size)})


def write_aspect_files(graph: AspectGraph, out_dir, *, weights=None, top_k: int = 10) -> dict:
    """``contact_aspect_neighbors.csv`` and ``contact_aspects.npz`` in ``out_dir``."""
    from .atomic import atomic_write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"aspect_neighbors_csv": str(out / ASPECT_NEIGHBORS_CSV),
             "aspects_npz": str(out / ASPECT_NPZ)}
    atomic_write_csv(graph.neighbors(weights, top_k), paths["aspect_neighbors_csv"])
    graph.save(paths["aspects_npz"])
    return paths


# --------------------------------------------------------------------------- queries

def aspect_query(graph, query: str, weights=None, top_k: int = 10) -> pd.DataFrame:
    """A loop's ``top_k`` neighbours by weighted aspects, with mixing hints.

    Parameters
    ----------
    graph : AspectGraph or path
        A graph, ``contact_aspects.npz`` or the contact-map folder holding it.
    query : str
        Full path, file name or a unique part of it (:func:`engine.neighbors.resolve_query`).
    weights : AspectWeights, dict or str, optional
        ``"rhythm=1,timbre=0.5"``; missing aspects weigh 0 when any is given;
        default: the measured :class:`AspectWeights`.
    top_k : int

    Returns
    -------
    DataFrame
        ``file, neighbor_rank, neighbor_file, overall, rhythm, timbre, harmony,
        tempo, stretch_ratio_neighbor_over_file`` then the hint columns of
        :func:`engine.neighbors.query_neighbors` (target BPM, pitch-fader
        moves, CDJ range, key relation). ``attrs["query"]``, ``attrs["weights"]``.
    """
    from .neighbors import QueryError, hint_columns, resolve_query

    if int(top_k) < 1:
        raise QueryError(f"top_k must be at least 1, got {top_k}")
    g = graph if isinstance(graph, AspectGraph) else load_aspect_graph(graph)
    w = AspectWeights.coerce(weights)
    target = resolve_query(query, g.files)
    rows = g.neighbors(w, int(top_k), query=target)
    look = g.info.drop_duplicates("file").set_index("file")

    def _v(f, col):
        v = look[col].get(f) if col in look.columns else None
        if v is None or (isinstance(v, float) and not math.isfinite(v)) or v == "":
            return None
        return v

    qb, qcam = _v(target, "bpm"), _v(target, "camelot")
    out = []
    for _, r in rows.iterrows():
        nf = r["neighbor_file"]
        out.append(hint_columns(qb, _v(nf, "bpm"), r["stretch_ratio_neighbor_over_file"],
                                _v(target, "key"), _v(nf, "key"), qcam, _v(nf, "camelot")))
    res = pd.concat([rows.drop(columns=[c for c in rows.columns if c.startswith(("file_",
                                                                                   "neighbor_b",
                                                                                   "neighbor_c"))]),
                     pd.DataFrame(out)], axis=1)
    res.attrs["query"] = target
    res.attrs["weights"] = w.as_dict()
    res.attrs["warnings"] = []
    return res


def run_aspects(folder_or_files, *, weights=None, top_k: int = 10, seq_params=None,
                dtw_params=None, cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True,
                n_jobs: int = 1, max_files: int = 0, progress=None) -> AspectGraph:
    """Files (or a folder) -> decoded once -> DTW -> :class:`AspectGraph` (no files written).

    The function the dashboard calls for neighbour queries with aspect
    sliders: build once, then call :meth:`AspectGraph.neighbors` or
    :func:`aspect_query` with new weights (milliseconds).
    """
    from .audio import find_audio_files
    from .contact import DTWParams, SequenceParams, pairwise_dtw

    if isinstance(folder_or_files, (str, Path)) and Path(folder_or_files).is_dir():
        files = find_audio_files(folder_or_files)
    else:
        files = [Path(f) for f in folder_or_files]
    if max_files and max_files > 0:
        files = files[: int(max_files)]
    progress = progress or _noop
    lset = analyse_loop_set(files, seq_params or SequenceParams(), cache_dir=cache_dir,
                            use_cache=use_cache, n_jobs=n_jobs, progress=progress)
    announce_dtw_compile(progress)
    dtw = pairwise_dtw(lset.seqset, dtw_params or DTWParams(), cache_dir=cache_dir,
                       use_cache=use_cache, progress=progress)
    return build_aspect_graph(lset, dtw, progress=progress)


def announce_dtw_compile(progress) -> None:
    """Tell ``progress`` when the DTW kernels are not loaded yet in this process.

    On a fresh install numba compiles them (about 10 s, once: the result is
    cached on disk, ``NUMBA_CACHE_DIR``); later runs load them in well under a second.
    """
    from .dtw import kernels_loaded

    if not kernels_loaded():
        progress(0, 1, "DTW: loading compiled kernels (a fresh install compiles them once, "
                       "about 10 s)")
