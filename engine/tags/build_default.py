"""Rebuild the shipped default instrument-roles model.

``python -m engine.tags.build_default`` reproduces
``engine/models/roles_model.joblib`` (and its report ``roles_model.report.json``)
from the realbench dev set (``/tmp/looplab-devset``, sources under
``/tmp/looplab-devset-work``): 2 min 32 s from scratch on 2 cores (generated
loops, FluidSynth part renders, loop cutting and features; the fits take
seconds); a from-scratch rebuild gave identical probabilities and thresholds.

The recipe (:data:`RECIPE`), chosen by song-grouped cross-validation on the
dev set (:mod:`engine.tags.songcv`; no song on both sides of a split):

1. real full mixes: loops cut from every dev-set track whose role truth is
   known (MMA MIDI, LMMS projects, Hydrogen songs;
   :func:`engine.tags.roles.make_realbench_role_loops`, 24 per track);
2. MMA part renders when FluidSynth is installed (each MMA song re-rendered
   4 times with a random subset of its parts, 6 loops per render;
   :func:`engine.tags.roles.make_mma_part_loops`);
3. 500 generated loops (:func:`engine.tags.roles.make_synth_role_loops`,
   seed 1), weighted so that together they carry half of the training weight
   (``synth_share`` 0.5): the 500 generated loops would otherwise outvote the
   ~600 real ones on cues that do not hold in dense real mixes;
4. one standardised logistic regression per role (C 0.1; forests learned the
   songs rather than the roles in the grouped CV), thresholds calibrated on
   5-fold grouped out-of-fold probabilities of the real full mixes and the
   generated loops together (songs grouped; real-only thresholds set most
   roles to "always on" and cost the generated loops 0.16 macro-F1), with a
   fallback to "always on" for a role the model cannot beat that on.

The report's ``song_cv`` holds the out-of-fold scores per role with the
majority baseline; ``generated_heldout`` the scores on 200 fresh generated
loops (seed 7). Scratch audio goes to ``--work_dir`` (default
/tmp/looplab-roles-build).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from .classify import DEFAULT_ROLES_MODEL

#: The recipe's settings (stored in the report).
RECIPE = {"synth_loops": 500, "synth_seed": 1, "mma_variants": 4, "mma_loops_per_render": 6,
          "mma_seed": 0, "realbench_loops_per_track": 24, "realbench_seed": 0,
          "synth_share": 0.5, "use_parts": True, "learner": "lr", "lr_c": 0.1, "folds": 5,
          "fold_seed": 0, "calibrate_on": "full+synth", "generated_heldout_loops": 200,
          "generated_heldout_seed": 7}


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


def training_table(work_dir, devset, devset_work, *, use_mma: bool = True, cache_dir=None,
                   n_jobs: int = -1, progress=None):
    """Cut / generate the training loops (reusing what ``work_dir`` holds) and
    return ``(features, tags, kind, song, sources)``."""
    import pandas as pd

    from ..config import DEFAULT_CACHE_DIR
    from .features import compute_features
    from .roles import (ROLES_CSV, make_mma_part_loops, make_realbench_role_loops,
                        make_synth_role_loops, read_roles_csv, song_of)

    progress = progress or _noop
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    work = Path(work_dir)
    have_dev = Path(devset, "gt", "manifest.csv").is_file()
    if not have_dev:
        raise FileNotFoundError(f"the realbench dev set is not built at {devset} "
                                "(see /work/shared/realbench/README.md)")
    dirs = {"synth": work / "synth", "full": work / "realbench24"}
    if not (dirs["synth"] / ROLES_CSV).is_file():
        make_synth_role_loops(dirs["synth"], n=RECIPE["synth_loops"], seed=RECIPE["synth_seed"],
                              progress=progress)
    if not (dirs["full"] / ROLES_CSV).is_file():
        make_realbench_role_loops(devset, devset_work, dirs["full"],
                                  per_track=RECIPE["realbench_loops_per_track"],
                                  seed=RECIPE["realbench_seed"], progress=progress)
    if use_mma and RECIPE["use_parts"] and shutil.which("fluidsynth"):
        dirs["part"] = work / "mma"
        if not (dirs["part"] / ROLES_CSV).is_file():
            make_mma_part_loops(devset, devset_work, dirs["part"],
                                variants=RECIPE["mma_variants"],
                                per_render=RECIPE["mma_loops_per_render"],
                                seed=RECIPE["mma_seed"], progress=progress)
    frames = []
    for kind, d in dirs.items():
        truth = read_roles_csv(d / ROLES_CSV)
        fr = compute_features(sorted(truth), cache_dir=cache_dir, n_jobs=n_jobs,
                              progress=progress).frame
        fr["_kind"] = kind
        fr["_song"] = [Path(f).stem if kind == "synth" else song_of(f) for f in fr["file"]]
        fr["_tags"] = [truth[str(Path(f).resolve())] for f in fr["file"]]
        frames.append(fr)
    df = pd.concat(frames, ignore_index=True)
    feats = [c for c in df.columns if c != "file" and not c.startswith("_")
             and pd.api.types.is_numeric_dtype(df[c])]
    X = df[feats].astype(float).fillna(0.0)
    return X, list(df["_tags"]), df["_kind"].to_numpy(), df["_song"].to_numpy(), \
        {k: str(v) for k, v in dirs.items()}


def generated_heldout(bundle, work_dir, cache_dir=None, n_jobs: int = -1) -> dict:
    """Roles scores of ``bundle`` on fresh generated loops (another seed)."""
    from ..config import DEFAULT_CACHE_DIR
    from .features import compute_features
    from .roles import ROLES_CSV, make_synth_role_loops, read_roles_csv
    from .songcv import decide, label_matrix, role_report

    d = Path(work_dir) / "synth_heldout"
    if not (d / ROLES_CSV).is_file():
        make_synth_role_loops(d, n=RECIPE["generated_heldout_loops"],
                              seed=RECIPE["generated_heldout_seed"])
    truth = read_roles_csv(d / ROLES_CSV)
    fr = compute_features(sorted(truth), cache_dir=cache_dir or DEFAULT_CACHE_DIR,
                          n_jobs=n_jobs).frame
    classes = bundle["classes"]
    P = decide(bundle["model"].predict_proba(fr), classes, bundle["thresholds"])
    Y = label_matrix([truth[str(Path(f).resolve())] for f in fr["file"]], classes)
    return role_report(Y, P, classes)


def build(out=DEFAULT_ROLES_MODEL, work_dir="/tmp/looplab-roles-build",
          devset="/tmp/looplab-devset", devset_work="/tmp/looplab-devset-work",
          use_mma: bool = True, cache_dir=None, n_jobs: int = -1, progress=None) -> dict:
    """Generate / cut the training loops, train, write the model and its report.

    Returns the report (with ``recipe``, ``sources``, ``song_cv``,
    ``generated_heldout`` and ``build_seconds``).
    """
    from ..atomic import atomic_write_text
    from .model import save_bundle
    from .songcv import MixConfig, train_roles_mix

    t0 = time.perf_counter()
    X, tags, kind, song, sources = training_table(work_dir, devset, devset_work,
                                                  use_mma=use_mma, cache_dir=cache_dir,
                                                  n_jobs=n_jobs, progress=progress)
    mix = MixConfig(synth_share=RECIPE["synth_share"], use_parts=RECIPE["use_parts"],
                    learner=RECIPE["learner"], lr_c=RECIPE["lr_c"], folds=RECIPE["folds"],
                    seed=RECIPE["fold_seed"], calibrate_on=RECIPE["calibrate_on"])
    bundle, report = train_roles_mix(X, tags, kind, song, mix, progress=progress)
    report["generated_heldout"] = generated_heldout(bundle, work_dir, cache_dir, n_jobs)
    report["recipe"] = RECIPE
    report["sources"] = sources
    report["build_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(out)
    save_bundle(bundle, out)
    atomic_write_text(out.with_suffix(".report.json"),
                      json.dumps(report, indent=2, default=float))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.tags.build_default", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_ROLES_MODEL))
    p.add_argument("--work_dir", default="/tmp/looplab-roles-build")
    p.add_argument("--devset", default="/tmp/looplab-devset")
    p.add_argument("--devset_work", default="/tmp/looplab-devset-work")
    p.add_argument("--no_mma", action="store_true", help="no FluidSynth part renders")
    p.add_argument("--cache_dir", default=None)
    a = p.parse_args(argv)
    rep = build(a.out, a.work_dir, a.devset, a.devset_work, use_mma=not a.no_mma,
                cache_dir=a.cache_dir)
    cv, gen = rep["song_cv"], rep["generated_heldout"]
    print(json.dumps({"sources": rep["sources"], "rows_by_kind": rep["rows_by_kind"],
                      "n_songs": rep["n_songs"],
                      "song_cv_macro_f1": cv["macro_f1"],
                      "song_cv_majority_macro_f1": cv["majority_macro_f1"],
                      "song_cv_per_label": {c: [round(v["f1"], 3), round(v["majority_f1"], 3)]
                                            for c, v in cv["per_label"].items()},
                      "generated_heldout_macro_f1": gen["macro_f1"],
                      "thresholds": rep["thresholds"],
                      "build_seconds": rep["build_seconds"]}, indent=2))
    print(f"model: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
