"""Compiled (numba) kernels: built by one process before any worker starts.

librosa's beat tracker, peak picker, zero-crossing and pitch kernels and our
DTW (:mod:`engine.dtw`) are numba functions cached on disk (in
``$NUMBA_CACHE_DIR`` or in ``__pycache__`` beside their source). numba does
not lock that cache: two processes compiling the same function at once can
leave an index and a code file from different compilations, and every later
process that loads the entry dies with a segmentation fault, even a
single-process run.

:func:`ensure_kernels` prevents and repairs this. It runs a short warm-up (a
generated 4-bar track through the real per-track pipeline, and a small DTW)
in a *child* process, under an exclusive file lock, before a batch starts:

- the child compiles every kernel the pipeline calls and writes the cache
  once, so the batch's workers only read it;
- if the child dies (a signal) or fails, the cache may be damaged: its numba
  files are deleted and the warm-up runs once more, which rebuilds them (a
  failure that survives the rebuild is reported, and the batch goes on);
- a fingerprint of the cache files and the kernels' source files is stored
  after a successful warm-up, so later runs skip it (a stat of a few dozen
  files) until something changes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Packages whose numba kernels the engine calls.
KERNEL_PACKAGES = ("librosa", "engine")

#: Seconds the warm-up child may take (a cold compile takes well under a minute).
WARM_UP_TIMEOUT = 900

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class KernelStatus:
    """What :func:`ensure_kernels` did.

    Attributes
    ----------
    action : str
        "fresh" (fingerprint matched, nothing run), "warmed" (warm-up ran),
        "rebuilt" (a corrupt cache was deleted and rebuilt) or "failed".
    messages : list of str
        Human-readable notes (why a rebuild happened, a warm-up error).
    """

    action: str
    messages: list = field(default_factory=list)


def _package_dirs() -> list[Path]:
    """Source folders of the packages holding kernels, found without importing them."""
    import importlib.util

    out = []
    for pkg in KERNEL_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for d, subdirs, files in os.walk(root):
                subdirs[:] = [s for s in subdirs if s != "__pycache__" and not s.startswith(".")]
                if any(f.endswith(".py") for f in files):
                    out.append(Path(os.path.abspath(d)))  # as numba names it
    return sorted(set(out))


def cache_dirs() -> list[Path]:
    """Where numba caches the kernels of librosa and the engine.

    numba's own rule: ``$NUMBA_CACHE_DIR/<folder name>_<sha1 of the folder
    path>`` when that variable is set, else ``__pycache__`` beside the
    source. Computed without importing librosa: a damaged cache entry of a
    kernel that numba compiles at import time breaks the import itself.
    """
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:        # numba then never touches __pycache__: neither do we
        return [Path(base) / f"{d.name}_{hashlib.sha1(str(d).encode()).hexdigest()}"
                for d in _package_dirs()]
    return [d / "__pycache__" for d in _package_dirs()]


def _cache_files(dirs) -> list[Path]:
    out = []
    for d in dirs:
        with contextlib.suppress(OSError):
            out.extend(p for p in d.iterdir() if p.suffix in (".nbi", ".nbc"))
    return sorted(out)


def _kernel_sources(files) -> set:
    """The .py files whose kernels have cache entries (``[guf-]<module>.<func>-<line>...``)."""
    pkg_dirs = {f"{d.name}_{hashlib.sha1(str(d).encode()).hexdigest()}": d for d in _package_dirs()}
    out = set()
    for f in files:
        module = f.name.removeprefix("guf-").split(".")[0]
        src_dir = f.parent.parent if f.parent.name == "__pycache__" else pkg_dirs.get(f.parent.name)
        if src_dir is not None:
            out.add(src_dir / f"{module}.py")
    return out


def fingerprint(dirs=None) -> str:
    """Hash of the kernel cache files and the kernels' source files (names, sizes, mtimes)."""
    dirs = cache_dirs() if dirs is None else dirs
    files = _cache_files(dirs)
    h = hashlib.blake2b(digest_size=16)
    h.update(sys.executable.encode())
    for p in sorted({*files, *_kernel_sources(files)}):
        with contextlib.suppress(OSError):
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _state_path(dirs) -> Path:
    tag = hashlib.blake2b("|".join([sys.executable, *map(str, dirs)]).encode(),
                          digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"looplab-kernels-{tag}"


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    try:
        import fcntl
    except ImportError:                  # Windows: no lock
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_warm_up() -> tuple[int, str]:
    """Run :func:`warm_up` in a child process; (return code, last lines of its output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-m", "engine.kernels"], env=env, cwd=_PROJECT_ROOT,
                              capture_output=True, text=True, timeout=WARM_UP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return 1, f"warm-up took longer than {WARM_UP_TIMEOUT} s"
    tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
    return proc.returncode, tail


def describe_exit(code: int) -> str:
    """``'signal 11 (SIGSEGV)'`` for a negative return code, ``'exit status N'`` otherwise."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {-code} ({signal.Signals(-code).name})"
        return f"signal {-code}"
    return f"exit status {code}"


def purge(dirs=None) -> int:
    """Delete the numba cache files (``*.nbi``, ``*.nbc``) of the engine's kernels; count them."""
    n = 0
    for p in _cache_files(cache_dirs() if dirs is None else dirs):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def ensure_kernels() -> KernelStatus:
    """Make sure the compiled kernels are cached and loadable before workers start.

    Never raises: a warm-up that still fails after the rebuild (a bug, a
    timeout) is reported in the status and the batch goes on as it would
    have without it.
    """
    dirs = cache_dirs()
    state = _state_path(dirs)
    with _exclusive(state.with_suffix(".lock")):
        stamp = state.with_suffix(".json")
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text()).get("fingerprint") == fingerprint(dirs):
                return KernelStatus("fresh")
        status = KernelStatus("warmed")
        code, tail = _run_warm_up()
        if code != 0:               # a crash, or an error loading a damaged entry: rebuild once
            where = sorted({str(p.parent) for p in _cache_files(dirs)})
            n = purge(dirs)
            status = KernelStatus("rebuilt", [
                f"numba kernel cache was unusable (warm-up failed with {describe_exit(code)}); "
                f"deleted {n} cache files in {', '.join(where)} and rebuilt them"])
            code, tail = _run_warm_up()
        if code != 0:
            status.action = "failed"
            status.messages.append(f"kernel warm-up failed ({describe_exit(code)}): {tail}")
            return status
        with contextlib.suppress(OSError):
            stamp.write_text(json.dumps({"fingerprint": fingerprint(dirs)}))
        return status


def warm_up() -> None:
    """Call every numba kernel the engine uses once (compiles and caches them)."""
    import numpy as np

    from .config import PipelineConfig
    from .dtw import all_pairs, dtw_pairs, pack_sequences
    from .pipeline import extract_track
    from .synth import synth_track

    with tempfile.TemporaryDirectory(prefix="looplab-warm-") as tmp:
        path = synth_track(120.0, n_bars=4, seed=0).write(Path(tmp) / "warm.wav")
        res = extract_track(path, Path(tmp) / "out", PipelineConfig(use_cache=False))
        if not res.ok:
            raise RuntimeError(f"warm-up track failed: {res.error}")
    rng = np.random.default_rng(0)
    seqs = [rng.random((n, 4)).astype(np.float32) for n in (12, 16, 20)]
    for metric in ("cosine", "euclidean"):
        for band in (None, 0.25):
            dtw_pairs(pack_sequences(seqs, metric), all_pairs(len(seqs)), band_rad=band)


if __name__ == "__main__":
    warm_up()
