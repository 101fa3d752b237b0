"""On-disk analysis cache.

An entry's key is the audio file's content hash, the parameters that shape
the result (the config dataclasses' ``as_dict``), :data:`engine.CODE_VERSION`
and a hash of the engine's own source and shipped models
(:func:`engine_source_hash`), so a changed file, a changed setting or any
change to the engine's code, module constants or models never reuses a stale
result, without anyone bumping a version. Entries are
joblib pickles written atomically; an unreadable entry is treated as a miss
and removed. The whole folder is safe to delete.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import joblib

from . import CODE_VERSION
from .atomic import atomic_path


#: Sub-packages whose source never shapes a cached result (the command-line front ends).
_NOT_ANALYSIS = ("commands",)


@lru_cache(maxsize=4)
def engine_source_hash(root: Path | None = None) -> str:
    """BLAKE2b of the engine's Python source (``engine/**/*.py`` except ``commands/``)
    and of its shipped models (``engine/models/*``: a refitted tempo-octave or
    ranking model changes results with the code unchanged). ``root``: another copy
    of the package (tests)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    files = sorted(root.rglob("*.py")) + sorted(p for p in (root / "models").glob("*") if p.is_file())
    for p in files:
        rel = p.relative_to(root)
        if rel.parts[0] in _NOT_ANALYSIS or "__pycache__" in rel.parts:
            continue
        h.update(str(rel).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def make_key(audio_hash: str, params: dict, kind: str = "analysis") -> str:
    """Stable key from a content hash, JSON-able parameters, the code version and source."""
    blob = json.dumps({"audio": audio_hash, "params": params, "code": CODE_VERSION,
                       "source": engine_source_hash(), "kind": kind}, sort_keys=True, default=str)
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
