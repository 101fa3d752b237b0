"""Decode and validate audio files.

soundfile (libsndfile) reads WAV, AIFF, FLAC, OGG/Opus and MP3 directly.
m4a/AAC and anything else libsndfile refuses go through ffmpeg when it is on
the PATH; without it the error says so.

Two ways in:

* :func:`load_mono` gives the analysis copy: mono (mean of channels),
  resampled with soxr, decoded block by block so a 60-minute mix never sits in
  memory at its source rate.
* :func:`read_segment` gives export-quality audio: source rate, every channel,
  only the samples asked for.

Both validate and raise :class:`~engine.errors.AudioError` naming the file and
the problem: missing, empty, not audio, truncated (a warning: the readable part
is used), non-finite samples, too short, silent.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .config import AUDIO_EXTENSIONS, DEFAULT_CACHE_DIR
from .errors import AudioError

#: Peak below which a file counts as silent (-90 dBFS).
SILENCE_PEAK = 10 ** (-90 / 20)

#: Extensions that always go through ffmpeg (libsndfile has no AAC decoder).
FFMPEG_ONLY = (".m4a", ".aac", ".mp4")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, without its samples.

    Attributes
    ----------
    path : str
        The file as given.
    readable_path : str
        A file soundfile can read: ``path`` itself, or a WAV that ffmpeg
        decoded into the cache.
    sr, channels, frames : int
        Source sample rate, channel count and length in samples.
    format, subtype : str
        libsndfile's names ("WAV", "PCM_24", ...).
    decoder : str
        "soundfile" or "ffmpeg".
    warnings : tuple of str
        Problems that did not stop decoding (e.g. a truncated file).
    """

    path: str
    readable_path: str
    sr: int
    channels: int
    frames: int
    format: str
    subtype: str
    decoder: str = "soundfile"
    warnings: tuple = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return self.frames / float(self.sr) if self.sr else 0.0

    @property
    def name(self) -> str:
        return Path(self.path).name


def find_audio_files(folder, recursive: bool = True) -> list[Path]:
    """Every supported audio file below ``folder``, sorted by path.

    Parameters
    ----------
    folder : str or Path
    recursive : bool
        Walk subfolders too (default).

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}")
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern)
             if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
             and not p.name.startswith("._")]
    return sorted(files, key=lambda p: str(p))


def content_hash(path, chunk: int = 1 << 20) -> str:
    """BLAKE2b digest of a file's bytes (the cache key's audio part)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def hash_files(paths) -> tuple[list, dict]:
    """Content hashes of many files, with the unreadable ones reported.

    Parameters
    ----------
    paths : sequence of str or Path

    Returns
    -------
    hashes : list of str or None
        :func:`content_hash` of each path, ``None`` where it could not be read.
    failures : dict
        Index -> ``"cannot read file (<reason>)"`` for every ``None`` hash.
    """
    hashes: list = []
    failures: dict = {}
    for k, p in enumerate(paths):
        try:
            hashes.append(content_hash(p))
        except OSError as exc:
            hashes.append(None)
            failures[k] = f"cannot read file ({exc.strerror or exc})"
    return hashes, failures


def _declared_wav_frames(path: Path, block_align: int) -> int | None:
    """Frames a RIFF/WAVE header promises, or None if not a plain WAV.

    libsndfile quietly shortens a truncated WAV to what is there; reading the
    ``data`` chunk size ourselves lets us warn the user.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            while True:
                hdr = fh.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack(endian + "I", hdr[4:])[0]
                if cid == b"data":
                    if size in (0, 0xFFFFFFFF):  # streaming placeholder
                        return None
                    return size // max(block_align, 1)
                fh.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


def _ffmpeg_decode(path: Path, cache_dir: Path) -> Path:
    """Decode ``path`` with ffmpeg to a float WAV in the cache; return it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(path, f"{path.suffix or 'this'} files need ffmpeg to decode",
                         "install ffmpeg (e.g. apt-get install ffmpeg) or convert to WAV/FLAC")
    cache_dir = Path(cache_dir) / "decoded"
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"{content_hash(path)}.wav"
    if out.exists():
        return out
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=cache_dir)
    os.close(fd)
    proc = subprocess.run([exe, "-v", "error", "-nostdin", "-y", "-i", str(path),
                           "-vn", "-c:a", "pcm_f32le", tmp],
                          capture_output=True, text=True)
    if proc.returncode != 0 or os.path.getsize(tmp) <= 44:
        os.unlink(tmp)
        detail = (proc.stderr or "").strip().splitlines()[-1:] or ["no audio stream"]
        detail = detail[0].replace(str(path), path.name).split(": ")[-1]
        raise AudioError(path, f"ffmpeg could not decode it: {detail}")
    os.replace(tmp, out)
    return out


def probe(path, cache_dir=DEFAULT_CACHE_DIR) -> AudioInfo:
    """Check that ``path`` is a readable audio file and describe it.

    Raises
    ------
    AudioError
        Missing, empty, not audio, or undecodable.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if p.is_dir():
        raise AudioError(p, "is a folder, not an audio file")
    size = p.stat().st_size
    if size == 0:
        raise AudioError(p, "file is empty (0 bytes)")
    readable, decoder = p, "soundfile"
    if p.suffix.lower() in FFMPEG_ONLY:
        readable, decoder = _ffmpeg_decode(p, Path(cache_dir)), "ffmpeg"
    try:
        info = sf.info(str(readable))
    except (sf.LibsndfileError, RuntimeError) as exc:
        if decoder == "soundfile" and shutil.which("ffmpeg"):
            try:
                readable, decoder = _ffmpeg_decode(p, Path(cache_dir)), "ffmpeg"
            except AudioError as ff_exc:
                raise AudioError(p, "not a readable audio file",
                                 f"soundfile said: {_short(exc)}; ffmpeg said: {ff_exc.problem}"
                                 ) from None
            info = sf.info(str(readable))
        else:
            raise AudioError(p, "not a readable audio file",
                             f"decoder said: {_short(exc)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(p, "contains no audio samples")
    warnings = []
    if decoder == "soundfile" and info.format in ("WAV", "WAVEX"):
        bytes_per = _subtype_bytes(info.subtype)
        if bytes_per:
            declared = _declared_wav_frames(p, bytes_per * info.channels)
            if declared is not None and declared > info.frames + 1:
                warnings.append(
                    f"file looks truncated: header promises {declared / info.samplerate:.2f} s, "
                    f"file holds {info.frames / info.samplerate:.2f} s; using what is there")
    return AudioInfo(path=str(p), readable_path=str(readable), sr=int(info.samplerate),
                     channels=int(info.channels), frames=int(info.frames),
                     format=str(info.format), subtype=str(info.subtype),
                     decoder=decoder, warnings=tuple(warnings))


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1][:160]


def _subtype_bytes(subtype: str) -> int | None:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
            "FLOAT": 4, "DOUBLE": 8, "ULAW": 1, "ALAW": 1}.get(subtype)


def _check_samples(path, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioError(path, f"contains {bad} NaN/infinite samples",
                         "the file is corrupt; re-export it from its source")


def load_mono(path, sr: int = 22050, *, min_duration: float = 0.5,
              block_seconds: float = 30.0, cache_dir=DEFAULT_CACHE_DIR,
              info: AudioInfo | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Decode a file to a validated mono float32 signal at ``sr``.

    Channels are averaged; resampling uses soxr (high quality) in a stream, so
    memory stays proportional to the output, not to the source.

    Parameters
    ----------
    path : str or Path
    sr : int
        Output rate (analysis rate).
    min_duration : float
        Shorter files raise :class:`AudioError`.
    block_seconds : float
        Decode block size.
    info : AudioInfo, optional
        Result of :func:`probe`, if already known.

    Returns
    -------
    y : ndarray, shape (n,), float32
    info : AudioInfo

    Raises
    ------
    AudioError
        Not audio, non-finite samples, shorter than ``min_duration``, silent.
    """
    import soxr

    info = info or probe(path, cache_dir)
    if info.duration < min_duration:
        raise AudioError(info.path, f"too short ({info.duration:.2f} s; need at least "
                                    f"{min_duration:g} s)")
    block = max(int(block_seconds * info.sr), 1024)
    # preallocate the output (the resampler's exact length is known only at the end)
    y = np.empty(int(np.ceil(info.frames * sr / info.sr)) + 64, np.float32)
    filled = 0

    def put(x):
        nonlocal y, filled
        if filled + x.size > y.size:
            y = np.resize(y, filled + x.size)
        y[filled:filled + x.size] = x
        filled += x.size

    stream = None if info.sr == sr else soxr.ResampleStream(info.sr, sr, 1, dtype="float32",
                                                            quality="HQ")
    peak = 0.0
    try:
        with sf.SoundFile(info.readable_path) as fh:
            for chunk in fh.blocks(blocksize=block, dtype="float32", always_2d=True):
                _check_samples(info.path, chunk)
                mono = chunk.mean(axis=1, dtype=np.float32)
                if mono.size:
                    peak = max(peak, float(np.max(np.abs(mono))))
                put(mono if stream is None else stream.resample_chunk(mono))
            if stream is not None:
                put(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except sf.LibsndfileError as exc:
        raise AudioError(info.path, "could not be decoded", _short(exc)) from None
    y = y[:filled]
    if y.size < min_duration * sr * 0.5:
        raise AudioError(info.path, "decoded to almost no audio")
    if peak < SILENCE_PEAK:
        raise AudioError(info.path, "is silent (peak below -90 dBFS)")
    return np.ascontiguousarray(y, dtype=np.float32), info


def as_2d(x: np.ndarray) -> np.ndarray:
    """``x`` as shape (n, channels): a 1-D signal becomes one column."""
    x = np.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def read_segment(info: AudioInfo, start: int, stop: int) -> np.ndarray:
    """Samples ``start:stop`` at the source rate, shape (n, channels), float32.

    Out-of-range bounds are clipped to the file.
    """
    start = int(max(0, start))
    stop = int(min(info.frames, stop))
    if stop <= start:
        return np.zeros((0, info.channels), np.float32)
    x, _ = sf.read(info.readable_path, start=start, stop=stop, dtype="float32",
                   always_2d=True)
    _check_samples(info.path, x)
    return x


