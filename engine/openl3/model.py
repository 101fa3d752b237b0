"""OpenL3 network in NumPy: BN folding, im2col convolutions, pooling; :func:`load_model`."""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .frontend import check_options, frame_audio, spectrogram
from .weights import BN_EPS, OpenL3Weights, load_weights

#: Final max-pool size per input representation and embedding size.
POOL_SIZES = {
    "linear": {6144: (8, 8), 512: (32, 24)},
    "mel128": {6144: (4, 8), 512: (16, 24)},
    "mel256": {6144: (8, 8), 512: (32, 24)},
}



# --------------------------------------------------------------------------- network

class _Workspace:
    """Reusable flat buffers so big im2col arrays are not re-faulted every batch."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape) -> np.ndarray:
        n = int(np.prod(shape))
        buf = self.bufs.get(name)
        if buf is None or buf.size < n:
            buf = np.empty(n, self.dtype)
            self.bufs[name] = buf
        return buf[:n].reshape(shape)

    def clear(self):
        self.bufs.clear()


def _conv3x3(x: np.ndarray, w3: np.ndarray, b: np.ndarray, ws: _Workspace,
             max_cols_bytes: int, relu: bool, out_name: str = "out") -> np.ndarray:
    """3x3 'same' cross-correlation (+ bias, optional ReLU) via row-im2col + GEMM.

    ``x`` is (B, H, W, C); ``w3`` the kernel as (3, 3*C, O), i.e. one
    ``(dx, c) x out`` matrix per kernel row ``dy``.

    The three horizontal neighbours of every pixel are copied side by side
    into a buffer of shape (n, H + 2, W, 3*C) whose first and last rows are
    zero (the vertical 'same' padding). Flattened to ``((H + 2) * W, 3*C)``,
    the input rows for kernel row ``dy`` are then the contiguous slice
    starting at ``dy * W``, so each output is three accumulating GEMMs with
    ``K = 3*C`` (BLAS ``beta = 1``, no temporary) on a buffer 3x (not 9x)
    the input size. As many windows are processed at once as fit in
    ``max_cols_bytes``. The result is a view into workspace buffer
    ``out_name`` (it must not be ``x``'s buffer).
    """
    B, H, W, C = x.shape
    O = w3.shape[2]
    gemm = _gemm_for(x.dtype)
    out = ws.get(out_name, (B, H + 2, W, O))
    per = (H + 2) * W * 3 * C * x.itemsize
    step = max(1, min(B, int(max_cols_bytes // max(per, 1))))
    for s in range(0, B, step):
        e = min(B, s + step)
        n = e - s
        cols = ws.get("cols", (n, H + 2, W, 3, C))
        xs = x[s:e]
        cols[:, 0] = 0
        cols[:, H + 1] = 0
        cols[:, 1:H + 1, :, 1] = xs
        cols[:, 1:H + 1, 1:, 0] = xs[:, :, :W - 1]
        cols[:, 1:H + 1, 0, 0] = 0
        cols[:, 1:H + 1, :W - 1, 2] = xs[:, :, 1:]
        cols[:, 1:H + 1, W - 1, 2] = 0
        flat = cols.reshape(n * (H + 2) * W, 3 * C)
        L = n * (H + 2) * W - 2 * W          # rows whose 3 kernel rows stay in the buffer
        o2 = out[s:e].reshape(n * (H + 2) * W, O)
        o2[:L] = b
        for dy in range(3):
            # C-ordered (M, K) @ (K, O) == Fortran-ordered (O, K) @ (K, M): no copies.
            gemm(1.0, w3[dy].T, flat[dy * W:dy * W + L].T, beta=1.0, c=o2[:L].T,
                 overwrite_c=1)
    res = out[:, :H]                          # row i of window b sits at flat b*(H+2)*W + i*W
    if relu:
        np.maximum(res, 0, out=res)
    return res


def _gemm_for(dtype):
    from scipy.linalg import blas

    return blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm


def _maxpool(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Max-pool with stride = size, 'valid' (floor); x is (B, H, W, C)."""
    B, H, W, C = x.shape
    h, w = H // ph, W // pw
    if (ph, pw) == (2, 2):                    # strided maxima: no reshape copy of a big map
        rows = np.maximum(x[:, 0:2 * h:2], x[:, 1:2 * h:2])
        return np.maximum(rows[:, :, 0:2 * w:2], rows[:, :, 1:2 * w:2])
    v = x[:, :h * ph, :w * pw].reshape(B, h, ph, w, pw, C)
    return v.max(axis=(2, 4))


class OpenL3Model:
    """An OpenL3 audio network ready for inference.

    Parameters
    ----------
    weights : OpenL3Weights or path
    input_repr : {"linear", "mel128", "mel256"}
    embedding_size : {512, 6144}
    dtype : numpy dtype
        Compute type of the network (float32 default; float64 for checks).
        The frontend is always float64.
    batch_size : int
        Windows per forward batch (memory grows linearly with it).
    max_cols_mb : float
        Bound on the im2col buffer; early layers then run a few windows at a
        time, late layers the whole batch.
    """

    def __init__(self, weights, input_repr: str = "mel128", embedding_size: int = 512,
                 dtype=np.float32, batch_size: int = 8, max_cols_mb: float = 96.0):
        check_options(input_repr, None, embedding_size)
        if not isinstance(weights, OpenL3Weights):
            weights = load_weights(weights)
        self.weights = weights
        self.input_repr = input_repr
        self.embedding_size = int(embedding_size)
        self.dtype = np.dtype(dtype)
        self.batch_size = max(1, int(batch_size))
        self.max_cols_bytes = int(max_cols_mb * 2 ** 20)
        self.pool_size = POOL_SIZES[input_repr][self.embedding_size]
        self._ws = _Workspace(self.dtype)
        self._lock = threading.RLock()        # the workspace is shared: one pass at a time
        L = weights.layers
        bn0 = L[0]
        s0 = bn0["gamma"].astype(np.float64) / np.sqrt(bn0["moving_variance"].astype(np.float64)
                                                       + BN_EPS)
        self._in_scale = float(s0[0])
        self._in_shift = float(bn0["beta"][0] - bn0["moving_mean"][0] * s0[0])
        convs = []
        for ci in range(8):
            conv = L[1 + 2 * ci]
            k = conv["kernel"].astype(np.float64)
            b = conv["bias"].astype(np.float64)
            relu = ci < 7
            if relu:                                          # fold the BN that follows
                bn = L[2 + 2 * ci]
                s = bn["gamma"].astype(np.float64) / np.sqrt(
                    bn["moving_variance"].astype(np.float64) + BN_EPS)
                k = k * s
                b = (b - bn["moving_mean"]) * s + bn["beta"]
            cin, cout = k.shape[2], k.shape[3]
            convs.append((np.ascontiguousarray(k.reshape(3, 3 * cin, cout), dtype=self.dtype),
                          b.astype(self.dtype), relu))
        self._convs = convs

    @property
    def name(self) -> str:
        return f"openl3-{self.input_repr}-{self.embedding_size}"

    def feature_map(self, spec: np.ndarray) -> np.ndarray:
        """Output of ``audio_embedding_layer`` before the final pool, (B, h, w, 512).

        ``spec`` is (B, F, T) dB spectrograms (any F, T >= 8 for the checks
        on small inputs).
        """
        x = np.asarray(spec, dtype=self.dtype)
        if x.ndim == 2:
            x = x[None]
        with self._lock:
            x = (x * self.dtype.type(self._in_scale) + self.dtype.type(self._in_shift))[..., None]
            for ci, (w3, b, relu) in enumerate(self._convs):
                x = _conv3x3(x, w3, b, self._ws, self.max_cols_bytes, relu,
                             out_name="out%d" % (ci % 2))
                if ci in (1, 3, 5):
                    x = _maxpool(x, 2, 2)
            return np.array(x)                # out of the workspace

    def forward(self, spec: np.ndarray, pool_size=None) -> np.ndarray:
        """Embeddings (B, D) for dB spectrograms (B, F, T) of the model's representation."""
        fmap = self.feature_map(spec)
        ph, pw = pool_size or self.pool_size
        pooled = _maxpool(fmap, ph, pw)
        return pooled.reshape(pooled.shape[0], -1)

    def embed(self, y, sr: float, hop_size: float = 0.1, center: bool = True,
              progress=None) -> tuple[np.ndarray, np.ndarray]:
        """openl3's ``get_audio_embedding(..., frontend="librosa")`` for one signal.

        Parameters
        ----------
        y : ndarray, (N,) or (N, C)
        sr : float
        hop_size : float
        center : bool
        progress : callable(done, total, message), optional

        Returns
        -------
        embedding : ndarray (T, D), float32
        timestamps : ndarray (T,), seconds
        """
        frames, ts = frame_audio(y, sr, hop_size=hop_size, center=center)
        n = frames.shape[0]
        out = np.empty((n, self.embedding_size), np.float32)
        with self._lock:
            self._embed_frames(frames, out, progress)
        return out, ts

    def _embed_frames(self, frames, out, progress):
        n = frames.shape[0]
        try:
            for s in range(0, n, self.batch_size):
                e = min(n, s + self.batch_size)
                spec = spectrogram(frames[s:e], self.input_repr)
                out[s:e] = self.forward(spec)
                if progress is not None:
                    progress(e, n, f"{self.name}: {e}/{n} windows")
        finally:
            self._ws.clear()


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, mtime: float, input_repr: str, embedding_size: int) -> OpenL3Model:
    return OpenL3Model(load_weights(path), input_repr, embedding_size)


def load_model(path, input_repr: str = "mel128", embedding_size: int = 512) -> OpenL3Model:
    """:class:`OpenL3Model` for a weights file, cached per (file, mtime, repr, size)."""
    check_options(input_repr, None, embedding_size)
    p = Path(path).resolve()
    if not p.is_file():
        raise ModelError(f"OpenL3 weights file not found: {p}")
    return _cached_model(str(p), p.stat().st_mtime, input_repr, int(embedding_size))

