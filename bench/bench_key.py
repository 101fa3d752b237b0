"""Key detection benchmark: accuracy on 24 synthetic keys and speed per 4-minute track.

Run from the repository root::

    python bench/bench_key.py [--quick]

Data: engine.synth tracks in all 24 keys, 4 variants per key (tempos drawn in
80-170 BPM, pad / pluck / organ chords, with and without drums, with and
without bass), 16 bars, 22050 Hz mono; the same tracks again detuned by
20-45 cents (either way, as records tuned to A=432 Hz or varispeeded); and
drum-only tracks that must come out "no clear key".

Front ends compared (each with every key profile in engine.key.PROFILES):

* ``ours``           engine.key.track_chroma: tuning-corrected spectral-peak
  chroma, log-compressed (the shipped method);
* ``ours-linear``    the same peaks without log compression;
* ``ours-notune``    the same without tuning correction;
* ``librosa-cqt``    librosa.feature.chroma_cqt (tuning estimated), the baseline;
* ``librosa-stft``   librosa.feature.chroma_stft (tuning estimated).

Real renders (skipped with a message when not built):

* the General-MIDI key bench, ``bench/keybench/build_keybench.py`` ->
  ``/tmp/looplab-keybench`` (FluidSynth + FluidR3_GM; dev and held-out test
  split of progressions and instruments);
* the MMA renders of the realbench dev set (``/tmp/looplab-devset/gt``,
  every JSON with a ``key`` field).

* the holdout set (other songs; ``--holdout``, ready when its READY file
  exists): MMA charts with a ``key`` field, never used for fitting.

Each gets exact, MIREX-weighted and the confusion by interval (fifth up,
fifth down, relative, parallel, other, no key) for the shipped estimator
with the bar lines the pipeline's rhythm stage detects (what ``extract``
uses), the same without a grid (what ``engine key`` uses), the
profile-only estimator and librosa chroma_cqt + Krumhansl (the baseline);
fifth-up errors are also counted per 20 major-key tracks.

Scores follow MIREX / mir_eval: exact 1, fifth above 0.5, relative 0.3,
parallel 0.2 (a fifth *below* scores 0, as in mir_eval's default). Loops (2- and 4-bar slices of each track) are scored with
the shipped method alone, with and without the whole-track prior. Timing is
chroma + key for one 4-minute track, best of 3, against librosa chroma_cqt +
Krumhansl in the same process.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))

import numpy as np  # noqa: E402

from engine import key as K  # noqa: E402
from engine.synth import synth_track  # noqa: E402

SR = 22050
CLASSES = ("exact", "fifth", "relative", "parallel", "other", "none")
WEIGHTS = {"exact": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2, "other": 0.0, "none": 0.0}
TIMBRES = ("pad", "pluck", "organ")
INSTRUMENTS = (("drums", "bass", "chords"), ("bass", "chords"), ("drums", "chords"), ("chords",))


def classify(tt, tm, et, em) -> str:
    """MIREX error class of estimate (et, em) for truth (tt, tm)."""
    if et is None:
        return "none"
    if (et, em) == (tt, tm):
        return "exact"
    if em == tm and (et - tt) % 12 == 7:
        return "fifth"
    if tm == "major" and em == "minor" and (et - tt) % 12 == 9:
        return "relative"
    if tm == "minor" and em == "major" and (et - tt) % 12 == 3:
        return "relative"
    if et == tt:
        return "parallel"
    return "other"


def classify_real(tt, tm, et, em) -> str:
    """Like :func:`classify`, with a fifth below told apart from "other"."""
    c = classify(tt, tm, et, em)
    if c == "other" and em == tm and (et - tt) % 12 == 5:
        return "fifth-down"
    return c


def summarize(classes: list[str]) -> dict:
    n = max(len(classes), 1)
    out = {c: classes.count(c) / n for c in CLASSES}
    out["weighted"] = float(np.mean([WEIGHTS[c] for c in classes])) if classes else 0.0
    out["n"] = len(classes)
    return out


def build_set(n_bars: int, variants: int, seed: int = 0):
    """Tracks in all 24 keys: list of dicts (y, tonic, mode, bpm, desc)."""
    rng = np.random.default_rng(seed)
    items = []
    i = 0
    for mode in ("major", "minor"):
        for tonic in range(12):
            for v in range(variants):
                bpm = float(np.round(rng.uniform(80, 170), 1))
                timbre = TIMBRES[(i + v) % 3]
                inst = INSTRUMENTS[(i // 3 + v) % len(INSTRUMENTS)]
                tr = synth_track(bpm, n_bars=n_bars, key=(tonic, mode), timbre=timbre,
                                 instruments=inst, swing=0.2 if v == 3 else 0.0, sr=SR,
                                 stereo=False, seed=1000 + i)
                items.append(dict(y=tr.audio[:, 0], tonic=tonic, mode=mode, bpm=bpm,
                                  t0=0.25 + 60.0 / bpm, desc=f"{timbre} {'+'.join(inst)}"))
                i += 1
    return items


def detune(y: np.ndarray, cents: float) -> np.ndarray:
    """Shift every pitch by ``cents`` (varispeed: the track plays faster)."""
    import soxr

    return soxr.resample(y, SR * 2 ** (cents / 1200.0), SR).astype(np.float32)


# --------------------------------------------------------------------------- front ends

def fe_ours(y):
    ch = K.track_chroma(y, SR)
    return ch.values, ch.tonal_share(), ch


def fe_ours_linear(y):
    ch = K.track_chroma(y, SR)
    return np.expm1(ch.values.astype(np.float64)), ch.tonal_share(), ch


def fe_ours_notune(y):
    orig = K._estimate_tuning
    K._estimate_tuning = lambda *a, **k: 0.0          # bench-only switch
    try:
        ch = K.track_chroma(y, SR)
    finally:
        K._estimate_tuning = orig
    return ch.values, ch.tonal_share(), ch


def fe_librosa_cqt(y):
    import librosa

    return librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=512), None, None


def fe_librosa_stft(y):
    import librosa

    return librosa.feature.chroma_stft(y=y, sr=SR, hop_length=512, n_fft=4096), None, None


FRONT_ENDS = {"ours": fe_ours, "ours-linear": fe_ours_linear, "ours-notune": fe_ours_notune,
              "librosa-cqt": fe_librosa_cqt, "librosa-stft": fe_librosa_stft}


def fmt_row(label: str, s: dict) -> str:
    return (f"{label:<34} {s['n']:>4} " + " ".join(f"{s[c]:>7.3f}" for c in CLASSES[:-1])
            + f" {s['none']:>6.3f} {s['weighted']:>8.3f}")


HEADER = (f"{'front end / profile':<34} {'n':>4} " + " ".join(f"{c:>7}" for c in CLASSES[:-1])
          + f" {'nokey':>6} {'weighted':>8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 variants per key, 8 bars")
    ap.add_argument("--real-only", action="store_true", help="only the real-render tables")
    ap.add_argument("--no-real", action="store_true", help="skip the real-render tables")
    ap.add_argument("--keybench", default="/tmp/looplab-keybench",
                    help="GM key bench folder (bench/keybench/build_keybench.py)")
    ap.add_argument("--devset", default="/tmp/looplab-devset/gt",
                    help="realbench set or its gt folder")
    ap.add_argument("--holdout", default="/tmp/looplab-holdout/gt",
                    help="second real set (other songs; never fitted on) or its gt folder")
    ap.add_argument("--sets", default="keybench,devset,holdout",
                    help="comma list of real sets to score: keybench, devset, holdout")
    args = ap.parse_args()
    if not args.no_real:
        real_tables(Path(args.keybench), Path(args.devset), Path(args.holdout),
                    set(args.sets.split(",")))
    if args.real_only:
        return 0
    n_bars, variants = (8, 2) if args.quick else (16, 4)

    t = time.perf_counter()
    items = build_set(n_bars, variants)
    rng = np.random.default_rng(1)
    detuned = []
    for it in items:
        c = float(rng.uniform(20, 45) * rng.choice((-1, 1)))
        detuned.append(dict(it, y=detune(it["y"], c), cents=c))
    drums = []
    for j, (pat, bpm) in enumerate([("four_on_floor", 124), ("breakbeat", 96), ("halftime", 140),
                                    ("electro", 174), ("hats_only", 124), ("four_on_floor", 170),
                                    ("breakbeat", 160), ("electro", 88)]):
        tr = synth_track(bpm, n_bars=n_bars, key=None, instruments=("drums",), patterns=(pat,),
                         sr=SR, stereo=False, seed=500 + j)
        drums.append(tr.audio[:, 0])
    print(f"built {len(items)} tonal tracks x2 (in tune, detuned 20-45 c) + {len(drums)} "
          f"drum-only, {n_bars} bars each, in {time.perf_counter() - t:.1f} s")

    # ---- accuracy per front end and profile
    for cond, data in (("in tune", items), ("detuned 20-45 cents", detuned)):
        print(f"\n== Track key accuracy, {cond} ({len(data)} tracks, 24 keys)")
        print(HEADER)
        for fe_name, fe in FRONT_ENDS.items():
            feats = [fe(it["y"]) for it in data]
            for prof in K.PROFILES:
                cls = []
                for it, (vals, _share, _ch) in zip(data, feats):
                    # profile comparison: always guess (argmax of the 24 correlations)
                    best = int(np.argmax(K.key_scores(vals.mean(axis=1), prof)))
                    cls.append(classify(it["tonic"], it["mode"], best % 12,
                                        "major" if best < 12 else "minor"))
                mark = "  <- baseline" if (fe_name, prof) == ("librosa-cqt", "krumhansl") else ""
                print(fmt_row(f"{fe_name} / {prof}", summarize(cls)) + mark)
            if fe_name == "ours":
                # the shipped estimate_key: same argmax plus its "no clear key" rule
                cls = []
                for it, (vals, share, ch) in zip(data, feats):
                    est = K.track_key(ch)
                    cls.append(classify(it["tonic"], it["mode"], est.tonic, est.mode))
                print(fmt_row("ours / evidence model + no-key rule", summarize(cls))
                      + "  <- shipped")
            if fe_name == "ours" and cond == "detuned 20-45 cents":
                errs = [abs(ch.tuning_cents - it["cents"]) for it, (_v, _s, ch) in zip(data, feats)]
                print(f"   tuning estimate error: median {np.median(errs):.1f} c, "
                      f"max {np.max(errs):.1f} c")

    # ---- loops
    print("\n== Loop key accuracy (shipped method, in tune; loops are bar-aligned slices)")
    print(HEADER)
    chromas = [K.track_chroma(it["y"], SR) for it in items]
    conf_rows = []
    for bars in (4, 2, 1):
        for w in (0.0, 0.5):
            cls = []
            for it, ch in zip(items, chromas):
                bar = 240.0 / it["bpm"]
                starts = [it["t0"] + b * bar for b in range(0, n_bars, bars)]
                ests = K.segment_keys(ch, starts, [s + bars * bar for s in starts], track_weight=w)
                for e in ests:
                    c = classify(it["tonic"], it["mode"], e.tonic, e.mode)
                    cls.append(c)
                    if w == 0.0:
                        conf_rows.append((bars, e.confidence, c))
            print(fmt_row(f"{bars}-bar loops, track_weight={w:g}", summarize(cls)))
    print("  per profile, 2-bar loops, track_weight=0 (where the profiles differ):")
    for prof in K.PROFILES:
        cls = []
        for it, ch in zip(items, chromas):
            bar = 240.0 / it["bpm"]
            starts = [it["t0"] + b * bar for b in range(0, n_bars, 2)]
            for e in K.segment_keys(ch, starts, [s + 2 * bar for s in starts], profile=prof):
                cls.append(classify(it["tonic"], it["mode"], e.tonic, e.mode))
        print(fmt_row(f"  2-bar loops / {prof}", summarize(cls)))

    print("\n== Confidence vs exact accuracy (loops of 1, 2, 4 bars, track_weight=0)")
    edges = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.01)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [c for _b, conf, c in conf_rows if lo <= conf < hi]
        if sel:
            print(f"  confidence [{lo:.2f}, {min(hi, 1.0):.2f}{')' if hi <= 1 else ']'}: "
                  f"{len(sel):>5} loops, exact {sel.count('exact') / len(sel):.3f}")

    # ---- drum-only rejection
    print("\n== Drum-only tracks answered 'no clear key' by estimate_key (higher is better;"
          " librosa chroma has no tonal share, so only the flat / poor-fit rules apply)")
    for fe_name in ("ours", "librosa-cqt", "librosa-stft"):
        fe = FRONT_ENDS[fe_name]
        ok = 0
        for y in drums:
            vals, share, ch = fe(y)
            est = K.track_key(ch) if ch is not None else K.estimate_key(vals, tonal_share=share)
            ok += est.key == K.NO_CLEAR_KEY
        print(f"  {fe_name:<14} {ok}/{len(drums)}")

    # ---- timing on a 4-minute track
    import librosa

    long_track = synth_track(124.0, n_bars=124, key="F# minor", timbre="pluck", sr=SR,
                             stereo=False, seed=9).audio[:, 0]
    dur = long_track.size / SR

    def best_of(fn, n=3):
        fn()                                          # warm-up (plans, numba, imports)
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = fn()
            ts.append(time.perf_counter() - t0)
        return min(ts), out

    t_ours, k_ours = best_of(lambda: K.track_key(K.track_chroma(long_track, SR)))
    t_fast, k_fast = best_of(lambda: K.key_of_audio(long_track, SR))
    def argmax_key(chroma):
        best = int(np.argmax(K.key_scores(chroma.mean(axis=1), "krumhansl")))
        return f"{K.PITCH_CLASSES[best % 12]} {'major' if best < 12 else 'minor'}"

    t_cqt, k_cqt = best_of(lambda: argmax_key(
        librosa.feature.chroma_cqt(y=long_track, sr=SR, hop_length=512)))
    t_stft, k_stft = best_of(lambda: argmax_key(
        librosa.feature.chroma_stft(y=long_track, sr=SR, hop_length=512, n_fft=4096)))
    print(f"\n== Time per {dur / 60:.1f}-minute track (22050 Hz mono), chroma + key, best of 3")
    print(f"  ours  track_chroma(hop 512) + key : {t_ours:6.3f} s  ({k_ours.key})")
    print(f"  ours  key_of_audio (hop 2048)     : {t_fast:6.3f} s  ({k_fast.key})")
    print(f"  librosa chroma_cqt + Krumhansl    : {t_cqt:6.3f} s  ({k_cqt})   baseline")
    print(f"  librosa chroma_stft + Krumhansl   : {t_stft:6.3f} s  ({k_stft})")
    print(f"  speed-up vs baseline: hop 512 x{t_cqt / t_ours:.1f}, key_of_audio x{t_cqt / t_fast:.1f}")
    return 0


# --------------------------------------------------------------------------- real renders

REAL_CLASSES = ("exact", "fifth", "fifth-down", "relative", "parallel", "other", "none")


def _load_real(folder: Path, pattern: str) -> list[dict]:
    """Tracks with a ``key`` field: dicts (id, path, tonic, mode, split, family, meta)."""
    import json

    from engine.synth import parse_key

    items = []
    for jf in sorted(folder.glob(pattern)):
        if jf.name in ("BUILD_INFO.json",):
            continue
        try:
            meta = json.loads(jf.read_text())
        except (OSError, ValueError):
            continue
        if "key" not in meta or "audio" not in meta:
            continue
        k = meta["key"]
        tonal = parse_key(k["label"]) if k else None
        items.append(dict(id=meta.get("id", jf.stem), path=folder / meta["audio"],
                          tonic=tonal[0] if tonal else None, mode=tonal[1] if tonal else None,
                          split=meta.get("split", "all"), family=meta.get("family", meta.get("style", "")),
                          meta=meta))
    return items


def _real_row(label: str, cls: list[str], n_major: int, fifth_up_major: int) -> str:
    n = max(len(cls), 1)
    weighted = float(np.mean([WEIGHTS.get(c, 0.0) for c in cls])) if cls else 0.0
    per20 = 20.0 * fifth_up_major / n_major if n_major else float("nan")
    return (f"  {label:<34} {len(cls):>4} {cls.count('exact') / n:>6.3f} {weighted:>7.3f} "
            + " ".join(f"{cls.count(c):>6d}" for c in REAL_CLASSES[1:]) + f" {per20:>9.2f}")


REAL_HEADER = (f"  {'set / method':<34} {'n':>4} {'exact':>6} {'mirex':>7} "
               + " ".join(f"{c[:6]:>6}" for c in REAL_CLASSES[1:]) + f" {'5up/20maj':>9}")


def detected_downbeats(path: Path) -> np.ndarray:
    """Bar lines as the pipeline sees them: decode, frame features, rhythm stage."""
    from engine import stages
    from engine.audio import probe
    from engine.config import AnalysisConfig

    st = stages.AnalysisState(path=str(path), cfg=AnalysisConfig(), info=probe(path))
    stages.decode(st)
    stages.frame_features(st)
    stages.rhythm(st)
    return np.asarray(st.grid.downbeats, np.float64)


def real_tables(keybench: Path, devset: Path, holdout: Path | None = None,
                which: set | None = None) -> None:
    """Real-render tables: shipped estimator (with and without the detected bar grid),
    the previous evidence model, profile-only, librosa baseline."""
    import librosa
    import soundfile as sf
    import soxr

    which = which or {"keybench", "devset", "holdout"}
    sets = []
    if "keybench" not in which:
        pass
    elif (keybench / "BUILD_INFO.json").exists():
        kb = _load_real(keybench, "*.json")
        for split in ("dev", "test"):
            sets.append((f"GM key bench, {split}{' (held out)' if split == 'test' else ''}",
                         [it for it in kb if it["split"] == split]))
    else:
        print(f"\n== Real renders: GM key bench not built ({keybench}/BUILD_INFO.json missing); "
              f"build it with: python bench/keybench/build_keybench.py {keybench}")
    if (devset / "gt" / "manifest.csv").exists():      # the set's folder rather than its gt/
        devset = devset / "gt"
    if "devset" not in which:
        pass
    elif (devset / "manifest.csv").exists():
        sets.append((f"realbench MMA renders ({devset})", _load_real(devset, "*.json")))
    else:
        print(f"\n== Real renders: realbench dev set not built ({devset}/manifest.csv missing); "
              f"see ../shared/realbench/README.md")
    if holdout is not None and "holdout" in which:
        if (holdout / "gt" / "manifest.csv").exists():
            holdout = holdout / "gt"
        if (holdout.parent / "READY").exists() or (holdout / "READY").exists():
            sets.append(("HOLDOUT set (other songs, never fitted)", _load_real(holdout, "*.json")))
        else:
            print(f"\n== Real renders: holdout set not ready ({holdout.parent}/READY missing)")
    if not sets:
        return

    def load(path):
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        return soxr.resample(y, sr, SR).astype(np.float32) if sr != SR else y

    def krumhansl(y):
        c = librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=512)
        best = int(np.argmax(K.key_scores(c.mean(axis=1), "krumhansl")))
        return best % 12, "major" if best < 12 else "minor"

    hop = int(round(SR * K.KEY_HOP_SECONDS))
    methods = ("shipped + detected bar grid", "shipped, no grid (engine key)",
               "profile only", "librosa cqt + Krumhansl")
    confusions = {m: {} for m in methods}
    seconds = []
    for name, items in sets:
        tonal = [it for it in items if it["tonic"] is not None]
        drums = [it for it in items if it["tonic"] is None]
        cls = {m: [] for m in methods}
        fam: dict = {}
        conf_rows = []
        misses = []
        loop_cls = {2: [], 4: [], "2 no grid": [], "4 no grid": []}
        nokey = 0
        for it in tonal + drums:
            y = load(it["path"])
            db = detected_downbeats(it["path"])
            t1 = time.perf_counter()
            ch = K.track_chroma(y, SR, hop_length=hop)
            ours = K.track_key(ch, downbeats=db)
            seconds.append((time.perf_counter() - t1) / max(y.size / SR / 240.0, 1e-9))
            nogrid = K.track_key(ch)
            if it["tonic"] is None:
                nokey += ours.key == K.NO_CLEAR_KEY
                continue
            prev = K.estimate_key(ch.values, tonal_share=ch.tonal_share(), weights={"profile": 1.0})
            base = krumhansl(y)
            for m, (et, em) in zip(methods, ((ours.tonic, ours.mode), (nogrid.tonic, nogrid.mode),
                                             (prev.tonic, prev.mode), base)):
                c = classify_real(it["tonic"], it["mode"], et, em)
                cls[m].append((c, it["mode"]))
                if m == methods[0]:
                    fam.setdefault(it["family"], []).append(c)
                    conf_rows.append((ours.confidence, c))
                    if c != "exact":
                        misses.append(f"{it['id']}: {K.PITCH_CLASSES[it['tonic']]} {it['mode']} -> "
                                      f"{ours.key} ({c}, conf {ours.confidence:.2f})")
            meta = it["meta"]
            if "pickup_beats" in meta:            # key bench: loops on the known bar grid
                bpm, meter = float(meta["bpm"]), int(str(meta["meter"])[0])
                t0, bar = meta["pickup_beats"] * 60.0 / bpm, meter * 60.0 / bpm
                for bars in (2, 4):
                    starts = [t0 + b * bar for b in range(0, int(meta["n_bars"]) - bars + 1, 2)]
                    for e in K.segment_keys(ch, starts, [s + bars * bar for s in starts],
                                            track_weight=0.5, downbeats=db):
                        loop_cls[bars].append(classify_real(it["tonic"], it["mode"], e.tonic, e.mode))
                    for e in K.segment_keys(ch, starts, [s + bars * bar for s in starts],
                                            track_weight=0.5):
                        loop_cls[f"{bars} no grid"].append(
                            classify_real(it["tonic"], it["mode"], e.tonic, e.mode))
        print(f"\n== Real renders: {name} ({len(tonal)} tonal tracks"
              f"{f', {len(drums)} drum-only' if drums else ''})")
        print(REAL_HEADER)
        for m in methods:
            cs = [c for c, _ in cls[m]]
            n_major = sum(1 for _, mode in cls[m] if mode == "major")
            fifth_up_major = sum(1 for c, mode in cls[m] if mode == "major" and c == "fifth")
            print(_real_row(m, cs, n_major, fifth_up_major)
                  + ("  <- baseline" if m.startswith("librosa") else ""))
        if drums:
            print(f"  drum-only tracks answered 'no clear key' (shipped): {nokey}/{len(drums)}")
        fam_all: dict = {}
        for it, (c, _m) in zip(tonal, cls[methods[1]]):
            fam_all.setdefault(it["family"], []).append(c)
        if len(fam) > 1:
            print("  no grid, by family:   " + "; ".join(
                f"{f} {c.count('exact')}/{len(c)}" for f, c in sorted(fam_all.items())))
        if len(fam) > 1:
            print("  shipped, by family: " + "; ".join(
                f"{f} {c.count('exact')}/{len(c)}" for f, c in sorted(fam.items())))
        edges = (0.0, 0.4, 0.6, 0.8, 1.01)
        bins = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = [c for conf, c in conf_rows if lo <= conf < hi]
            if sel:
                bins.append(f"[{lo:.1f},{min(hi, 1.0):.1f}) {sel.count('exact')}/{len(sel)}")
        print("  shipped, exact by confidence: " + "; ".join(bins))
        if misses and len(misses) <= 40:
            print("  shipped, misses: " + "; ".join(misses))
        for bars, lc in loop_cls.items():
            if lc:
                n_bars_, _, grid_ = str(bars).partition(" ")
                print(_real_row(f"{n_bars_}-bar loops{', ' + grid_ if grid_ else ''}, tw=0.5",
                                lc, 0, 0)[:-10])
    if seconds:
        print(f"\n  chroma + key with the bar grid (grid from the rhythm stage, not timed): "
              f"median {np.median(seconds):.3f} s per 4 minutes of audio")


if __name__ == "__main__":
    sys.exit(main())
