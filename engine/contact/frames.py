"""Frame-level rhythm sequence of one signal (4 channels, one frame rate).

See :mod:`engine.contact` ("Rhythm sequences") for the channels and the crop window.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..config import setting


@dataclass(frozen=True)
class SequenceParams:
    """How rhythm sequences (and the per-loop BPM/key) are computed.

    Attributes
    ----------
    sr, hop_length, n_fft : int
        Analysis rate and STFT frame (one frame rate for every file).
    max_seconds : float
        Crop window (seconds from the start).
    max_frames : int
        Crop window (frames); the smaller of the two windows applies.
    low_hz : tuple of float
        Band of the low-frequency energy channel.
    min_bpm, max_bpm : float
        DJ tempo range the estimate is folded into.
    loop_snap : bool
        Refine the tempo from the loop's length (see :mod:`engine.contact`).
    bpm_source : {"onset", "rhythm"}
        Onset-autocorrelation tempo (fast) or :func:`engine.rhythm.estimate_bpm`.
    channel_weights : tuple of 4 floats
        Multipliers of the four z-scored channels (see :mod:`engine.contact`: the
        periodicity channel enters at 0.1).
    """

    sr: int = setting(22050, "analysis sample rate")
    hop_length: int = 512
    n_fft: int = 2048
    max_seconds: float = setting(
        20.0, "crop window in seconds (files are cropped, never resampled in time)")
    max_frames: int = setting(
        600, "crop window in frames of 512 samples (the smaller window applies)")
    low_hz: tuple = (20.0, 180.0)
    min_bpm: float = 70.0
    max_bpm: float = 180.0
    loop_snap: bool = setting(
        True, "do not refine BPM from the loop length (inputs are not whole bars)",
        flag="--no_loop_snap", negate=True)
    bpm_source: str = setting("onset", "onset autocorrelation (fast) or the beat tracker of "
                              "engine.rhythm", choices=("onset", "rhythm"))
    channel_weights: tuple = (1.0, 1.0, 1.0, 0.1)

    @property
    def fps(self) -> float:
        return self.sr / float(self.hop_length)

    @property
    def window_frames(self) -> int:
        """Frames kept per file: min(max_frames, frames in max_seconds)."""
        by_time = int(math.floor(self.max_seconds * self.fps)) + 1
        if self.max_frames and self.max_frames > 0:
            return max(8, min(int(self.max_frames), by_time))
        return max(8, by_time)

    @property
    def window_seconds(self) -> float:
        return (self.window_frames - 1) / self.fps

    def as_dict(self) -> dict:
        d = asdict(self)
        d["low_hz"] = list(self.low_hz)
        d["channel_weights"] = list(self.channel_weights)
        return d


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = float(x.std())
    if not np.isfinite(sd) or sd < 1e-8:
        return np.zeros_like(x)
    return (x - x.mean()) / sd


@dataclass(frozen=True)
class RhythmFeatures:
    """Frame-level rhythm data of one signal (window only; see :class:`SequenceParams`).

    Attributes
    ----------
    sequence : ndarray, shape (T, 4), float32
        Weighted z-onset, its first difference, z low-band energy, z periodicity.
    onset_envelope : ndarray (T,)
        Raw onset strength (for tempo and the loop-length grid check).
    tempogram : ndarray (lags, T)
        Autocorrelation tempogram of the onset envelope (8-s window, as
        ``librosa.feature.tempo`` uses).
    """

    sequence: np.ndarray
    onset_envelope: np.ndarray
    tempogram: np.ndarray


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft)


def rhythm_features(y: np.ndarray, sr: int, params: SequenceParams = SequenceParams()
                    ) -> RhythmFeatures:
    """Rhythm sequence of a mono signal's first ``params.window_seconds``.

    One STFT (n_fft 2048, hop 512) feeds the onset envelope (log-mel flux,
    as ``librosa.onset.onset_strength``) and the 20-180 Hz energy; one
    tempogram of the onset envelope gives the periodicity channel and, later,
    the tempo.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Mono audio at ``sr`` (must equal ``params.sr``).
    sr : int
    params : SequenceParams

    Returns
    -------
    RhythmFeatures
    """
    import librosa

    if sr != params.sr:
        raise ValueError(f"signal rate {sr} differs from params.sr {params.sr}")
    hop = params.hop_length
    T_max = params.window_frames
    yy = np.ascontiguousarray(y[: (T_max - 1) * hop + 1], dtype=np.float32)
    mag = np.abs(librosa.stft(yy, n_fft=params.n_fft, hop_length=hop, center=True))
    mel = _mel_basis(sr, params.n_fft) @ (mag * mag)      # BLAS, not librosa's einsum
    env = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr)
    T = min(T_max, env.shape[0])
    env = env[:T]
    onset_z = _z(env)
    diff = np.diff(onset_z, prepend=onset_z[0])
    freqs = librosa.fft_frequencies(sr=sr, n_fft=params.n_fft)
    band = (freqs >= params.low_hz[0]) & (freqs <= params.low_hz[1])
    low_z = _z(mag[band, :T].mean(axis=0)) if band.any() else np.zeros(T)
    # one tempogram (librosa.feature.tempo's own 8-s window) for periodicity and tempo
    fps = params.fps
    win = int(min(round(8.0 * fps), max(16, T)))
    tg = librosa.feature.tempogram(onset_envelope=env, sr=sr, hop_length=hop, win_length=win)
    lo = max(1, int(math.floor(60.0 * fps / 300.0)))
    hi = min(tg.shape[0], int(math.ceil(60.0 * fps / 30.0)) + 1)
    period_z = _z(tg[lo:hi].max(axis=0)[:T]) if hi > lo else np.zeros(T)
    seq = np.stack([onset_z, diff, low_z, period_z], axis=1)
    seq = (seq * np.asarray(params.channel_weights, dtype=np.float64)[None, :]).astype(np.float32)
    return RhythmFeatures(seq, env.astype(np.float64), tg)
