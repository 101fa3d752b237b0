"""Per-loop timbre/harmony descriptors: fixed named vector, sensible distances, cache."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from engine.descriptors import (DESCRIPTOR_NAMES, HARMONY_COLUMNS, TIMBRE_COLUMNS,
                                compute_descriptors, loop_descriptors)
from engine.synth import synth_loop


def _loop(pattern="four_on_floor", key="A minor", timbre_seed=0, bpm=120.0):
    t = synth_loop(pattern, bpm, bars=2, key=key, seed=timbre_seed,
                   instruments=("drums", "bass", "chords"))
    return t.audio.astype(np.float32), t.sr


def test_vector_is_fixed_length_named_and_finite():
    y, sr = _loop()
    d = loop_descriptors(y, sr)
    assert d.values.shape == (len(DESCRIPTOR_NAMES),) == (170,)
    assert len(set(DESCRIPTOR_NAMES)) == len(DESCRIPTOR_NAMES)
    assert set(TIMBRE_COLUMNS) | set(HARMONY_COLUMNS) == set(DESCRIPTOR_NAMES)
    assert np.all(np.isfinite(d.values))
    silent = loop_descriptors(np.zeros(22050, np.float32), 22050)
    assert np.all(np.isfinite(silent.values))
    # another rate is resampled to the analysis rate first
    import soxr
    y44 = soxr.resample(y, sr, 44100)
    d44 = loop_descriptors(y44, 44100)
    ref = loop_descriptors(soxr.resample(y44, 44100, 22050, quality="HQ"), 22050)
    assert np.allclose(d44.values, ref.values, atol=1e-5)


def test_chroma_follows_the_key():
    a, sr = _loop(key="A minor")
    b, _ = _loop(key="A minor", timbre_seed=3)
    c, _ = _loop(key="F# major")
    ca, cb, cc = (loop_descriptors(x, sr).chroma for x in (a, b, c))
    def cos(u, v):
        u, v = u - u.mean(), v - v.mean()
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    assert cos(ca, cb) > cos(ca, cc) + 0.3
    assert int(np.argmax(ca)) in (9, 0, 4)          # A, C or E dominate A minor


def test_folder_function_caches_and_skips_bad_files(tmp_path):
    y, sr = _loop()
    good = tmp_path / "a loop é.wav"
    sf.write(good, y, sr)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    cache = tmp_path / "cache"
    ds = compute_descriptors([good, bad], cache_dir=cache)
    assert ds.files == [str(good)] and ds.values.shape == (1, 170)
    assert len(ds.failures) == 1 and "bad.wav" in ds.failures[0][0]
    assert any(cache.rglob("loop-desc-*.joblib"))
    again = compute_descriptors([good], cache_dir=cache)
    assert np.array_equal(again.values, ds.values)
    assert list(ds.frame().columns[:2]) == ["file", DESCRIPTOR_NAMES[0]]
