#!/usr/bin/env python3
"""Estimate :data:`engine.rhythm.OPENING_PRIOR`: how often a file that opens on
a beat (:func:`engine.rhythm.opening_beat`) has that beat as bar one.

Counted on the bar-phase training tracks of ``bench/train_bar_phase.py`` (its
cached renders of the MMA library grooves, the generated arrangements of its
``--seeds`` and the realbench dev set; never the second real set), as rendered
(not cropped), where the rhythm stage finds the right beats and meter (beats F
>= 0.9 at 30 ms, and some bar phase on the true downbeats). Prints the counts
per kind and the estimate (right + 1) / (opening + 2).

Usage::

    python bench/estimate_opening_prior.py [--work /tmp/phase2-mma] [--seeds 9000:9100]

The MMA renders come from ``python bench/train_bar_phase.py --work DIR --render N``
(see its docstring; this script renders none); the generated and dev features
are cached in ``--work`` as that script does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import rhythm as R  # noqa: E402
from engine.config import AnalysisConfig  # noqa: E402

import train_bar_phase as tbp  # noqa: E402


def opening_row(path: Path) -> tuple[int, int | None] | None:
    """(true bar phase, phase of the beat the file opens on or None) of one
    cached track, or None when the rhythm stage's beats or meter are wrong."""
    z = np.load(path, allow_pickle=True)
    bpb, n = int(z["bpb"]), int(z["n"])
    if "beats" in z.files:
        beats_t, down_t = np.asarray(z["beats"], float), np.asarray(z["downbeats"], float)
    else:                                   # MMA render: bar one at t = 0
        beats_t = np.arange(0.0, n / tbp.CFG.sr, 60.0 / float(z["bpm"]))
        down_t = beats_t[::bpb]
    od = R.OnsetData(sr=int(z["sr"]), hop_length=int(z["hop"]), envelope=z["env"], low=z["low"],
                     mid=z["mid"], fine=z["fine"], fine_hop=int(z["fine_hop"]))
    try:
        g = R.analyse_rhythm(np.zeros(n), od.sr, AnalysisConfig(beats_per_bar=bpb), onsets=od,
                             chroma=z["chroma"], chroma_fps=float(z["cfps"]), mel=z["mel"])
    except Exception:
        return None
    if tbp._f(g.beats, beats_t) < 0.9:
        return None
    hits = [np.mean(np.abs(g.beats[q::bpb][:, None] - down_t[None]).min(1) < 0.03)
            for q in range(bpb)]
    if max(hits) < 0.7:
        return None
    i = R.opening_beat(g.beats, z["mel"], float(z["cfps"]), od.sr)
    return int(np.argmax(hits)), (None if i is None else i % bpb)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/phase2-mma")
    ap.add_argument("--devset", default="/tmp/looplab-devset")
    ap.add_argument("--seeds", default="9000:9100")
    a = ap.parse_args(argv)
    work = Path(a.work)
    lo, hi = (int(v) for v in a.seeds.split(":"))
    mma = [p for p, _ in tbp.render_library(work, limit=0)]     # cached renders only
    kinds = {"MMA library": mma,
             "generated": [p for p, _ in tbp.synth_library(work, range(lo, hi))],
             "realbench dev": [p for p, _ in tbp.realbench_library(Path(a.devset), work)]}
    tot_open = tot_right = 0
    for kind, paths in kinds.items():
        rows = [r for r in map(opening_row, paths) if r is not None]
        opening = [r for r in rows if r[1] is not None]
        right = sum(t == o for t, o in opening)
        tot_open, tot_right = tot_open + len(opening), tot_right + right
        print(f"{kind:14s} {len(rows):4d} tracks with the right beats, {len(opening):4d} open on a "
              f"beat, {right:4d} of them on bar one")
    print(f"OPENING_PRIOR estimate: ({tot_right} + 1) / ({tot_open} + 2) = "
          f"{(tot_right + 1) / (tot_open + 2):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
