"""Musical constants shared by key estimation and synthesis (a leaf module)."""
from __future__ import annotations

#: Pitch-class names, C = 0, sharps.
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
