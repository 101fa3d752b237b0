"""The contact map's settings and result: :class:`SharpenParams`, :class:`ContactMap`.

:class:`ContactMap` also turns itself into the seed's tables (dense matrices,
labels, Fiedler order, nearest neighbours, top pairs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..config import setting
from .pairwise import DTWResult


@dataclass(frozen=True)
class SharpenParams:
    """Sharpening and labelling settings (cheap to change: no DTW rerun).

    Attributes
    ----------
    sharpen_mode : {"none", "self_tuned_knn", "sinkhorn"}
    self_tune_k : int
        k for the self-tuned scale and the kNN graph.
    mutual_knn : bool
        Keep an edge only if each end is in the other's top k (else: either).
    sinkhorn_iters : int
    sinkhorn_eps : float
    n_bins : int
        Fiedler quantile bins (``cm_bin_k``).
    n_eigen_tags : int
        Eigenvectors 1..n turned into ``lap_e{j}_pos|neg`` tags.
    """

    sharpen_mode: str = setting("self_tuned_knn", "how the similarity graph is sharpened",
                                choices=("none", "self_tuned_knn", "sinkhorn"))
    self_tune_k: int = setting(7, "neighbour whose distance sets each loop's scale")
    mutual_knn: bool = setting(
        True, "keep kNN edges found from either end (union) instead of both (mutual)",
        flag="--disable_mutual_knn", negate=True)
    sinkhorn_iters: int = setting(25, "Sinkhorn normalisation iterations")
    sinkhorn_eps: float = setting(1e-8, "Sinkhorn floor")
    n_bins: int = setting(4, "Fiedler quantile bins (cm_bin_k)")
    n_eigen_tags: int = setting(3, "eigenvectors turned into tags")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ContactMap:
    """Similarity graph, spectral order and pseudo-labels of a set of loops.

    Per-pair arrays follow ``dtw.pa``/``dtw.pb`` (pa < pb): ``sim_raw`` and
    ``sim`` (sharpened; 0 where the edge was cut). Dense matrices come from
    :meth:`matrix`.

    Attributes
    ----------
    files : list of str
    dtw : DTWResult
    params : SharpenParams
    sim_raw, sim : ndarray, per pair
    eigenvalues : ndarray
        Smallest normalised-Laplacian eigenvalues (ascending, up to 10).
    eigenvectors : ndarray, shape (n, K)
        Their eigenvectors, each with its sign fixed.
    fiedler : ndarray (n,)
    order : ndarray (n,)
        File indices sorted by Fiedler value.
    bins : ndarray (n,) of int
    tags : list of str
        Comma-joined tags per file.
    n_components : int
        Connected components of the sharpened graph before bridging.
    bridges_added : int
        Spanning-tree edges added to connect it.
    warnings : list of str
    seconds : float
        Time taken by :func:`build_contact_map`.
    """

    files: list
    dtw: DTWResult
    params: SharpenParams
    sim_raw: np.ndarray
    sim: np.ndarray
    median_distance: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    fiedler: np.ndarray
    order: np.ndarray
    bins: np.ndarray
    tags: list
    n_components: int = 1
    bridges_added: int = 0
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.files)

    # ------------------------------------------------------------------ tables
    def matrix(self, name: str = "similarity") -> np.ndarray:
        """Dense n x n matrix: "similarity", "similarity_raw", "distance",
        "stretch" (j over i at [i, j]) or "overlap"."""
        n = self.n
        d = self.dtw
        if name in ("similarity", "similarity_raw"):
            M = np.zeros((n, n))
            v = self.sim if name == "similarity" else self.sim_raw
            M[d.pa, d.pb] = v
            M[d.pb, d.pa] = v
            np.fill_diagonal(M, 1.0)
            return M
        D, O, S = d.dense()
        return {"distance": D, "overlap": O, "stretch": S}[name]

    def labels_frame(self) -> pd.DataFrame:
        """``file, contact_bin, contact_tags, fiedler_value`` (seed's labels CSV)."""
        return pd.DataFrame({"file": self.files, "contact_bin": self.bins.astype(int),
                             "contact_tags": self.tags, "fiedler_value": self.fiedler})

    def order_frame(self) -> pd.DataFrame:
        """``rank, file, index``: files in Fiedler order."""
        return pd.DataFrame({"rank": np.arange(self.n), "file": [self.files[i] for i in self.order],
                             "index": self.order.astype(int)})

    def _directed(self):
        d = self.dtw
        rows = np.concatenate([d.pa, d.pb])
        cols = np.concatenate([d.pb, d.pa])
        pid = np.concatenate([np.arange(d.n_pairs), np.arange(d.n_pairs)])
        stretch = np.concatenate([d.stretch, 1.0 / d.stretch])   # col over row
        return rows, cols, pid, stretch

    def nearest_neighbors(self, top_k: int = 10, info: pd.DataFrame | None = None) -> pd.DataFrame:
        """Each file's ``top_k`` neighbours by sharpened similarity.

        Ties (e.g. edges cut by the kNN sharpening, all 0) are broken by the
        raw similarity, then by file index. Columns: the seed's ``file,
        neighbor_rank, neighbor_file, similarity, distance,
        stretch_ratio_neighbor_over_file``, then ``similarity_raw, overlap``
        and, when ``info`` (a loop-info table) is given, ``file_bpm,
        neighbor_bpm, file_key, neighbor_key, file_camelot, neighbor_camelot``.
        """
        rows, cols, pid, stretch = self._directed()
        sim = self.sim[pid]
        raw = self.sim_raw[pid]
        o = np.lexsort((cols, -raw, -sim, rows))
        rows, cols, pid, stretch = rows[o], cols[o], pid[o], stretch[o]
        starts = np.searchsorted(rows, np.arange(self.n))
        rank = np.arange(rows.size) - starts[rows]
        keep = rank < int(top_k)
        rows, cols, pid = rows[keep], cols[keep], pid[keep]
        stretch, rank = stretch[keep], rank[keep]
        files = np.asarray(self.files, dtype=object)
        df = pd.DataFrame({
            "file": files[rows], "neighbor_rank": rank + 1, "neighbor_file": files[cols],
            "similarity": self.sim[pid], "distance": self.dtw.distance[pid],
            "stretch_ratio_neighbor_over_file": stretch,
            "similarity_raw": self.sim_raw[pid], "overlap": self.dtw.overlap[pid]})
        if info is not None and len(info):
            look = info.drop_duplicates("file").set_index("file")
            for col, src in (("bpm", "bpm"), ("key", "key"), ("camelot", "camelot")):
                if src in look.columns:
                    m = look[src]
                    df[f"file_{col}"] = df["file"].map(m).to_numpy()
                    df[f"neighbor_{col}"] = df["neighbor_file"].map(m).to_numpy()
            df = df[[c for c in ["file", "neighbor_rank", "neighbor_file", "similarity", "distance",
                                 "stretch_ratio_neighbor_over_file", "similarity_raw", "overlap",
                                 "file_bpm", "neighbor_bpm", "file_key", "neighbor_key",
                                 "file_camelot", "neighbor_camelot"] if c in df.columns]]
        return df.reset_index(drop=True)

    def top_pairs(self, limit: int = 500) -> pd.DataFrame:
        """The ``limit`` most similar pairs (partial sort; ties by raw similarity).

        Columns: ``file_i, file_j, similarity, distance, stretch_ratio_j_over_i``
        then ``similarity_raw, overlap``.
        """
        P = self.dtw.n_pairs
        limit = int(max(0, min(limit, P)))
        if limit == 0:
            idx = np.zeros(0, np.int64)
        else:
            score = self.sim + 1e-9 * self.sim_raw            # ties broken by raw
            idx = np.argpartition(-score, limit - 1)[:limit] if limit < P else np.arange(P)
            idx = idx[np.lexsort((idx, -self.sim_raw[idx], -self.sim[idx]))]
        files = np.asarray(self.files, dtype=object)
        d = self.dtw
        return pd.DataFrame({"file_i": files[d.pa[idx]], "file_j": files[d.pb[idx]],
                             "similarity": self.sim[idx], "distance": d.distance[idx],
                             "stretch_ratio_j_over_i": d.stretch[idx],
                             "similarity_raw": self.sim_raw[idx], "overlap": d.overlap[idx]})
