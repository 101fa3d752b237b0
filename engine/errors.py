"""Exceptions raised by the engine.

Every error that can reach a user names the file and the problem in words a
DJ understands; batch code catches :class:`LoopLabError` per file, records the
message and moves on.
"""
from __future__ import annotations

from pathlib import Path


class LoopLabError(Exception):
    """Base class for every error the engine raises on purpose."""


class AudioError(LoopLabError):
    """A file could not be used as audio.

    Parameters
    ----------
    path : str or Path
        The offending file.
    problem : str
        What is wrong, in plain words ("file is empty (0 bytes)").
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, path, problem: str, hint: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        msg = f"{Path(self.path).name}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class AnalysisError(LoopLabError):
    """Analysis could not produce a usable result (no beats, no bars, ...)."""


class ModelError(LoopLabError):
    """A model or weights file is missing, unreadable or does not match."""


class ConfigError(LoopLabError, ValueError):
    """An invalid setting (e.g. a tempo range narrower than an octave)."""
