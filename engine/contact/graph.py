"""Similarity graph: sharpening, connectivity guard, Laplacian order, labels.

:func:`build_contact_map` is cheap (no DTW); see :mod:`engine.contact`
("Sharpening, ordering, labels") for the rules and the eigenvector sign convention.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import AnalysisError
from .common import row_ranks
from .contact_map import ContactMap, SharpenParams
from .pairwise import DTWResult

#: Exact-mode graphs up to this size use a dense eigensolver (eigh).
DENSE_EIG_MAX = 2000

#: Eigenvalues kept (the summary shows the first 10).
N_EIGENVALUES = 10


def _kth_positive(rows: np.ndarray, vals: np.ndarray, n: int, k: int, default: float) -> np.ndarray:
    """Per row, the k-th smallest positive finite value (the largest if fewer)."""
    ok = (vals > 0) & np.isfinite(vals)
    r, v = rows[ok], vals[ok]
    o = np.lexsort((v, r))
    r, v = r[o], v[o]
    counts = np.bincount(r, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full(n, float(default))
    has = counts > 0
    pos = starts[has] + np.minimum(k, counts[has]) - 1
    out[has] = v[pos]
    return out


def _sharpen(d: DTWResult, raw: np.ndarray, p: SharpenParams) -> np.ndarray:
    """Sharpened per-pair similarity (the diagonal is 1 implicitly)."""
    n, P = d.n, d.n_pairs
    mode = p.sharpen_mode
    if mode == "none":
        return raw.copy()
    if mode == "self_tuned_knn":
        k = int(max(1, p.self_tune_k))
        rows = np.concatenate([d.pa, d.pb])
        dist2 = np.concatenate([d.distance, d.distance])
        pos = d.distance[(d.distance > 0) & np.isfinite(d.distance)]
        sigma = _kth_positive(rows, dist2, n, k, float(np.median(pos)) if pos.size else 1.0)
        sigma = np.maximum(sigma, 1e-12)
        with np.errstate(over="ignore", invalid="ignore"):
            s = np.exp(-(d.distance ** 2) / (sigma[d.pa] * sigma[d.pb])) * d.overlap
        s = np.where(np.isfinite(s), s, 0.0)
        cols = np.concatenate([d.pb, d.pa])
        ranks = row_ranks(rows, cols, np.concatenate([s, s]), n)
        r_ab, r_ba = ranks[:P], ranks[P:]
        keep = (r_ab < k) & (r_ba < k) if p.mutual_knn else (r_ab < k) | (r_ba < k)
        return np.where(keep, s, 0.0)
    if mode == "sinkhorn":
        from scipy.sparse import coo_matrix, identity

        eps = float(p.sinkhorn_eps)
        v = np.maximum(raw, eps)
        A = coo_matrix((np.concatenate([v, v]), (np.concatenate([d.pa, d.pb]),
                                                  np.concatenate([d.pb, d.pa]))),
                       shape=(n, n)).tocsr() + identity(n, format="csr")
        r = np.ones(n)
        c = np.ones(n)
        for _ in range(int(max(0, p.sinkhorn_iters))):
            r = 1.0 / np.maximum(A @ c, 1e-300)
            c = 1.0 / np.maximum(A.T @ r, 1e-300)
        m_ab = r[d.pa] * v * c[d.pb]
        m_ba = r[d.pb] * v * c[d.pa]
        sym = 0.5 * (m_ab + m_ba)
        diag = np.maximum(r * c, 1.0)
        top = max(float(sym.max()) if sym.size else 0.0, float(diag.max()))
        return sym / top if top > 0 else sym
    raise ValueError(f"sharpen_mode must be none, self_tuned_knn or sinkhorn, got {mode!r}")


def _connect(d: DTWResult, raw: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Add minimum-spanning-tree edges (of the DTW distances) joining components.

    Returns (sim, components before, edges added).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    n = d.n
    on = sim > 0
    g = coo_matrix((np.ones(int(on.sum())), (d.pa[on], d.pb[on])), shape=(n, n))
    nc, lab = connected_components(g, directed=False)
    if nc <= 1:
        return sim, nc, 0
    w = np.where(np.isfinite(d.distance), np.maximum(d.distance, 1e-12), np.nan)
    ok = np.isfinite(w)
    T = minimum_spanning_tree(coo_matrix((w[ok], (d.pa[ok], d.pb[ok])), shape=(n, n)).tocsr())
    T = T.tocoo()
    a = np.minimum(T.row, T.col)
    b = np.maximum(T.row, T.col)
    cross = lab[a] != lab[b]
    key_pairs = d.pa.astype(np.int64) * n + d.pb
    o = np.argsort(key_pairs)
    want = a[cross].astype(np.int64) * n + b[cross]
    p_idx = o[np.searchsorted(key_pairs[o], want)]
    sim = sim.copy()
    sim[p_idx] = np.maximum(raw[p_idx], 1e-6)
    return sim, nc, int(p_idx.size)


def _fix_sign(v: np.ndarray) -> np.ndarray:
    """Make the entry of largest magnitude positive (ties: sign of the sum of cubes)."""
    if v.size == 0:
        return v
    a = np.abs(v)
    top = a.max()
    if top == 0:
        return v
    near = a >= top * (1 - 1e-9)
    s = np.sign(v[near]).sum()
    if s == 0:
        s = np.sign(np.sum(v ** 3))
    return -v if s < 0 else v


def _spectrum(d: DTWResult, sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest ``k`` eigenpairs of the normalised Laplacian (signs fixed)."""
    from scipy.sparse import coo_matrix, diags, identity

    n = d.n
    W = coo_matrix((np.concatenate([sim, sim]), (np.concatenate([d.pa, d.pb]),
                                                  np.concatenate([d.pb, d.pa]))),
                   shape=(n, n)).tocsr() + identity(n, format="csr")
    deg = np.maximum(np.asarray(W.sum(axis=1)).ravel(), 1e-8)
    Dm = diags(1.0 / np.sqrt(deg))
    N = (Dm @ W @ Dm).tocsr()
    k = int(min(k, n))
    if n <= DENSE_EIG_MAX:
        from scipy.linalg import eigh

        L = np.eye(n) - N.toarray()
        L = 0.5 * (L + L.T)
        vals, vecs = eigh(L, subset_by_index=[0, k - 1])
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(0).standard_normal(n)
        kk = min(k, n - 2)
        mu, vecs = eigsh(N, k=kk, which="LA", v0=v0, tol=1e-10, maxiter=max(1000, 20 * n))
        o = np.argsort(-mu)
        vals, vecs = 1.0 - mu[o], vecs[:, o]
    vecs = np.column_stack([_fix_sign(vecs[:, j]) for j in range(vecs.shape[1])])
    return np.asarray(vals, dtype=np.float64), vecs


def _rank_of(v: np.ndarray) -> np.ndarray:
    r = np.empty(v.size, np.int64)
    r[np.argsort(v, kind="stable")] = np.arange(v.size)
    return r


def quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Seed's Fiedler bins (interior quantile edges, right-side search), from ranks.

    For distinct values this equals ``searchsorted(quantile(v, i/n_bins),
    v, side="right")``; computing it from ranks in integers makes it immune
    to the last-bit noise of an eigensolver.
    """
    v = np.asarray(values)
    n = v.size
    r = _rank_of(v)
    nb = int(max(1, n_bins))
    edges = np.arange(1, nb)
    return (r[:, None] * nb >= edges[None, :] * (n - 1)).sum(axis=1).astype(np.int64)


def build_contact_map(dtw: DTWResult, params: SharpenParams = SharpenParams()) -> ContactMap:
    """Similarity, sharpening, connectivity guard, Laplacian order and labels.

    Cheap (no DTW): 200 loops take milliseconds, so interactive controls can
    call it on every change.
    """
    t0 = time.perf_counter()
    d = dtw
    n = d.n
    if n < 3:
        raise AnalysisError(f"need at least 3 loops for a contact map, got {n}")
    warnings = []
    pos = d.distance[(d.distance > 0) & np.isfinite(d.distance)]
    med = float(np.median(pos)) if pos.size else 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.exp(-d.distance / med) * d.overlap
    raw = np.where(np.isfinite(raw), raw, 0.0)
    sim = np.clip(_sharpen(d, raw, params), 0.0, None)
    sim, nc, added = _connect(d, raw, sim)
    if added:
        warnings.append(f"the sharpened graph had {nc} disconnected parts; {added} spanning-tree "
                        "edges were added back with their raw similarity")
    k = max(N_EIGENVALUES, int(params.n_eigen_tags) + 1, 2)
    vals, vecs = _spectrum(d, sim, k)
    fiedler = vecs[:, 1] if vecs.shape[1] > 1 else np.zeros(n)
    order = np.argsort(fiedler, kind="stable")
    bins = quantile_bins(fiedler, params.n_bins)
    tags = []
    n_tags = int(min(max(0, params.n_eigen_tags), n - 1, vecs.shape[1] - 1))
    pos_flags = [2 * _rank_of(vecs[:, j]) >= n - 1 for j in range(1, n_tags + 1)]
    for i in range(n):
        t = {f"cm_bin_{int(bins[i])}"}
        for j, flags in enumerate(pos_flags, start=1):
            t.add(f"lap_e{j}_{'pos' if flags[i] else 'neg'}")
        tags.append(",".join(sorted(t)))
    return ContactMap(files=list(d.files), dtw=d, params=params, sim_raw=raw, sim=sim,
                      median_distance=med, eigenvalues=vals[:N_EIGENVALUES], eigenvectors=vecs,
                      fiedler=fiedler, order=order, bins=bins, tags=tags, n_components=int(nc),
                      bridges_added=int(added), warnings=warnings,
                      seconds=time.perf_counter() - t0)
