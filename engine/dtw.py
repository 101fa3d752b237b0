"""Compiled subsequence DTW for all pairs of rhythm sequences.

The recursion is librosa's (``librosa.sequence.dtw(subseq=True)`` with the
default steps ``(1,1), (0,1), (1,0)``, unit weights and the same tie order:
diagonal, then horizontal, then vertical, first strict minimum wins):

* the shorter sequence is the query (rows), the longer the reference; equal
  lengths keep the first sequence as the query, exactly as librosa does;
* row 0 is free: ``D[0, j] = C[0, j]`` (the match may start anywhere);
* ``D[i, j] = C[i, j] + min(D[i-1, j-1], D[i, j-1], D[i-1, j])``;
* the path ends at ``argmin_j D[N-1, j]`` (first minimum) and is traced back
  to row 0.

The kernel (:func:`_subseq`) computes the local costs four rows at a time
(vectorised), then fills those four rows of D on a skewed wavefront: at step
t, row k does column t - k, so the four add/min chains are independent and
the CPU overlaps them instead of waiting on one long chain per row. The loop
is branch-free and stores only D; the path is then traced back from its end,
re-deciding each step from D and the local cost with librosa's rule (the
same floating-point operations, hence the same decisions, ties included).
The result is the cost at the path's TRUE end, ``D[N-1, end]`` (the seed
read the path's first cell instead, a bug not kept), the path
length in points (``len(wp)`` in librosa) and both ends of the path. About
1.3 ns of CPU per cell (1.6 ns storing step codes, 13 ns with a branchy
single-row loop, measured on the 2-core development machine).

The optional Sakoe-Chiba band reproduces ``global_constraints=True,
band_rad=r`` of librosa: with the query on the rows (``N <= M``), a cell is
allowed when ``-R < j - i < R + (M - N)`` with ``R = round(r * N)``.

Pairs run in parallel with ``numba.prange`` over chunks that each own their
buffers (the kernel releases the GIL); compiled code is cached on disk
(``cache=True``; ``NUMBA_CACHE_DIR`` decides where).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

#: Frame metrics understood by the kernel.
METRICS = {"cosine": 0, "euclidean": 1}


@dataclass(frozen=True)
class PairDTW:
    """Subsequence DTW of one pair ``(a, b)`` (indices in a's and b's frames).

    Attributes
    ----------
    cost : float
        Accumulated cost at the path's end.
    path_len : int
        Number of points on the warping path.
    a_start, a_end, b_start, b_end : int
        First and last frame of each sequence on the path (inclusive).
    a_is_query : bool
        True when ``a`` was the query (it is the shorter one, or equal).
    """

    cost: float
    path_len: int
    a_start: int
    a_end: int
    b_start: int
    b_end: int
    a_is_query: bool

    @property
    def distance(self) -> float:
        """Cost per path point."""
        return self.cost / max(self.path_len, 1)

    @property
    def stretch_b_over_a(self) -> float:
        """(span of the path along b + 1) / (span along a + 1), as the seed."""
        return (self.b_end - self.b_start + 1) / (self.a_end - self.a_start + 1)


def prepare_frames(seq: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Frames of ``seq`` (shape (T, C)) as the kernel wants them: (C, T) float64.

    For ``cosine`` each frame is divided by its norm so the local cost is
    ``1 - dot``; an all-zero frame stays zero (cost 1 against anything: scipy
    would give NaN there and librosa would refuse the pair).
    """
    x = np.asarray(seq, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"sequence must be 2-D (frames, channels), got shape {x.shape}")
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; choose from {sorted(METRICS)}")
    if metric == "cosine":
        n = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
        x = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    return np.ascontiguousarray(x.T)


#: Rows computed together by the kernel (a skewed strip: see :func:`_subseq`).
STRIP = 4
#: Padding columns on each side of the kernel's row buffers.
PAD = 4


@njit(cache=True, nogil=True)
def _cost_row(F, qi, r0, m, metric, out):
    """Local costs of frame ``F[:, qi]`` against ``F[:, r0:r0+m]`` into ``out[PAD:PAD+m]``."""
    nch = F.shape[0]
    if nch == 4:                      # the rhythm sequences: unrolled, vectorised
        a0 = F[0, qi]
        a1 = F[1, qi]
        a2 = F[2, qi]
        a3 = F[3, qi]
        R0 = F[0, r0:r0 + m]
        R1 = F[1, r0:r0 + m]
        R2 = F[2, r0:r0 + m]
        R3 = F[3, r0:r0 + m]
        if metric == 0:
            for j in range(m):
                out[PAD + j] = 1.0 - (a0 * R0[j] + a1 * R1[j] + a2 * R2[j] + a3 * R3[j])
        else:
            for j in range(m):
                d0 = a0 - R0[j]
                d1 = a1 - R1[j]
                d2 = a2 - R2[j]
                d3 = a3 - R3[j]
                out[PAD + j] = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3)
        return
    for j in range(m):
        out[PAD + j] = 0.0
    for c in range(nch):
        a = F[c, qi]
        R = F[c, r0:r0 + m]
        if metric == 0:
            for j in range(m):
                out[PAD + j] += a * R[j]
        else:
            for j in range(m):
                d = a - R[j]
                out[PAD + j] += d * d
    for j in range(m):
        if metric == 0:
            out[PAD + j] = 1.0 - out[PAD + j]
        else:
            out[PAD + j] = np.sqrt(out[PAD + j])


@njit(cache=True, nogil=True)
def _band_row(out, i, m, offset, band_r):
    """Set costs outside the band ``-R < j - i < R + offset`` to inf (librosa's rule)."""
    if band_r < 0:
        return
    lo = i - band_r + 1
    hi = i + band_r + offset - 1          # inclusive
    for j in range(0, min(max(lo, 0), m)):
        out[PAD + j] = np.inf
    for j in range(max(hi + 1, 0), m):
        out[PAD + j] = np.inf


@njit(cache=True, nogil=True)
def _cost_at(F, qi, rj, metric):
    """One local cost, computed exactly as :func:`_cost_row` does (same order)."""
    nch = F.shape[0]
    if nch == 4:
        if metric == 0:
            return 1.0 - (F[0, qi] * F[0, rj] + F[1, qi] * F[1, rj] + F[2, qi] * F[2, rj]
                          + F[3, qi] * F[3, rj])
        d0 = F[0, qi] - F[0, rj]
        d1 = F[1, qi] - F[1, rj]
        d2 = F[2, qi] - F[2, rj]
        d3 = F[3, qi] - F[3, rj]
        return np.sqrt(d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3)
    acc = 0.0
    for c in range(nch):
        if metric == 0:
            acc += F[c, qi] * F[c, rj]
        else:
            d = F[c, qi] - F[c, rj]
            acc += d * d
    if metric == 0:
        return 1.0 - acc
    return np.sqrt(acc)


@njit(cache=True, nogil=True)
def _subseq(F, q0, n, r0, m, metric, band_r, C, D):
    """Subsequence DTW of query ``F[:, q0:q0+n]`` against ``F[:, r0:r0+m]`` (n <= m).

    Buffers (padded by ``PAD`` columns each side): ``C`` (STRIP, m+2PAD) cost
    rows and ``D`` (n+STRIP, m+2PAD) accumulated cost. ``band_r`` < 0 means
    no band.

    Rows are computed ``STRIP`` at a time on a skewed wavefront: at step t,
    row k of the strip does column t-k, which needs only values from steps
    t-1 and t-2, so the four recurrences are independent and the CPU overlaps
    them (a single row is one long chain of add -> min latencies). The loop
    is branch-free and stores only D; the path is then traced back from its
    end by re-deciding each step from D and the local cost with librosa's
    rule (same floating-point operations, so the same decisions).

    Returns (total cost, path length, start column, end column).
    """
    inf = np.inf
    W = m + 2 * PAD
    offset = m - n
    for k in range(STRIP):
        for x in range(W):
            C[k, x] = inf
    for i in range(n + STRIP):
        D[i, PAD - 1] = inf
    # row 0: free start
    _cost_row(F, q0, r0, m, metric, C[0])
    _band_row(C[0], 0, m, offset, band_r)
    for x in range(W):
        D[0, x] = C[0, x]
    i0 = 1
    while i0 < n:
        for k in range(STRIP):
            if i0 + k < n:
                _cost_row(F, q0 + i0 + k, r0, m, metric, C[k])
                _band_row(C[k], i0 + k, m, offset, band_r)
            else:
                for x in range(W):
                    C[k, x] = inf
        l0 = inf
        l1 = inf
        l2 = inf
        l3 = inf
        p0 = inf
        p1 = inf
        p2 = inf
        c0r = C[0]
        c1r = C[1]
        c2r = C[2]
        c3r = C[3]
        prev = D[i0 - 1]
        d0r = D[i0]
        d1r = D[i0 + 1]
        d2r = D[i0 + 2]
        d3r = D[i0 + 3]
        for t in range(m + STRIP - 1):
            x = PAD + t
            # row 0 of the strip, column t (reads the previous strip's last row)
            c = c0r[x]
            n0 = min(min(prev[x - 1] + c, l0 + c), prev[x] + c)
            # row 1, column t-1
            c = c1r[x - 1]
            n1 = min(min(p0 + c, l1 + c), l0 + c)
            # row 2, column t-2
            c = c2r[x - 2]
            n2 = min(min(p1 + c, l2 + c), l1 + c)
            # row 3, column t-3
            c = c3r[x - 3]
            n3 = min(min(p2 + c, l3 + c), l2 + c)
            d0r[x] = n0
            d1r[x - 1] = n1
            d2r[x - 2] = n2
            d3r[x - 3] = n3
            p0 = l0
            p1 = l1
            p2 = l2
            l0 = n0
            l1 = n1
            l2 = n2
            l3 = n3
        i0 += STRIP
    # end of the path: first minimum of the last row
    last = D[n - 1]
    end = 0
    best = last[PAD]
    for j in range(1, m):
        v = last[PAD + j]
        if v < best:
            best = v
            end = j
    # trace back to row 0 with librosa's step order (diagonal, horizontal, vertical)
    i = n - 1
    j = end
    plen = 1
    while i > 0:
        c = _cost_at(F, q0 + i, r0 + j, metric)
        x = PAD + j
        dg = D[i - 1, x - 1] + c
        hz = D[i, x - 1] + c
        vt = D[i - 1, x] + c
        step = 0
        b = dg
        if hz < b:
            step = 1
            b = hz
        if vt < b:
            step = 2
        if step == 0:
            i -= 1
            j -= 1
        elif step == 1:
            j -= 1
        else:
            i -= 1
        plen += 1
    return best, plen, j, end


@njit(cache=True, nogil=True, parallel=True)
def _pairs_kernel(F, offsets, lengths, pa, pb, metric, band_rad, n_chunks, out_cost, out_len,
                  out_start, out_end, out_aq):
    """All pairs, ``n_chunks`` parallel chunks; chunk c does pairs c, c+n_chunks, ...

    Each chunk allocates its buffers once (sized for the longest sequence),
    so no pair pays for a fresh allocation and page faults.
    """
    P = pa.shape[0]
    maxlen = 1
    for k in range(lengths.shape[0]):
        if lengths[k] > maxlen:
            maxlen = lengths[k]
    Wmax = maxlen + 2 * PAD
    for ch in prange(n_chunks):
        C = np.empty((STRIP, Wmax))
        D = np.empty((maxlen + STRIP, Wmax))
        for p in range(ch, P, n_chunks):
            a = pa[p]
            b = pb[p]
            la = lengths[a]
            lb = lengths[b]
            if la <= lb:
                q0 = offsets[a]
                n = la
                r0 = offsets[b]
                m = lb
                aq = True
            else:
                q0 = offsets[b]
                n = lb
                r0 = offsets[a]
                m = la
                aq = False
            band_r = -1
            if band_rad >= 0:
                band_r = int(np.round(band_rad * n))
                if band_r < 1 and m == n:     # librosa would find no path at all
                    band_r = 1
            tot, plen, st, en = _subseq(F, q0, n, r0, m, metric, band_r, C, D)
            out_cost[p] = tot
            out_len[p] = plen
            out_start[p] = st
            out_end[p] = en
            out_aq[p] = aq


@dataclass(frozen=True)
class PackedSequences:
    """Sequences concatenated for the kernel: frames (C, total), offsets, lengths."""

    frames: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    metric: str

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])


def pack_sequences(seqs, metric: str = "cosine") -> PackedSequences:
    """Concatenate sequences (each (T_k, C), same C) for :func:`dtw_pairs`."""
    seqs = list(seqs)
    if not seqs:
        raise ValueError("no sequences to pack")
    prepared = [prepare_frames(s, metric) for s in seqs]
    nch = {p.shape[0] for p in prepared}
    if len(nch) != 1:
        raise ValueError(f"sequences have different channel counts: {sorted(nch)}")
    lengths = np.array([p.shape[1] for p in prepared], dtype=np.int64)
    if np.any(lengths < 1):
        raise ValueError("empty sequence")
    offsets = np.zeros_like(lengths)
    offsets[1:] = np.cumsum(lengths)[:-1]
    frames = np.ascontiguousarray(np.concatenate(prepared, axis=1))
    return PackedSequences(frames, offsets, lengths, metric)


@dataclass(frozen=True)
class PairsResult:
    """Raw kernel output for P pairs ``(pa[p], pb[p])``.

    ``start``/``end`` are the reference's first and last frame on the path;
    the query always spans its whole length. ``a_is_query`` says which one
    was the query.
    """

    pa: np.ndarray
    pb: np.ndarray
    cost: np.ndarray
    path_len: np.ndarray
    start: np.ndarray
    end: np.ndarray
    a_is_query: np.ndarray
    lengths: np.ndarray

    @property
    def distance(self) -> np.ndarray:
        """Accumulated cost / path length."""
        return self.cost / np.maximum(self.path_len, 1)

    @property
    def overlap(self) -> np.ndarray:
        """min(1, path_len / max(T_a, T_b)), as the seed."""
        la = self.lengths[self.pa]
        lb = self.lengths[self.pb]
        return np.minimum(1.0, self.path_len / np.maximum(np.maximum(la, lb), 1))

    @property
    def stretch_b_over_a(self) -> np.ndarray:
        """(span along b + 1) / (span along a + 1)."""
        ref_span = (self.end - self.start + 1).astype(np.float64)
        la = self.lengths[self.pa].astype(np.float64)
        lb = self.lengths[self.pb].astype(np.float64)
        return np.where(self.a_is_query, ref_span / la, lb / ref_span)

    def pair(self, p: int) -> PairDTW:
        """One pair as a :class:`PairDTW` (path ends in a's and b's frames)."""
        la = int(self.lengths[self.pa[p]])
        lb = int(self.lengths[self.pb[p]])
        s, e = int(self.start[p]), int(self.end[p])
        if self.a_is_query[p]:
            return PairDTW(float(self.cost[p]), int(self.path_len[p]), 0, la - 1, s, e, True)
        return PairDTW(float(self.cost[p]), int(self.path_len[p]), s, e, 0, lb - 1, False)


def dtw_pairs(packed: PackedSequences, pairs, *, band_rad: float | None = None,
              batch: int = 4096, progress=None) -> PairsResult:
    """Subsequence DTW for each ``(a, b)`` in ``pairs`` (indices into ``packed``).

    Parameters
    ----------
    packed : PackedSequences
        From :func:`pack_sequences` (its metric is used).
    pairs : array-like, shape (P, 2)
    band_rad : float, optional
        Sakoe-Chiba band radius as a fraction of the query length (librosa's
        ``band_rad``); None for no band.
    batch : int
        Pairs per compiled call (progress is reported between batches).
    progress : callable, optional
        ``progress(done, total, message)``.

    Returns
    -------
    PairsResult
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    P = pairs.shape[0]
    if P and (pairs.min() < 0 or pairs.max() >= packed.n):
        raise ValueError("pair index out of range")
    pa = np.ascontiguousarray(pairs[:, 0])
    pb = np.ascontiguousarray(pairs[:, 1])
    cost = np.empty(P)
    plen = np.empty(P, np.int32)
    start = np.empty(P, np.int32)
    end = np.empty(P, np.int32)
    aq = np.empty(P, np.bool_)
    br = -1.0 if band_rad is None else float(band_rad)
    metric = METRICS[packed.metric]
    for s in range(0, P, max(int(batch), 1)):
        e = min(P, s + max(int(batch), 1))
        n_chunks = max(1, min(e - s, 8 * numba.get_num_threads()))
        _pairs_kernel(packed.frames, packed.offsets, packed.lengths, pa[s:e], pb[s:e], metric,
                      br, n_chunks, cost[s:e], plen[s:e], start[s:e], end[s:e], aq[s:e])
        if progress is not None:
            progress(e, P, "DTW")
    return PairsResult(pa, pb, cost, plen, start, end, aq, packed.lengths)


def subseq_dtw(a, b, metric: str = "cosine", band_rad: float | None = None) -> PairDTW:
    """Subsequence DTW of one pair of sequences (each (T, C)); see the module doc."""
    packed = pack_sequences([a, b], metric)
    return dtw_pairs(packed, [(0, 1)], band_rad=band_rad).pair(0)


def all_pairs(n: int) -> np.ndarray:
    """Every ``(i, j)`` with ``i < j < n``, shape (n(n-1)/2, 2)."""
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1).astype(np.int64)
