"""Bar-phase (downbeat) cues measured on a large independent set, and a
learned combination of them.

Renders one 32-bar chart per usable MMA library groove family (the families
used by either realbench set are excluded, as in
:mod:`bench.train_tempo_octave`) with ``mma`` + ``fluidsynth``; in these renders
bar one is at t = 0 and the beats per bar are known (kind ``mma``). For the
46 of those families whose library file defines a fill groove (``<Groove>Fill``,
``<Groove>FillAA``, ``<Groove>1Fill`` ...; :func:`fill_grooves`,
:func:`pick_fill`) it renders the main groove with the fill groove in the last
bar (two for a two-bar fill) of every 4-bar phrase, and again of every 8-bar
phrase (kind ``fill``, 92 charts), the same with the drums alone (MIDI
channel 10: a drum-machine song, kind ``drumfill``) and the drums alone without
fills (kind ``drums``, one chart per family). Adds generated arrangements
(:func:`engine.synth.random_arranged_track`, seeds 9000-9099, disjoint from
the benches'; kind ``synth``) and the realbench dev set (``dev``). The features
the rhythm stage reads (onset envelopes, chroma, log-mel) are cached as npz in
``--work``.

Rendered and generated tracks are scored twice: as rendered (the music starts
on bar one) and cropped at a random beat 2-4 bars in (kind ``...-crop``: a
track that starts mid-phrase, so the "where the music enters" cue no longer
helps and the other cues must find bar one). The rhythm stage runs on each;
where its beats and meter are right, its beats and the true phase make one
row (cached in ``WORK/bar_rows.pkl``); the cues of
:func:`engine.rhythm.bar_phase_cues` at each phase are recomputed on every run
(seconds), so a changed cue needs no new rhythm runs. Printed per kind: the
share of rows with the right bar one under the hand weights
(:data:`engine.rhythm.HAND_BAR_WEIGHTS`), under the shipped model, and under a
conditional logit (softmax over the phases, every kind weighted the same, L2
``--lam``) fitted on the kinds of ``--train`` in 5-fold cross-validation grouped
by groove family / track (``--splits`` fold shuffles; a family's renders of
every kind share a fold), with the engine's cues and, with ``--try``, with
candidate cues added (:data:`CANDIDATE_CUES`: ``fill``, :func:`fill_cue`);
then the weights fitted on all rows of ``--train`` (engine cues only), written
to ``--out``, and with ``--holdout`` the second real set's score (never used to
choose anything).

The weights are written to ``engine/models/bar_phase.json`` (the shipped
model, read by :func:`engine.rhythm.bar_phase_weights`) unless ``--out`` says
otherwise. The shipped file was built with the default ``--train`` (mma,
synth, dev; 603 rows) by ``python bench/train_bar_phase.py --work
/tmp/phase3-barphase --out engine/models/bar_phase.json``, which rebuilds it
byte for byte (the earlier file, from an older engine's 544 rows, had weights
within 0.03 except timbre 0.53 -> 0.29 and backbeat 0.46 -> 0.36; every
bar one on dev, the second set and the 108 cached generated tracks is the
same, only ``bar_confidence`` moved a little). Figures: README, rhythm
section.

Usage::

    python bench/train_bar_phase.py --work /tmp/barphase --render 200  # repeat until all rendered
    python bench/train_bar_phase.py --work /tmp/barphase --splits 10 --try fill \
        --out /tmp/barphase/bar_phase.json      # compare; copy to engine/models/ to ship
    python bench/train_bar_phase.py --work /tmp/barphase --splits 10 --try fill \
        --train mma,synth,dev,fill,drumfill,drums --out /tmp/barphase/bar_phase_all.json

Needs ``mma``, ``fluidsynth`` and the FluidR3_GM soundfont (as the realbench
builder and ``bench/train_tempo_octave.py``); rendering takes about 2 s per
chart (455 charts), the rows about 6 minutes.
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
        tempo = tto.render_tempo(usual, (0.94, 1.0, 1.06)[i % 3])
        tid = f"{tto.groove_stem(lib, name)}_{tempo}"
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


def fill_grooves(path: Path) -> dict[str, int]:
    """A library file's fill grooves (``<Groove>Fill``, ``<Groove>FillAA``,
    ``<Groove>1Fill``, ``<Groove>FillSus`` ...: any groove named with "fill")
    with their length in bars (the ``SeqSize`` in force at their ``DefGroove``;
    ``Groove X`` restores X's)."""
    size, cur, out = {}, 1, {}
    for line in open(path, errors="replace"):
        line = line.split("//")[0].strip()
        m = re.match(r"(SeqSize|Groove|DefGroove)\s+(\S+)", line, re.I)
        if not m:
            continue
        key, arg = m.group(1).lower(), m.group(2)
        if key == "seqsize" and arg.isdigit():
            cur = int(arg)
        elif key == "groove":
            cur = size.get(arg.lower(), cur)
        elif key == "defgroove":
            size[arg.lower()] = cur
            if "fill" in arg.lower():
                out[arg] = cur
    return out


def pick_fill(main: str, fills: dict[str, int]) -> tuple[str, int] | None:
    """The fill groove of ``fills`` (name -> bars) that goes with groove
    ``main``: the longest shared name prefix before "fill" (so JazzWaltz1 takes
    JazzWaltzFillAA, kbossaB takes kbossaFillB), one- or two-bar fills only,
    shortest first; None when there is none."""
    def score(name: str) -> tuple:
        stem = name[: name.lower().index("fill")].lower()
        common = 0
        for a, b in zip(stem, main.lower()):
            if a != b:
                break
            common += 1
        tail = name[name.lower().index("fill") + 4:].lower()
        letter = main[-1].lower() if main[-1].isalpha() and main[-1].isupper() else ""
        return (common, -fills[name], bool(letter) and tail in (letter, 2 * letter),
                bool(letter) and tail.startswith(letter), -len(name))

    ok = [f for f, n in fills.items() if 1 <= n <= 2 and "sus" not in f.lower()]
    if not ok:
        return None
    best = max(ok, key=score)
    return best, fills[best]


#: Phrase lengths (bars) of the fill renders, alternating over the families.
FILL_PHRASES = (4, 8)


def render_fills(work: Path, limit: int | None = None, drums: bool = False,
                 fills: bool = True) -> list[tuple[Path, str]]:
    """Two renders per library family that has a fill groove (cached): the
    family's main groove with its fill groove in the last bar (or two, for a
    two-bar fill) of every 4-bar phrase in one and every 8-bar phrase in the
    other, as songs put a drum fill before a phrase starts. ``drums``: the
    drums alone (as a drum-machine song, where no chord or bass change marks
    the bar lines); ``fills=False``: without the fills (one render per family,
    the comparison). (npz, family)."""
    sub = ("drums" if drums else "") + ("fill" if fills else "plain")
    (work / sub).mkdir(parents=True, exist_ok=True)
    exclude = tto.used_by_realbench(*HOLDOUTS)
    files, done = [], 0
    todo = []
    for i, (lib, name, grooves, bpb, usual) in enumerate(tto.library_grooves(exclude)):
        main = grooves[(i + 1) % len(grooves)]
        pick = pick_fill(main, fill_grooves(Path(tto.MMA_LIB) / lib / f"{name}.mma"))
        if pick is not None:
            todo += [(i, j, lib, name, bpb, usual, main) + pick
                     for j in range(len(FILL_PHRASES) if fills else 1)]
    for i, j, lib, name, bpb, usual, main, fill, flen in todo:
        fam = f"{lib}/{name}"
        phrase = FILL_PHRASES[(i + j) % len(FILL_PHRASES)]
        tempo = tto.render_tempo(usual, (1.0, 1.06, 0.94)[(i + j) % 3])
        tid = f"{tto.groove_stem(lib, name)}_{sub}{phrase if fills else ''}_{tempo}"
        out = work / sub / f"{tid}.npz"
        if out.exists():
            files.append((out, fam))
            continue
        if limit is not None and done >= limit:
            continue
        at = {}
        for start in range(phrase - flen + 1, 33, phrase) if fills else ():
            at[start] = fill
            at[start + flen] = main
        chart = list(tto.CHARTS)[(i + j + 1) % 3]
        rhythm = ("bar", "two", "half" if bpb == 4 else "bar")[(i // 3 + j) % 3]
        y = tto.render_chart(work / sub / f"{tid}.mma", fam, main, bpb, tempo, chart, rhythm,
                             32, seed=8000 + 13 * i + j, grooves_at=at, drums_only=drums)
        if y is None:
            continue
        save_features(y, out, bpm=float(tempo), bpb=bpb, family=fam, fill=fill if fills else "",
                      phrase=phrase if fills else 0)
        files.append((out, fam))
        done += 1
        print("rendered", tid, main, fill, flen, flush=True)
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


def _inputs(path: Path, k: int):
    """What the rhythm stage reads of a cached track, from frame ``k`` on."""
    from engine import rhythm as R

    z = np.load(path, allow_pickle=True)
    hop, fh = int(z["hop"]), int(z["fine_hop"])
    od = R.OnsetData(sr=int(z["sr"]), hop_length=hop, envelope=z["env"][k:], low=z["low"][k:],
                     mid=z["mid"][k:], fine=z["fine"][k * hop // fh:], fine_hop=fh)
    return z, od, z["chroma"][:, k:], float(z["cfps"]), z["mel"][:, k:]


def track_rows(path: Path, family: str, kind: str, crop_rng=None, detect_meter: bool = False) -> dict | None:
    """The rhythm stage on one cached track (cropped a random 2-4 bars in when
    ``crop_rng`` is given): its beats and the true bar phase, when its beats
    and meter are right (else None). The cue values are added by
    :func:`add_cues` (cheap, so a changed cue needs no new rhythm runs)."""
    from engine import rhythm as R

    z = np.load(path, allow_pickle=True)
    bpb = int(z["bpb"])
    n = int(z["n"])
    if "beats" in z.files:
        beats_t, down_t = np.asarray(z["beats"], float), np.asarray(z["downbeats"], float)
    else:                                   # MMA render: bar one at t = 0
        beats_t = np.arange(0.0, n / CFG.sr, 60.0 / float(z["bpm"]))
        down_t = beats_t[::bpb]
    hop = int(z["hop"])
    k = 0
    if crop_rng is not None:
        first = int(np.argmin(np.abs(beats_t - down_t[0])))
        b = min(len(beats_t) - 1, first + int(crop_rng.integers(2 * bpb, 4 * bpb)))
        k = int(round(beats_t[b] * CFG.sr / hop))
    t0 = k * hop / CFG.sr
    _, od, chroma, cfps, mel = _inputs(path, k)
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
    return dict(kind=kind + ("-crop" if crop_rng is not None else ""), group=family,
                path=str(path), k=k, beats=beats, bpb=bpb, true=int(np.argmax(hits)))


def add_cues(rows: list[dict], cue_fn=None, names=None) -> list[dict]:
    """Each row's cue values at each bar phase (``X``, phases x cues, in the
    order of ``names``, default :data:`engine.rhythm.BAR_PHASE_CUES`) from
    ``cue_fn`` (default :func:`engine.rhythm.bar_phase_cues`)."""
    from engine import rhythm as R

    cue_fn = cue_fn or R.bar_phase_cues
    names = list(names or R.BAR_PHASE_CUES)
    for r in rows:
        _, od, chroma, cfps, mel = _inputs(Path(r["path"]), r["k"])
        cues = cue_fn(r["beats"], od, r["bpb"], chroma, cfps, None, mel)
        r["X"] = np.stack([cues[c] for c in names], axis=1)
    return rows


# ----------------------------------------------------------------- candidate cues
# Cues measured here and not (yet) in the engine: ``--try fill`` scores the
# logit with them added (README, rhythm section, for the figures).

FILL_SUBDIV = 4          # sub-beat bins of each beat's onset pattern
FILL_PHRASE_BARS = 4     # fills close every 4th (or 8th) bar line


def sub_beat_pattern(env: np.ndarray, fps: float, beats: np.ndarray,
                     sub: int = FILL_SUBDIV) -> np.ndarray:
    """Maximum of ``env`` (frames at ``fps``) in each of ``sub`` equal parts of
    each beat interval (the last beat lasts the median beat), (n_beats, sub)."""
    edges = np.append(beats, beats[-1] + np.median(np.diff(beats)))
    t = edges[:-1, None] + np.diff(edges)[:, None] * (np.arange(sub)[None] / sub)
    starts = np.clip(np.round(t.ravel() * fps).astype(int), 0, len(env) - 1)
    stop = int(np.clip(round(edges[-1] * fps), starts[-1] + 1, len(env)))
    # the starts never decrease: reduceat takes the max from each start to the next
    return np.maximum.reduceat(env[:stop], starts).reshape(len(beats), sub)


def fill_cue(beats: np.ndarray, od, beats_per_bar: int) -> np.ndarray:
    """Drum-fill cue at each bar phase (standardised): each beat's onset
    pattern (full, low and mid onset envelopes, FILL_SUBDIV sub-beat maxima
    each) against the median pattern of its beat of the bar; a fill departs
    from it and ends at a bar line, so the cue of a phase is the drop of that
    deviation from the beat before its bar lines to the beat at them, averaged
    over every FILL_PHRASE_BARS-th line from the best starting line. About
    1 ms on a 4-minute track. The best of the variants tried (README)."""
    from engine import rhythm as R

    n = len(beats)
    if n < 2 * beats_per_bar:
        return np.zeros(beats_per_bar)
    pats = []
    for env in (od.envelope, od.low, od.mid):
        sb = sub_beat_pattern(env, od.fps, beats)
        pats.append(sb / (np.percentile(sb, 95) + 1e-9))
    pat = np.concatenate(pats, axis=1)
    dev = np.zeros(n)
    for c in range(beats_per_bar):
        blk = pat[c::beats_per_bar]
        dev[c::beats_per_bar] = np.abs(blk - np.median(blk, axis=0)).sum(axis=1)
    dev = R._z(dev)
    drop = np.append(0.0, dev[:-1]) - dev          # deviation of the beat before minus at
    comb = np.zeros(beats_per_bar)
    for p in range(beats_per_bar):
        lines = drop[p::beats_per_bar]
        comb[p] = max(float(lines[o::FILL_PHRASE_BARS].mean())
                      for o in range(min(FILL_PHRASE_BARS, lines.size)))
    return R._z(comb)


CANDIDATE_CUES = {"fill": lambda beats, od, bpb, chroma, cfps, mel: fill_cue(beats, od, bpb)}


def cues_with(extra: list[str]):
    """:func:`engine.rhythm.bar_phase_cues` plus the candidate cues ``extra``."""
    from engine import rhythm as R

    def fn(beats, od, bpb, chroma, cfps, snare, mel):
        cues = R.bar_phase_cues(beats, od, bpb, chroma, cfps, snare, mel)
        for c in extra:
            cues[c] = CANDIDATE_CUES[c](beats, od, bpb, chroma, cfps, mel)
        return cues
    return fn


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


def base_kind(r: dict) -> str:
    """A row's kind without the ``-crop`` suffix."""
    return r["kind"].removesuffix("-crop")


def grouped_cv(rows: list[dict], cols: list[int], lam: float, folds: int = 5, seed: int = 0,
               train: set[str] | None = None) -> dict:
    """Share of tracks with the right bar one per kind, folds grouped by
    family/track (a family's renders of every kind share a fold); fitted on
    the rows of the kinds in ``train`` (default all), every kind scored."""
    groups = sorted({r["group"] for r in rows})
    np.random.default_rng(seed).shuffle(groups)
    fold = {g: i % folds for i, g in enumerate(groups)}
    ok = {}
    for f in range(folds):
        w = fit_logit([r for r in rows if fold[r["group"]] != f
                       and (train is None or base_kind(r) in train)], cols, lam)
        for i, r in enumerate(rows):
            if fold[r["group"]] == f:
                ok[i] = _right(r, w, cols)
    kinds = sorted({r["kind"] for r in rows})
    return {k: float(np.mean([ok[i] for i, r in enumerate(rows) if r["kind"] == k])) for k in kinds}


def main(argv=None) -> int:
    from engine import rhythm as R

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/looplab-barphase")
    ap.add_argument("--render", type=int, default=None, help="render at most N new grooves, then stop")
    ap.add_argument("--devset", default="/tmp/looplab-devset")
    ap.add_argument("--holdout", default=None, help="second real set: scored only, never used to choose")
    ap.add_argument("--seeds", default="9000:9100", help="generated arrangements (a:b)")
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--train", default="mma,synth,dev",
                    help="kinds fitted on (mma, synth, dev, fill, drumfill, drums; each with its "
                         "crops); every kind is scored")
    ap.add_argument("--try", dest="try_cues", default="",
                    help="candidate cues (comma-separated, of CANDIDATE_CUES) to score added to "
                         "the engine's; the written model keeps the engine's cues")
    ap.add_argument("--splits", type=int, default=5, help="CV splits (different fold shuffles)")
    ap.add_argument("--out", default=str(R.BAR_PHASE_MODEL_PATH), help="weights JSON")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.render is not None:
        files = render_library(work, args.render)
        fills = render_fills(work, args.render)
        drums = render_fills(work, args.render, drums=True)
        plain = render_fills(work, args.render, drums=True, fills=False)
        print(len(files), "cached renders,", len(fills), "with fills,", len(drums),
              "drums alone with fills,", len(plain), "without")
        return 0
    rows_path = work / "bar_rows.pkl"
    if rows_path.exists():
        rows = pickle.loads(rows_path.read_bytes())
    else:
        a, b = (int(x) for x in args.seeds.split(":"))
        items = [(p, f, "mma", False) for p, f in render_library(work)]
        items += [(p, f, "synth", False) for p, f in synth_library(work, range(a, b))]
        items += [(p, f, "dev", True) for p, f in realbench_library(Path(args.devset), work)]
        items += [(p, f, "fill", False) for p, f in render_fills(work)]   # last: same crops as before
        items += [(p, f, "drumfill", False) for p, f in render_fills(work, drums=True)]
        items += [(p, f, "drums", False) for p, f in render_fills(work, drums=True, fills=False)]
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
    extra = [c for c in args.try_cues.split(",") if c]
    names = list(R.BAR_PHASE_CUES) + extra
    add_cues(rows, cues_with(extra), names)
    train = set(args.train.split(","))
    hand = np.array([R.HAND_BAR_WEIGHTS.get(c, 0.0) for c in names])
    allc = list(range(len(names)))
    engc = list(range(len(R.BAR_PHASE_CUES)))
    kinds = sorted({r["kind"] for r in rows})
    fmt = lambda d: "  ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
    print("tracks with right beats:", fmt({k: sum(r["kind"] == k for r in rows) for k in kinds}))
    print("hand weights:", fmt({k: round(float(np.mean([_right(r, hand, allc) for r in rows
                                                         if r["kind"] == k])), 3) for k in kinds}))
    if R.BAR_PHASE_MODEL_PATH.exists():
        shipped = R.bar_phase_weights(str(R.BAR_PHASE_MODEL_PATH))
        ws = np.array([shipped.get(c, 0.0) for c in names])
        print("shipped model (in-sample where trained on):",
              fmt({k: round(float(np.mean([_right(r, ws, allc) for r in rows if r["kind"] == k])), 3)
                   for k in kinds}))
    sets = [("engine cues", engc)] + ([("engine cues + " + ",".join(extra), allc)] if extra else [])
    for label, cols in sets:
        cv = [grouped_cv(rows, cols, args.lam, seed=s, train=train) for s in range(args.splits)]
        print(f"learned on {args.train}, {label}: grouped 5-fold CV, mean of {args.splits} splits "
              f"(min-max):", fmt({k: f"{np.mean([c[k] for c in cv]):.3f} ({min(c[k] for c in cv):.3f}-"
                                     f"{max(c[k] for c in cv):.3f})" for k in kinds}), flush=True)
    if extra:
        wx = fit_logit([r for r in rows if base_kind(r) in train], allc, args.lam)
        print("weights with", ",".join(extra), dict(zip(names, np.round(wx, 3))))
    for r in rows:
        r["X"] = r["X"][:, engc]
    names, allc = list(R.BAR_PHASE_CUES), engc
    hand = hand[engc]
    rows = [r for r in rows if base_kind(r) in train]
    w = fit_logit(rows, allc, args.lam)
    print("weights", dict(zip(names, np.round(w, 3))))
    if args.holdout:
        hold = []
        for p, fam in realbench_library(Path(args.holdout), work):
            r = track_rows(p, fam, "holdout", None, True)
            if r is not None:
                hold.append(r)
        add_cues(hold)
        print(f"holdout (never used to choose): {len(hold)} tracks with right beats; bar one right "
              f"hand {np.mean([_right(r, hand, allc) for r in hold]):.3f}, "
              f"learned {np.mean([_right(r, w, allc) for r in hold]):.3f}")
    out = {"features": names, "weights": [round(float(x), 4) for x in w],
           "model": "conditional logit (softmax over the bar phases) of bar_phase_cues",
           "trained_on": f"{len(rows)} tracks of kinds {args.train} (mma: MMA library grooves, "
                         f"families of both realbench sets excluded; fill / drumfill / drums: "
                         f"the same with fill grooves closing 4- or 8-bar phrases, drums alone "
                         f"with and without; synth: generated arrangements seeds {args.seeds}; "
                         f"each also cropped 2-4 bars in; dev: realbench dev)", "lam": args.lam}
    dest = Path(args.out)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
