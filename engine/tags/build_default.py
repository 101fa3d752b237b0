"""Rebuild the shipped default instrument-roles model.

``python -m engine.tags.build_default`` reproduces
``engine/models/roles_model.joblib`` (and its report ``roles_model.report.json``):

1. 500 generated loops (:func:`engine.tags.roles.make_synth_role_loops`,
   seed 1): every part on or off at random, 70-175 BPM, 1-4 bars, any key;
2. when the dev set is built and FluidSynth is installed, MMA part renders
   (:func:`engine.tags.roles.make_mma_part_loops`: each MMA song re-rendered
   4 times with a random subset of its parts, 6 loops per render), which bring
   real General-MIDI timbres;
3. when the dev set is built, loops cut from its MMA full mixes on their
   ground-truth downbeats (:func:`engine.tags.roles.make_realbench_role_loops`,
   12 per song; truth from the MIDI tracks);
4. ``train_tags(label_source="roles")`` with 200 trees per label
   (min_samples_leaf 3) to keep the file small; rendered (real-instrument)
   loops weigh 3x a generated loop (measured: the generated loops alone
   teach the forest cues that do not hold for dense real mixes).

Scratch audio goes to ``--work_dir`` (default /tmp/looplab-roles-build).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from .classify import DEFAULT_ROLES_MODEL

#: The recipe's settings (stored in the report).
RECIPE = {"synth_loops": 500, "synth_seed": 1, "mma_variants": 4, "mma_loops_per_render": 6,
          "mma_seed": 0, "realbench_loops_per_track": 12, "real_weight": 3.0, "n_estimators": 200, "min_samples_leaf": 3, "min_tag_count": 3,
          "learner": "rf"}


def build(out=DEFAULT_ROLES_MODEL, work_dir="/tmp/looplab-roles-build",
          devset="/tmp/looplab-devset", devset_work="/tmp/looplab-devset-work",
          use_mma: bool = True, cache_dir=None, n_jobs: int = -1, progress=None) -> dict:
    """Generate the training loops, train, write the model and its report.

    Returns the report (with ``recipe`` and ``sources``).
    """
    from ..config import DEFAULT_CACHE_DIR
    from .model import TrainConfig
    from .roles import (ROLES_CSV, make_mma_part_loops, make_realbench_role_loops,
                        make_synth_role_loops, read_roles_csv)
    from .train import list_loops, train_tags, write_outputs

    work = Path(work_dir)
    synth_dir, mma_dir = work / "synth", work / "mma"
    if not (synth_dir / ROLES_CSV).is_file():
        make_synth_role_loops(synth_dir, n=RECIPE["synth_loops"], seed=RECIPE["synth_seed"],
                              progress=progress)
    sources = {"synth": str(synth_dir)}
    files = list_loops(synth_dir)
    truth = read_roles_csv(synth_dir / ROLES_CSV)
    if use_mma and Path(devset, "gt", "manifest.csv").is_file() and shutil.which("fluidsynth"):
        if not (mma_dir / ROLES_CSV).is_file():
            make_mma_part_loops(devset, devset_work, mma_dir, variants=RECIPE["mma_variants"],
                                per_render=RECIPE["mma_loops_per_render"],
                                seed=RECIPE["mma_seed"], progress=progress)
        files += list_loops(mma_dir)
        truth.update(read_roles_csv(mma_dir / ROLES_CSV))
        sources["mma_part_renders"] = str(mma_dir)
    if Path(devset, "gt", "manifest.csv").is_file() and Path(devset_work, "mma").is_dir():
        rb_dir = work / "realbench"
        if not (rb_dir / ROLES_CSV).is_file():
            make_realbench_role_loops(devset, devset_work, rb_dir,
                                      per_track=RECIPE["realbench_loops_per_track"])
        files += list_loops(rb_dir)
        truth.update(read_roles_csv(rb_dir / ROLES_CSV))
        sources["realbench_mma_full_mixes"] = str(rb_dir)
    merged = work / "roles_all.csv"
    import pandas as pd

    from ..atomic import atomic_write_csv

    atomic_write_csv(pd.DataFrame({"file": list(truth), "roles": [",".join(v) for v in
                                                                 truth.values()]}), merged)
    cfg = TrainConfig(n_estimators=RECIPE["n_estimators"],
                      min_samples_leaf=RECIPE["min_samples_leaf"],
                      min_tag_count=RECIPE["min_tag_count"], learner=RECIPE["learner"])
    synth_root = str(synth_dir.resolve())

    def weight(f):        # rendered real instruments count 3x a generated loop
        return 1.0 if str(Path(f).resolve()).startswith(synth_root) else RECIPE["real_weight"]

    res = train_tags(files=files, label_source="roles", cfg=cfg, roles_csv=merged,
                     cache_dir=cache_dir or DEFAULT_CACHE_DIR, n_jobs=n_jobs,
                     file_weight=weight, progress=progress)
    res.report["recipe"] = RECIPE
    res.report["sources"] = sources
    out = Path(out)
    write_outputs(res, out, out.with_suffix(".report.json"), None)
    return res.report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.tags.build_default", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_ROLES_MODEL))
    p.add_argument("--work_dir", default="/tmp/looplab-roles-build")
    p.add_argument("--devset", default="/tmp/looplab-devset")
    p.add_argument("--devset_work", default="/tmp/looplab-devset-work")
    p.add_argument("--no_mma", action="store_true", help="generated loops only")
    p.add_argument("--cache_dir", default=None)
    a = p.parse_args(argv)
    rep = build(a.out, a.work_dir, a.devset, a.devset_work, use_mma=not a.no_mma,
                cache_dir=a.cache_dir)
    tm = rep["test_metrics"]
    print(json.dumps({"sources": rep["sources"], "n_rows": rep["n_rows"],
                      "test_macro_f1_calibrated": tm["macro_f1_calibrated"],
                      "majority_baseline": rep["majority_baseline"]["test_macro_f1"]}, indent=2))
    print(f"model: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
