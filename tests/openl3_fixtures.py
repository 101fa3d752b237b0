"""Test fixtures for OpenL3: weight files in the official Keras-2 HDF5 layout.

Used by tests/test_openl3.py, tests/test_embeddings.py and bench/bench_openl3.py
(which puts tests/ on sys.path). Not part of the engine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.openl3 import BN_WEIGHTS, CONV_WEIGHTS, LAYER_SPECS


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

    from engine.atomic import atomic_path

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
