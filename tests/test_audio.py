"""Decoding and validation: every bad input gives a clear error naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.audio import find_audio_files, load_mono, probe, read_segment
from engine.errors import AudioError


def _tone(seconds=2.0, sr=44100, channels=2):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        probe(p)


def test_text_file_named_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        probe(p)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        probe(tmp_path / "nope.wav")


def test_truncated_wav_warns_and_uses_what_is_there(tmp_path):
    p = tmp_path / "cut.wav"
    sf.write(p, _tone(2.0), 44100, subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    info = probe(p)
    assert info.warnings and "truncated" in info.warnings[0]
    y, _ = load_mono(p, 22050)
    assert 0.9 < len(y) / 22050 < 1.1


def test_too_short_clip(tmp_path):
    p = tmp_path / "blip.wav"
    sf.write(p, _tone(0.3), 44100)
    with pytest.raises(AudioError, match=r"blip\.wav: too short \(0\.30 s"):
        load_mono(p, 22050)


def test_silence(tmp_path):
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros((44100 * 2, 2), np.float32), 44100)
    with pytest.raises(AudioError, match="is silent"):
        load_mono(p, 22050)


def test_nan_samples(tmp_path):
    p = tmp_path / "nan.wav"
    x = _tone(1.0)
    x[1000:1010] = np.nan
    sf.write(p, x, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN/infinite samples"):
        load_mono(p, 22050)


@pytest.mark.parametrize("sr,channels,subtype", [(8000, 1, "PCM_16"), (192000, 2, "FLOAT"),
                                                 (48000, 6, "PCM_24")])
def test_unusual_formats_decode(tmp_path, sr, channels, subtype):
    p = tmp_path / f"x_{sr}_{channels}.wav"
    sf.write(p, _tone(1.5, sr, channels), sr, subtype=subtype)
    y, info = load_mono(p, 22050)
    assert info.sr == sr and info.channels == channels
    assert abs(len(y) / 22050 - 1.5) < 0.01
    seg = read_segment(info, 0, sr // 2)
    assert seg.shape == (sr // 2, channels)


@pytest.mark.parametrize("ext", [".flac", ".ogg", ".mp3", ".aiff"])
def test_compressed_formats(tmp_path, ext):
    p = tmp_path / f"tone{ext}"
    sf.write(p, _tone(1.5), 44100)
    y, info = load_mono(p, 22050)
    assert abs(len(y) / 22050 - 1.5) < 0.1
    assert np.abs(y).max() > 0.1


def test_m4a_without_ffmpeg_says_so(tmp_path, monkeypatch):
    import engine.audio as audio

    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    p = tmp_path / "song.m4a"
    p.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 100)
    with pytest.raises(AudioError, match="need ffmpeg"):
        probe(p)


def test_find_audio_files_sorted_and_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ["b/2.wav", "a.FLAC", "c.txt", "b/1.mp3"]:
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a.FLAC", "b/1.mp3", "b/2.wav"]
    with pytest.raises(FileNotFoundError):
        find_audio_files(tmp_path / "missing")


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from engine.atomic import atomic_write_text

    p = atomic_write_text(tmp_path / "x.csv", "a,b\n")
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="ffmpeg not installed")
def test_m4a_decodes_through_ffmpeg(tmp_path):
    import subprocess

    src = tmp_path / "tone.wav"
    sf.write(src, _tone(2.0), 44100)
    m4a = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(m4a)],
                   check=True)
    info = probe(m4a, cache_dir=tmp_path / "cache")
    assert info.decoder == "ffmpeg" and info.channels == 2 and info.sr == 44100
    y, _ = load_mono(m4a, 22050, cache_dir=tmp_path / "cache", info=info)
    assert abs(len(y) / 22050 - 2.0) < 0.1 and np.abs(y).max() > 0.1
