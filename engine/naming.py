"""Safe names: loop file names and ZIP member names.

Any text (a track title, a path, a tag) becomes one file-name component that
is valid on every common file system and cannot climb out of its folder
(:func:`sanitize_name`). Loops are named by *rank*, never by candidate index:
``<track>__01_4bars_124bpm.wav`` (:func:`loop_filename`). ZIP member names go
through the same sanitiser, one path component at a time
(:func:`zip_member_name`), and duplicates are numbered
(:func:`unique_member_name`).
"""
from __future__ import annotations

import math
import re
import unicodedata

_RESERVED = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}


def sanitize_name(text, max_len: int = 80, max_bytes: int = 180) -> str:
    """Turn any text into one safe file-name component.

    Path separators become ``_`` after ``.``/``..`` components are dropped (so
    ``"../evil"`` gives ``"evil"`` and ``"AC/DC"`` gives ``"AC_DC"``); tabs
    and newlines become spaces, other control and format characters
    (including bidi overrides) are removed; the
    reserved characters ``<>:"/\\|?*`` become ``_``; leading dots and spaces
    and trailing dots and spaces go; Windows device names get a ``_`` prefix.
    Unicode letters are kept, NFC-normalised.

    Parameters
    ----------
    text : str or Path
    max_len : int
        Longest result in characters.
    max_bytes : int
        Longest result in UTF-8 bytes (file systems limit names to 255).

    Returns
    -------
    str
        Never empty (falls back to ``"track"``), never ``.``/``..``, never
        containing a separator.
    """
    s = unicodedata.normalize("NFC", str(text))
    parts = [p for p in re.split(r"[/\\]+", s) if p.strip() not in ("", ".", "..")]
    s = "_".join(parts)
    s = "".join(" " if ch.isspace() else ch for ch in s)
    s = "".join(ch for ch in s if not unicodedata.category(ch).startswith("C"))
    s = _RESERVED.sub("_", s)
    s = re.sub(r" {2,}", " ", s)
    s = _trim(s)
    if s.split(".")[0].upper().strip() in _WINDOWS_DEVICES:
        s = "_" + s
    if len(s) > max_len:
        s = _trim(s[:max_len])
    while len(s.encode("utf-8")) > max_bytes:
        s = s[:-1]
    s = _trim(s)
    return s or "track"


def _trim(s: str) -> str:
    return s.lstrip(". ").rstrip(". ")


def _format_bpm(bpm) -> str:
    try:
        b = float(bpm)
    except (TypeError, ValueError):
        return "0"
    if not math.isfinite(b) or b <= 0:
        return "0"
    return f"{b:.0f}" if abs(b - round(b)) < 0.05 else f"{b:.1f}"


def loop_filename(track_stem, rank, bars, bpm, ext: str = "wav") -> str:
    """``"My Track__01_4bars_124bpm.wav"``: sanitised stem, rank, bars, tempo.

    The number is the loop's rank (1 = best), zero-padded to two digits. A
    non-integer tempo keeps one decimal (``"123.5bpm"``).
    """
    # "__" separates the stem from the loop fields: keep it out of the stem
    stem = re.sub(r"_{2,}", "_", sanitize_name(track_stem)).strip("_ ") or "track"
    try:
        bars_txt = f"{float(bars):g}"
    except (TypeError, ValueError):
        bars_txt = "0"
    ext = sanitize_name(str(ext).lstrip("."), max_len=8) if ext else "wav"
    return f"{stem}__{int(rank):02d}_{bars_txt}bars_{_format_bpm(bpm)}bpm.{ext}"


def zip_member_name(parts) -> str:
    """A ZIP member name: each path component sanitised, joined with ``/``."""
    return "/".join(sanitize_name(p, max_len=240, max_bytes=240) for p in parts)


def unique_member_name(name: str, used: set[str]) -> str:
    """``name``, or ``"name (2).ext"``, ``"name (3).ext"`` ... if already in ``used``.

    The name returned is added to ``used``.
    """
    base, dot, ext = name.rpartition(".")
    if not dot:
        base, ext = name, ""
    k = 2
    while name in used:
        name = f"{base} ({k}).{ext}" if ext else f"{base} ({k})"
        k += 1
    used.add(name)
    return name
