"""Benchmark: one 4-minute track through decode, rhythm, candidates, features, scoring.

Compares, in the same run and on the same candidates, the seed's method
(SEED_BEHAVIOUR.md §1b: every candidate re-slices the audio and recomputes
STFTs, HPSS and a tempo estimate) with LoopLab's (frame features once per
track, candidates aggregated by slicing). The seed's per-candidate cost is
measured on a sample of candidates and extrapolated to all of them.

Then measures peak memory (child process max RSS) for analysing a 60-minute
generated mix.

Usage::

    python bench/bench_extract.py [--minutes 4] [--mix_minutes 60] [--seed_sample 40]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import RankConfig  # noqa: E402
from engine.pipeline import analyse_track, rank_track  # noqa: E402
from engine.synth import synth_track  # noqa: E402


def seed_features(y: np.ndarray, sr: int, start: float, end: float) -> dict:
    """The seed's per-candidate feature recipe (§1b), re-implemented for timing."""
    import librosa

    seg = y[int(start * sr):int(end * sr)]
    S = np.abs(librosa.stft(seg, n_fft=2048, hop_length=512))
    rms = librosa.feature.rms(y=seg, frame_length=2048, hop_length=512)[0]
    zcr = librosa.feature.zero_crossing_rate(seg, frame_length=2048, hop_length=512)[0]
    cent = librosa.feature.spectral_centroid(S=S, sr=sr)[0]
    bw = librosa.feature.spectral_bandwidth(S=S, sr=sr)[0]
    roll = librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85)[0]
    oenv = librosa.onset.onset_strength(y=seg, sr=sr, hop_length=512)
    onsets = librosa.onset.onset_detect(onset_envelope=oenv, sr=sr, hop_length=512)
    H, P = librosa.decompose.hpss(S)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=oenv, sr=sr,
                                                      aggregate=np.median))[0])
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    bands = [S[(freqs >= lo) & (freqs < hi)].mean(axis=0) for lo, hi in
             ((30, 160), (180, 2500), (5000, 12000))]
    return {"rms": rms.mean(), "zcr": zcr.mean(), "c": cent.mean(), "b": bw.mean(),
            "r": roll.mean(), "n": len(onsets), "p": (P ** 2).sum() / ((H ** 2).sum() + (P ** 2).sum()),
            "t": tempo, "bands": [b.max() for b in bands]}


def peak_rss_of_analysis(path: Path) -> tuple[float, float]:
    """Run analyse_track in a child process; return (seconds, peak RSS in MB)."""
    code = ("import sys, time, resource; sys.path.insert(0, %r)\n"
            "from engine.pipeline import analyse_track\n"
            "t = time.perf_counter(); a = analyse_track(%r)\n"
            "print(time.perf_counter() - t, len(a.candidates))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            % (str(Path(__file__).resolve().parent.parent), str(path)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    secs = float(lines[-2].split()[0])
    return secs, int(lines[-1]) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--mix_minutes", type=float, default=60.0)
    ap.add_argument("--seed_sample", type=int, default=40, help="candidates timed for the seed")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    bpm = 124.0
    n_bars = int(args.minutes * 60 / (4 * 60 / bpm))
    track = synth_track(bpm, n_bars=n_bars, sr=44100, stereo=True, seed=1)
    path = track.write(tmp / "track.wav")
    print(f"track: {track.truth.duration:.1f} s stereo 44.1 kHz, {bpm:g} BPM, {n_bars} bars")

    # warm-up (numba compilation of librosa's beat tracker, imports)
    warm = synth_track(120, n_bars=8, sr=44100, seed=2).write(tmp / "warm.wav")
    analyse_track(warm)

    t0 = time.perf_counter()
    analysis = analyse_track(path)
    t_analyse = time.perf_counter() - t0
    t1 = time.perf_counter()
    scored, selected = rank_track(analysis, RankConfig())
    t_rank = time.perf_counter() - t1
    ours = t_analyse + t_rank
    n = len(analysis.candidates)
    print("\nLoopLab, per stage (s):")
    for k, v in analysis.timings.items():
        print(f"  {k:22s} {v:7.3f}")
    print(f"  {'scoring + top-k':22s} {t_rank:7.3f}")
    print(f"  {'TOTAL':22s} {ours:7.3f}   ({n} candidates; target <= 10 s)")

    # the seed's method on the same candidates (sampled, extrapolated)
    import librosa

    y44, _ = librosa.load(path, sr=44100, mono=True)
    rng = np.random.default_rng(0)
    sample = rng.choice(n, size=min(args.seed_sample, n), replace=False)
    rows = analysis.candidates.iloc[sample]
    seed_features(y44, 44100, float(rows.iloc[0].start_time), float(rows.iloc[0].end_time))
    t2 = time.perf_counter()
    for _, r in rows.iterrows():
        seed_features(y44, 44100, float(r.start_time), float(r.end_time))
    per_cand = (time.perf_counter() - t2) / len(rows)
    seed_total = per_cand * n
    print(f"\nseed method: {per_cand * 1000:.1f} ms per candidate x {n} candidates "
          f"= {seed_total:.1f} s (measured on {len(rows)}, extrapolated)")
    print(f"speed-up: {seed_total / ours:.1f}x   (target >= 20x)")

    # peak memory for a long mix
    if args.mix_minutes > 0:
        mix = tmp / "mix.wav"
        reps = int(np.ceil(args.mix_minutes * 60 / track.truth.duration))
        with sf.SoundFile(mix, "w", samplerate=44100, channels=2, subtype="PCM_16") as fh:
            for _ in range(reps):
                fh.write(track.audio)
        dur = sf.info(mix).duration
        secs, rss = peak_rss_of_analysis(mix)
        print(f"\n{dur / 60:.1f}-minute mix: analysis {secs:.1f} s, peak RSS {rss:.0f} MB "
              f"(target < 2048 MB)")
    print(f"\n(this process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
