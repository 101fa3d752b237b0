"""Benchmark: tempo, beat and downbeat accuracy on generated tracks with ground truth.

For each track (tempos 70-175 BPM, 4/4 and 3/4, straight and swung, with and
without chords, several drum patterns and pickups) it compares, in the same run:

* LoopLab's rhythm analysis (octave choice, constant-tempo grid, fine phase,
  bar phase from harmonic change / kick / backbeat cues);
* the seed's approach: librosa's beat tracker as is, every beat a possible loop
  start, and "bar one" taken as the first tracked beat (SEED_BEHAVIOUR.md §1a).

Printed per method: tempo within 2 %, octave errors, beats within 30 ms,
downbeats within 30 ms (over the true downbeats), median beat error, time.

Usage::

    python bench/bench_rhythm.py [--bars 24]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import AnalysisConfig  # noqa: E402
from engine.features import compute_track_features  # noqa: E402
from engine.rhythm import analyse_rhythm  # noqa: E402
from engine.synth import synth_track  # noqa: E402

SR = 22050
CASES = [  # bpm, beats_per_bar, swing, key, patterns
    (70, 4, 0.0, "A minor", None), (78, 4, 0.0, None, ("breakbeat",)),
    (85, 4, 0.0, "C major", ("breakbeat", "four_on_floor")), (95, 4, 0.2, "D# minor", None),
    (100, 4, 0.3, "D minor", None), (110, 4, 0.0, None, ("electro",)),
    (118, 4, 0.0, "G major", ("electro", "four_on_floor")), (124, 4, 0.0, "F# major", None),
    (128, 4, 0.0, None, None), (132, 4, 0.1, "B major", None),
    (140, 4, 0.0, "E minor", ("four_on_floor", "breakbeat")), (150, 4, 0.0, "G major", None),
    (160, 4, 0.0, "B minor", ("breakbeat",)), (170, 4, 0.0, "C# minor", ("breakbeat", "halftime")),
    (175, 4, 0.0, "C minor", None), (90, 3, 0.0, "G major", None), (120, 3, 0.2, "E minor", None),
    (140, 4, 0.0, "A minor", ("halftime",)),
]


def hit_rate(est: np.ndarray, truth: np.ndarray, tol: float = 0.030) -> float:
    """Share of true events with an estimate within ``tol`` seconds."""
    if len(truth) == 0 or len(est) == 0:
        return 0.0
    return float(np.mean([np.min(np.abs(est - t)) < tol for t in truth]))


def main() -> None:
    import librosa

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=24)
    args = ap.parse_args()

    warm = synth_track(120, n_bars=4, sr=SR, stereo=False).audio[:, 0]
    librosa.beat.beat_track(y=warm, sr=SR)
    rows = {"looplab": [], "seed": []}
    print(f"{'case':34s} {'LoopLab bpm':>12s} {'db hit':>7s}   {'seed bpm':>9s} {'db hit':>7s}")
    for i, (bpm, bpb, swing, key, pats) in enumerate(CASES):
        tr = synth_track(bpm, beats_per_bar=bpb, n_bars=args.bars, swing=swing, key=key, sr=SR,
                         stereo=False, seed=100 + i, patterns=pats, lead_in_beats=1 + i % 3,
                         instruments=("drums", "bass", "chords") if key else ("drums",))
        y = tr.audio[:, 0]
        truth = tr.truth
        t0 = time.perf_counter()
        cfg = AnalysisConfig(beats_per_bar=bpb)
        tf, od = compute_track_features(y, SR, cfg)
        g = analyse_rhythm(y, SR, cfg, onsets=od, chroma=tf.chroma, chroma_fps=tf.fps, mel=tf.mel)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        tempo, frames = librosa.beat.beat_track(y=y, sr=SR, hop_length=512)
        beats = librosa.frames_to_time(frames, sr=SR, hop_length=512)
        t_seed = time.perf_counter() - t0
        seed_bpm = float(np.atleast_1d(tempo)[0])
        for name, est_bpm, est_beats, est_db, secs in (
                ("looplab", g.bpm, g.beats, g.downbeats, t_ours),
                ("seed", seed_bpm, beats, beats[::bpb], t_seed)):
            err = [np.min(np.abs(est_beats - b)) for b in truth.beats] if len(est_beats) else [1.0]
            rows[name].append({
                "tempo_ok": abs(est_bpm - bpm) / bpm < 0.02,
                "octave": min(abs(est_bpm - 2 * bpm), abs(est_bpm - bpm / 2)) / bpm < 0.02,
                "beats": hit_rate(est_beats, truth.beats), "downbeats": hit_rate(est_db, truth.downbeats),
                "beat_err_ms": 1000 * float(np.median(err)), "secs": secs})
        desc = f"{bpm} BPM {bpb}/4 sw{swing:g} {'tonal' if key else 'drums'} {pats[0] if pats else 'default'}"
        print(f"{desc:34s} {g.bpm:12.2f} {rows['looplab'][-1]['downbeats']:7.2f}   "
              f"{seed_bpm:9.2f} {rows['seed'][-1]['downbeats']:7.2f}")

    print(f"\n{len(CASES)} tracks of {args.bars} bars at {SR} Hz")
    print(f"{'method':10s} {'tempo<2%':>9s} {'octave err':>11s} {'beats@30ms':>11s} "
          f"{'downbeats@30ms':>15s} {'median beat err':>16s} {'s/track':>8s}")
    for name, rs in rows.items():
        def m(k):
            return float(np.mean([r[k] for r in rs]))
        print(f"{name:10s} {m('tempo_ok'):9.2f} {m('octave'):11.2f} {m('beats'):11.2f} "
              f"{m('downbeats'):15.2f} {np.median([r['beat_err_ms'] for r in rs]):13.1f} ms "
              f"{m('secs'):8.2f}")
    ours = np.mean([r["downbeats"] for r in rows["looplab"]])
    seed = np.mean([r["downbeats"] for r in rows["seed"]])
    print(f"\ndownbeat hit rate: LoopLab {ours:.2f} vs seed-style {seed:.2f} "
          f"(ratio {ours / max(seed, 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
