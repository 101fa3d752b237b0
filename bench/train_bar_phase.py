"""Bar-phase (downbeat) cues measured on a large independent set, and a
learned combination of them.

Renders one 32-bar chart per usable MMA library groove family (the families
used by either realbench set are excluded, as in
:mod:`bench.train_tempo_octave`) with ``mma`` + ``fluidsynth``; in these renders
bar one is at t = 0 and the beats per bar are known. Adds generated
arrangements (:func:`engine.synth.random_arranged_track`, seeds 9000-9099,
disjoint from the benches') and the realbench dev set. The features the rhythm
stage reads (onset envelopes, chroma, log-mel) are cached as npz in ``--work``.

MMA and generated tracks are scored twice: as rendered (the music starts on
bar one) and cropped at a random beat 2-4 bars in (a track that starts
mid-phrase: the "where the music enters" cue no longer helps, the other cues
must find bar one). The rhythm stage runs on each; where its beats and meter
are right, the cues of :func:`engine.rhythm.bar_phase_cues` at each phase and
the true phase make one row. Printed: the share of rows with the right bar one
under the engine's hand weights (:data:`engine.rhythm.HAND_BAR_WEIGHTS`) and
under a conditional logit (softmax over the phases, every kind weighted the
same, L2 ``--lam``) in 5-fold cross-validation grouped by groove family /
track, its weights (written to ``--out``), and with ``--holdout`` the second
real set's score (never used to choose anything).

The weights are written to ``engine/models/bar_phase.json`` (the shipped
model, read by :func:`engine.rhythm.bar_phase_weights`) unless ``--out`` says
otherwise. Figures: README, rhythm section.

Usage::

    python bench/train_bar_phase.py --work /tmp/barphase --render 60   # repeat until all 229
    python bench/train_bar_phase.py --work /tmp/barphase --holdout /tmp/looplab-holdout \
        --out /tmp/barphase/bar_phase.json      # compare, then copy to engine/models/

Needs ``mma``, ``fluidsynth`` and the FluidR3_GM soundfont (as the realbench
builder and ``bench/train_tempo_octave.py``); rendering takes about 2 s per
groove, the rows about 5 minutes (cached in ``WORK/bar_rows.pkl``).
"""
from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.audio import load_mono  # noqa: E402
from engine.config import AnalysisConfig  # noqa: E402
from engine.features import compute_track_features  # noqa: E402

import train_tempo_octave as tto  # noqa: E402

CFG = AnalysisConfig()
HOLDOUTS = (Path("/tmp/looplab-devset"), Path("/tmp/looplab-holdout"))


def save_features(y: np.ndarray, out: Path, **extra) -> None:
    """Cache what the rhythm stage reads (same layout as the phase-diag caches)."""
    tf, od = compute_track_features(y, CFG.sr, CFG)
    np.savez(out, env=od.envelope, low=od.low, mid=od.mid, fine=od.fine, chroma=tf.chroma,
             cfps=tf.fps, mel=tf.mel, n=len(y), sr=od.sr, hop=od.hop_length,
             fine_hop=od.fine_hop, **extra)


def render_library(work: Path, limit: int | None = None) -> list[tuple[Path, str]]:
    """One render per usable library groove family (cached): (npz, family)."""
    (work / "mma").mkdir(parents=True, exist_ok=True)
    exclude = tto.used_by_realbench(*HOLDOUTS)
    files, done = [], 0
    for i, (lib, name, grooves, bpb, usual) in enumerate(tto.library_grooves(exclude)):
        fam = f"{lib}/{name}"
        tempo = int(round(min(205.0, max(58.0, usual * (0.94, 1.0, 1.06)[i % 3]))))
        tid = f"{lib}_{re.sub(r'[^A-Za-z0-9]', '', name)}_{tempo}"
        out = work / f"{tid}.npz"
        if out.exists():
            files.append((out, fam))
            continue
        if limit is not None and done >= limit:
            continue
        groove = grooves[i % len(grooves)]
        chart = list(tto.CHARTS)[i % 3]
        rhythm = ("bar", "half" if bpb == 4 else "bar", "two")[(i // 3) % 3]
        y = tto.render_chart(work / "mma" / f"{tid}.mma", fam, groove, bpb, tempo, chart, rhythm,
                             32, seed=7000 + 11 * i)
        if y is None:
            continue
        save_features(y, out, bpm=float(tempo), bpb=bpb, family=fam)
        files.append((out, fam))
        done += 1
        print("rendered", tid, rhythm, flush=True)
    return files


def synth_library(work: Path, seeds) -> list[tuple[Path, str]]:
    """Generated arrangements (:func:`engine.synth.random_arranged_track`, seeds
    disjoint from the benches') with their truth (cached)."""
    from engine.synth import random_arranged_track

    (work / "synth").mkdir(parents=True, exist_ok=True)
    files = []
    for s in seeds:
        out = work / "synth" / f"rand{s}.npz"
        if not out.exists():
            tr = random_arranged_track(int(s), sr=CFG.sr, max_seconds=60)
            y = tr.audio[:, 0] if tr.audio.ndim > 1 else tr.audio
            save_features(y, out, beats=tr.truth.beats, downbeats=tr.truth.downbeats,
                          bpb=int(getattr(tr.truth, "beats_per_bar", 4)), family=f"synth/{s}")
            print("generated", s, flush=True)
        files.append((out, f"synth/{s}"))
    return files


def realbench_library(root: Path, work: Path) -> list[tuple[Path, str]]:
    """A realbench set's constant-tempo tracks with their truth (cached)."""
    (work / root.name).mkdir(parents=True, exist_ok=True)
    files = []
    for j in sorted((root / "gt").glob("*.json")):
        g = json.loads(j.read_text())
        if not isinstance(g, dict) or "downbeats_s" not in g or g.get("tempo_changes"):
            continue
        out = work / root.name / f"{j.stem}.npz"
        if not out.exists():
            y, _ = load_mono(str(j.with_suffix(".wav")), CFG.sr)
            save_features(y, out, beats=np.array(g["beats_s"]), downbeats=np.array(g["downbeats_s"]),
                          bpb=int(g["time_signature"].split("/")[0]), family=f"{root.name}/{j.stem}")
        files.append((out, f"{root.name}/{j.stem}"))
    return files


def _f(est: np.ndarray, ref: np.ndarray, tol: float = 0.03) -> float:
    if len(est) == 0 or len(ref) == 0:
        return 0.0
    d = np.abs(est[:, None] - ref[None]).min(1)
    return float(2 * (d < tol).sum() / (len(est) + len(ref)))


def track_rows(path: Path, family: str, kind: str, crop_rng=None, detect_meter: bool = False) -> dict | None:
    """The rhythm stage on one cached track (cropped a random 2-4 bars in when
    ``crop_rng`` is given); the cue values at each bar phase of its beats and
    the true phase, when its beats and meter are right (else None)."""
    from engine import rhythm as R

    z = np.load(path, allow_pickle=True)
    bpb = int(z["bpb"])
    n = int(z["n"])
    if "beats" in z.files:
        beats_t, down_t = np.asarray(z["beats"], float), np.asarray(z["downbeats"], float)
    else:                                   # MMA render: bar one at t = 0
        beats_t = np.arange(0.0, n / CFG.sr, 60.0 / float(z["bpm"]))
        down_t = beats_t[::bpb]
    hop, fh = int(z["hop"]), int(z["fine_hop"])
    k = 0
    if crop_rng is not None:
        first = int(np.argmin(np.abs(beats_t - down_t[0])))
        b = min(len(beats_t) - 1, first + int(crop_rng.integers(2 * bpb, 4 * bpb)))
        k = int(round(beats_t[b] * CFG.sr / hop))
    t0 = k * hop / CFG.sr
    od = R.OnsetData(sr=int(z["sr"]), hop_length=hop, envelope=z["env"][k:], low=z["low"][k:],
                     mid=z["mid"][k:], fine=z["fine"][k * hop // fh:], fine_hop=fh)
    chroma, mel, cfps = z["chroma"][:, k:], z["mel"][:, k:], float(z["cfps"])
    gb, gd = beats_t - t0, down_t - t0
    gb, gd = gb[gb > -0.01], gd[gd > -0.01]
    cfg = AnalysisConfig() if detect_meter else AnalysisConfig(beats_per_bar=bpb)
    try:
        grid = R.analyse_rhythm(np.zeros(n - k * hop), od.sr, cfg, onsets=od, chroma=chroma,
                                chroma_fps=cfps, mel=mel)
    except Exception:
        return None
    beats = grid.beats
    if _f(beats, gb) < 0.9 or grid.beats_per_bar != bpb:
        return None
    hits = [np.mean(np.abs(beats[q::bpb][:, None] - gd[None]).min(1) < 0.03) for q in range(bpb)]
    if max(hits) < 0.7:
        return None
    cues = R.bar_phase_cues(beats, od, bpb, chroma, cfps, None, mel)
    return dict(kind=kind + ("-crop" if crop_rng is not None else ""), group=family,
                X=np.stack([cues[c] for c in R.BAR_PHASE_CUES], axis=1), true=int(np.argmax(hits)))


def _nll(w, data, lam):
    tot, g = 0.0, np.zeros_like(w)
    for x, y, q in data:
        s = x @ w
        s = s - s.max()
        p = np.exp(s)
        p /= p.sum()
        tot -= q * np.log(p[y] + 1e-12)
        g -= q * (x[y] - p @ x)
    return tot + lam * w @ w, g + 2 * lam * w


def fit_logit(rows: list[dict], cols: list[int], lam: float) -> np.ndarray:
    """Conditional logit (softmax over the bar phases) of the cue values,
    every kind of track weighted the same, L2 penalty ``lam``."""
    from scipy.optimize import minimize

    count: dict[str, int] = {}
    for r in rows:
        count[r["kind"]] = count.get(r["kind"], 0) + 1
    data = [(r["X"][:, cols], r["true"], 1.0 / count[r["kind"]]) for r in rows]
    return minimize(_nll, np.zeros(len(cols)), args=(data, lam), jac=True, method="L-BFGS-B").x


def _right(r: dict, w: np.ndarray, cols: list[int]) -> bool:
    return int(np.argmax(r["X"][:, cols] @ w)) == r["true"]


def grouped_cv(rows: list[dict], cols: list[int], lam: float, folds: int = 5, seed: int = 0) -> dict:
    """Share of tracks with the right bar one per kind, folds grouped by family/track."""
    groups = sorted({r["group"] for r in rows})
    np.random.default_rng(seed).shuffle(groups)
    fold = {g: i % folds for i, g in enumerate(groups)}
    ok = {}
    for f in range(folds):
        w = fit_logit([r for r in rows if fold[r["group"]] != f], cols, lam)
        for i, r in enumerate(rows):
            if fold[r["group"]] == f:
                ok[i] = _right(r, w, cols)
    kinds = sorted({r["kind"] for r in rows})
    return {k: float(np.mean([ok[i] for i, r in enumerate(rows) if r["kind"] == k])) for k in kinds}


def main(argv=None) -> int:
    from engine import rhythm as R

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/phase2-mma")
    ap.add_argument("--render", type=int, default=None, help="render at most N new grooves, then stop")
    ap.add_argument("--devset", default="/tmp/looplab-devset")
    ap.add_argument("--holdout", default=None, help="second real set: scored only, never used to choose")
    ap.add_argument("--seeds", default="9000:9100", help="generated arrangements (a:b)")
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--out", default=str(R.BAR_PHASE_MODEL_PATH), help="weights JSON")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.render is not None:
        files = render_library(work, args.render)
        print(len(files), "cached renders")
        return 0
    rows_path = work / "bar_rows.pkl"
    if rows_path.exists():
        rows = pickle.loads(rows_path.read_bytes())
    else:
        a, b = (int(x) for x in args.seeds.split(":"))
        items = [(p, f, "mma", False) for p, f in render_library(work)]
        items += [(p, f, "synth", False) for p, f in synth_library(work, range(a, b))]
        items += [(p, f, "dev", True) for p, f in realbench_library(Path(args.devset), work)]
        rows = []
        rng = np.random.default_rng(123)
        for i, (p, fam, kind, detect) in enumerate(items):
            for crop in (None, rng):
                if kind == "dev" and crop is not None:
                    continue
                r = track_rows(p, fam, kind, crop, detect)
                if r is not None:
                    rows.append(r)
            if i % 50 == 0:
                print(f"{i}/{len(items)} tracks", flush=True)
        rows_path.write_bytes(pickle.dumps(rows))
    names = list(R.BAR_PHASE_CUES)
    hand = np.array([R.HAND_BAR_WEIGHTS.get(c, 0.0) for c in names])
    allc = list(range(len(names)))
    kinds = sorted({r["kind"] for r in rows})
    print("tracks with right beats:", {k: sum(r["kind"] == k for r in rows) for k in kinds})
    print("hand weights  ", {k: round(float(np.mean([_right(r, hand, allc) for r in rows
                                                       if r["kind"] == k])), 3) for k in kinds})
    cv = [grouped_cv(rows, allc, args.lam, seed=s) for s in range(5)]
    print("learned, grouped 5-fold CV (mean of 5 splits)",
          {k: round(float(np.mean([c[k] for c in cv])), 3) for k in kinds})
    w = fit_logit(rows, allc, args.lam)
    print("weights", dict(zip(names, np.round(w, 3))))
    if args.holdout:
        hold = []
        for p, fam in realbench_library(Path(args.holdout), work):
            r = track_rows(p, fam, "holdout", None, True)
            if r is not None:
                hold.append(r)
        print(f"holdout (never used to choose): {len(hold)} tracks with right beats; bar one right "
              f"hand {np.mean([_right(r, hand, allc) for r in hold]):.3f}, "
              f"learned {np.mean([_right(r, w, allc) for r in hold]):.3f}")
    out = {"features": names, "weights": [round(float(x), 4) for x in w],
           "model": "conditional logit (softmax over the bar phases) of bar_phase_cues",
           "trained_on": f"{len(rows)} tracks: MMA library grooves (families of both realbench sets "
                         f"excluded), generated arrangements seeds {args.seeds}, each also cropped "
                         f"2-4 bars in; realbench dev", "lam": args.lam}
    dest = Path(args.out)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
