"""Per-loop timbre and harmony descriptors: one fixed-length, named vector per loop.

:func:`loop_descriptors` turns a decoded loop into a :class:`LoopDescriptors`
(a float vector whose columns are named by :data:`DESCRIPTOR_NAMES`);
:func:`compute_descriptors` does it for a list of files, decoding each file
once and caching the result by the file's content hash (like the contact
map's rhythm sequences). :func:`engine.aspects.analyse_loop_set` fills the
rhythm-sequence, descriptor and embedding caches from ONE decode per file.

The vector (all statistics over the loop's frames; sr 22,050 Hz, STFT 2048,
hop 512, Hann window; :data:`DESCRIPTOR_VERSION` changes whenever a value
would change)::

    block        columns                       what
    -----------  ----------------------------  ----------------------------------------
    logmel       logmel_mean_00..39            40 mel bands (30 Hz..11 kHz), dB / 80,
                 logmel_std_00..39             mean and standard deviation over frames
    mfcc         mfcc_mean_00..19              20 MFCCs of that log-mel (DCT-II, ortho),
                 mfcc_std_00..19               mean and standard deviation
    chroma       chroma_mean_C..B              12 pitch classes from the STFT (A440),
                 chroma_std_C..B               each frame normalised to max 1
    contrast     contrast_mean_0..6            spectral contrast, 6 octave bands from
                 contrast_std_0..6             100 Hz + the rest to 11 kHz (dB / 10)
    shape        centroid/bandwidth/rolloff/   spectral shape in kHz (rolloff 85 %),
                 flatness/zcr/rms _mean|_std   flatness, zero-crossing rate, RMS in dB / 80

:data:`TIMBRE_COLUMNS` (logmel, mfcc, contrast, shape: 146 columns) describe
the sound, :data:`HARMONY_COLUMNS` (chroma: 24) the pitch content.
Statistics are level-sensitive on purpose (RMS and log-mel in dB): exported
loops are loudness-normalised, so level differences left are differences of
the material. A silent loop gets the floor values, never NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DEFAULT_CACHE_DIR
from .errors import AnalysisError, AudioError, LoopLabError

#: Part of every descriptor cache key: bump when any value would change.
DESCRIPTOR_VERSION = "1"

DESC_SR = 22050
DESC_N_FFT = 2048
DESC_HOP = 512
N_MELS = 40
N_MFCC = 20
N_CONTRAST_BANDS = 6
PITCH_CLASSES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
SHAPE_FEATURES = ("centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms")


def _names() -> list[str]:
    names = [f"logmel_mean_{i:02d}" for i in range(N_MELS)]
    names += [f"logmel_std_{i:02d}" for i in range(N_MELS)]
    names += [f"mfcc_mean_{i:02d}" for i in range(N_MFCC)]
    names += [f"mfcc_std_{i:02d}" for i in range(N_MFCC)]
    names += [f"chroma_mean_{p}" for p in PITCH_CLASSES]
    names += [f"chroma_std_{p}" for p in PITCH_CLASSES]
    names += [f"contrast_mean_{i}" for i in range(N_CONTRAST_BANDS + 1)]
    names += [f"contrast_std_{i}" for i in range(N_CONTRAST_BANDS + 1)]
    for s in SHAPE_FEATURES:
        names += [f"{s}_mean", f"{s}_std"]
    return names


#: Column names of the descriptor vector, in order (170).
DESCRIPTOR_NAMES: tuple[str, ...] = tuple(_names())
#: Columns describing pitch content (chroma mean and spread).
HARMONY_COLUMNS: tuple[str, ...] = tuple(n for n in DESCRIPTOR_NAMES if n.startswith("chroma_"))
#: Columns describing the sound (everything else).
TIMBRE_COLUMNS: tuple[str, ...] = tuple(n for n in DESCRIPTOR_NAMES if n not in HARMONY_COLUMNS)
#: Index arrays of the two groups into the vector.
HARMONY_INDEX = np.array([DESCRIPTOR_NAMES.index(n) for n in HARMONY_COLUMNS])
TIMBRE_INDEX = np.array([DESCRIPTOR_NAMES.index(n) for n in TIMBRE_COLUMNS])
#: Index of the 12 chroma means.
CHROMA_MEAN_INDEX = np.array([DESCRIPTOR_NAMES.index(f"chroma_mean_{p}") for p in PITCH_CLASSES])


@dataclass(frozen=True)
class LoopDescriptors:
    """Timbre and harmony statistics of one loop.

    Attributes
    ----------
    values : ndarray, shape (len(DESCRIPTOR_NAMES),), float32
        In the order of :data:`DESCRIPTOR_NAMES`.
    duration : float
        Seconds of audio described.
    """

    values: np.ndarray
    duration: float

    @property
    def names(self) -> tuple[str, ...]:
        return DESCRIPTOR_NAMES

    @property
    def timbre(self) -> np.ndarray:
        return self.values[TIMBRE_INDEX]

    @property
    def harmony(self) -> np.ndarray:
        return self.values[HARMONY_INDEX]

    @property
    def chroma(self) -> np.ndarray:
        """Mean chroma (12, C..B)."""
        return self.values[CHROMA_MEAN_INDEX]

    def as_dict(self) -> dict:
        return {n: float(v) for n, v in zip(DESCRIPTOR_NAMES, self.values)}


def _mean_std(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X.mean(axis=1), X.std(axis=1)


def loop_descriptors(y: np.ndarray, sr: int) -> LoopDescriptors:
    """Descriptor vector of a mono signal (see the module doc for the columns).

    Parameters
    ----------
    y : ndarray (n,)
        Mono samples (float). Resampled to 22,050 Hz when ``sr`` differs.
    sr : int

    Raises
    ------
    AnalysisError
        Empty or non-finite input.
    """
    import librosa

    x = np.asarray(y, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise AnalysisError("loop_descriptors: empty signal")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("loop_descriptors: signal has NaN or infinite samples")
    duration = x.size / float(sr)
    if int(sr) != DESC_SR:
        import soxr

        x = soxr.resample(x, sr, DESC_SR, quality="HQ").astype(np.float32)
    if x.size < DESC_N_FFT:
        x = np.pad(x, (0, DESC_N_FFT - x.size))
    S = np.abs(librosa.stft(x, n_fft=DESC_N_FFT, hop_length=DESC_HOP, center=True))
    P = S ** 2
    mel = librosa.feature.melspectrogram(S=P, sr=DESC_SR, n_fft=DESC_N_FFT, n_mels=N_MELS,
                                         fmin=30.0, fmax=11000.0)
    logmel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    mfcc = librosa.feature.mfcc(S=logmel_db, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=P, sr=DESC_SR, n_fft=DESC_N_FFT)
    contrast = librosa.feature.spectral_contrast(S=S, sr=DESC_SR, n_fft=DESC_N_FFT,
                                                 fmin=100.0, n_bands=N_CONTRAST_BANDS)
    centroid = librosa.feature.spectral_centroid(S=S, sr=DESC_SR)[0] / 1000.0
    bandwidth = librosa.feature.spectral_bandwidth(S=S, sr=DESC_SR)[0] / 1000.0
    rolloff = librosa.feature.spectral_rolloff(S=S, sr=DESC_SR, roll_percent=0.85)[0] / 1000.0
    flatness = librosa.feature.spectral_flatness(S=S)[0]
    zcr = librosa.feature.zero_crossing_rate(x, frame_length=DESC_N_FFT, hop_length=DESC_HOP)[0]
    rms = 10.0 * np.log10(P.mean(axis=0) * 2.0 / DESC_N_FFT + 1e-10) / 80.0
    n = min(S.shape[1], zcr.size)
    parts = []
    for blk in (logmel_db / 80.0, mfcc / 80.0, chroma, contrast / 10.0):
        m, s = _mean_std(np.asarray(blk, dtype=np.float64)[:, :n])
        parts += [m, s]
    for v in (centroid, bandwidth, rolloff, flatness, zcr, rms):
        v = np.asarray(v, dtype=np.float64)[:n]
        parts.append(np.array([v.mean(), v.std()]))
    vals = np.concatenate(parts)
    vals = np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    if vals.size != len(DESCRIPTOR_NAMES):  # pragma: no cover - guarded by tests
        raise AnalysisError(f"descriptor length {vals.size} != {len(DESCRIPTOR_NAMES)}")
    return LoopDescriptors(values=vals, duration=float(duration))


# --------------------------------------------------------------------------- folder level

def descriptor_cache_key(content_hash: str) -> str:
    """Cache key of one file's descriptors (content hash + version + code version)."""
    from .cache import make_key

    return make_key(content_hash, {"v": DESCRIPTOR_VERSION, "sr": DESC_SR, "n_fft": DESC_N_FFT,
                                   "hop": DESC_HOP}, kind="loop-desc")


def descriptor_cache(cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True):
    """The :class:`engine.cache.DiskCache` descriptors live in (``<cache_dir>/contact``)."""
    from .cache import DiskCache

    return DiskCache(Path(cache_dir) / "contact", enabled=use_cache)


@dataclass
class DescriptorSet:
    """Descriptors of the usable files, in input order.

    Attributes
    ----------
    files : list of str
    values : ndarray, shape (n, len(DESCRIPTOR_NAMES))
    failures : list of (file, message)
    """

    files: list
    values: np.ndarray
    failures: list

    def frame(self):
        """DataFrame: ``file`` then one column per descriptor name."""
        import pandas as pd

        df = pd.DataFrame(self.values, columns=list(DESCRIPTOR_NAMES))
        df.insert(0, "file", self.files)
        return df


def _desc_job(path):
    from .audio import load_mono

    try:
        y, _ = load_mono(path, DESC_SR, min_duration=0.2)
        return loop_descriptors(y, DESC_SR), None
    except (LoopLabError, OSError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return None, f"{Path(str(path)).name}: descriptors failed ({type(exc).__name__}: {exc})"


def compute_descriptors(paths, *, cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True,
                        progress=None) -> DescriptorSet:
    """Descriptors of ``paths`` (each decoded once; cached per file content).

    Files that cannot be used are listed in ``failures`` and skipped.

    Parameters
    ----------
    paths : iterable of str or Path
    cache_dir : str or Path
        Cache root (entries under ``<cache_dir>/contact``, beside the rhythm sequences).
    use_cache : bool
    progress : callable, optional
        ``progress(done, total, message)``.
    """
    from .audio import content_hash

    paths = [str(p) for p in paths]
    cache = descriptor_cache(cache_dir, use_cache)
    vals, files, fails = [], [], []
    for k, p in enumerate(paths):
        try:
            key = descriptor_cache_key(content_hash(p))
        except OSError as exc:
            fails.append((p, f"cannot read file ({exc.strerror or exc})"))
            continue
        d = cache.get(key)
        if d is None:
            d, err = _desc_job(p)
            if err is not None:
                fails.append((p, err))
                if progress:
                    progress(k + 1, len(paths), Path(p).name)
                continue
            cache.put(key, d)
        vals.append(d.values)
        files.append(p)
        if progress:
            progress(k + 1, len(paths), Path(p).name)
    V = np.vstack(vals) if vals else np.zeros((0, len(DESCRIPTOR_NAMES)), np.float32)
    return DescriptorSet(files=files, values=V, failures=fails)


__all__ = ["DESCRIPTOR_NAMES", "HARMONY_COLUMNS", "TIMBRE_COLUMNS", "LoopDescriptors",
           "DescriptorSet", "loop_descriptors", "compute_descriptors", "descriptor_cache_key"]
