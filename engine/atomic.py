"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash or a full disk never leaves a half-written CSV, WAV or ZIP where a
user (or the next run) would take it for a finished one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target, suffix: str | None = None):
    """Yield a temporary path; on success rename it onto ``target``.

    Examples
    --------
    >>> with atomic_path("out.wav") as tmp:          # doctest: +SKIP
    ...     soundfile.write(tmp, y, sr)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                               dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; finished files get normal modes
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(target, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(target)


def atomic_write_text(target, text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_csv(df, target, **kwargs) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` by default)."""
    kwargs.setdefault("index", False)
    with atomic_path(target) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(target)
