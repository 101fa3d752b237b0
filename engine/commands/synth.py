"""``python -m engine synth``: write a synthetic track and its ground truth."""
from __future__ import annotations

import json
from pathlib import Path

NAME = "synth"
HELP = "Generate a synthetic multi-section track (drums, bass, chords) with ground-truth JSON."


def add_arguments(p):
    p.add_argument("--out", required=True, help="output audio file (.wav, .flac, .ogg, .mp3)")
    p.add_argument("--bpm", type=float, default=124.0, help="tempo in BPM")
    p.add_argument("--bars", type=int, default=32, help="number of bars after the pickup")
    p.add_argument("--beats_per_bar", type=int, default=4, choices=(3, 4), help="meter")
    p.add_argument("--section_bars", type=int, default=8, help="bars per section")
    p.add_argument("--swing", type=float, default=0.0, help="off-beat delay, fraction of a 16th")
    p.add_argument("--key", default="A minor", help='key such as "A minor"; "none" for drums only')
    p.add_argument("--timbre", default="pad", choices=("pad", "pluck", "organ"))
    p.add_argument("--sr", type=int, default=44100, help="sample rate")
    p.add_argument("--mono", action="store_true", help="write one channel")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--random_arrangement", action="store_true",
                   help="draw tempo, meter, swing, key, sections and which parts play in each "
                   "from --seed (other musical flags are ignored)")


def run(args) -> int:
    from ..atomic import atomic_write_text
    from ..synth import random_arranged_track, synth_track

    key = None if str(args.key).lower() in ("none", "") else args.key
    instruments = ("drums", "bass", "chords") if key else ("drums",)
    if args.random_arrangement:
        track = random_arranged_track(args.seed, sr=args.sr)
    else:
        track = synth_track(args.bpm, beats_per_bar=args.beats_per_bar, n_bars=args.bars,
                            section_bars=args.section_bars, swing=args.swing, key=key,
                            timbre=args.timbre, instruments=instruments, sr=args.sr,
                            stereo=not args.mono, seed=args.seed)
    out = track.write(args.out)
    t = track.truth
    truth = {"bpm": t.bpm, "beats_per_bar": t.beats_per_bar, "key": t.key,
             "beats": [round(x, 6) for x in t.beats.tolist()],
             "downbeats": [round(x, 6) for x in t.downbeats.tolist()],
             "sections": [round(x, 6) for x in t.sections.tolist()],
             "section_patterns": t.section_patterns, "swing": t.swing,
             "duration": t.duration,
             "section_lengths": t.section_lengths,
             "section_instruments": [list(p) for p in t.section_instruments],
             "harmonic_period": t.harmonic_period,
             "bar_instruments": [list(p) for p in t.bar_instruments],
             "bar_chords": [[c[0], list(c[1])] for c in t.bar_chords]}
    atomic_write_text(Path(out).with_suffix(".truth.json"), json.dumps(truth, indent=2))
    print(f"wrote {out} ({t.duration:.1f} s, {t.bpm:g} BPM, key {t.key}) and its .truth.json")
    return 0
