"""Loop-quality labels from ground truth, never from the features.

A candidate loop (start, end in seconds) is judged against what really is in
the track: the true bar lines, the arrangement (which parts play in which bar),
what every bar holds note for note (``bar_pattern``: chords, drum pattern,
parts) and where the music has content. A good loop (relevance 3)

* starts on a true bar line and spans a whole number of true bars,
* stays inside one arrangement section (the same parts play in every bar),
* has content in every bar (no silent break, no fade-out tail),
* is a phrase: at least 2 bars, starting on a phrase boundary (bar 1, 3,
  5... of its section for 2-bar loops, bar 1, 5, 9... for 4 bars and more), and
* repeats seamlessly: the bars after its end hold what its first bars hold
  (:func:`continues_like_start`; a 1- or 2-bar loop cut from a 4-chord
  progression jumps back at the seam). Without note-level truth: its length
  is a whole number of the section's harmonic cycle.

Note-level truth comes from the synth's arrangement and chords, an LMMS
project's notes and beat/bassline clips per track, an MMA render's chord chart
and groove period (its MIDI), a Hydrogen song's pattern sequence.

Graded relevance (labels v3): staying inside one section, literally the same
tracks playing in every bar (for LMMS renders: the song editor's clips AND the
notes sounding in each bar), is required for anything above 1. On the true
grid, whole bars, one section, content: 3 for a loop of 2 bars or more that
starts on a phrase boundary and repeats seamlessly; 2 for one of 2 bars or
more that does not; 1 for a 1-bar loop (below any multi-bar loop that stays
in its section); 0 for everything else: crossing a section change, off the
true grid or not whole bars, silent, in particular the negative types
loop-compatibility research uses, which :func:`training_windows` generates on
purpose: shifted off the grid by a fraction of a beat or by whole beats, a
non-whole number of bars, crossing a section change, mostly silent, cut
mid-phrase.

Ground truth comes from :mod:`engine.synth` (:func:`truth_from_synth`) or from
the realbench renders (:func:`truth_from_realbench`): GT bars from the JSON and,
for LMMS renders, the arrangement read from the project's song editor
(:func:`lmms_bar_activity`, :func:`lmms_bar_note_activity`).
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Song-editor clip elements of an LMMS project.
LMMS_CLIP_TAGS = ("pattern", "bbtco", "sampletco", "automationpattern")
#: Relevance of a good loop (see :func:`label_windows`).
GOOD = 3
#: Version of the labelling rules (cached training rows are rebuilt when it changes):
#: 2 = note-level phrase and seamless-repeat truth; 3 = literal section-staying
#: (the same tracks with notes in every bar) required for relevance >= 2, graded by length.
LABEL_VERSION = 3
#: LMMS counts 48 ticks per quarter note whatever the time signature.
LMMS_TICKS_PER_QUARTER = 48


@dataclass
class LoopTruth:
    """What a track really contains, bar by bar.

    Attributes
    ----------
    track_id : str
    downbeats : ndarray
        Start of every bar plus the line that closes the last bar (n_bars + 1).
    beats_per_bar : int
    bar_section : ndarray of int
        Arrangement section of every bar (bars with the same parts playing in
        a row share an id).
    bar_content : ndarray of bool
        The bar has real content (not a silent break, not the release tail).
    phrase_bars : int
        Phrase length in bars (0: no phrase structure known).
    bar_period : ndarray of int
        Bars after which the music of this bar's section repeats (the chord
        cycle); 1 when every bar is alike.
    has_sections : bool
        Whether the arrangement is known (False: one section assumed).
    source : str
        "synth", "lmms", "mma", "hydrogen", ...
    bar_pattern : ndarray of int, optional
        Note-level content id of every bar: two bars share an id when the same
        parts play the same notes (chords, drum pattern) in them. Seamless
        repetition and the section's own period are judged from it
        (:func:`section_periods`); None: unknown, ``bar_period`` is used.
    """

    track_id: str
    downbeats: np.ndarray
    beats_per_bar: int
    bar_section: np.ndarray
    bar_content: np.ndarray
    phrase_bars: int
    bar_period: np.ndarray
    has_sections: bool
    source: str
    bar_pattern: np.ndarray | None = None

    @property
    def n_bars(self) -> int:
        return len(self.downbeats) - 1

    @property
    def bar_duration(self) -> float:
        return float(np.median(np.diff(self.downbeats)))

    @property
    def beat_period(self) -> float:
        return self.bar_duration / self.beats_per_bar

    def section_start_bar(self) -> np.ndarray:
        """For every bar, the index of the first bar of its section."""
        sec = self.bar_section
        start = np.zeros(len(sec), int)
        for i in range(1, len(sec)):
            start[i] = start[i - 1] if sec[i] == sec[i - 1] else i
        return start


# --------------------------------------------------------------------------- synthetic truth

def truth_from_synth(gt, track_id: str = "synth", time_scale: float = 1.0) -> LoopTruth:
    """LoopTruth of a :class:`engine.synth.GroundTruth`.

    ``time_scale`` multiplies every time (a varispeed copy played ``r`` times
    faster has ``time_scale = 1 / r``).
    """
    db = np.asarray(gt.downbeats, float)
    bar = gt.beats_per_bar * 60.0 / gt.bpm
    lines = np.append(db, db[-1] + bar) * time_scale
    arr = np.asarray(gt.bar_sections(), int)
    sec_instr = gt.section_instruments or [("drums", "bass", "chords")] * (int(arr.max()) + 1)
    bar_instr = list(getattr(gt, "bar_instruments", None) or [])
    parts = [tuple(bar_instr[b]) if b < len(bar_instr) else tuple(sec_instr[s])
             for b, s in enumerate(arr)]
    # a new section wherever the arrangement section or the set of playing parts changes
    sec = np.zeros(len(arr), int)
    for b in range(1, len(arr)):
        sec[b] = sec[b - 1] + (arr[b] != arr[b - 1] or set(parts[b]) != set(parts[b - 1]))
    content = np.array([len(p) > 0 for p in parts], bool)
    tonal = gt.key is not None
    harmonic = [tonal and ("bass" in p or "chords" in p) for p in parts]
    # note-level bar content: parts, drum pattern, chord (a crash on a section's
    # first bar is an accent, not a different bar)
    chords = list(getattr(gt, "bar_chords", None) or [])
    pats = list(getattr(gt, "section_patterns", None) or [])
    keys = []
    for b, s in enumerate(arr):
        drum = pats[s] if ("drums" in parts[b] and s < len(pats)) else None
        if not harmonic[b]:
            chord = None
        elif b < len(chords):
            chord = chords[b]
        else:
            chord = b % max(1, int(gt.harmonic_period))
        keys.append((tuple(sorted(parts[b])), drum, chord))
    pattern = pattern_ids(keys)
    return LoopTruth(track_id=track_id, downbeats=lines, beats_per_bar=int(gt.beats_per_bar),
                     bar_section=sec, bar_content=content, phrase_bars=4,
                     bar_period=section_periods(pattern, sec), has_sections=True, source="synth",
                     bar_pattern=pattern)


# --------------------------------------------------------------------------- LMMS arrangement

def read_lmms_project(path) -> ET.Element:
    """Parse an LMMS ``.mmp`` (XML) or ``.mmpz`` (4-byte length + zlib XML) project."""
    data = Path(path).read_bytes()
    if str(path).endswith(".mmpz"):
        data = zlib.decompress(data[4:])
    return ET.fromstring(data.decode("utf-8", "replace"))


def _muted(e) -> bool:
    return e.get("muted", "0") == "1"


def _song_layout(project, beats_per_bar: int):
    """Parsed project, its song-editor tracks, ticks per bar and one pass's length.

    One pass is the song's length rounded up to a whole 4/4 bar (192 ticks), as
    the realbench builder repeats short songs.
    """
    root = project if isinstance(project, ET.Element) else read_lmms_project(project)
    tc = root.find("song/trackcontainer")
    if tc is None:
        raise ValueError("LMMS project has no song track container")
    tracks = tc.findall("track")
    bar_ticks = LMMS_TICKS_PER_QUARTER * beats_per_bar
    clips = [e for tr in tracks for e in tr if e.tag in LMMS_CLIP_TAGS and e.get("pos") is not None]
    end = max((int(e.get("pos")) + int(e.get("len", "0")) for e in clips), default=0)
    return root, tracks, bar_ticks, int(math.ceil(end / 192.0)) * 192


def _song_clips(tracks):
    """Every clip of the unmuted song-editor tracks, in track order.

    Yields
    ------
    tid, ttype, bb, clip
        Track index, LMMS track type ("0" instrument, "1" beat/bassline,
        "2" sample), the beat/bassline index of a type-1 track (counted over
        all type-1 tracks, muted ones too; None otherwise) and the clip element.
    """
    bb_index = 0
    for tid, tr in enumerate(tracks):
        ttype = tr.get("type")
        this_bb = None
        if ttype == "1":
            this_bb = bb_index
            bb_index += 1
        if _muted(tr) or ttype not in ("0", "1", "2"):
            continue
        for e in tr:
            if e.get("pos") is None or _muted(e):
                continue
            yield tid, ttype, this_bb, e


def _bb_patterns(root) -> tuple[dict, dict]:
    """Beat/bassline patterns with notes, by bb index: note starts and length (ticks).

    The length is the longest pattern with notes at that index (12 ticks a step).
    """
    bb_notes: dict = {}
    bb_len: dict = {}
    for btr in root.iter("bbtrack"):
        inner = btr.find("trackcontainer")
        if inner is None:
            continue
        for itr in inner.findall("track"):
            if _muted(itr) or itr.get("type") == "5":
                continue
            for idx, pat in enumerate(itr.findall("pattern")):
                notes = pat.findall("note")
                if notes:
                    steps = int(pat.get("steps", "16") or 16)
                    bb_len[idx] = max(bb_len.get(idx, 0), steps * 12)
                    bb_notes.setdefault(idx, []).extend(int(n.get("pos", "0")) for n in notes)
    return bb_notes, bb_len


def lmms_bar_activity(project, n_bars: int, *, beats_per_bar: int = 4, repeats: int = 1
                      ) -> list[frozenset]:
    """Which song-editor tracks play in each bar of an LMMS render.

    A track plays in a bar when one of its unmuted clips spans it (the song
    editor's view): an instrument track's pattern with notes (its length as
    LMMS computes it), a beat/bassline clip whose pattern has notes, a sample
    clip. Automation tracks do not count. ``repeats`` reproduces
    the realbench builder's "xN" renders: every song clip copied at multiples
    of the bar-rounded song length.

    Parameters
    ----------
    project : path or Element
    n_bars : int
        Bars of the render (bars past the song are empty).
    beats_per_bar : int
        Quarter notes per GT bar.
    repeats : int

    Returns
    -------
    list of frozenset
        Track indices playing in each bar.
    """
    root, tracks, bar_ticks, one_pass = _song_layout(project, beats_per_bar)
    # beat/bassline patterns with notes, by bb index (an index past the
    # song's beat/bassline tracks counts as playing)
    bb_notes, _bb_len = _bb_patterns(root)
    n_bb = sum(tr.get("type") == "1" for tr in tracks)
    active = [set() for _ in range(n_bars)]

    def mark(t0: int, t1: int, tid: int):
        for rep in range(max(1, repeats)):
            off = rep * one_pass
            b0, b1 = (t0 + off) // bar_ticks, (max(t1, t0 + 1) - 1 + off) // bar_ticks
            for b in range(max(0, b0), min(n_bars - 1, b1) + 1):
                active[b].add(tid)

    for tid, ttype, this_bb, e in _song_clips(tracks):
        pos = int(e.get("pos"))
        if ttype == "0" and e.tag == "pattern":
            notes = e.findall("note")
            if not notes:
                continue
            mark(pos, pos + _pattern_length(e, notes), tid)
        elif ttype == "1" and e.tag == "bbtco":
            if this_bb in bb_notes or this_bb >= n_bb:
                mark(pos, pos + int(e.get("len", "192")), tid)
        elif ttype == "2" and e.tag == "sampletco":
            mark(pos, pos + int(e.get("len", "192")), tid)
    return [frozenset(a) for a in active]


def _pattern_length(pat, notes) -> int:
    """Length in ticks of an LMMS song-editor pattern, as LMMS computes it.

    Beat patterns (``type="0"``) last ``steps`` sixteenths; melody patterns
    last to the end of their last note, rounded up to a 4/4 bar (192 ticks),
    at least one bar.
    """
    if pat.get("type") == "0" and pat.get("steps"):
        return max(12, int(pat.get("steps")) * 12)
    end = max((int(n.get("pos", "0")) + max(int(n.get("len", "0")), 0) for n in notes), default=0)
    return max(192, int(math.ceil(end / 192.0)) * 192)


def lmms_bar_note_activity(project, n_bars: int, *, beats_per_bar: int = 4, repeats: int = 1
                           ) -> list[frozenset]:
    """Which song-editor tracks have notes sounding in each bar of an LMMS render.

    Stricter than :func:`lmms_bar_activity` (a clip spanning the bar): an
    instrument track plays in a bar when one of its notes sounds in it (note
    start to note end; a drum hit without length counts a sixteenth), a
    beat/bassline track when its clip spans the bar and one of the pattern's
    notes (repeating every pattern length) falls in it, a sample track when its
    clip spans the bar. ``repeats`` as in :func:`lmms_bar_activity`.
    """
    root, tracks, bar_ticks, one_pass = _song_layout(project, beats_per_bar)
    # note starts (ticks) and pattern length of every beat/bassline pattern, by bb index
    bb_notes, bb_len = _bb_patterns(root)
    active = [set() for _ in range(n_bars)]

    def mark(t0: int, t1: int, tid: int):
        b0, b1 = t0 // bar_ticks, (max(t1, t0 + 1) - 1) // bar_ticks
        for b in range(max(0, b0), min(n_bars - 1, b1) + 1):
            active[b].add(tid)

    for tid, ttype, this_bb, e in _song_clips(tracks):
        for rep in range(max(1, repeats)):
            p0 = int(e.get("pos")) + rep * one_pass
            if ttype == "0" and e.tag == "pattern":
                for n in e.findall("note"):
                    t = p0 + int(n.get("pos", "0"))
                    ln = int(n.get("len", "0"))
                    mark(t, t + (ln if ln > 0 else 12), tid)
            elif ttype == "1" and e.tag == "bbtco":
                if this_bb not in bb_len:
                    continue
                ln, per = int(e.get("len", "192")), max(1, bb_len[this_bb])
                for b in range(max(0, p0 // bar_ticks),
                               min(n_bars - 1, (p0 + max(ln, 1) - 1) // bar_ticks) + 1):
                    o0 = max(0, b * bar_ticks - p0)
                    o1 = min(ln, (b + 1) * bar_ticks - p0)
                    for q in bb_notes[this_bb]:
                        q %= per
                        k = -(-(o0 - q) // per)
                        if q + k * per < o1:
                            active[b].add(tid)
                            break
            elif ttype == "2" and e.tag == "sampletco":
                mark(p0, p0 + int(e.get("len", "192")), tid)
    return [frozenset(a) for a in active]


def sections_from_activity(activity) -> np.ndarray:
    """Section id per bar: a new section wherever the set of playing parts changes."""
    sec = np.zeros(len(activity), int)
    for i in range(1, len(activity)):
        sec[i] = sec[i - 1] + (activity[i] != activity[i - 1])
    return sec


# --------------------------------------------------------------------------- note-level bar content

def pattern_ids(keys) -> np.ndarray:
    """Integer id per bar from hashable bar-content keys (equal keys, equal ids)."""
    seen: dict = {}
    return np.array([seen.setdefault(k, len(seen)) for k in keys], int)


def lmms_bar_patterns(project, n_bars: int, *, beats_per_bar: int = 4, repeats: int = 1) -> list:
    """What every bar of an LMMS render holds, note for note.

    A bar's key lists, for every unmuted song-editor track, the notes starting
    in it (key, position in the bar, length) for instrument patterns; the
    beat/bassline clip and where in its pattern the bar falls for beat/bassline
    tracks; the sample and which of its bars for sample clips. Two bars with
    equal keys sound alike (automation aside). ``repeats`` as in
    :func:`lmms_bar_activity`.
    """
    root, tracks, bar_ticks, one_pass = _song_layout(project, beats_per_bar)
    # beat/bassline length (ticks) per bb index: its longest pattern with notes
    _notes, bb_len = _bb_patterns(root)
    bars = [set() for _ in range(n_bars)]
    for tid, ttype, this_bb, e in _song_clips(tracks):
        pos = int(e.get("pos"))
        for rep in range(max(1, repeats)):
            p0 = pos + rep * one_pass
            if ttype == "0" and e.tag == "pattern":
                for n in e.findall("note"):
                    t = p0 + int(n.get("pos", "0"))
                    b = t // bar_ticks
                    if 0 <= b < n_bars:
                        bars[b].add((tid, int(n.get("key", "0")), t % bar_ticks,
                                     int(n.get("len", "0"))))
            elif ttype in ("1", "2") and e.tag in ("bbtco", "sampletco"):
                ln = int(e.get("len", "192"))
                if ttype == "1" and this_bb not in bb_len:
                    continue
                period = max(bar_ticks, bb_len.get(this_bb, bar_ticks)) if ttype == "1" else None
                b0, b1 = p0 // bar_ticks, (p0 + max(ln, 1) - 1) // bar_ticks
                for b in range(max(0, b0), min(n_bars - 1, b1) + 1):
                    off = b * bar_ticks - p0
                    if ttype == "1":
                        bars[b].add((tid, "bb", this_bb, off % period))
                    else:
                        bars[b].add((tid, "sample", e.get("src", ""), off // bar_ticks))
    return [frozenset(x) for x in bars]


def _mma_chords(generator_input: str) -> dict:
    """Bar number (1-based) -> chord from an MMA chord chart ("12 Am" lines)."""
    out = {}
    for line in str(generator_input or "").splitlines():
        parts = line.split("//")[0].split()
        if len(parts) >= 2 and parts[0].isdigit():
            out[int(parts[0])] = " ".join(parts[1:])
    return out


def midi_groove_period(midi_path, beats_per_bar: int, lags=(1, 2, 4, 8)) -> int:
    """Bars after which a MIDI file's rhythm repeats (an MMA groove's sequence size).

    Every bar's rhythm is the set of (drum note, 16th) and (pitched channel,
    16th) onsets; the period is the shortest lag whose median Jaccard
    similarity between bars that far apart is within 0.05 of the best lag's
    (MMA's random skips and timing make exact equality rare).
    """
    import mido

    m = mido.MidiFile(str(midi_path))
    tpq = m.ticks_per_beat
    bar = beats_per_bar * tpq
    sixteenth = tpq / 4.0
    onsets = []
    for tr in m.tracks:
        t = 0
        for msg in tr:
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                onsets.append((t, msg.channel, msg.note))
    if not onsets:
        return 1
    nb = max(o[0] for o in onsets) // bar + 1
    sets = [set() for _ in range(nb)]
    for t, ch, note in onsets:
        q = int(round(t / sixteenth))
        b, pos = divmod(q, beats_per_bar * 4)
        if b < nb:
            sets[b].add((ch, note, pos) if ch == 9 else (ch, -1, pos))

    def jac(a, b):
        return len(a & b) / len(a | b) if (a or b) else 1.0

    sims = {}
    for lag in lags:
        v = [jac(sets[i], sets[i + lag]) for i in range(nb - lag - 1)]
        if len(v) >= 4:
            sims[lag] = float(np.median(v))
    if not sims:
        return 1
    best = max(sims.values())
    return int(min(lag for lag, v in sims.items() if v >= best - 0.05))


def mma_bar_patterns(d: dict, n_bars: int, midi_path=None) -> list:
    """Bar keys of an MMA render: the chart's chord and the groove's sequence position."""
    chords = _mma_chords(d.get("generator_input", ""))
    bpb = int(str(d.get("time_signature", "4/4")).split("/")[0])
    period = 1
    if midi_path is not None and Path(midi_path).is_file():
        period = midi_groove_period(midi_path, bpb)
    last = None
    keys = []
    for b in range(n_bars):
        last = chords.get(b + 1, last)
        keys.append((last, b % period))
    return keys


def h2_bar_patterns(song_path, n_bars: int, repeats: int = 1) -> list:
    """Bar keys of a Hydrogen render: the notes (instrument, position) of every
    pattern playing in each 192-tick bar of the song's pattern sequence."""
    root = ET.parse(str(song_path)).getroot()
    pats = {}
    for p in root.iter("pattern"):
        name = p.findtext("name")
        if name is None:
            continue
        notes = [(n.findtext("instrument"), int(float(n.findtext("position") or 0)))
                 for n in p.iter("note")]
        pats[name] = (int(p.findtext("size") or 192), notes)
    seq = root.find("patternSequence")
    cols = [[e.text for e in g.findall("patternID")] for g in (seq if seq is not None else [])]
    keys = []
    for _ in range(max(1, repeats)):
        for ids in cols:
            size = max([pats[i][0] for i in ids if i in pats] or [192])
            for k in range(max(1, size // 192)):
                keys.append(frozenset((inst, pos - 192 * k) for i in ids if i in pats
                                      for inst, pos in pats[i][1] if 192 * k <= pos < 192 * (k + 1)))
    keys = keys[:n_bars]
    return keys + [("past the song", b) for b in range(n_bars - len(keys))]


def section_periods(bar_pattern, bar_section, max_period: int = 8, agree: float = 0.8) -> np.ndarray:
    """The music's own period in bars, per bar (that of the bar's section).

    The shortest lag ``p`` (up to ``max_period``, with at least two bar
    pairs to compare) at which at least ``agree`` of the section's bars equal
    the bar ``p`` later. A section of at most ``max_period`` bars without one is its own
    period (its length); a longer one is aperiodic (0).
    """
    pat, sec = np.asarray(bar_pattern), np.asarray(bar_section)
    out = np.zeros(len(pat), int)
    i = 0
    while i < len(pat):
        j = i
        while j < len(pat) and sec[j] == sec[i]:
            j += 1
        x = pat[i:j]
        per = 0
        for p in range(1, min(max_period, len(x) - 2) + 1):   # at least 2 bars compared
            if np.mean(x[p:] == x[:-p]) >= agree:
                per = p
                break
        if per == 0 and len(x) <= max_period:
            per = len(x)
        out[i:j] = per
        i = j
    return out


# --------------------------------------------------------------------------- realbench truth

def _work_dirs(work_dir=None, json_path=None) -> list[Path]:
    """Where a realbench set's sources may be: ``work_dir``, ``<set root>-work``, the dev set's."""
    out = [Path(work_dir)] if work_dir else []
    if json_path is not None:
        root = Path(json_path).resolve().parent.parent
        out.append(root.with_name(root.name + "-work"))
    out.append(Path("/tmp/looplab-devset-work"))
    return out


def _resolve_project(original: str, work_dir=None, package: str = "lmms-common",
                     json_path=None) -> Path | None:
    cands = [Path(original)]
    for w in _work_dirs(work_dir, json_path):
        cands.append(w / "pkg" / package / original.lstrip("/"))
    return next((p for p in cands if p.is_file()), None)


def _realbench_bar_patterns(d: dict, n_bars: int, bpb: int, work_dir=None, json_path=None):
    """Note-level bar keys of a realbench track, or None when its source is not found."""
    kind = str(d.get("source_kind", ""))
    reps = int(d.get("song_repeats") or 1)
    if kind.startswith("lmms"):
        proj = _resolve_project(str(d.get("original_file", "")), work_dir, "lmms-common", json_path)
        return None if proj is None else lmms_bar_patterns(proj, n_bars, beats_per_bar=bpb,
                                                           repeats=reps)
    if kind.startswith("mma") or str(d.get("id", "")).startswith("mma"):
        if not d.get("generator_input"):
            return None
        mid = next((w / "mma" / f"{d['id']}.mid" for w in _work_dirs(work_dir, json_path)
                    if (w / "mma" / f"{d['id']}.mid").is_file()), None)
        return mma_bar_patterns(d, n_bars, mid)
    if kind.startswith("hydrogen"):
        song = _resolve_project(str(d.get("original_file", "")), work_dir, "hydrogen-data",
                                json_path)
        return None if song is None else h2_bar_patterns(song, n_bars, reps)
    return None


def truth_from_realbench(json_path, *, work_dir=None, bar_rms=None) -> LoopTruth:
    """LoopTruth of a realbench track from its ``gt/<id>.json``.

    LMMS renders get their arrangement from the project file named by
    ``original_file`` (looked up as is, then under ``work_dir/pkg/lmms-common``),
    with the builder's ``song_repeats`` and ``cut_at_bar_s`` applied. Other
    sources get one section (no arrangement truth). Bars past
    ``content_end_s`` and bars whose level (``bar_rms``, optional, one value
    per bar) is 40 dB under the track's loud bars have no content.
    """
    d = json.loads(Path(json_path).read_text())
    db = np.asarray(d["downbeats_s"], float)
    bpb = int(str(d.get("time_signature", "4/4")).split("/")[0])
    bar = float(np.median(np.diff(db))) if len(db) > 1 else bpb * 60.0 / float(d["bpm"])
    dur = float(d["duration_s"])
    lines = db if db[-1] + bar > dur + 1e-3 else np.append(db, db[-1] + bar)
    n_bars = len(lines) - 1
    kind = str(d.get("source_kind", ""))
    has_sections = False
    sec = np.zeros(n_bars, int)
    content = np.ones(n_bars, bool)
    end = d.get("content_end_s")
    if end:
        content &= lines[:-1] < float(end) - 0.5 * bar
    if kind.startswith("lmms"):
        proj = _resolve_project(str(d.get("original_file", "")), work_dir, json_path=json_path)
        if proj is not None:
            reps = int(d.get("song_repeats") or 1)
            act = lmms_bar_activity(proj, n_bars, beats_per_bar=bpb, repeats=reps)
            notes = lmms_bar_note_activity(proj, n_bars, beats_per_bar=bpb, repeats=reps)
            # literal sections: a new one wherever the set of tracks playing changes,
            # by the song editor's clips or by the notes sounding in the bar
            sec = sections_from_activity(list(zip(act, notes)))
            content &= np.array([len(a) > 0 and len(n) > 0 for a, n in zip(act, notes)], bool)
            has_sections = True
    if bar_rms is not None:
        r = np.asarray(bar_rms, float)[:n_bars]
        ref = np.percentile(r, 90) if r.size else 0.0
        content[: r.size] &= r > ref * 10 ** (-40 / 20)
    source = "lmms" if kind.startswith("lmms") else ("mma" if "mma" in kind or d["id"].startswith("mma")
                                                     else kind.split("-")[0] or "real")
    keys = _realbench_bar_patterns(d, n_bars, bpb, work_dir, json_path)
    pattern = pattern_ids(keys) if keys is not None else None
    period = (section_periods(pattern, sec) if pattern is not None else np.ones(n_bars, int))
    return LoopTruth(track_id=str(d["id"]), downbeats=lines, beats_per_bar=bpb, bar_section=sec,
                     bar_content=content, phrase_bars=4, bar_period=period,
                     has_sections=has_sections, source=source, bar_pattern=pattern)


# --------------------------------------------------------------------------- labels

def label_windows(truth: LoopTruth, starts, ends, tol: float | None = None) -> pd.DataFrame:
    """Judge loops (start/end in seconds) against the truth.

    Parameters
    ----------
    truth : LoopTruth
    starts, ends : array_like
    tol : float, optional
        How close to a bar line counts as on it (default: 35 ms, at most a
        tenth of a beat).

    Returns
    -------
    DataFrame
        ``on_bar, whole_bars, true_bars, one_section, has_content, phrase_ok,
        phrase_length_ok, seamless, relevance`` (0 to 3, see the module
        docstring) and ``good`` (relevance == 3).
        ``one_section`` is judged for any window, on or off the grid: every
        true bar it overlaps by more than an eighth of a bar belongs to the
        same section.
    """
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    if starts.shape != ends.shape:
        raise ValueError("starts and ends must have the same length")
    lines = truth.downbeats
    nb = truth.n_bars
    bar = truth.bar_duration
    if tol is None:
        tol = min(0.035, 0.1 * truth.beat_period)
    sec_start = truth.section_start_bar()
    rows = []
    for s, e in zip(starts, ends):
        i = int(np.argmin(np.abs(lines - s)))
        j = int(np.argmin(np.abs(lines - e)))
        on_bar = abs(lines[i] - s) <= tol and i < nb
        whole = on_bar and abs(lines[j] - e) <= tol and j > i
        # bars overlapped by more than 1/8 bar
        k0 = int(np.searchsorted(lines, s + bar / 8.0, side="right")) - 1
        k1 = int(np.searchsorted(lines, e - bar / 8.0, side="left"))
        k0, k1 = max(0, k0), min(nb, max(k1, k0 + 1))
        inside = e > s and s >= lines[0] - bar / 8.0 and e <= lines[-1] + bar / 8.0
        one_sec = bool(inside and k1 > k0 and np.all(truth.bar_section[k0:k1] == truth.bar_section[k0]))
        content = bool(inside and k1 > k0 and np.all(truth.bar_content[k0:k1]))
        n = j - i if whole else 0
        long_enough = whole
        if whole:
            off = i - sec_start[i]
            phrase = truth.phrase_bars <= 0 or off % min(n, truth.phrase_bars) == 0
            if truth.bar_pattern is not None:
                seamless = continues_like_start(truth, i, n)
                per = int(truth.bar_period[i])
                # a loop is a phrase: at least the music's own period (2 bars for a
                # one-bar groove; a phrase of 4 where the music never repeats exactly)
                long_enough = n >= (max(2, min(per, 8)) if per > 0 else max(2, truth.phrase_bars))
            else:
                seamless = n % max(1, int(truth.bar_period[i])) == 0
        else:
            phrase = seamless = False
        # labels v3: staying inside one section (the same tracks playing in every bar)
        # is required for anything above 1; among those, whole phrases rank first
        base = whole and one_sec and content
        if base and n >= 2:
            rel = 3 if (phrase and seamless) else 2
        elif base:
            rel = 1
        else:
            rel = 0
        rows.append((bool(on_bar), bool(whole), n, one_sec, content, bool(phrase and long_enough),
                     bool(long_enough), bool(seamless), rel))
    out = pd.DataFrame(rows, columns=["on_bar", "whole_bars", "true_bars", "one_section",
                                      "has_content", "phrase_ok", "phrase_length_ok", "seamless",
                                      "relevance"])
    out["good"] = out["relevance"] == GOOD
    return out


def continues_like_start(truth: LoopTruth, i: int, n: int) -> bool:
    """Whether the ``n``-bar loop starting at bar ``i`` repeats seamlessly, note for note.

    The first ``max(1, n // 2)`` bars after its end must hold what its first
    bars hold (looping it sounds like the song going on). When those bars are
    in another section or past the end, the bars before its start must hold
    what its last bars hold instead; a loop that is its whole section is
    seamless. Needs ``truth.bar_pattern``.
    """
    pat, sec, ok = truth.bar_pattern, truth.bar_section, truth.bar_content
    nb = truth.n_bars
    m = max(1, n // 2)
    if i + n + m <= nb and np.all(sec[i + n:i + n + m] == sec[i]) and np.all(ok[i + n:i + n + m]):
        return bool(np.all(pat[i + n:i + n + m] == pat[i:i + m]))
    if i - m >= 0 and np.all(sec[i - m:i] == sec[i]) and np.all(ok[i - m:i]):
        return bool(np.all(pat[i - m:i] == pat[i + n - m:i + n]))
    return True


def grid_windows(truth: LoopTruth, bars=(1, 2, 4, 8)) -> pd.DataFrame:
    """Every whole-bar window on the true grid (what the engine cuts when its grid is right)."""
    rows = []
    lines = truth.downbeats
    for n in sorted({int(b) for b in bars}):
        for i in range(truth.n_bars - n + 1):
            rows.append((float(lines[i]), float(lines[i + n]), n, "grid"))
    df = pd.DataFrame(rows, columns=["start_time", "end_time", "bars", "kind"])
    df["beats_per_bar"] = truth.beats_per_bar
    return df


def shifted_grid_windows(truth: LoopTruth, bars=(1, 2, 4, 8), *, rng=None) -> pd.DataFrame:
    """Every whole-bar window of a wrongly phased grid (what the engine cuts when its
    downbeat is off): the true grid moved by whole beats or half a beat.

    Ranking inside such a set teaches the model to keep loops inside one section
    and away from silence even when no candidate sits on a true bar line.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    bpb = truth.beats_per_bar
    k = float(rng.integers(1, bpb)) if rng.random() < 0.75 else 0.5
    w = grid_windows(truth, bars)
    shift = k * truth.beat_period * (1 if rng.random() < 0.5 else -1)
    w["start_time"] += shift
    w["end_time"] += shift
    w["kind"] = "grid_shifted"
    lo, hi = float(truth.downbeats[0]) - truth.bar_duration, float(truth.downbeats[-1]) + truth.bar_duration
    return w[(w["start_time"] >= max(0.0, lo)) & (w["end_time"] <= hi)].reset_index(drop=True)


def training_windows(truth: LoopTruth, bars=(1, 2, 4, 8), *, rng=None,
                     negatives_per_type: float = 0.12, duration: float | None = None) -> pd.DataFrame:
    """Grid windows plus typed negatives from the same track.

    Besides every whole-bar window on the true grid (which already holds the
    section-crossing, silent and mid-phrase cases), a share
    ``negatives_per_type`` of the grid windows is copied as each of:
    ``shift_fraction`` (start and end moved by 1/4, 1/3 or 1/2 beat),
    ``shift_beats`` (moved by whole beats, less than a bar) and
    ``non_whole`` (end moved by a beat or half a bar: not a whole number of
    bars).

    Returns
    -------
    DataFrame
        ``start_time, end_time, bars, kind, beats_per_bar``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    base = grid_windows(truth, bars)
    if base.empty:
        return base
    beat = truth.beat_period
    bpb = truth.beats_per_bar
    m = max(1, int(round(negatives_per_type * len(base))))
    parts = [base]
    for kind in ("shift_fraction", "shift_beats", "non_whole"):
        pick = base.iloc[rng.choice(len(base), size=min(m, len(base)), replace=False)].copy()
        sign = rng.choice([-1.0, 1.0], size=len(pick))
        if kind == "shift_fraction":
            d = sign * rng.choice([0.25, 1 / 3, 0.5], size=len(pick)) * beat
            pick["start_time"] += d
            pick["end_time"] += d
        elif kind == "shift_beats":
            d = sign * rng.integers(1, max(2, bpb), size=len(pick)) * beat
            pick["start_time"] += d
            pick["end_time"] += d
        else:
            d = sign * np.where(rng.random(len(pick)) < 0.5, beat, 0.5 * bpb * beat)
            pick["end_time"] += d
        pick["kind"] = kind
        parts.append(pick)
    out = pd.concat(parts, ignore_index=True)
    hi = duration if duration is not None else float(truth.downbeats[-1])
    out = out[(out["start_time"] >= 0) & (out["end_time"] <= hi + 1e-6)
              & (out["end_time"] - out["start_time"] > 0.5 * beat)]
    return out.reset_index(drop=True)
