"""Embedding backends, the per-track timeline, pooling per candidate, and the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from engine import openl3 as ol3
from engine.openl3 import weights as ol3_weights
from openl3_fixtures import random_weights, write_weights_h5
from engine.cli import main
from engine.embeddings import (EmbeddingTimeline, OpenL3Embedder, SpectralEmbedder,
                               embedding_timeline, get_embedder, pool_segments,
                               pooled_feature_names, spectral_feature_names)
from engine.errors import AnalysisError, ModelError


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """No weights anywhere: env var unset, no openl3 package, empty default folder."""
    monkeypatch.delenv(ol3.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(ol3_weights, "installed_openl3_dir", lambda: None)
    monkeypatch.setattr(ol3_weights, "DEFAULT_WEIGHTS_DIR", tmp_path / "no_models")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    write_weights_h5(d / "openl3_audio_mel128_music.h5", random_weights(1))
    return d


@pytest.fixture(scope="module")
def drums124():
    from engine.synth import synth_track

    return synth_track(124.0, n_bars=8, seed=2, sr=22050, key=None, instruments=("drums",))


@pytest.fixture(scope="module")
def drums150():
    from engine.synth import synth_track

    return synth_track(150.0, n_bars=8, seed=2, sr=22050, key=None, instruments=("drums",))


# --------------------------------------------------------------------------- spectral

def test_spectral_backend_is_named_spectral_and_follows_openl3_windows():
    rng = np.random.default_rng(0)
    emb = get_embedder("spectral")
    assert isinstance(emb, SpectralEmbedder)
    assert emb.name == "spectral" and "openl3" not in emb.name.lower()
    assert emb.dim == len(spectral_feature_names()) == 88
    for seconds, hop, center, n in ((3.0, 0.1, True, 26), (2.5, 0.1, True, 21),
                                    (2.5, 0.25, False, 7)):
        sr = 22050
        y = rng.normal(0, 0.1, int(seconds * sr)).astype(np.float32)
        values, ts = emb.embed(y, sr, hop_size=hop, center=center)
        assert values.shape == (n, 88) and values.dtype == np.float32
        assert np.all(np.isfinite(values))
        np.testing.assert_allclose(ts, np.arange(n) * hop)


def test_spectral_tempo_bands_follow_the_tempo(drums124, drums150):
    emb = SpectralEmbedder()
    idx = [i for i, n in enumerate(emb.feature_names) if n.startswith("tempo_")]
    bands = [emb.feature_names[i] for i in idx]
    for track, band in ((drums124, "tempo_120_140bpm"), (drums150, "tempo_140_160bpm")):
        values, _ = emb.embed(track.audio, track.sr, hop_size=0.5)
        strength = values[:, idx].mean(axis=0)
        assert bands[int(np.argmax(strength))] == band


def test_spectral_level_tracks_loudness(drums124):
    emb = SpectralEmbedder()
    y = drums124.audio.mean(axis=1)
    loud, _ = emb.embed(y, drums124.sr, hop_size=0.5)
    quiet, _ = emb.embed(y * 0.1, drums124.sr, hop_size=0.5)
    i = emb.feature_names.index("level_db")
    diff = loud[:, i] - quiet[:, i]                 # 20 dB, in units of 80 dB
    assert abs(np.median(diff) - 0.25) < 5e-3       # (silent frames sit at the floor)
    assert np.all(diff > 0) and np.all(diff < 0.25 + 1e-3)


# --------------------------------------------------------------------------- factory

def test_auto_without_weights_falls_back_with_a_note(no_weights):
    emb = get_embedder("auto")
    assert emb.name == "spectral"
    assert "no OpenL3 weights" in emb.note and "spectral" in emb.note
    with pytest.raises(ModelError, match=r"no OpenL3 weights openl3_audio_mel128_music\.h5"):
        get_embedder("openl3")
    with pytest.raises(ModelError, match="unknown embedding backend"):
        get_embedder("vggish")
    with pytest.raises(ModelError, match="embedding_size"):
        get_embedder("openl3", embedding_size=128)


def test_auto_finds_weights_through_the_environment(no_weights, monkeypatch, weights_dir):
    monkeypatch.setenv(ol3.WEIGHTS_ENV, str(weights_dir))
    emb = get_embedder("auto", embedding_size=6144)
    assert isinstance(emb, OpenL3Embedder)
    assert emb.name == "openl3-mel128-music-6144" and emb.dim == 6144
    assert emb.cache_key.startswith("openl3-mel128-music-6144:openl3_audio_mel128_music.h5:")
    y = np.random.default_rng(3).normal(0, 0.1, 48000)
    values, ts = emb.embed(y, 48000, hop_size=0.5, center=False)
    assert values.shape == (1, 6144) and ts.tolist() == [0.0]
    # content type selects the file: no env file for mel128/env
    with pytest.raises(ModelError, match="openl3_audio_mel128_env.h5"):
        get_embedder("openl3", content_type="env")


# --------------------------------------------------------------------------- timeline + pooling

def _toy_timeline(center=True):
    values = np.stack([np.arange(10, dtype=np.float32), -np.arange(10, dtype=np.float32)], 1)
    return EmbeddingTimeline(values=values, timestamps=np.arange(10) * 0.5, backend="toy",
                             hop_size=0.5, center=center)


def test_pool_segments_mean_max_and_fallback():
    tl = _toy_timeline()                           # centres 0, 0.5, ..., 4.5
    X = pool_segments(tl, [0.0, 1.0, 1.1, 9.0, 2.2], [2.0, 3.0, 1.2, 10.0, 2.2])
    assert X.shape == (5, 4) and X.dtype == np.float32
    np.testing.assert_allclose(X[0], [1.5, -1.5, 3, 0])        # windows 0..3
    np.testing.assert_allclose(X[1], [3.5, -3.5, 5, -2])       # windows 2..5 (end excluded)
    np.testing.assert_allclose(X[2], [2, -2, 2, -2])           # tiny: nearest centre 1.0
    np.testing.assert_allclose(X[3], [9, -9, 9, -9])           # past the end: last window
    np.testing.assert_allclose(X[4], [4, -4, 4, -4])           # empty: nearest to 2.2 is 2.0
    # not centred: a window's centre is its start + 0.5 s
    Xs = pool_segments(_toy_timeline(center=False), [0.0], [2.0])
    np.testing.assert_allclose(Xs[0], [1.0, -1.0, 2, 0])       # centres 0.5, 1.0, 1.5
    assert pooled_feature_names(tl) == ["emb_mean_000", "emb_mean_001", "emb_max_000",
                                        "emb_max_001"]
    assert pooled_feature_names(6144)[6143] == "emb_mean_6143"
    assert len(pooled_feature_names(6144)) == 12288


def test_pool_segments_rejects_bad_input():
    tl = _toy_timeline()
    with pytest.raises(AnalysisError, match="same length"):
        pool_segments(tl, [0, 1], [2])
    with pytest.raises(AnalysisError, match="finite"):
        pool_segments(tl, [np.nan], [2])
    empty = EmbeddingTimeline(np.zeros((0, 2), np.float32), np.zeros(0), "toy")
    with pytest.raises(AnalysisError, match="empty"):
        pool_segments(empty, [0], [1])


def test_timeline_on_a_track_pools_bars(drums124, tmp_path):
    tr = drums124
    tl = embedding_timeline(tr.audio, tr.sr, SpectralEmbedder(), hop_size=0.5)
    assert tl.backend == "spectral" and tl.dim == 88
    duration = tr.audio.shape[0] / tr.sr
    assert len(tl) == ol3.window_count(ol3.resampled_length(tr.audio.shape[0], tr.sr), 0.5)
    assert tl.timestamps[-1] <= duration + 0.5
    bars = tr.truth.downbeats
    starts, ends = bars[:-1], bars[1:]
    X = pool_segments(tl, starts, ends)
    assert X.shape == (len(starts), 176)
    inside = (tl.centers >= starts[2]) & (tl.centers < ends[2])
    np.testing.assert_allclose(X[2, :88], tl.values[inside].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(X[2, 88:], tl.values[inside].max(axis=0))
    # save / load round trip
    p = tl.save(tmp_path / "tl.npz")
    back = EmbeddingTimeline.load(p)
    np.testing.assert_array_equal(back.values, tl.values)
    np.testing.assert_array_equal(back.timestamps, tl.timestamps)
    assert back.backend == "spectral" and back.hop_size == 0.5 and back.center


# --------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def short_wav(tmp_path_factory):
    from engine.synth import synth_track

    tr = synth_track(124.0, n_bars=1, seed=4, sr=44100, lead_in_silence=0.0, tail_seconds=0.0)
    tr.audio = tr.audio[: int(1.5 * 44100)]
    return tr.write(tmp_path_factory.mktemp("cli") / "short clip.wav")


def test_cli_embed_spectral_and_auto_fallback(short_wav, tmp_path, capsys, no_weights):
    out = tmp_path / "spec.npz"
    assert main(["embed", "--input", str(short_wav), "--backend", "spectral", "--out", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "backend: spectral" in text and "not OpenL3" in text
    with np.load(out) as z:
        assert z["embedding"].shape == (11, 88)            # 1.5 s, hop 0.1, centred
        np.testing.assert_allclose(z["timestamps"], np.arange(11) * 0.1)
        assert str(z["backend"]) == "spectral"
    assert main(["embed", "--input", str(short_wav), "--out", str(tmp_path / "auto.npz"),
                 "--hop_size", "0.5", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "note: no OpenL3 weights" in text and "backend: spectral" in text
    assert main(["embed", "--input", str(short_wav), "--backend", "openl3",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "no OpenL3 weights" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_embed_openl3_with_weights(short_wav, tmp_path, capsys, weights_dir):
    out = tmp_path / "ol3.npz"
    assert main(["embed", "--input", str(short_wav), "--weights",
                 str(weights_dir / "openl3_audio_mel128_music.h5"), "--input_repr", "mel128",
                 "--content_type", "music", "--embedding_size", "512", "--hop_size", "0.5",
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "backend: openl3-mel128-music-512" in text
    with np.load(out) as z:
        assert z["embedding"].shape == (3, 512)            # 1.5 s + 0.5 s pad, hop 0.5
        assert z["embedding"].dtype == np.float32
        np.testing.assert_allclose(z["timestamps"], [0.0, 0.5, 1.0])
    assert list(tmp_path.glob(".ol3.npz*")) == []            # no temp file left behind


def test_cli_openl3_weights_listing_and_download(tmp_path, capsys, monkeypatch, no_weights,
                                                 weights_dir):
    assert main(["openl3-weights"]) == 1
    text = capsys.readouterr().out
    assert "mel128 music: not found" in text and "LOOPLAB_OPENL3_WEIGHTS -> not set" in text
    monkeypatch.setenv(ol3.WEIGHTS_ENV, str(weights_dir))
    assert main(["openl3-weights"]) == 0
    assert "valid, 4,689,860 parameters" in capsys.readouterr().out
    monkeypatch.setattr(ol3_weights, "WEIGHTS_URL", "http://127.0.0.1:9/{repr}_{content}.h5.gz")
    assert main(["openl3-weights", "--download", "--dest", str(tmp_path / "dl"),
                 "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "could not download OpenL3 weights" in err and "To install by hand" in err
