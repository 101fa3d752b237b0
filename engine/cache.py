"""On-disk analysis cache.

An entry's key is the audio file's content hash, the parameters that shape
the result and :data:`engine.CODE_VERSION`, so a changed file, a changed
setting or a new engine version never reuses a stale result. Entries are
joblib pickles written atomically; an unreadable entry is treated as a miss
and removed. The whole folder is safe to delete.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib

from . import CODE_VERSION
from .atomic import atomic_path


def make_key(audio_hash: str, params: dict, kind: str = "analysis") -> str:
    """Stable key from a content hash, JSON-able parameters and the code version."""
    blob = json.dumps({"audio": audio_hash, "params": params, "code": CODE_VERSION,
                       "kind": kind}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()}"


class DiskCache:
    """A folder of joblib pickles addressed by :func:`make_key` keys.

    Parameters
    ----------
    root : str or Path
        Cache folder (created on first write).
    enabled : bool
        When False every lookup misses and nothing is written.
    """

    def __init__(self, root, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        return self.root / key[:12] / f"{key}.joblib"

    def get(self, key: str):
        """The stored object, or None on a miss (or a corrupt entry)."""
        if not self.enabled:
            return None
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            return joblib.load(p)
        except Exception:  # noqa: BLE001 - a corrupt entry is a miss
            p.unlink(missing_ok=True)
            return None

    def put(self, key: str, obj) -> None:
        """Store ``obj`` atomically (no-op when disabled)."""
        if not self.enabled:
            return
        p = self._path(key)
        with atomic_path(p) as tmp:
            joblib.dump(obj, tmp, compress=3)
