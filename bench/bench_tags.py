"""Tag classifiers: time to train and classify 200 loops, per-label F1, realbench roles.

Run from the project checkout (heavy: under the shared lock)::

    flock /tmp/looplab-heavy.lock python bench/bench_tags.py

Prints

1. training a roles head on 200 generated loops and classifying 200 more
   (features computed from scratch, 2 processes): seconds, target < 120 s;
   per-label F1 / prevalence / majority baseline on the held-out split and
   on the 200 fresh loops;
2. the audio rules against the generator's truth (tempo class, density
   class, percussive vs harmonic) on 48 loops;
3. leak-free audio labels: held-out macro-F1 of heads that never see their
   rule's inputs, against the majority baseline;
4. baselines measured in this run: the seed's feature pass (decode twice,
   full-resolution librosa HPSS twice) and its pure-Python O(n^2 L) split,
   against ours;
5. with the dev set built (/tmp/looplab-devset): roles on loops cut from its
   MMA, LMMS and Hydrogen renders on their ground-truth downbeats (truth from
   the MIDI tracks and projects), per label next to the majority baseline:
   the shipped recipe under 5-fold song-grouped CV (3 fold seeds), two
   alternatives, the 200-loop synth-only head; and, when the second real set
   is built (/tmp/looplab-holdout), the SHIPPED model on its loops (never
   trained on), overall and per source kind.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")

from engine.config import DEFAULT_CACHE_DIR  # noqa: E402
from engine.tags.classify import classify_files  # noqa: E402
from engine.tags.features import compute_features, signal_features  # noqa: E402
from engine.tags.labels_audio import audio_tags, excluded_features  # noqa: E402
from engine.tags.model import TrainConfig, _f1, train_multilabel  # noqa: E402
from engine.tags.roles import (ROLES,  # noqa: E402
                               make_synth_role_loops, read_roles_csv)
from engine.tags.split import iterative_split  # noqa: E402
from engine.tags.train import train_tags  # noqa: E402
from engine.tags.truth import agreement, audio_truth_loops  # noqa: E402

DEVSET = Path(os.environ.get("LOOPLAB_DEVSET", "/tmp/looplab-devset"))
DEVSET_WORK = Path(os.environ.get("LOOPLAB_DEVSET_WORK", "/tmp/looplab-devset-work"))
#: Where python -m engine.tags.build_default keeps its loops (reused here).
ROLES_WORK = Path(os.environ.get("LOOPLAB_ROLES_WORK", "/tmp/looplab-roles-build"))
#: Feature cache for the real loops (stable files; default: the project cache).
REAL_CACHE = Path(os.environ.get("LOOPLAB_TAGS_CACHE", str(DEFAULT_CACHE_DIR)))
#: The second real set (other songs); evaluated, never trained on.
HOLDOUT = Path(os.environ.get("LOOPLAB_HOLDOUT", "/tmp/looplab-holdout"))
HOLDOUT_WORK = Path(os.environ.get("LOOPLAB_HOLDOUT_WORK", "/tmp/looplab-holdout-work"))


def role_scores(pred_tags, files, truth) -> tuple[dict, float, float]:
    """Per-role F1 and macro-F1 (over roles with positives) vs the majority baseline."""
    Y = np.array([[r in truth[str(Path(f).resolve())] for r in ROLES] for f in files], int)
    P = np.array([[r in set(t.split(",")) for r in ROLES] for t in pred_tags], int)
    per, f1s, base = {}, [], []
    for j, r in enumerate(ROLES):
        maj = int(Y[:, j].mean() >= 0.5)
        f, b = _f1(Y[:, j], P[:, j]), _f1(Y[:, j], np.full(len(Y), maj))
        per[r] = (float(Y[:, j].mean()), f, b, float(P[:, j].mean()))
        if Y[:, j].any():
            f1s.append(f)
            base.append(b)
    return per, float(np.mean(f1s)), float(np.mean(base))


def print_roles(title, per, macro, base):
    print(f"\n{title}")
    print(f"  {'role':<11}{'prev':>6}{'F1':>7}{'major':>7}{'pred':>6}")
    for r, (prev, f, b, pr) in per.items():
        print(f"  {r:<11}{prev:>6.2f}{f:>7.3f}{b:>7.3f}{pr:>6.2f}")
    print(f"  macro-F1 (roles present) {macro:.3f}  majority baseline {base:.3f}  "
          f"ratio {macro / max(base, 1e-9):.2f}x")


def seed_split(Y, fraction, seed):
    """The seed's iterative split: one row per step, every row rescored in Python."""
    import random

    rnd = random.Random(seed)
    n, L = len(Y), len(Y[0])
    target = min(max(round(n * fraction), 1), n - 1)
    need = [round(sum(Y[i][j] for i in range(n)) * fraction) for j in range(L)]
    free = set(range(n))
    chosen = []
    while any(v > 0 for v in need) and len(chosen) < target:
        rem = [sum(Y[i][j] for i in free) for j in range(L)]
        cands = [j for j in range(L) if need[j] > 0]
        lab = min(cands, key=lambda j: (rem[j], -need[j]))
        rows = [i for i in free if Y[i][lab]]
        if not rows:
            need[lab] = 0
            continue
        sc = {i: sum(max(need[j], 0) * Y[i][j] for j in range(L)) / (len(free) + 1e-6)
              for i in rows}
        best = max(sc.values())
        pick = rnd.choice([i for i in rows if sc[i] == best])
        chosen.append(pick)
        free.discard(pick)
        for j in range(L):
            need[j] -= Y[pick][j]
    while len(chosen) < target:
        pick = rnd.choice(sorted(free))
        chosen.append(pick)
        free.discard(pick)
    return chosen


def seed_feature_pass(path):
    """The seed's cost per file: decode twice, full-resolution HPSS twice."""
    import librosa

    for _ in range(2):
        y, sr = librosa.load(path, sr=22050, mono=True, duration=20)
        librosa.effects.hpss(y)
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        librosa.beat.beat_track(y=y, sr=sr)


def print_report(title, rep):
    """Per-label F1 next to the majority baseline (:func:`engine.tags.songcv.role_report`)."""
    print(f"\n{title}")
    print(f"  {'role':<11}{'support':>8}{'prev':>6}{'F1':>7}{'major':>7}{'pred':>6}")
    for r, v in rep["per_label"].items():
        print(f"  {r:<11}{v['support']:>8}{v['prevalence']:>6.2f}{v['f1']:>7.3f}"
              f"{v['majority_f1']:>7.3f}{v['predicted_rate']:>6.2f}")
    print(f"  macro-F1 over {len(rep['labels_scored'])} roles present ({rep['n']} loops): "
          f"{rep['macro_f1']:.3f}  majority baseline {rep['majority_macro_f1']:.3f}  "
          f"({'beats' if rep['macro_f1'] > rep['majority_macro_f1'] else 'does NOT beat'} it)")


def realbench_roles(synth_bundle, cache) -> None:
    """[5] realbench roles: grouped-by-song CV of the shipped recipe on the dev
    set, the synth-only head on the dev set, and the shipped model on the
    second real set (never trained on) when it is built."""
    from engine.tags.build_default import RECIPE, training_table
    from engine.tags.classify import DEFAULT_ROLES_MODEL
    from engine.tags.model import load_bundle
    from engine.tags.songcv import (MixConfig, decide, evaluate_mix, label_matrix,
                                    role_report)

    t = time.perf_counter()
    X, tags, kind, song, _ = training_table(ROLES_WORK, DEVSET, DEVSET_WORK, cache_dir=cache,
                                            n_jobs=2)
    mix = MixConfig(synth_share=RECIPE["synth_share"], use_parts=RECIPE["use_parts"],
                    learner=RECIPE["learner"], lr_c=RECIPE["lr_c"], folds=RECIPE["folds"],
                    seed=RECIPE["fold_seed"], calibrate_on=RECIPE["calibrate_on"])
    print(f"\n[5] realbench roles (truth: MMA MIDI tracks, LMMS projects, Hydrogen songs; "
          f"{int(np.sum(kind == 'full'))} dev-set loops from {len(set(song[kind == 'full']))} "
          f"songs; table {time.perf_counter() - t:.1f} s)")
    for seed in (RECIPE["fold_seed"], 1, 2):
        m = MixConfig(**{**mix.__dict__, "seed": seed})
        rep = evaluate_mix(X, tags, kind, song, m)
        if seed == RECIPE["fold_seed"]:
            print_report(f"    shipped recipe, dev set, {m.folds}-fold grouped by song "
                         "(held-out songs; thresholds from the other folds):", rep)
        else:
            print(f"    other fold seed {seed}: macro-F1 {rep['macro_f1']:.3f} vs majority "
                  f"{rep['majority_macro_f1']:.3f}")
    for what, m in (("real only (no generated loops)", MixConfig(**{**mix.__dict__,
                                                                   "synth_share": 0.0})),
                    ("random forest instead of logistic regression",
                     MixConfig(**{**mix.__dict__, "learner": "rf", "min_samples_leaf": 8}))):
        rep = evaluate_mix(X, tags, kind, song, m)
        print(f"    alternative, {what}: macro-F1 {rep['macro_f1']:.3f} vs majority "
              f"{rep['majority_macro_f1']:.3f}")
    full = kind == "full"
    Xf = X[full]
    Yf = label_matrix([t_ for t_, k in zip(tags, full) if k], synth_bundle["classes"])
    P = decide(synth_bundle["model"].predict_proba(Xf), synth_bundle["classes"],
               synth_bundle["thresholds"])
    print_report("    head trained on the 200 generated loops only, dev-set loops:",
                 role_report(Yf, P, synth_bundle["classes"]))
    if not (HOLDOUT / "READY").is_file():
        print(f"\n    second real set not built ({HOLDOUT}/READY missing): skipped")
        return
    from engine.tags.features import compute_features
    from engine.tags.roles import make_realbench_role_loops

    shipped = load_bundle(DEFAULT_ROLES_MODEL)
    ho_dir = ROLES_WORK / "holdout"
    if not (ho_dir / "roles.csv").is_file():
        make_realbench_role_loops(HOLDOUT, HOLDOUT_WORK, ho_dir,
                                  per_track=RECIPE["realbench_loops_per_track"],
                                  seed=RECIPE["realbench_seed"])
    truth = read_roles_csv(ho_dir / "roles.csv")
    fr = compute_features(sorted(truth), cache_dir=cache, n_jobs=2).frame
    classes = shipped["classes"]
    Y = label_matrix([truth[str(Path(f).resolve())] for f in fr["file"]], classes)
    P = decide(shipped["model"].predict_proba(fr), classes, shipped["thresholds"])
    print_report(f"    SHIPPED model on the second real set ({HOLDOUT}; other songs, never "
                 "trained on):", role_report(Y, P, classes))
    from engine.tags.roles import song_of

    kinds = np.array([song_of(f).split("_")[0] for f in fr["file"]])
    for k in sorted(set(kinds)):
        r = role_report(Y[kinds == k], P[kinds == k], classes)
        print(f"      {k:<5} {r['n']:>4} loops: macro-F1 {r['macro_f1']:.3f} vs majority "
              f"{r['majority_macro_f1']:.3f}")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tags-"))
    cache = tmp / "cache"
    print(f"scratch: {tmp}")

    # 1 --------------------------------------------------------------- 200 + 200 loops
    train_csv = make_synth_role_loops(tmp / "train", n=200, seed=11)
    new_csv = make_synth_role_loops(tmp / "new", n=200, seed=12)
    t0 = time.perf_counter()
    res = train_tags(tmp / "train", label_source="roles", cfg=TrainConfig(min_tag_count=3),
                     cache_dir=cache, n_jobs=2)
    t_train = time.perf_counter() - t0
    truth_new = read_roles_csv(new_csv)
    t1 = time.perf_counter()
    df, fails = classify_files(sorted(truth_new), res.bundle, cache_dir=cache, n_jobs=2)
    t_cls = time.perf_counter() - t1
    total = t_train + t_cls
    print(f"\n[1] train roles head on 200 loops: {t_train:.1f} s (features "
          f"{res.report['feature_seconds']:.1f} s); classify 200 new loops: {t_cls:.1f} s; "
          f"total {total:.1f} s (target < 120 s: {'OK' if total < 120 else 'MISSED'})")
    rep = res.report
    print(f"    held-out split ({rep['n_test']} loops): macro-F1 calibrated "
          f"{rep['test_metrics']['macro_f1_calibrated']:.3f}, majority baseline "
          f"{rep['majority_baseline']['test_macro_f1']:.3f}")
    for c, m in rep["label_metrics_test"].items():
        print(f"    {c:<11} prevalence {m['prevalence']:.2f}  F1 {m['f1_calibrated']:.3f}  "
              f"majority {m['majority_baseline']:.3f}")
    per, macro, base = role_scores(df["predicted_tags"], df["file"], truth_new)
    print_roles("    200 fresh generated loops (another seed):", per, macro, base)

    # 2 --------------------------------------------------------------- audio rules vs truth
    loops = audio_truth_loops(48, seed=5)
    feats = [signal_features(y, 22050) for y, _ in loops]
    agree = agreement([audio_tags(f) for f in feats], [t for _, t in loops])
    print("\n[2] audio rules vs generator truth (48 loops):")
    for g, v in agree.items():
        print(f"    {g:<11} {v['agreement'] * 100:5.1f} % of {v['n']} checked loops")

    # 3 --------------------------------------------------------------- leak-free audio labels
    import pandas as pd

    frame = compute_features(sorted(truth_new), cache_dir=cache, n_jobs=2).frame
    frame = pd.concat([frame, compute_features(sorted(read_roles_csv(train_csv)),
                                               cache_dir=cache, n_jobs=2).frame],
                      ignore_index=True)
    tags = [audio_tags(r) for _, r in frame.iterrows()]
    excl = {t: list(excluded_features(t)) for ts in tags for t in ts}
    leak_free = train_multilabel(frame, tags, label_source="audio",
                                 cfg=TrainConfig(n_estimators=300), excluded=excl).report
    leaky = train_multilabel(frame, tags, label_source="audio",
                             cfg=TrainConfig(n_estimators=300)).report
    print(f"\n[3] audio labels on 400 loops: leak-free held-out macro-F1 "
          f"{leak_free['test_metrics']['macro_f1_calibrated']:.3f} vs majority "
          f"{leak_free['majority_baseline']['test_macro_f1']:.3f} (the seed's leaky setup: "
          f"{leaky['test_metrics']['macro_f1_calibrated']:.3f}); constant labels dropped: "
          f"{leak_free['dropped_labels']['constant']}")
    for c, m in leak_free["label_metrics_test"].items():
        print(f"    {c:<16} prevalence {m['prevalence']:.2f}  F1 {m['f1_calibrated']:.3f}  "
              f"majority {m['majority_baseline']:.3f}  excluded: "
              f"{', '.join(leak_free['excluded_features'][c])}")

    # 4 --------------------------------------------------------------- baselines
    files = sorted(truth_new)[:10]
    t = time.perf_counter()
    for f in files:
        seed_feature_pass(f)
    t_seed = time.perf_counter() - t
    t = time.perf_counter()
    compute_features(files, cache_dir=tmp / "cache2", use_cache=False, n_jobs=1)
    t_ours = time.perf_counter() - t
    print(f"\n[4] features, 10 loops in-process: seed-style {t_seed:.2f} s, ours {t_ours:.2f} s "
          f"({t_seed / t_ours:.1f}x)")
    rng = np.random.default_rng(0)
    for n in (200, 1000):
        Y = (rng.random((n, 17)) < rng.uniform(0.03, 0.5, 17)).astype(int)
        t = time.perf_counter()
        seed_split(Y.tolist(), 0.2, 42)
        ts = time.perf_counter() - t
        t = time.perf_counter()
        iterative_split(Y, 0.2, 42)
        tv = time.perf_counter() - t
        print(f"    split n={n}, 17 labels: seed-style {ts * 1000:.0f} ms, vectorised "
              f"{tv * 1000:.1f} ms ({ts / tv:.0f}x)")

    # 5 --------------------------------------------------------------- realbench roles
    if (DEVSET / "gt" / "manifest.csv").is_file():
        realbench_roles(res.bundle, REAL_CACHE)
    else:
        print("\n[5] realbench not built: skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
