"""OpenL3 audio embeddings in NumPy: no TensorFlow, same numbers.

This module re-implements inference of the official ``openl3`` 0.4.2 audio
networks with its **librosa frontend** (``frontend="librosa"``), reading the
official Keras-2 HDF5 weight files with h5py. What is matched, step by step
(see ``/work/shared/OPENL3_FACTS.md``):

Audio and windows (:func:`frame_audio`)
    * ``(N, C)`` input is mixed to mono with the mean over channels (in
      float64); any rate other than 48 kHz is resampled with ``resampy``,
      filter ``kaiser_best`` (output length ``int(N * 48000 / sr)``).
    * 1-s windows of 48,000 samples, hop ``int(hop_size * 48000)``.
    * ``center=True`` prepends 24,000 zeros (start only).
    * End padding: shorter than 48,000 -> zero-pad to 48,000, otherwise append
      zeros so that ``length - 48000`` is a whole number of hops.
    * ``n = 1 + (padded - 48000) // hop``; window ``i`` starts at ``i * hop``;
      timestamps are ``arange(n) * hop_size`` seconds.

Frontend (:func:`spectrogram`), computed in float64 for a batch of windows
    * mel128 / mel256: magnitude (power 1) STFT with ``n_fft=2048``, hop 242,
      periodic Hann, ``center=True`` with 1024 zeros each side (librosa >= 0.9
      pads with zeros), times the Slaney-scale, Slaney-normalised mel
      filterbank (fmin 0, fmax 24000) built by ``librosa.filters.mel`` in
      float32, giving ``(n_mels, 199)``.
    * linear: ``|STFT|`` with ``n_fft=512``, hop 242, periodic Hann,
      ``center=False`` giving ``(257, 197)``.
    * dB as ``librosa.power_to_db(S, ref=1, amin=1e-10, top_db=80)`` then
      ``S -= S.max()``, per window: values in [-80, 0]. Cast to float32.

Network (:class:`OpenL3Model`), channels last, input ``(freq, time, 1)``
    * BatchNorm on the input; three blocks of ``[3x3 conv 'same' + bias ->
      BN -> ReLU] x 2 -> 2x2 max-pool stride 2 (floor)`` with 64, 128, 256
      filters; then ``conv512 -> BN -> ReLU -> conv512`` (the
      ``audio_embedding_layer``: no BN or ReLU after it).
    * BN at inference: ``gamma * (x - mean) / sqrt(var + 0.001) + beta``.
      The BN after each conv is folded into that conv's kernel and bias
      (exact algebra); the input BN is applied explicitly because the
      following conv zero-pads *after* it.
    * Convolutions are cross-correlations with Keras kernels
      ``(kh, kw, in, out)``, computed as im2col + one BLAS GEMM per layer in
      float32 (float64 available for checks), windows batched, the im2col
      buffer bounded in size.
    * Final max-pool of ``POOL_SIZES[repr][size]`` (stride = size, the sizes
      divide the map exactly) and a row-major flatten over
      ``(freq block, time block, channel)``.

Weights (:func:`load_weights`)
    Keras 2 ``save_weights`` HDF5: root attribute ``layer_names``, per layer
    attribute ``weight_names``. Layers are taken in file order, keeping those
    that have weights (16 expected), exactly as Keras loads by topology; names
    are never relied on. Every shape is checked.

The float32 forward pass stays within about 1e-6 relative (norm) of the same
computation in float64; see ``tests/test_openl3.py``.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import PROJECT_ROOT
from .errors import AnalysisError, ModelError

#: The network's sample rate and window length (samples).
TARGET_SR = 48000
WINDOW = 48000

INPUT_REPRS = ("linear", "mel128", "mel256")
CONTENT_TYPES = ("music", "env")
EMBEDDING_SIZES = (512, 6144)

#: Final max-pool size per input representation and embedding size.
POOL_SIZES = {
    "linear": {6144: (8, 8), 512: (32, 24)},
    "mel128": {6144: (4, 8), 512: (16, 24)},
    "mel256": {6144: (8, 8), 512: (32, 24)},
}

#: Spectrogram shape (freq, time) at the network input.
INPUT_SHAPES = {"linear": (257, 197), "mel128": (128, 199), "mel256": (256, 199)}

BN_EPS = 1e-3
DB_AMIN = 1e-10
DB_TOP = 80.0
MEL_N_FFT = 2048
LINEAR_N_FFT = 512
SPEC_HOP = 242

#: The 16 weighted layers in order: ("bn", channels) or ("conv", in, out).
LAYER_SPECS = (
    ("bn", 1),
    ("conv", 1, 64), ("bn", 64), ("conv", 64, 64), ("bn", 64),
    ("conv", 64, 128), ("bn", 128), ("conv", 128, 128), ("bn", 128),
    ("conv", 128, 256), ("bn", 256), ("conv", 256, 256), ("bn", 256),
    ("conv", 256, 512), ("bn", 512), ("conv", 512, 512),
)
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
CONV_WEIGHTS = ("kernel", "bias")

#: Environment variable: a weights file, or a folder of official files.
WEIGHTS_ENV = "LOOPLAB_OPENL3_WEIGHTS"
#: Where ``openl3-weights --download`` puts files by default (also searched).
DEFAULT_WEIGHTS_DIR = PROJECT_ROOT / "models" / "openl3"
#: Official compressed weights (the openl3 project's ``models`` branch).
WEIGHTS_URL = "https://github.com/marl/openl3/raw/models/openl3_audio_{repr}_{content}-v0_4_0.h5.gz"


def weights_filename(input_repr: str, content_type: str) -> str:
    """Official file name, e.g. ``openl3_audio_mel128_music.h5``."""
    return f"openl3_audio_{input_repr}_{content_type}.h5"


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


# --------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class OpenL3Weights:
    """The 16 weighted layers of an OpenL3 audio network.

    Attributes
    ----------
    path : str
        File the weights came from.
    layers : tuple of dict
        In network order; BN layers hold ``gamma, beta, moving_mean,
        moving_variance``, conv layers ``kernel (3, 3, in, out), bias (out,)``,
        all float32.
    layer_names : tuple of str
        The names the file gave those layers (for messages only).
    """

    path: str
    layers: tuple
    layer_names: tuple = field(default_factory=tuple)

    @property
    def n_params(self) -> int:
        return int(sum(a.size for layer in self.layers for a in layer.values()))


def _decode(names) -> list[str]:
    out = []
    for n in np.atleast_1d(names):
        out.append(n.decode("utf8") if isinstance(n, (bytes, np.bytes_)) else str(n))
    return out


def _assign_names(kind: str, wnames: list[str]) -> list[str]:
    """Map a layer's weight names to canonical keys (by suffix, else by order)."""
    canon = BN_WEIGHTS if kind == "bn" else CONV_WEIGHTS
    keys = []
    for w in wnames:
        base = w.rsplit("/", 1)[-1].split(":", 1)[0]
        keys.append(base if base in canon else None)
    if None in keys or sorted(keys) != sorted(canon):
        keys = list(canon)                                    # Keras order
    return keys


def load_weights(path) -> OpenL3Weights:
    """Read an official OpenL3 audio weights file (Keras 2 HDF5).

    Layers are matched by the order of the layers that have weights, as
    Keras' ``load_weights`` does, so auto-generated names (``conv2d_17``,
    ``batch_normalization_3``...) never matter.

    Raises
    ------
    ModelError
        The file is missing or not HDF5, has no ``layer_names``, has a number
        of weighted layers other than 16, misses an array, or has an array of
        the wrong shape or with non-finite values. The message names the file,
        the layer and what is wrong.
    """
    import h5py

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ModelError(f"OpenL3 weights file not found: {where}")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{where}: not a readable HDF5 weights file ({exc})") from None
    with fh:
        root = fh
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]                      # saved with model.save()
        if "layer_names" not in root.attrs:
            raise ModelError(f"{where}: no 'layer_names' attribute; not a Keras 2 weights "
                             "file as written by save_weights()")
        weighted = []
        for lname in _decode(root.attrs["layer_names"]):
            if lname not in root:
                raise ModelError(f"{where}: layer {lname!r} is listed in layer_names "
                                 "but its group is missing")
            g = root[lname]
            wnames = _decode(g.attrs.get("weight_names", []))
            if wnames:
                weighted.append((lname, g, wnames))
        if len(weighted) != len(LAYER_SPECS):
            found = ", ".join(f"{n}({len(w)})" for n, _, w in weighted) or "none"
            raise ModelError(f"{where}: expected {len(LAYER_SPECS)} layers with weights "
                             f"(OpenL3 audio network), found {len(weighted)}: {found}")
        layers = []
        for i, (spec, (lname, g, wnames)) in enumerate(zip(LAYER_SPECS, weighted)):
            kind = spec[0]
            if kind == "bn":
                shapes = {k: (spec[1],) for k in BN_WEIGHTS}
                what = f"BatchNormalization({spec[1]})"
            else:
                shapes = {"kernel": (3, 3, spec[1], spec[2]), "bias": (spec[2],)}
                what = f"Conv2D({spec[1]}->{spec[2]}, 3x3)"
            label = f"weighted layer {i + 1}/16 {lname!r} (expected {what})"
            if len(wnames) != len(shapes):
                raise ModelError(f"{where}: {label} has {len(wnames)} weights "
                                 f"{wnames}, expected {len(shapes)} {list(shapes)}")
            arrays = {}
            for key, wname in zip(_assign_names(kind, wnames), wnames):
                if wname not in g:
                    raise ModelError(f"{where}: {label}: array {wname!r} is listed in "
                                     "weight_names but missing")
                a = np.asarray(g[wname], dtype=np.float32)
                if a.shape != shapes[key]:
                    raise ModelError(f"{where}: {label}: {key} {wname!r} has shape "
                                     f"{a.shape}, expected {shapes[key]}")
                if not np.all(np.isfinite(a)):
                    raise ModelError(f"{where}: {label}: {key} {wname!r} contains NaN/inf")
                arrays[key] = a
            if kind == "bn" and np.any(arrays["moving_variance"] + BN_EPS <= 0):
                raise ModelError(f"{where}: {label}: moving_variance + eps is not positive")
            layers.append(arrays)
    return OpenL3Weights(path=where, layers=tuple(layers),
                         layer_names=tuple(n for n, _, _ in weighted))


def write_weights_h5(path, layers, layer_names=None, extra_layers=True) -> Path:
    """Write weights in the Keras 2 ``save_weights`` layout (for tests and benchmarks).

    Parameters
    ----------
    path : path
    layers : sequence of dict
        As :attr:`OpenL3Weights.layers`.
    layer_names : sequence of str, optional
        Names for the weighted layers; Keras-like auto names by default.
    extra_layers : bool
        Also list unweighted layers (input, activations, pooling) as Keras does.
    """
    import h5py

    from .atomic import atomic_path

    if layer_names is None:
        layer_names, nb, nc = [], 0, 0
        for spec in LAYER_SPECS:
            if spec[0] == "bn":
                nb += 1
                layer_names.append(f"batch_normalization_{nb}")
            else:
                nc += 1
                layer_names.append(f"conv2d_{nc}")
    order = []
    if extra_layers:
        order.append(("input_1", None))
    act = pool = 0
    for i, (spec, name, arrays) in enumerate(zip(LAYER_SPECS, layer_names, layers)):
        order.append((name, (spec[0], arrays)))
        if extra_layers and spec[0] == "bn" and i > 0:
            act += 1
            order.append((f"activation_{act}", None))
            if i in (4, 8, 12):
                pool += 1
                order.append((f"max_pooling2d_{pool}", None))
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = np.array([n.encode() for n, _ in order])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.2.4"
            for name, content in order:
                g = f.create_group(name)
                if content is None:
                    g.attrs["weight_names"] = np.array([], dtype="S1")
                    continue
                kind, arrays = content
                keys = BN_WEIGHTS if kind == "bn" else CONV_WEIGHTS
                wnames = [f"{name}/{k}:0" for k in keys]
                g.attrs["weight_names"] = np.array([w.encode() for w in wnames])
                for k, w in zip(keys, wnames):
                    g.create_dataset(w, data=np.asarray(arrays[k], dtype=np.float32))
    return Path(path)


def random_weights(seed: int = 0) -> list[dict]:
    """He-normal kernels, small biases and plausible BN statistics (tests, benchmarks)."""
    rng = np.random.default_rng(seed)
    layers = []
    for spec in LAYER_SPECS:
        if spec[0] == "bn":
            c = spec[1]
            layers.append({"gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
                           "beta": rng.normal(0, 0.1, c).astype(np.float32),
                           "moving_mean": rng.normal(0, 0.5, c).astype(np.float32),
                           "moving_variance": rng.uniform(0.5, 2.0, c).astype(np.float32)})
        else:
            cin, cout = spec[1], spec[2]
            k = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout)).astype(np.float32)
            layers.append({"kernel": k, "bias": rng.normal(0, 0.05, cout).astype(np.float32)})
    if layers[0]["moving_mean"].size == 1:                    # input BN sees dB in [-80, 0]
        layers[0]["moving_mean"][:] = -40.0
        layers[0]["moving_variance"][:] = 400.0
    return layers


# --------------------------------------------------------------------------- search

@dataclass(frozen=True)
class WeightsSearch:
    """Result of :func:`find_weights`: the file found (or None) and every place tried."""

    path: Path | None
    tried: tuple          # of (place description, path, status)

    def describe(self) -> str:
        return "; ".join(f"{where}: {p} ({status})" if p else f"{where} ({status})"
                         for where, p, status in self.tried)


def installed_openl3_dir() -> Path | None:
    """Folder of an installed ``openl3`` package, found without importing it.

    ``importlib.util.find_spec`` only locates the package; importing openl3
    would import TensorFlow and the removed ``imp`` module.
    """
    try:
        spec = importlib.util.find_spec("openl3")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locs = list(spec.submodule_search_locations or [])
    if locs:
        return Path(locs[0])
    return Path(spec.origin).parent if spec.origin else None


def _check_candidate(p: Path, fname: str) -> tuple[Path | None, str]:
    if p.is_dir():
        f = p / fname
        return (f, "found") if f.is_file() else (None, f"no {fname} in this folder")
    if p.is_file():
        return p, "found"
    return None, "does not exist"


def find_weights(input_repr: str = "mel128", content_type: str = "music",
                 weights=None) -> WeightsSearch:
    """Locate an OpenL3 weights file.

    Order: the explicit ``weights`` path (a file, or a folder holding
    ``openl3_audio_<repr>_<content>.h5``), the ``LOOPLAB_OPENL3_WEIGHTS``
    environment variable (file or folder), the folder of an installed
    ``openl3`` package, then :data:`DEFAULT_WEIGHTS_DIR` (where
    ``python -m engine openl3-weights --download`` saves).

    Raises
    ------
    ModelError
        An explicit ``weights`` path that does not exist or lacks the file
        (an explicit request never falls back silently).
    """
    check_options(input_repr, content_type)
    fname = weights_filename(input_repr, content_type)
    tried = []
    if weights is not None and str(weights) != "":
        p = Path(weights).expanduser()
        found, status = _check_candidate(p, fname)
        tried.append(("--weights", str(p), status))
        if found is None:
            raise ModelError(f"OpenL3 weights {p}: {status}")
        return WeightsSearch(found, tuple(tried))
    places = []
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        places.append((f"${WEIGHTS_ENV}", Path(env).expanduser()))
    else:
        tried.append((f"${WEIGHTS_ENV}", "", "not set"))
    pkg = installed_openl3_dir()
    if pkg is not None:
        places.append(("installed openl3 package", pkg))
    else:
        tried.append(("installed openl3 package", "", "openl3 not installed"))
    places.append(("default folder", DEFAULT_WEIGHTS_DIR))
    for where, p in places:
        found, status = _check_candidate(p, fname)
        tried.append((where, str(p), status))
        if found is not None:
            return WeightsSearch(found, tuple(tried))
    return WeightsSearch(None, tuple(tried))


def download_weights(input_repr: str = "mel128", content_type: str = "music", dest=None,
                     timeout: float = 15.0, url: str | None = None) -> Path:
    """Fetch an official weights file (``.h5.gz``), check it and save it atomically.

    Only ever called on an explicit user request (``openl3-weights
    --download``); analysis never downloads.

    Raises
    ------
    ModelError
        No network, HTTP error, timeout, or a file that is not a valid
        OpenL3 audio weights file. The message says how to install it by hand.
    """
    from .atomic import atomic_path

    check_options(input_repr, content_type)
    dest = Path(dest) if dest else DEFAULT_WEIGHTS_DIR
    url = url or WEIGHTS_URL.format(repr=input_repr, content=content_type)
    target = dest / weights_filename(input_repr, content_type)
    manual = (f"download {url} on a machine with internet access, gunzip it and put "
              f"{target.name} in {dest} (or point ${WEIGHTS_ENV} / --weights at it)")
    with tempfile.TemporaryDirectory() as tmpdir:
        gz = Path(tmpdir) / "weights.h5.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(gz, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ModelError(f"could not download OpenL3 weights from {url}: {reason} "
                             f"(no internet connection?). To install by hand: {manual}") from None
        dest.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".h5") as tmp:
            try:
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
            except OSError as exc:
                raise ModelError(f"downloaded file from {url} is not gzip data ({exc})") from None
            load_weights(tmp)                                 # validate before renaming
    return target


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
