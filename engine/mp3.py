"""MP3 previews, written by soundfile/libsndfile's LAME encoder (no ffmpeg).

A preview is made from the finished (normalised) loop. Only when MP3 cannot
carry the source layout or rate is it downmixed to stereo
(:func:`downmix_stereo`) and resampled with soxr to an MPEG rate
(:func:`prepare_mp3`); the encoded file is decoded again and re-encoded
quieter if lossy coding pushed it over the ceiling (:func:`write_mp3`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic import atomic_path
from .audio import as_2d

#: Sample rates an MP3 (MPEG-1/2/2.5 layer III) can carry.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _mp3_rate(sr: int) -> int:
    """The MP3-legal rate to use for a source at ``sr``."""
    if sr in MP3_RATES:
        return sr
    if sr > 48000:
        return 44100 if sr % 11025 == 0 else 48000
    return min(r for r in MP3_RATES if r >= sr) if sr < 48000 else 48000


def downmix_stereo(x: np.ndarray) -> np.ndarray:
    """Fold any layout to at most two channels (WAV channel order).

    Mono and stereo pass through. 3.0, quad, 5.0, 5.1 and 7.1 use the ITU
    downmix (centre and surrounds at -3 dB, LFE dropped); other layouts are
    averaged to mono and sent to both sides.
    """
    x = as_2d(x)
    c = x.shape[1]
    if c <= 2:
        return x
    g = np.float32(1 / np.sqrt(2))
    if c == 3:
        left, right = x[:, 0] + g * x[:, 2], x[:, 1] + g * x[:, 2]
    elif c == 4:
        left, right = x[:, 0] + g * x[:, 2], x[:, 1] + g * x[:, 3]
    elif c == 5:
        left, right = x[:, 0] + g * x[:, 2] + g * x[:, 3], x[:, 1] + g * x[:, 2] + g * x[:, 4]
    elif c == 6:
        left, right = x[:, 0] + g * x[:, 2] + g * x[:, 4], x[:, 1] + g * x[:, 2] + g * x[:, 5]
    elif c == 8:
        left = x[:, 0] + g * (x[:, 2] + x[:, 4] + x[:, 6])
        right = x[:, 1] + g * (x[:, 2] + x[:, 5] + x[:, 7])
    else:
        left = right = x.mean(axis=1)
    return np.stack([left, right], axis=1).astype(np.float32)


def _mp3_compression(kbps: float, sr: int) -> float:
    """libsndfile's compression level giving ``kbps`` at constant bitrate."""
    if sr >= 32000:
        top, bottom = 320.0, 32.0
    elif sr >= 16000:
        top, bottom = 160.0, 8.0
    else:
        top, bottom = 64.0, 8.0
    kbps = min(max(float(kbps), bottom), top)
    # libsndfile truncates top - c * (top - bottom) to int: aim half a kbps above
    return float(min(max((top - kbps - 0.5) / (top - bottom), 0.0), 1.0))


def prepare_mp3(audio: np.ndarray, sr: int, ceiling_dbfs: float = -1.0) -> tuple[np.ndarray, int]:
    """Audio an MP3 can carry: at most 2 channels, an MPEG sample rate.

    Downmixing and soxr resampling happen only when needed; if either pushed
    a sample over the ceiling, the preview is scaled back under it.
    """
    channels = as_2d(audio).shape[1]
    y = downmix_stereo(audio)
    rate = _mp3_rate(sr)
    changed = channels > 2
    if rate != sr:
        import soxr

        y = soxr.resample(y, sr, rate, quality="HQ").astype(np.float32)
        changed = True
    if changed:
        ceiling = 10 ** (ceiling_dbfs / 20.0)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > ceiling:
            y = (y * (ceiling / peak * (1 - 1e-6))).astype(np.float32)
    return np.ascontiguousarray(y, dtype=np.float32), rate


def write_mp3(path, audio: np.ndarray, sr: int, bitrate_kbps: int = 192,
              ceiling_dbfs: float = -1.0) -> tuple[Path, int, int]:
    """Write an MP3 preview atomically with libsndfile's LAME encoder.

    The decoded preview is checked against the ceiling (MP3 coding can
    overshoot the input's peak) and re-encoded quieter when needed, so the
    preview never clips either.

    Returns ``(path, rate, channels)`` of the file written.
    """
    y, rate = prepare_mp3(audio, sr, ceiling_dbfs)
    ceiling = 10 ** (ceiling_dbfs / 20.0)
    path = Path(path)
    with atomic_path(path, suffix=".mp3") as tmp:
        for _ in range(4):
            sf.write(tmp, y, rate, format="MP3", subtype="MPEG_LAYER_III",
                     bitrate_mode="CONSTANT",
                     compression_level=_mp3_compression(bitrate_kbps, rate))
            # lossy coding can overshoot the input peak by a dB or more: check the
            # decoded preview and re-encode quieter if it went over the ceiling
            decoded, _ = sf.read(tmp, dtype="float32")
            peak = float(np.max(np.abs(decoded))) if decoded.size else 0.0
            if peak <= ceiling:
                break
            y = (y * (ceiling / peak * 0.98)).astype(np.float32)
    return path, rate, y.shape[1]
