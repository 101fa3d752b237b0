"""Filename tags: the seed's 17-tag regex table on the lower-cased base name.

Words are matched between separators (start/end, space, ``_ - . ( ) [ ]``,
digits), so ``"funk"`` tags ``"Funky_Drummer_01.wav"`` and ``"funk-groove"``
but not ``"defunkt"``-like substrings inside longer words. ``dnb`` implies
``breaks`` (as in the seed).
"""
from __future__ import annotations

import re
from pathlib import Path

_B = r"(?:^|(?<=[^a-z]))"          # word start: beginning or a non-letter
_E = r"(?=$|[^a-z])"               # word end

#: tag -> pattern (applied to the lower-cased base name, extension removed).
TAG_PATTERNS = {
    "dnb": r"(?:dnb|d&b|d'n'b|d\s*n\s*b|drum\s*(?:and|n|'n'|&)\s*bass|drumandbass|jungle)",
    "breaks": r"(?:breaks?|breakbeats?|break-?beats?|breaky)",
    "house": r"(?:house|housey|housy|deep\s*house|tech\s*house)",
    "techno": r"(?:techno|technoid|techy)",
    "disco": r"(?:disco|nu\s*disco|discoish|disco-?ish)",
    "downbeat": r"(?:downbeats?|down-?tempo|downtempo)",
    "triphop": r"(?:trip\s*-?\s*hop|triphop)",
    "metal": r"(?:metal|metallic|heavy\s*metal|thrash)",
    "punk": r"(?:punk|punky|pop\s*-?\s*punk)",
    "rock": r"(?:rock|rocky|rockish|rock-?ish|rocking|rockin)",
    "funk": r"(?:funk|funky|funkish|funk-?ish)",
    "jazz": r"(?:jazz|jazzy|jazzish|jazz-?ish)",
    "soul": r"(?:soul|soulful|soulish|neo\s*-?\s*soul)",
    "groove": r"(?:grooves?|groovy|groovin)",
    "march": r"(?:march|marching|marchy)",
    "chilled": r"(?:chill|chilled|chillout|chill\s*-?\s*out|laid\s*-?\s*back|laidback|lofi|lo-fi)",
    "electronic": r"(?:electronic|electronica|electro|edm|synth\s*-?\s*wave)",
}

_COMPILED = {t: re.compile(_B + p + _E) for t, p in TAG_PATTERNS.items()}

#: The 17 tags, in table order.
FILENAME_TAGS = tuple(TAG_PATTERNS)


def filename_tags(path) -> list[str]:
    """Tags found in the base name of ``path`` (sorted; ``dnb`` adds ``breaks``).

    Examples
    --------
    >>> filename_tags("/x/Funky_DnB_break 174bpm.wav")
    ['breaks', 'dnb', 'funk']
    """
    name = Path(str(path)).stem.lower().replace("_", " ")
    tags = {t for t, rx in _COMPILED.items() if rx.search(name)}
    if "dnb" in tags:
        tags.add("breaks")
    return sorted(tags)
