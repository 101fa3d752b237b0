"""OpenL3 front end: 1-s windows at 48 kHz and the librosa-style spectrograms (see the package docstring)."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import AnalysisError, ModelError

#: The network's sample rate and window length (samples).
TARGET_SR = 48000
WINDOW = 48000

INPUT_REPRS = ("linear", "mel128", "mel256")
CONTENT_TYPES = ("music", "env")
EMBEDDING_SIZES = (512, 6144)

#: Spectrogram shape (freq, time) at the network input.
INPUT_SHAPES = {"linear": (257, 197), "mel128": (128, 199), "mel256": (256, 199)}

DB_AMIN = 1e-10
DB_TOP = 80.0
MEL_N_FFT = 2048
LINEAR_N_FFT = 512
SPEC_HOP = 242


def check_options(input_repr: str, content_type: str | None = None,
                  embedding_size: int | None = None) -> None:
    """Raise :class:`ModelError` for an unknown representation, content or size."""
    if input_repr not in INPUT_REPRS:
        raise ModelError(f"unknown OpenL3 input_repr {input_repr!r}; use one of {INPUT_REPRS}")
    if content_type is not None and content_type not in CONTENT_TYPES:
        raise ModelError(f"unknown OpenL3 content_type {content_type!r}; use one of {CONTENT_TYPES}")
    if embedding_size is not None and int(embedding_size) not in EMBEDDING_SIZES:
        raise ModelError(f"unknown OpenL3 embedding_size {embedding_size!r}; "
                         f"use one of {EMBEDDING_SIZES}")


# --------------------------------------------------------------------------- windows

def hop_samples(hop_size: float) -> int:
    """Hop in samples at 48 kHz, ``int(hop_size * 48000)`` as openl3 does."""
    if not np.isfinite(hop_size) or hop_size <= 0:
        raise AnalysisError(f"hop_size must be a positive number of seconds, got {hop_size!r}")
    hop = int(hop_size * TARGET_SR)
    if hop < 1:
        raise AnalysisError(f"hop_size {hop_size!r} is below one sample at 48 kHz")
    return hop


def resampled_length(n_samples: int, sr: float) -> int:
    """Length after resampling ``n_samples`` at ``sr`` to 48 kHz (resampy's rule)."""
    if sr == TARGET_SR:
        return int(n_samples)
    return int(n_samples * float(TARGET_SR) / float(sr))


def window_count(n_samples_48k: int, hop_size: float = 0.1, center: bool = True) -> int:
    """Number of 1-s windows openl3 produces for a signal of this length at 48 kHz.

    Examples
    --------
    >>> window_count(144000, 0.1, True), window_count(120000, 0.1, True)
    (26, 21)
    >>> window_count(120000, 0.25, False)
    7
    """
    hop = hop_samples(hop_size)
    n = int(n_samples_48k) + (WINDOW // 2 if center else 0)
    if n <= WINDOW:
        return 1
    return 1 + -(-(n - WINDOW) // hop)       # ceil division


def window_timestamps(n_windows: int, hop_size: float) -> np.ndarray:
    """``arange(n) * hop_size``: window starts (``center=False``) or centres (``center=True``)."""
    return np.arange(int(n_windows)) * float(hop_size)


def to_mono_float64(y) -> np.ndarray:
    """1-D float64 signal from ``(N,)`` or ``(N, C)`` audio (mean over channels)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float64)
    elif y.ndim != 1:
        raise AnalysisError(f"audio must be 1-D (N,) or 2-D (N, channels), got shape {y.shape}")
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        raise AnalysisError("audio is empty")
    if not np.all(np.isfinite(y)):
        raise AnalysisError("audio contains NaN or infinite samples")
    return y


def resample_to_48k(y, sr: float) -> np.ndarray:
    """Mono float64 at 48 kHz; resampy ``kaiser_best`` when ``sr != 48000``."""
    y = to_mono_float64(y)
    if not np.isfinite(sr) or sr <= 0:
        raise AnalysisError(f"invalid sample rate {sr!r}")
    if sr == TARGET_SR:
        return y
    import resampy

    return resampy.resample(y, sr_orig=sr, sr_new=TARGET_SR, filter="kaiser_best", axis=-1)


def frame_audio(y, sr: float, hop_size: float = 0.1, center: bool = True):
    """Cut audio into openl3's 1-s windows at 48 kHz.

    Parameters
    ----------
    y : ndarray, shape (N,) or (N, C)
    sr : float
    hop_size : float
        Seconds between window starts.
    center : bool
        Prepend half a window of zeros so timestamps are window centres.

    Returns
    -------
    frames : ndarray, shape (n, 48000), float64
        A read-only strided view (no copy) of the padded 48-kHz signal.
    timestamps : ndarray, shape (n,)
    """
    x = resample_to_48k(y, sr)
    hop = hop_samples(hop_size)
    if center:
        x = np.concatenate([np.zeros(WINDOW // 2), x])
    n = x.size
    if n < WINDOW:
        pad = WINDOW - n
    else:
        pad = -(-(n - WINDOW) // hop) * hop - (n - WINDOW)
    if pad > 0:
        x = np.concatenate([x, np.zeros(pad)])
    n_frames = 1 + (x.size - WINDOW) // hop
    frames = np.lib.stride_tricks.as_strided(x, shape=(n_frames, WINDOW),
                                             strides=(hop * x.itemsize, x.itemsize),
                                             writeable=False)
    return frames, window_timestamps(n_frames, hop_size)


# --------------------------------------------------------------------------- frontend

@functools.lru_cache(maxsize=4)
def mel_filterbank(n_mels: int) -> np.ndarray:
    """Slaney mel filterbank (n_mels, 1025), float32, as openl3's librosa call builds it."""
    import librosa

    fb = librosa.filters.mel(sr=TARGET_SR, n_fft=MEL_N_FFT, n_mels=int(n_mels), fmin=0.0,
                             fmax=TARGET_SR / 2.0, htk=False, norm="slaney", dtype=np.float32)
    fb.setflags(write=False)
    return fb


@functools.lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n, fftbins=True)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _stft_mag(frames: np.ndarray, n_fft: int, center: bool) -> np.ndarray:
    """|STFT| of each window, float64, shape (B, n_frames, n_fft//2 + 1) (time major)."""
    x = np.asarray(frames, dtype=np.float64)
    if center:
        x = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)))
    n_fr = 1 + (x.shape[1] - n_fft) // SPEC_HOP
    fr = np.lib.stride_tricks.as_strided(
        x, shape=(x.shape[0], n_fr, n_fft),
        strides=(x.strides[0], SPEC_HOP * x.strides[1], x.strides[1]), writeable=False)
    return np.abs(np.fft.rfft(fr * _hann(n_fft), axis=-1))    # (B, T, F)


def _to_db(S: np.ndarray) -> np.ndarray:
    """power_to_db(ref=1, amin=1e-10, top_db=80) then minus max, per window (axis 0)."""
    L = 10.0 * np.log10(np.maximum(S, DB_AMIN))
    top = L.max(axis=(1, 2), keepdims=True)
    L = np.maximum(L, top - DB_TOP)
    L -= L.max(axis=(1, 2), keepdims=True)
    return L


def spectrogram(frames, input_repr: str) -> np.ndarray:
    """openl3's librosa-frontend dB spectrogram for a batch of 1-s windows.

    Parameters
    ----------
    frames : ndarray, shape (B, 48000)
        Windows at 48 kHz (from :func:`frame_audio`).
    input_repr : {"linear", "mel128", "mel256"}

    Returns
    -------
    ndarray, shape (B, F, T), float32
        Values in [-80, 0] dB; ``(F, T)`` from :data:`INPUT_SHAPES`.
    """
    check_options(input_repr)
    frames = np.atleast_2d(frames)
    if frames.shape[1] != WINDOW:
        raise AnalysisError(f"windows must have {WINDOW} samples, got {frames.shape[1]}")
    if input_repr == "linear":
        S = _stft_mag(frames, LINEAR_N_FFT, center=False).transpose(0, 2, 1)
    else:
        mag = _stft_mag(frames, MEL_N_FFT, center=True)      # (B, T, 1025)
        B, T, F = mag.shape
        fb = _mel_filterbank_f64(128 if input_repr == "mel128" else 256)
        # float32 filterbank (exactly widened) @ float64 magnitudes, like librosa's np.dot;
        # through scipy's BLAS, the one the network uses (two OpenBLAS thread pools
        # alternating on 2 cores slow each other down).
        from scipy.linalg.blas import dgemm

        S = dgemm(1.0, fb, mag.reshape(B * T, F).T)         # (n_mels, B*T), Fortran order
        S = S.T.reshape(B, T, fb.shape[0]).transpose(0, 2, 1)
    return _to_db(S).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _mel_filterbank_f64(n_mels: int) -> np.ndarray:
    return np.asfortranarray(mel_filterbank(n_mels), dtype=np.float64)


