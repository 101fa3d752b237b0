"""Benchmark: NumPy OpenL3 (mel128, mel256 at hop 0.1 / 0.5) and the spectral backend.

Random weights are written to a temporary Keras-layout .h5 (no official
weights needed). Prints seconds of compute per second of audio and per
window, and two ratios:

* against a naive NumPy baseline measured in this run: one window at a time,
  a padded copy per layer, 9 per-tap matmuls, separate BatchNorm and ReLU
  passes (how a first straightforward port looks);
* against the official openl3 0.4.2 cost quoted in OPENL3_FACTS.md
  (TensorFlow, 2 cores, batch 32): 0.086 s/window mel128, 0.17 s/window mel256.

Usage: ``python bench/bench_openl3.py [--seconds 10] [--naive_windows 3] [--threads N]``.
The machine may be shared: figures are wall-clock, best of ``--repeat``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # openl3_fixtures

from engine import openl3 as ol3                          # noqa: E402
from engine.embeddings import SpectralEmbedder            # noqa: E402
from engine.synth import synth_track                      # noqa: E402
from openl3_fixtures import random_weights, write_weights_h5  # noqa: E402

OFFICIAL_S_PER_WINDOW = {"mel128": 0.086, "mel256": 0.17}


def naive_forward(spec: np.ndarray, layers, pool) -> np.ndarray:
    """Straightforward per-window float32 forward pass (the baseline)."""
    def bn(x, d):
        return d["gamma"] * (x - d["moving_mean"]) / np.sqrt(d["moving_variance"] + 1e-3) + d["beta"]

    x = bn(spec[:, :, None].astype(np.float32), layers[0])
    for ci in range(8):
        conv = layers[1 + 2 * ci]
        H, W, _ = x.shape
        xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = np.zeros((H, W, conv["kernel"].shape[3]), np.float32) + conv["bias"]
        for dy in range(3):
            for dx in range(3):
                out += xp[dy:dy + H, dx:dx + W, :] @ conv["kernel"][dy, dx]
        x = out
        if ci < 7:
            x = np.maximum(bn(x, layers[2 + 2 * ci]), 0)
        if ci in (1, 3, 5):
            h, w = x.shape[0] // 2, x.shape[1] // 2
            x = x[:2 * h, :2 * w].reshape(h, 2, w, 2, -1).max(axis=(1, 3))
    ph, pw = pool
    h, w = x.shape[0] // ph, x.shape[1] // pw
    return x.reshape(h, ph, w, pw, -1).max(axis=(1, 3)).reshape(-1)


CPU = {}


def best_of(fn, repeat):
    """Best wall-clock time; the matching process CPU time is left in ``CPU['last']``."""
    best = np.inf
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, CPU["last"] = wall, time.process_time() - c
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length")
    ap.add_argument("--naive_windows", type=int, default=3, help="windows for the naive baseline")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0,
                    help="limit BLAS threads (threadpoolctl); 0 = library default")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    print(f"cores: {os.cpu_count()}, BLAS threads: {args.threads or 'default'}, "
          f"load average at start: {os.getloadavg()[0]:.2f}")
    track = synth_track(124.0, n_bars=max(2, int(args.seconds / 1.9) + 1), seed=0, sr=44100)
    y = track.audio[: int(args.seconds * 44100)]
    dur = y.shape[0] / 44100
    print(f"audio: {dur:.1f} s stereo at 44.1 kHz (resampled to 48 kHz with resampy)")
    layers = random_weights(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_weights_h5(Path(tmp) / "random.h5", layers)
        weights = ol3.load_weights(path)
    ol3.frame_audio(y[:44100], 44100)                     # compile resampy outside timings

    rows = []
    for repr_ in ("mel128", "mel256"):
        model = ol3.OpenL3Model(weights, repr_, 512)
        model.embed(y[:44100], 44100, hop_size=0.5)       # warm up
        for hop in (0.1, 0.5):
            n = ol3.window_count(ol3.resampled_length(y.shape[0], 44100), hop)
            t = best_of(lambda: model.embed(y, 44100, hop_size=hop), args.repeat)
            rows.append((repr_, hop, n, t))
            print(f"openl3 {repr_} hop {hop:.1f}: {n:4d} windows in {t:6.2f} s -> "
                  f"{t / dur:.3f} s per audio-second, {t / n:.4f} s/window "
                  f"(official {OFFICIAL_S_PER_WINDOW[repr_]:.3f} s/window: "
                  f"x{OFFICIAL_S_PER_WINDOW[repr_] / (t / n):.2f} speed; "
                  f"CPU {CPU['last'] / n:.4f} s/window)")

    # naive baseline on a few windows of the same audio
    frames, _ = ol3.frame_audio(y, 44100, hop_size=0.5)
    k = min(args.naive_windows, frames.shape[0])
    for repr_ in ("mel128", "mel256"):
        spec = ol3.spectrogram(frames[:k], repr_)
        pool = ol3.POOL_SIZES[repr_][512]
        t_naive = best_of(lambda: [naive_forward(s, layers, pool) for s in spec], args.repeat)
        c_naive = CPU["last"]
        model = ol3.OpenL3Model(weights, repr_, 512)
        model.forward(spec)
        t_fast = best_of(lambda: model.forward(spec), args.repeat)
        c_fast = CPU["last"]
        a = np.stack([naive_forward(s, layers, pool) for s in spec])
        b = model.forward(spec)
        err = np.linalg.norm(a - b) / np.linalg.norm(a)
        print(f"network only, {repr_}, {k} windows: naive per-window {t_naive / k:.3f} s/window, "
              f"batched row-im2col {t_fast / k:.3f} s/window -> x{t_naive / t_fast:.2f} faster "
              f"(CPU {c_naive / k:.3f} vs {c_fast / k:.3f} s/window; outputs agree to "
              f"{err:.1e} relative)")

    spectral = SpectralEmbedder()
    spectral.embed(y[:44100], 44100)                      # warm up librosa
    for hop in (0.1, 0.5):
        t = best_of(lambda: spectral.embed(y, 44100, hop_size=hop), args.repeat)
        print(f"spectral hop {hop:.1f}: {t:.3f} s -> {t / dur:.4f} s per audio-second")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    r = {(a, h): t for a, h, _, t in rows}
    print(f"summary s/audio-second: mel128 hop0.1 {r[('mel128', 0.1)] / dur:.3f}, "
          f"hop0.5 {r[('mel128', 0.5)] / dur:.3f}; mel256 hop0.1 {r[('mel256', 0.1)] / dur:.3f}, "
          f"hop0.5 {r[('mel256', 0.5)] / dur:.3f}")


if __name__ == "__main__":
    main()
