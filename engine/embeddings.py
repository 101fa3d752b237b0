"""Per-window audio embeddings: OpenL3 (when weights exist) or a model-free default.

Two backends share one timeline (1-s windows, ``hop_size`` apart, openl3's
window count and timestamps, see :func:`engine.openl3.window_count`):

* ``openl3-<repr>-<content>-<size>``: the official OpenL3 audio network
  re-implemented in NumPy (:mod:`engine.openl3`), needing the official weight
  file. Matches openl3 0.4.2 with ``frontend="librosa"``.
* ``spectral``: no model, no download. Per window: log-mel band means and
  standard deviations (32 bands, dB/80), mean chroma (12), a tempogram
  summary (mean autocorrelation in 8 tempo bands, 40-240 BPM, from a ~9-s
  local tempogram) and 4 descriptors (level, centroid, flatness, onset
  strength): 88 dimensions. It is *not* OpenL3 and is never called so.

Pipeline use: compute one :class:`EmbeddingTimeline` per track with
:func:`embedding_timeline`, then :func:`pool_segments` gives mean- and
max-pooled vectors for every candidate loop, named by
:func:`pooled_feature_names`.

Examples
--------
>>> emb = get_embedder("auto")                            # doctest: +SKIP
>>> tl = embedding_timeline(y, sr, emb, hop_size=0.5)     # doctest: +SKIP
>>> X = pool_segments(tl, starts, ends)                   # doctest: +SKIP
>>> names = pooled_feature_names(tl)                      # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from . import openl3 as ol3
from .errors import AnalysisError, ModelError

BACKENDS = ("auto", "openl3", "spectral")


class Embedder(Protocol):
    """What every backend offers."""

    name: str
    dim: int
    note: str
    cache_key: str

    def embed(self, y, sr: float, hop_size: float = 0.1, center: bool = True,
              progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (T, D) float32 and timestamps (T,) in seconds."""


# --------------------------------------------------------------------------- OpenL3

class OpenL3Embedder:
    """OpenL3 audio embeddings from an official weights file (no TensorFlow).

    Parameters
    ----------
    weights_path : path
    input_repr, content_type : str
        ``content_type`` only selects the weight file; it is recorded in
        :attr:`name`.
    embedding_size : {512, 6144}
    """

    def __init__(self, weights_path, input_repr: str = "mel128", content_type: str = "music",
                 embedding_size: int = 512, note: str = ""):
        ol3.check_options(input_repr, content_type, embedding_size)
        self.weights_path = str(weights_path)
        self.input_repr = input_repr
        self.content_type = content_type
        self.dim = int(embedding_size)
        self.name = f"openl3-{input_repr}-{content_type}-{self.dim}"
        self.note = note
        self.model = ol3.load_model(weights_path, input_repr, self.dim)
        st = Path(weights_path).stat()
        #: Identifies the embedding function for on-disk caches.
        self.cache_key = f"{self.name}:{Path(weights_path).name}:{st.st_size}:{int(st.st_mtime)}"

    def embed(self, y, sr: float, hop_size: float = 0.1, center: bool = True,
              progress=None) -> tuple[np.ndarray, np.ndarray]:
        return self.model.embed(y, sr, hop_size=hop_size, center=center, progress=progress)

    def __repr__(self):
        return f"OpenL3Embedder({self.name!r}, weights={self.weights_path!r})"


# --------------------------------------------------------------------------- spectral

SPECTRAL_SR = 22050
SPECTRAL_N_FFT = 2048
SPECTRAL_HOP = 512
SPECTRAL_N_MELS = 32
#: Tempo bands (BPM edges) summarised from the tempogram.
TEMPO_BANDS = (40, 60, 80, 100, 120, 140, 160, 200, 240)
TEMPOGRAM_WIN = 384


def spectral_feature_names() -> list[str]:
    """Names of the 88 ``spectral`` dimensions, in order."""
    names = [f"logmel_mean_{i:02d}" for i in range(SPECTRAL_N_MELS)]
    names += [f"logmel_std_{i:02d}" for i in range(SPECTRAL_N_MELS)]
    names += [f"chroma_{p}" for p in ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A",
                                       "As", "B")]
    names += [f"tempo_{lo}_{hi}bpm" for lo, hi in zip(TEMPO_BANDS[:-1], TEMPO_BANDS[1:])]
    names += ["level_db", "centroid", "flatness", "onset_strength"]
    return names


def _frame_features(y: np.ndarray, sr: int):
    """Frame-level features (n_feat, n_frames): values to average, and log-mel for std."""
    import librosa

    S = np.abs(librosa.stft(y, n_fft=SPECTRAL_N_FFT, hop_length=SPECTRAL_HOP, center=True))
    P = S ** 2
    mel = librosa.feature.melspectrogram(S=P, sr=sr, n_fft=SPECTRAL_N_FFT,
                                         n_mels=SPECTRAL_N_MELS, fmin=30.0, fmax=sr / 2.0)
    logmel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    logmel = logmel_db / 80.0
    chroma = librosa.feature.chroma_stft(S=P, sr=sr, n_fft=SPECTRAL_N_FFT)
    onset = librosa.onset.onset_strength(S=logmel_db, sr=sr, hop_length=SPECTRAL_HOP)
    tg = librosa.feature.tempogram(onset_envelope=onset, sr=sr, hop_length=SPECTRAL_HOP,
                                   win_length=TEMPOGRAM_WIN)
    fps = sr / SPECTRAL_HOP
    lags = np.arange(tg.shape[0])
    with np.errstate(divide="ignore"):
        bpm = np.where(lags > 0, 60.0 * fps / np.maximum(lags, 1), np.inf)
    bands = []
    for lo, hi in zip(TEMPO_BANDS[:-1], TEMPO_BANDS[1:]):
        sel = (bpm >= lo) & (bpm < hi)
        bands.append(tg[sel].mean(axis=0) if np.any(sel) else np.zeros(tg.shape[1]))
    tempo = np.vstack(bands)
    level = 10.0 * np.log10(P.mean(axis=0) + 1e-10) / 80.0
    freqs = np.linspace(0.0, sr / 2.0, S.shape[0])
    mag_sum = S.sum(axis=0)
    centroid = (freqs @ S) / np.maximum(mag_sum, 1e-10) / (sr / 2.0)
    flatness = librosa.feature.spectral_flatness(S=S)[0]
    n = min(S.shape[1], onset.size, tg.shape[1])
    avg = np.vstack([logmel[:, :n], chroma[:, :n], tempo[:, :n], level[None, :n],
                     centroid[None, :n], flatness[None, :n], onset[None, :n] / 10.0])
    return avg.astype(np.float64), logmel[:, :n].astype(np.float64)


class SpectralEmbedder:
    """Model-free per-window embedding (88 dims) on openl3's window timeline.

    Frame features are computed once for the whole signal at 22,050 Hz
    (STFT 2048 / hop 512) and averaged over the frames whose centres fall in
    each 1-s window, using cumulative sums (O(frames + windows)).
    """

    name = "spectral"
    #: Identifies the embedding function for on-disk caches (bump on any change).
    cache_key = "spectral:v1"

    def __init__(self, note: str = ""):
        self.note = note
        self.feature_names = spectral_feature_names()
        self.dim = len(self.feature_names)

    def embed(self, y, sr: float, hop_size: float = 0.1, center: bool = True,
              progress=None) -> tuple[np.ndarray, np.ndarray]:
        x = ol3.to_mono_float64(y)
        n_win = ol3.window_count(ol3.resampled_length(x.size, sr), hop_size, center)
        ts = ol3.window_timestamps(n_win, hop_size)
        if progress is not None:
            progress(0, n_win, "spectral: frame features")
        if sr != SPECTRAL_SR:
            import soxr

            x = soxr.resample(x, sr, SPECTRAL_SR, quality="HQ")
        if x.size < SPECTRAL_N_FFT:
            x = np.pad(x, (0, SPECTRAL_N_FFT - x.size))
        avg, logmel = _frame_features(x, SPECTRAL_SR)
        nf = avg.shape[1]
        fps = SPECTRAL_SR / SPECTRAL_HOP
        starts = ts - (0.5 if center else 0.0)
        lo = np.clip(np.ceil(starts * fps - 1e-9).astype(np.int64), 0, nf - 1)
        hi = np.clip(np.ceil((starts + 1.0) * fps - 1e-9).astype(np.int64), 0, nf)
        hi = np.maximum(hi, lo + 1)                          # at least one frame
        cnt = (hi - lo).astype(np.float64)
        cs = np.concatenate([np.zeros((avg.shape[0], 1)), np.cumsum(avg, axis=1)], axis=1)
        mean = (cs[:, hi] - cs[:, lo]) / cnt
        cs2 = np.concatenate([np.zeros((logmel.shape[0], 1)), np.cumsum(logmel ** 2, axis=1)],
                             axis=1)
        m_lm = mean[:SPECTRAL_N_MELS]
        var = (cs2[:, hi] - cs2[:, lo]) / cnt - m_lm ** 2
        std = np.sqrt(np.maximum(var, 0.0))
        out = np.vstack([m_lm, std, mean[SPECTRAL_N_MELS:]]).T.astype(np.float32)
        if progress is not None:
            progress(n_win, n_win, "spectral: done")
        return out, ts

    def __repr__(self):
        return "SpectralEmbedder('spectral', dim=%d)" % self.dim


# --------------------------------------------------------------------------- factory

def get_embedder(backend: str = "auto", weights=None, input_repr: str = "mel128",
                 content_type: str = "music", embedding_size: int = 512):
    """Build an embedder.

    Parameters
    ----------
    backend : {"auto", "openl3", "spectral"}
        ``auto`` uses OpenL3 when a weights file is found (see
        :func:`engine.openl3.find_weights`), else ``spectral`` with a
        :attr:`note` saying why. A weights file that is found but broken
        raises rather than falling back silently.
    weights : path, optional
        Weights file or folder; an explicit path that does not exist raises.
    input_repr, content_type, embedding_size
        OpenL3 options.

    Returns
    -------
    OpenL3Embedder or SpectralEmbedder
        ``.name``, ``.dim``, ``.note`` and ``embed(y, sr, hop_size, center,
        progress) -> (emb (T, D) float32, timestamps (T,))``.

    Raises
    ------
    ModelError
        Unknown backend or options; ``openl3`` requested and no weights;
        an unreadable or mismatched weights file.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}; use one of {BACKENDS}")
    if backend == "spectral":
        return SpectralEmbedder()
    ol3.check_options(input_repr, content_type, embedding_size)
    search = ol3.find_weights(input_repr, content_type, weights)
    if search.path is None:
        msg = (f"no OpenL3 weights {ol3.weights_filename(input_repr, content_type)} found "
               f"(looked at {search.describe()})")
        if backend == "openl3":
            raise ModelError(msg + "; pass --weights, set $" + ol3.WEIGHTS_ENV +
                             " or run `python -m engine openl3-weights --download`")
        return SpectralEmbedder(note=msg + "; using the model-free 'spectral' embedding")
    return OpenL3Embedder(search.path, input_repr, content_type, embedding_size,
                          note=f"weights: {search.path}")


# --------------------------------------------------------------------------- timeline

@dataclass(frozen=True)
class EmbeddingTimeline:
    """One track's embeddings, computed once.

    Attributes
    ----------
    values : ndarray (T, D) float32
    timestamps : ndarray (T,)
        Seconds; window centres when ``center`` else window starts (openl3's
        convention).
    backend : str
        Embedder name ("spectral", "openl3-mel128-music-512", ...).
    hop_size : float
    center : bool
    """

    values: np.ndarray
    timestamps: np.ndarray
    backend: str
    hop_size: float = 0.5
    center: bool = True

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def centers(self) -> np.ndarray:
        """Centre time (s) of each window's 1-s span."""
        return self.timestamps + (0.0 if self.center else 0.5)

    def __len__(self):
        return int(self.values.shape[0])

    def save(self, path) -> Path:
        """Write ``embedding``, ``timestamps`` (+ backend, hop_size, center) as .npz, atomically."""
        from .atomic import atomic_path

        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, embedding=self.values, timestamps=self.timestamps,
                         backend=np.array(self.backend), hop_size=np.array(self.hop_size),
                         center=np.array(self.center))
        return Path(path)

    @classmethod
    def load(cls, path) -> "EmbeddingTimeline":
        """Read a file written by :meth:`save` (or by ``openl3``: embedding + timestamps)."""
        with np.load(path, allow_pickle=False) as z:
            ts = np.asarray(z["timestamps"], dtype=np.float64)
            hop = float(z["hop_size"]) if "hop_size" in z else (
                float(ts[1] - ts[0]) if ts.size > 1 else 0.1)
            return cls(values=np.asarray(z["embedding"], dtype=np.float32), timestamps=ts,
                       backend=str(z["backend"]) if "backend" in z else "unknown",
                       hop_size=hop, center=bool(z["center"]) if "center" in z else True)


def embedding_timeline(y, sr: float, embedder=None, hop_size: float = 0.5, center: bool = True,
                       progress=None) -> EmbeddingTimeline:
    """Embed a whole track once.

    Parameters
    ----------
    y : ndarray (N,) or (N, C)
        Audio. For embeddings identical to openl3, pass the file's own rate
        (openl3 resamples with resampy itself); any rate works.
    sr : float
    embedder : Embedder, optional
        Default ``get_embedder("auto")``.
    hop_size : float
        Seconds between windows (0.5 is plenty for pooling over bars).
    center : bool
    progress : callable(done, total, message), optional

    Returns
    -------
    EmbeddingTimeline
    """
    embedder = embedder if embedder is not None else get_embedder("auto")
    values, ts = embedder.embed(y, sr, hop_size=hop_size, center=center, progress=progress)
    return EmbeddingTimeline(values=np.asarray(values, dtype=np.float32),
                             timestamps=np.asarray(ts, dtype=np.float64),
                             backend=embedder.name, hop_size=float(hop_size), center=bool(center))


def pool_segments(timeline: EmbeddingTimeline, starts_sec, ends_sec) -> np.ndarray:
    """Mean- and max-pooled embeddings for each segment ``[start, end)``.

    A window belongs to a segment when the centre of its 1-s span lies in
    ``[start, end)``. A segment holding no window centre (shorter than the
    hop, or beyond the timeline) uses the single window whose centre is
    nearest the segment's midpoint.

    Parameters
    ----------
    timeline : EmbeddingTimeline
    starts_sec, ends_sec : array-like (n,)

    Returns
    -------
    ndarray (n, 2 * D), float32
        ``[mean_0 .. mean_{D-1}, max_0 .. max_{D-1}]`` per segment, in the
        order of :func:`pooled_feature_names`.
    """
    starts = np.atleast_1d(np.asarray(starts_sec, dtype=np.float64))
    ends = np.atleast_1d(np.asarray(ends_sec, dtype=np.float64))
    if starts.shape != ends.shape or starts.ndim != 1:
        raise AnalysisError(f"segment starts {starts.shape} and ends {ends.shape} must be "
                            "1-D arrays of the same length")
    if not (np.all(np.isfinite(starts)) and np.all(np.isfinite(ends))):
        raise AnalysisError("segment bounds must be finite")
    V = np.asarray(timeline.values)
    T, D = V.shape
    if T == 0:
        raise AnalysisError(f"embedding timeline ({timeline.backend}) is empty")
    c = timeline.centers
    lo = np.searchsorted(c, starts, side="left")
    hi = np.searchsorted(c, ends, side="left")
    empty = hi <= lo
    if np.any(empty):
        mid = 0.5 * (starts[empty] + ends[empty])
        j = np.searchsorted(c, mid)
        a = np.clip(j - 1, 0, T - 1)
        b = np.clip(j, 0, T - 1)
        nearest = np.where(np.abs(c[a] - mid) <= np.abs(c[b] - mid), a, b)
        lo[empty] = nearest
        hi[empty] = nearest + 1
    cs = np.concatenate([np.zeros((1, D)), np.cumsum(V, axis=0, dtype=np.float64)])
    out = np.empty((starts.size, 2 * D), np.float32)
    out[:, :D] = (cs[hi] - cs[lo]) / (hi - lo)[:, None]
    for i in range(starts.size):
        out[i, D:] = V[lo[i]:hi[i]].max(axis=0)
    return out


def pooled_feature_names(timeline) -> list[str]:
    """Column names for :func:`pool_segments`: ``emb_mean_000 ..``, ``emb_max_000 ..``.

    ``timeline`` is an :class:`EmbeddingTimeline` or the dimension ``D``.
    """
    D = timeline if isinstance(timeline, (int, np.integer)) else timeline.dim
    width = max(3, len(str(int(D) - 1)))
    return ([f"emb_mean_{i:0{width}d}" for i in range(D)]
            + [f"emb_max_{i:0{width}d}" for i in range(D)])
