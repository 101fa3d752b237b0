"""OpenL3 in NumPy: windows, frontend, weight files and the network.

No official weights exist on this machine, so every test builds its own
Keras-2-layout HDF5 file with random weights (and auto-generated layer names
unlike any fixed naming), then checks the engine against independent float64
computations written here from the documented facts.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from engine import openl3 as ol3
from engine.openl3 import weights as ol3_weights
from openl3_fixtures import write_weights_h5
from engine.errors import ModelError

SR = ol3.TARGET_SR


# --------------------------------------------------------------------------- helpers

def _random_layers(seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for spec in ol3.LAYER_SPECS:
        if spec[0] == "bn":
            c = spec[1]
            layers.append({"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                           "moving_mean": rng.normal(0, 0.3, c),
                           "moving_variance": rng.uniform(0.5, 2.0, c)})
        else:
            cin, cout = spec[1], spec[2]
            layers.append({"kernel": rng.normal(0, np.sqrt(2 / (9 * cin)), (3, 3, cin, cout)),
                           "bias": rng.normal(0, 0.05, cout)})
    layers[0]["moving_mean"][:] = -40.0            # the input BN sees dB in [-80, 0]
    layers[0]["moving_variance"][:] = 400.0
    return [{k: v.astype(np.float32) for k, v in d.items()} for d in layers]


def _write_keras_h5(path, layers, drop_weighted=None, shape_override=None, drop_array=None):
    """A Keras-2 ``save_weights`` file written by hand with h5py.

    Unweighted layers (input, activations, pooling, flatten) are listed too;
    weighted layer names are auto-style but offset (``conv2d_41``...), as in
    files saved after other models were built in the same session.
    """
    import h5py

    names, order = [], [("input_7", None)]
    nb, nc, na, npool = 12, 40, 30, 9
    for i, (spec, arrays) in enumerate(zip(ol3.LAYER_SPECS, layers)):
        if spec[0] == "bn":
            nb += 1
            name = f"batch_normalization_{nb}"
        else:
            nc += 1
            name = f"conv2d_{nc}"
        names.append(name)
        if drop_weighted != i:
            order.append((name, (spec[0], arrays)))
        if spec[0] == "bn" and i > 0:
            na += 1
            order.append((f"activation_{na}", None))
            if i in (4, 8, 12):
                npool += 1
                order.append((f"max_pooling2d_{npool}", None))
    order.append(("flatten_3", None))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in order])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for li, (name, content) in enumerate(order):
            g = f.create_group(name)
            if content is None:
                g.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kind, arrays = content
            keys = ("gamma", "beta", "moving_mean", "moving_variance") if kind == "bn" else (
                "kernel", "bias")
            wnames = [f"{name}/{k}:0" for k in keys]
            g.attrs["weight_names"] = np.array([w.encode() for w in wnames])
            for k, w in zip(keys, wnames):
                if drop_array == (name, k):
                    continue
                a = arrays[k]
                if shape_override and shape_override[0] == name and shape_override[1] == k:
                    a = np.zeros(shape_override[2], np.float32)
                g.create_dataset(w, data=a)
    return names


@pytest.fixture(scope="module")
def layers():
    return _random_layers(0)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, layers):
    path = tmp_path_factory.mktemp("ol3") / "random_weights.h5"
    _write_keras_h5(path, layers)
    return path


@pytest.fixture(scope="module")
def weights(weights_file):
    return ol3.load_weights(weights_file)


@pytest.fixture(scope="module")
def music():
    """3 s of a synthetic track at 48 kHz, mono, float64."""
    from engine.synth import synth_track

    tr = synth_track(124.0, n_bars=2, seed=3, sr=SR, lead_in_silence=0.0)
    return tr.audio.mean(axis=1).astype(np.float64)[: 3 * SR]


# --------------------------------------------------------------------------- independent references

def _bn(x, d):
    return d["gamma"] * (x - d["moving_mean"]) / np.sqrt(d["moving_variance"] + 0.001) + d["beta"]


def _conv_ref(x, kernel, bias):
    """3x3 'same' cross-correlation, straightforward loops over kernel taps (float64)."""
    H, W, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((H, W, kernel.shape[3])) + bias
    for dy in range(3):
        for dx in range(3):
            out += xp[dy:dy + H, dx:dx + W, :] @ kernel[dy, dx].astype(np.float64)
    return out


def _pool_ref(x, ph, pw):
    H, W, C = x.shape
    out = np.empty((H // ph, W // pw, C))
    for i in range(H // ph):
        for j in range(W // pw):
            out[i, j] = x[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw].max(axis=(0, 1))
    return out


def _forward_ref(spec, layers, pool):
    """Float64 OpenL3 forward pass from the facts, one window; returns (feature map, embedding)."""
    L = [{k: v.astype(np.float64) for k, v in d.items()} for d in layers]
    x = _bn(spec.astype(np.float64)[:, :, None], L[0])
    for ci in range(8):
        conv = L[1 + 2 * ci]
        if ci == 0:   # C_in = 1: check orientation with scipy's 2-D cross-correlation
            x = np.stack([correlate2d(x[:, :, 0], conv["kernel"][:, :, 0, o], mode="same")
                          + conv["bias"][o] for o in range(conv["kernel"].shape[3])], axis=-1)
        else:
            x = _conv_ref(x, conv["kernel"], conv["bias"])
        if ci < 7:
            x = np.maximum(_bn(x, L[2 + 2 * ci]), 0.0)
        if ci in (1, 3, 5):
            x = _pool_ref(x, 2, 2)
    return x, _pool_ref(x, *pool).reshape(-1)


def _slaney_mel_fb(n_mels, sr=48000, n_fft=2048):
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0

    def hz_to_mel(f):
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz)
                        / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)),
                        f_sp * m)

    hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        rise = (freqs - lo) / (c - lo)
        fall = (hi - freqs) / (hi - c)
        fb[m] = np.maximum(0.0, np.minimum(rise, fall)) * 2.0 / (hi - lo)
    return fb.astype(np.float32)


def _spec_ref(window, input_repr):
    """Documented librosa-frontend spectrogram of one window, float64, via a full FFT."""
    x = np.asarray(window, dtype=np.float64)
    if input_repr == "linear":
        n_fft, frames_from = 512, x
    else:
        n_fft = 2048
        frames_from = np.concatenate([np.zeros(1024), x, np.zeros(1024)])
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)     # periodic Hann
    n_frames = 1 + (frames_from.size - n_fft) // 242
    mag = np.empty((n_fft // 2 + 1, n_frames))
    for t in range(n_frames):
        seg = frames_from[t * 242:t * 242 + n_fft] * win
        mag[:, t] = np.abs(np.fft.fft(seg))[: n_fft // 2 + 1]
    if input_repr != "linear":
        mag = _slaney_mel_fb(128 if input_repr == "mel128" else 256).astype(np.float64) @ mag
    L = 10 * np.log10(np.maximum(mag, 1e-10))
    L = np.maximum(L, L.max() - 80.0)
    return L - L.max()


# --------------------------------------------------------------------------- windows

@pytest.mark.parametrize("seconds,hop,center,expected", [
    (3.0, 0.1, True, 26), (2.5, 0.1, True, 21), (2.5, 0.25, False, 7),
    (0.4, 0.1, False, 1), (0.4, 0.1, True, 1), (1.0, 0.5, False, 1), (1.01, 0.5, False, 2)])
def test_window_count_and_timestamps(seconds, hop, center, expected):
    n = int(round(seconds * SR))
    y = np.random.default_rng(0).normal(0, 0.1, n)
    frames, ts = ol3.frame_audio(y, SR, hop_size=hop, center=center)
    assert frames.shape == (expected, SR)
    assert ol3.window_count(n, hop, center) == expected
    np.testing.assert_allclose(ts, np.arange(expected) * hop)
    # window i starts at i*hop of the (centre-padded) signal, zero-padded at the end
    padded = np.concatenate([np.zeros(SR // 2 if center else 0), y, np.zeros(2 * SR)])
    h = int(hop * SR)
    for i in (0, expected - 1):
        np.testing.assert_array_equal(frames[i], padded[i * h:i * h + SR])


def test_stereo_is_mean_and_other_rates_use_resampy():
    import resampy

    rng = np.random.default_rng(1)
    st = rng.normal(0, 0.1, (44100, 2))
    frames, ts = ol3.frame_audio(st, 44100, hop_size=0.5, center=False)
    ref = resampy.resample(st.mean(axis=1), sr_orig=44100, sr_new=SR, filter="kaiser_best")
    assert ref.size == 48000 and frames.shape == (1, SR)
    np.testing.assert_allclose(frames[0], ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- frontend

@pytest.mark.parametrize("input_repr", ["mel128", "mel256", "linear"])
def test_frontend_matches_independent_float64(music, input_repr):
    frames, _ = ol3.frame_audio(music, SR, hop_size=0.75, center=True)
    frames = frames[[0, 2]]           # a start-padded window and a full one
    got = ol3.spectrogram(frames, input_repr)
    assert got.dtype == np.float32
    assert got.shape == (2,) + ol3.INPUT_SHAPES[input_repr]
    for b in range(2):
        ref = _spec_ref(frames[b], input_repr)
        assert ref.shape == ol3.INPUT_SHAPES[input_repr]
        np.testing.assert_allclose(got[b], ref, rtol=0, atol=2e-4)
        assert got[b].max() == 0.0 and got[b].min() >= -80.0
    assert got.min() == -80.0        # the top_db floor is reached in quiet bins


def test_frontend_matches_openl3_librosa_calls(music):
    """The exact librosa call chain openl3 0.4.2 uses for its librosa frontend."""
    import librosa

    frames, _ = ol3.frame_audio(music, SR, hop_size=1.0, center=False)
    x = np.asarray(frames[1])
    S = librosa.feature.melspectrogram(y=x, sr=SR, n_mels=256, n_fft=2048, hop_length=242,
                                       center=True, power=1.0)
    S = librosa.power_to_db(S=S, ref=1.0, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(ol3.spectrogram(x[None], "mel256")[0], S - S.max(), atol=1e-5)
    S = np.abs(librosa.stft(y=x, n_fft=512, hop_length=242, center=False))
    S = librosa.power_to_db(S=S, ref=1.0, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(ol3.spectrogram(x[None], "linear")[0], S - S.max(), atol=1e-5)


# --------------------------------------------------------------------------- weights

def test_load_weights_by_order_not_name(weights_file, weights, layers):
    assert len(weights.layers) == 16
    assert weights.n_params == 4_689_860
    assert weights.layer_names[0] == "batch_normalization_13"
    assert weights.layer_names[-1] == "conv2d_48"
    np.testing.assert_array_equal(weights.layers[15]["kernel"], layers[15]["kernel"])
    np.testing.assert_array_equal(weights.layers[14]["moving_variance"],
                                  layers[14]["moving_variance"])


def test_wrong_shape_is_a_clear_error(tmp_path, layers):
    path = tmp_path / "bad_shape.h5"
    names = _write_keras_h5(path, layers, shape_override=("conv2d_44", "kernel", (3, 3, 64, 32)))
    with pytest.raises(ModelError) as err:
        ol3.load_weights(path)
    msg = str(err.value)
    assert "bad_shape.h5" in msg and "conv2d_44" in msg and names[7] == "conv2d_44"
    assert "(3, 3, 64, 32)" in msg and "(3, 3, 128, 128)" in msg


def test_missing_layer_is_a_clear_error(tmp_path, layers):
    path = tmp_path / "missing_layer.h5"
    _write_keras_h5(path, layers, drop_weighted=9)
    with pytest.raises(ModelError, match=r"missing_layer\.h5.*expected 16 layers with weights.*"
                                         r"found 15"):
        ol3.load_weights(path)


def test_missing_array_and_non_hdf5_and_missing_file(tmp_path, layers):
    path = tmp_path / "missing_array.h5"
    _write_keras_h5(path, layers, drop_array=("batch_normalization_14", "moving_mean"))
    with pytest.raises(ModelError, match=r"missing_array\.h5.*batch_normalization_14.*"
                                         r"moving_mean.*missing"):
        ol3.load_weights(path)
    txt = tmp_path / "not_weights.h5"
    txt.write_text("hello")
    with pytest.raises(ModelError, match=r"not_weights\.h5.*not a readable HDF5"):
        ol3.load_weights(txt)
    with pytest.raises(ModelError, match="not found"):
        ol3.load_weights(tmp_path / "nope.h5")


def test_engine_writer_round_trips(tmp_path, layers):
    p = write_weights_h5(tmp_path / "w.h5", layers)
    w = ol3.load_weights(p)
    for a, b in zip(w.layers, layers):
        for k in b:
            np.testing.assert_array_equal(a[k], b[k])


def test_find_weights_order(tmp_path, monkeypatch, weights_file):
    import shutil

    monkeypatch.setattr(ol3_weights, "DEFAULT_WEIGHTS_DIR", tmp_path / "default")
    monkeypatch.delenv(ol3.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(ol3_weights, "installed_openl3_dir", lambda: None)
    s = ol3.find_weights("mel128", "music")
    assert s.path is None and "not set" in s.describe()
    # a fake installed openl3 whose import would fail (it imports `imp`): found, not imported
    pkg = tmp_path / "site" / "openl3"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import imp\nraise ImportError('must not be imported')\n")
    shutil.copy(weights_file, pkg / "openl3_audio_mel256_env.h5")
    monkeypatch.undo()
    monkeypatch.setattr(ol3_weights, "DEFAULT_WEIGHTS_DIR", tmp_path / "default")
    monkeypatch.delenv(ol3.WEIGHTS_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    import importlib
    importlib.invalidate_caches()
    assert ol3.installed_openl3_dir() == pkg
    assert ol3.find_weights("mel256", "env").path == pkg / "openl3_audio_mel256_env.h5"
    assert ol3.find_weights("mel128", "env").path is None
    # the environment variable (folder) comes before the package
    envdir = tmp_path / "envdir"
    envdir.mkdir()
    shutil.copy(weights_file, envdir / "openl3_audio_mel256_env.h5")
    monkeypatch.setenv(ol3.WEIGHTS_ENV, str(envdir))
    assert ol3.find_weights("mel256", "env").path == envdir / "openl3_audio_mel256_env.h5"
    # ... and an explicit path before everything; a missing explicit path is an error
    assert ol3.find_weights("mel256", "env", weights_file).path == weights_file
    with pytest.raises(ModelError, match="does not exist"):
        ol3.find_weights("mel128", "music", tmp_path / "nowhere.h5")


def test_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(ol3_weights, "WEIGHTS_URL", "http://127.0.0.1:9/{repr}_{content}.h5.gz")
    with pytest.raises(ModelError, match=r"could not download.*To install by hand.*"
                                         r"openl3_audio_mel128_music\.h5"):
        ol3.download_weights("mel128", "music", dest=tmp_path / "dl", timeout=2)
    assert not (tmp_path / "dl" / "openl3_audio_mel128_music.h5").exists()


# --------------------------------------------------------------------------- network

@pytest.mark.parametrize("shape,pool", [((19, 27), (2, 3)), ((16, 24), (1, 3))])
def test_vectorised_forward_equals_loop_reference(weights, layers, shape, pool):
    spec = -80 * np.random.default_rng(5).random((2,) + shape).astype(np.float32)
    m64 = ol3.OpenL3Model(weights, "mel128", 512, dtype=np.float64)
    m32 = ol3.OpenL3Model(weights, "mel128", 512, dtype=np.float32, max_cols_mb=0.01)
    e64 = m64.forward(spec, pool_size=pool)
    e32 = m32.forward(spec, pool_size=pool)
    for b in range(2):
        fmap, emb = _forward_ref(spec[b], layers, pool)
        np.testing.assert_allclose(m64.feature_map(spec[b:b + 1])[0], fmap, rtol=1e-9,
                                   atol=1e-9 * np.abs(fmap).max())
        np.testing.assert_allclose(e64[b], emb, rtol=1e-9, atol=1e-9 * np.abs(emb).max())
        assert np.linalg.norm(e32[b] - emb) / np.linalg.norm(emb) < 1e-5
    assert e64.shape == (2, 512 * (2 // pool[0]) * (3 // pool[1]))


def test_full_size_mel128_matches_reference(weights, layers, music):
    frames, _ = ol3.frame_audio(music, SR, hop_size=1.0, center=True)
    spec = ol3.spectrogram(frames[1:2], "mel128")
    m = ol3.OpenL3Model(weights, "mel128", 6144)
    got = m.forward(spec)[0]
    fmap, ref = _forward_ref(spec[0], layers, (4, 8))
    assert fmap.shape == (16, 24, 512) and got.shape == (6144,)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-5


@pytest.mark.parametrize("input_repr", ["mel128", "mel256", "linear"])
def test_embedding_shapes_all_reprs_and_sizes(weights, music, input_repr):
    y = music[:SR]                       # one window (not centred, hop 0.5)
    out = {}
    for size in (512, 6144):
        m = ol3.OpenL3Model(weights, input_repr, size)
        emb, ts = m.embed(y, SR, hop_size=0.5, center=False)
        assert emb.shape == (1, size) and emb.dtype == np.float32
        assert np.all(np.isfinite(emb)) and emb.std() > 0
        out[size] = emb[0]
    # the 512 pool covers the whole map: it is the max over the 6144 vector's blocks
    np.testing.assert_allclose(out[512], out[6144].reshape(-1, 512).max(axis=0), rtol=1e-6)


def test_embed_windows_determinism_and_batching(weights, music):
    y = music[: int(2.5 * SR)]
    m = ol3.OpenL3Model(weights, "mel128", 512, batch_size=3)
    calls = []
    e1, ts = m.embed(y, SR, hop_size=0.25, center=False, progress=lambda *a: calls.append(a))
    assert e1.shape == (7, 512)
    np.testing.assert_allclose(ts, np.arange(7) * 0.25)
    assert calls[-1][:2] == (7, 7) and len(calls) == 3
    e2, _ = m.embed(y, SR, hop_size=0.25, center=False)
    np.testing.assert_array_equal(e1, e2)
    e3, _ = ol3.OpenL3Model(weights, "mel128", 512, batch_size=7).embed(y, SR, hop_size=0.25,
                                                                         center=False)
    np.testing.assert_allclose(e1, e3, rtol=1e-5, atol=1e-5 * np.abs(e1).max())
    # different windows of music give different embeddings
    assert np.abs(e1[0] - e1[4]).max() > 1e-3 * np.abs(e1).max()
