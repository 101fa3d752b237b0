"""Benchmark: a local batch in one process vs. worker processes, and a worker death.

Runs the same files three ways in one process and prints wall time, files per
minute and the ratio to the one-process baseline:

1. ``--jobs 1`` (baseline: every file in this process);
2. ``--jobs N`` worker processes (``engine.pipeline._run_pool``);
3. ``--jobs N`` with one worker killed by SIGSEGV on its file (the test hook
   ``LOOPLAB_TEST_KILL_WORKER_ON``): only that file is lost, the rest finish.

Files: the realbench dev set when built (``--realbench``), else generated tracks.

Usage::

    python bench/bench_batch.py [--n_files 8] [--jobs 2] [--realbench /tmp/looplab-devset]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import PipelineConfig, RankConfig  # noqa: E402
from engine.pipeline import KILL_WORKER_TEST_ENV, run_batch  # noqa: E402
from engine.synth import synth_track  # noqa: E402


def _files(args, tmp: Path) -> list[Path]:
    gt = Path(args.realbench) / "gt"
    if args.realbench and gt.is_dir():
        return sorted(gt.glob("*.wav"))[:args.n_files]
    print(f"(no realbench set at {args.realbench}: using {args.n_files} generated tracks)")
    return [synth_track(96 + 6 * i, n_bars=48, seed=i).write(tmp / f"gen{i}.wav")
            for i in range(args.n_files)]


def _run(files, out: Path, jobs: int):
    cfg = PipelineConfig(rank=RankConfig(top_k=5), n_jobs=jobs, use_cache=False)
    t0 = time.perf_counter()
    res = run_batch(files, out, cfg)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n_files", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--realbench", default="/tmp/looplab-devset")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="looplab-bench-batch-") as tmp:
        tmp = Path(tmp)
        files = _files(args, tmp)
        n = len(files)
        base, r1 = _run(files, tmp / "one", 1)
        print(f"jobs 1 (baseline): {base:7.1f} s  {60 * n / base:5.1f} files/min  "
              f"ok {r1.summary['n_ok']}/{n}")
        wall, rn = _run(files, tmp / "many", args.jobs)
        print(f"jobs {args.jobs}:          {wall:7.1f} s  {60 * n / wall:5.1f} files/min  "
              f"ok {rn.summary['n_ok']}/{n}  speed-up x{base / wall:.2f}")
        os.environ[KILL_WORKER_TEST_ENV] = files[n // 2].name
        try:
            wall_k, rk = _run(files, tmp / "killed", args.jobs)
        finally:
            os.environ.pop(KILL_WORKER_TEST_ENV, None)
        failed = [Path(f["file"]).name for f in rk.summary["files_failed"]]
        print(f"jobs {args.jobs}, 1 worker killed: {wall_k:7.1f} s  ok {rk.summary['n_ok']}/{n}  "
              f"failed {failed}  x{wall_k / wall:.2f} of the clean parallel run")


if __name__ == "__main__":
    main()
