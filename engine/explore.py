"""Library exploration for the dashboard's part-2 pages (no Streamlit here).

One expensive step, :func:`build_library`: decode each loop once (rhythm
sequence, BPM, key, descriptors; all cached per content hash), run the
contact map's DTW (cached on disk per library) and the neighbour aspects.
Everything after it is cheap and re-run for every control move:

* :func:`sharpen` -> :class:`engine.contact.ContactMap` from the cached
  distances (about 20 ms for 200 loops); :data:`COUNTERS` counts these and
  :data:`engine.contact.pairwise.DTW_COUNTERS` counts DTW runs, so a test can
  assert that a slider move re-sharpened without running DTW;
* :func:`heatmap_view` the similarity matrix in Fiedler order, block-averaged
  above ``max_cells`` loops so a 2,000-loop heatmap stays a few hundred cells;
* :func:`map_coords` a 2-D map of the loops (spectral embedding, see there);
* :func:`neighbors_of` the neighbour table with mixing hints for one loop;
* :func:`artifacts_zip` the contact map's artifacts as ZIP bytes.
"""
from __future__ import annotations

import io
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AnalysisError

#: Re-sharpenings done by :func:`sharpen` in this process, and the last one's seconds.
COUNTERS = {"sharpen": 0, "last_sharpen_seconds": 0.0, "builds": 0}

#: Above this many loops the heatmap is block-averaged (cells per side).
HEATMAP_MAX_CELLS = 200


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


@dataclass
class LoopLibrary:
    """A set of loops analysed for exploring: sequences, DTW, neighbour aspects.

    Attributes
    ----------
    files : list of str
        Usable loop files, in input order.
    info : DataFrame
        Per loop: ``file, bpm, key, camelot, duration`` (from the contact analysis).
    lset : engine.aspects.LoopSet
    dtw : engine.contact.DTWResult
    graph : engine.aspects.AspectGraph
    failures : list of (file, message)
    seconds : dict
        ``analysis``, ``dtw``, ``aspects`` seconds of this build.
    """

    files: list
    info: pd.DataFrame
    lset: object
    dtw: object
    graph: object
    failures: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.files)


def dtw_counters() -> dict:
    """DTW runs (``computed``) and disk-cache reads (``cached``) in this process."""
    from .contact.pairwise import DTW_COUNTERS

    return dict(DTW_COUNTERS)


def build_library(files, *, cache_dir, dtw_params=None, n_jobs: int = 1,
                  progress=None) -> LoopLibrary:
    """Analyse ``files`` once for the contact map, the neighbours and the map.

    Parameters
    ----------
    files : list of path
    cache_dir : path
        Engine disk cache (sequences, descriptors, DTW).
    dtw_params : engine.contact.DTWParams, optional
        Default: exact up to 500 loops, shortlist (scale mode) above.
    n_jobs : int
    progress : callable, optional
        ``progress(done, total, message)``.

    Raises
    ------
    AnalysisError
        Fewer than 3 usable loops (the message lists why files failed).
    """
    from .aspects import analyse_loop_set, announce_dtw_compile, build_aspect_graph
    from .contact import DTWParams, SequenceParams, pairwise_dtw

    progress = progress or _noop
    files = [str(f) for f in files]
    if len(files) < 3:
        raise AnalysisError(f"need at least 3 loops to compare, got {len(files)}")
    t = {}
    t0 = time.perf_counter()
    lset = analyse_loop_set(files, SequenceParams(), cache_dir=cache_dir, n_jobs=n_jobs,
                            progress=lambda d, n, m: progress(d, n, f"analysing loops: {m}"))
    t["analysis"] = time.perf_counter() - t0
    seqset = lset.seqset
    if len(seqset) < 3:
        why = "; ".join(f"{Path(f).name}: {m}" for f, m in seqset.failures[:5])
        raise AnalysisError(f"only {len(seqset)} of {len(files)} loops could be read ({why})")
    announce_dtw_compile(progress)
    t0 = time.perf_counter()
    dtw = pairwise_dtw(seqset, dtw_params or DTWParams(), cache_dir=cache_dir,
                       progress=lambda d, n, m: progress(d, n, f"comparing rhythms: {m}"))
    t["dtw"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = build_aspect_graph(lset, dtw, progress=progress)
    t["aspects"] = time.perf_counter() - t0
    info = seqset.info_frame()[["file", "bpm", "key", "camelot", "duration"]]
    COUNTERS["builds"] += 1
    return LoopLibrary(list(seqset.files), info.reset_index(drop=True), lset, dtw, graph,
                       list(seqset.failures), t)


def sharpen(lib: LoopLibrary, params=None):
    """The contact map of ``lib`` for these sharpening settings (no DTW; counted).

    Returns
    -------
    engine.contact.ContactMap
    """
    from .contact import SharpenParams, build_contact_map

    t0 = time.perf_counter()
    cmap = build_contact_map(lib.dtw, params or SharpenParams())
    COUNTERS["sharpen"] += 1
    COUNTERS["last_sharpen_seconds"] = time.perf_counter() - t0
    return cmap


@dataclass
class HeatmapView:
    """A square matrix ready to draw: values, the loop index per cell, binning."""

    values: np.ndarray
    members: list          # per cell: array of loop indices it averages (Fiedler order)
    binned: bool
    which: str


def heatmap_view(cmap, which: str = "similarity", max_cells: int = HEATMAP_MAX_CELLS
                 ) -> HeatmapView:
    """``cmap``'s matrix (``similarity`` or ``similarity_raw``) in Fiedler order.

    Above ``max_cells`` loops consecutive loops of the order are grouped into
    ``max_cells`` blocks and each cell is the block's mean similarity, so the
    view's size does not grow with the library. Built from the per-pair arrays
    (never an n x n matrix above ``max_cells``).
    """
    n = cmap.n
    order = np.asarray(cmap.order, np.int64)
    if n <= max_cells:
        M = cmap.matrix(which)[np.ix_(order, order)]
        return HeatmapView(M, [np.array([i]) for i in order], False, which)
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    edges = np.linspace(0, n, max_cells + 1).round().astype(np.int64)
    block_of_pos = np.searchsorted(edges, np.arange(n), side="right") - 1
    blk = block_of_pos[pos]                       # block of each loop
    sizes = np.bincount(blk, minlength=max_cells).astype(float)
    v = cmap.sim if which == "similarity" else cmap.sim_raw
    d = cmap.dtw
    S = np.zeros((max_cells, max_cells))
    np.add.at(S, (blk[d.pa], blk[d.pb]), v)
    np.add.at(S, (blk[d.pb], blk[d.pa]), v)
    S[np.diag_indices(max_cells)] += sizes        # the diagonal (1 per loop)
    S /= np.outer(sizes, sizes)
    members = [order[edges[b]:edges[b + 1]] for b in range(max_cells)]
    return HeatmapView(S, members, True, which)


def pair_similarity(cmap, i: int, j: int) -> dict:
    """Raw and sharpened similarity, distance and stretch of loops ``i`` and ``j``."""
    d = cmap.dtw
    a, b = (i, j) if i < j else (j, i)
    hit = np.flatnonzero((d.pa == a) & (d.pb == b))
    if i == j or not hit.size:
        return {"similarity": 1.0 if i == j else 0.0, "similarity_raw": 1.0 if i == j else 0.0,
                "distance": 0.0 if i == j else float("nan"), "stretch": 1.0}
    p = int(hit[0])
    st = float(d.stretch[p]) if i < j else 1.0 / float(d.stretch[p])
    return {"similarity": float(cmap.sim[p]), "similarity_raw": float(cmap.sim_raw[p]),
            "distance": float(d.distance[p]), "stretch": st}


def map_coords(cmap) -> pd.DataFrame:
    """A 2-D map of the loops: the contact graph's spectral embedding.

    x and y are the 2nd and 3rd eigenvectors of the sharpened graph's
    normalised Laplacian (x is the Fiedler vector, the heatmap's order), each
    divided by the square root of the loop's degree (the random-walk
    embedding, so hub loops do not sit far out). Loops close on the map have
    similar DTW rhythms, and the map agrees with the heatmap's blocks and the
    pseudo-labels because it comes from the same graph; it needs no extra
    fitting, is deterministic (eigenvector signs are fixed) and works in
    shortlist mode (sparse graph) as well.

    Returns
    -------
    DataFrame
        ``file, x, y, contact_bin, contact_tags, fiedler_value``.
    """
    d = cmap.dtw
    deg = np.ones(cmap.n)
    np.add.at(deg, d.pa, cmap.sim)
    np.add.at(deg, d.pb, cmap.sim)
    V = cmap.eigenvectors
    x = V[:, 1] if V.shape[1] > 1 else np.zeros(cmap.n)
    y = V[:, 2] if V.shape[1] > 2 else np.zeros(cmap.n)
    s = 1.0 / np.sqrt(np.maximum(deg, 1e-8))
    df = cmap.labels_frame()
    df.insert(1, "x", x * s)
    df.insert(2, "y", y * s)
    return df


def neighbors_of(lib: LoopLibrary, query: str, weights=None, top_k: int = 10) -> pd.DataFrame:
    """``query``'s neighbours by weighted aspects with tempo/pitch/key hints.

    See :func:`engine.aspects.aspect_query` for the columns.
    """
    from .aspects import aspect_query

    return aspect_query(lib.graph, query, weights, top_k)


def artifacts_zip(lib: LoopLibrary, cmap, *, top_k_neighbors: int = 10) -> bytes:
    """The contact map's artifacts (CSVs, heatmap PNGs, summary JSON) as ZIP bytes."""
    from .aspects import write_aspect_files
    from .contact import write_artifacts

    with tempfile.TemporaryDirectory(prefix="looplab_cm_zip_") as tmp:
        write_artifacts(cmap, tmp, seqset=lib.lset.seqset, top_k_neighbors=top_k_neighbors)
        write_aspect_files(lib.graph, tmp, top_k=top_k_neighbors)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(Path(tmp).iterdir()):
                if p.is_file():
                    zf.write(p, p.name)
        return buf.getvalue()


def demo_loops(folder, n: int = 12, *, seed: int = 0, bars: int = 2) -> list:
    """Write ``n`` generated drum loops (known patterns, 96-140 BPM) into ``folder``.

    Names say the pattern, tempo and role (e.g. ``breakbeat 120bpm drum loop 03.wav``),
    so filename labels work on them too. Existing files are reused.
    """
    from .synth import DRUM_PATTERNS, synth_loop

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pats = sorted(DRUM_PATTERNS)
    paths = []
    for i in range(int(n)):
        pat = pats[i % len(pats)]
        bpm = float(rng.choice([96, 100, 110, 120, 124, 128, 132, 140]))
        p = out / f"{pat.replace('_', ' ')} {bpm:.0f}bpm drum loop {i + 1:02d}.wav"
        if not p.is_file():
            tr = synth_loop(pat, bpm, bars=bars, sr=22050, seed=seed * 1000 + i)
            tr.write(p, subtype="PCM_16")
        paths.append(p)
    return paths
