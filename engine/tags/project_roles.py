"""Instrument-role truth from DAW projects: LMMS (.mmp / .mmpz) and Hydrogen songs.

The realbench sets render LMMS demo projects and Hydrogen drum songs; their
project files say which instrument plays which notes when, so each loop cut
from a render gets role truth (:data:`engine.tags.roles.ROLES`) without
listening to it.

LMMS (:func:`lmms_role_notes`)
------------------------------
*Which role a track has* (:func:`lmms_track_role`), from the plugin name, the
sample file of AudioFileProcessor tracks (``drums/kick01.ogg``,
``basses/bass_hard01.ogg``, ``stringsnpads/...``, ``drumsynth/misc_fx/...``)
and the track name, first match wins:

1. fx words (woosh, sweep, riser, noise, fx, ufo, sonar, ...; the ``sfxr``
   plugin; ``drumsynth/misc_fx`` / ``drumsynth/effects`` samples) -> fx;
2. vocal words (vocal, vox, voice, acapella) -> vocal;
3. samples under ``drums/``, ``beats/`` or ``drumsynth/`` (except
   ``drumsynth/instrument``) -> percussion;
4. drum words at the start of a word (kick, kik, snare, hat, clap, tom, crash,
   ride, cymbal, shaker, rim, conga, perc, bassdrum, drum, bd, sd, hh; ``k``,
   ``s``, ``ch``, ``oh`` as whole words) without a bass word -> percussion;
5. bass words (bass..., sub; ``basses/`` samples) or the ``lb302`` bass
   synth -> bass;
6. chord words (chord, pad, string, accord, choir, chorus; ``stringsnpads/``)
   -> chords; melody words (lead, ld, arp, melod, pluck, bell, solo,
   trumpet, sax, flute, guitar) -> melody;
7. the ``kicker`` (kick-drum synth) plugin on at most two pitches ->
   percussion;
8. otherwise the notes decide: at least 40 % of note starts sounding with 2
   other notes -> chords; median pitch below C3 (MIDI 48) -> bass; else
   melody (lines on "Default preset" synths, piano lines, ...).

*When it plays*: song-editor patterns (``pattern`` clips: notes at pattern
position + note position, cut at the clip's length), sample clips
(``sampletco``) and Beat/Bassline clips (``bbtco``): the inner tracks'
patterns at index ``bb`` (position ``bb * 192`` in the BB editor) loop over the
clip with the BB's length (its longest pattern, whole bars). Muted tracks and
clips, and tracks at volume 0, are skipped. Step notes (negative length)
count as 1/16 bar long. Ticks: 48 per quarter at the project's constant BPM.
Short projects that the builder repeated (``song_repeats`` in the ground
truth) are repeated the same way (one pass as the ground truth's notes say,
else the builder's rule: the last clip end rounded up to a bar). Patterns
without a ``len`` get LMMS's own length (beat patterns: their steps; melody
patterns: the last note end rounded up to a bar).

Limits: role words are English and conventional; a "Default preset" synth is
judged by its notes only; the truth says a track *has notes*, not that it is
audible (a sidechain trigger at full volume but routed to a silent FX channel
would still count); effects inside a plugin (a pad with a long release) are
not modelled beyond the note length.

Hydrogen (:func:`hydrogen_role_notes`): every instrument is percussion; note
times from the song's pattern sequence are not needed at this level, so the
whole song span is percussion.
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

TICKS_PER_QUARTER = 48
TICKS_PER_BAR = 192

_FX = ("woosh", "whoosh", "sweep", "riser", "uplift", "downlift", "noise", "fx", "sfx",
       "ufo", "alien", "sonar", "impact", "laser", "zap", "siren")
_VOCAL = ("vocal", "vox", "voice", "acapella", "speech")
_DRUM = ("kick", "kik", "snare", "hat", "hihat", "hih", "clap", "tom", "crash", "ride",
         "cymbal", "shaker", "rim", "conga", "cga", "bongo", "cowbell", "tamb", "perc",
         "bassdrum", "drum", "bd", "sd", "hh")
_DRUM_EXACT = ("k", "s", "ch", "oh")
_CHORDS = ("chord", "pad", "string", "accord", "choir", "chorus")
_MELODY = ("lead", "ld", "arp", "melod", "pluck", "bell", "solo", "trumpet", "sax", "flute",
           "guitar")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower().replace("bass drum", "bassdrum"))
            if w]


def _starts(words, stems) -> bool:
    return any(w.startswith(stems) for w in words)


def lmms_xml(path) -> ET.Element:
    """Parse an LMMS project (``.mmpz`` is qCompress'ed: 4-byte length + zlib).

    Raises
    ------
    ValueError
        Not a readable LMMS project.
    """
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        try:
            data = zlib.decompress(data[4:])
        except zlib.error as exc:
            raise ValueError(f"{path.name}: not a compressed LMMS project ({exc})") from None
    try:
        root = ET.fromstring(data.decode("utf-8", "replace"))
    except ET.ParseError as exc:
        raise ValueError(f"{path.name}: not an LMMS project ({exc})") from None
    if root.find("song/trackcontainer") is None or root.find("head") is None:
        raise ValueError(f"{path.name}: no <head> / song track container")
    return root


def lmms_track_role(name: str, plugin: str | None, sample: str = "",
                    keys=None, starts=None, ends=None) -> str | None:
    """Role of one LMMS instrument track (rules in the module docstring).

    Parameters
    ----------
    name : track name
    plugin : instrument plugin (``audiofileprocessor``, ``kicker``, ``lb302``, ...)
    sample : AudioFileProcessor sample path (``drums/kick01.ogg``), if any
    keys, starts, ends : MIDI pitch, start and end tick of the track's notes
        (for the polyphony / register rule).
    """
    plugin = (plugin or "").lower()
    sample = (sample or "").replace("\\", "/")
    sdir = sample.lower()
    words = _words(f"{name} {Path(sample).stem}")
    bass_word = any((w.startswith("bass") and not w.startswith("bassdrum")) or w == "sub"
                    for w in words)
    if (_starts(words, _FX) or plugin == "sfxr" or "misc_fx" in sdir
            or "drumsynth/effects" in sdir):
        return "fx"
    if _starts(words, _VOCAL) or sdir.startswith("vocals/"):
        return "vocal"
    if sdir.startswith(("drums/", "beats/")) or (sdir.startswith("drumsynth/")
                                                 and not sdir.startswith("drumsynth/instrument")):
        return "percussion"
    if (_starts(words, _DRUM) or any(w in _DRUM_EXACT for w in words)) and not bass_word:
        return "percussion"
    if bass_word or sdir.startswith("basses/") or plugin == "lb302":
        return "bass"
    if _starts(words, _CHORDS) or sdir.startswith("stringsnpads/"):
        return "chords"
    if _starts(words, _MELODY):
        return "melody"
    if keys is None or len(keys) == 0:
        return "percussion" if plugin == "kicker" else None
    if plugin == "kicker" and len(np.unique(np.asarray(keys))) <= 2:
        return "percussion"     # the kick synth on one or two pitches
    return role_from_notes(keys, starts, ends)


def role_from_notes(keys, starts, ends) -> str:
    """Role of a pitched part from its notes alone: at least 40 % of note starts
    sounding with 2 other notes -> chords; median pitch below C3 (MIDI 48) ->
    bass; else melody. Times in any unit."""
    keys, starts, ends = (np.asarray(a, float) for a in (keys, starts, ends))
    order = np.argsort(starts)
    s, e = starts[order], ends[order]
    # notes sounding at each note start (itself included)
    sounding = np.array([np.sum((s <= t) & (e > t)) for t in s])
    if np.mean(sounding >= 3) >= 0.4:
        return "chords"
    if np.median(keys) < 48:
        return "bass"
    return "melody"


def _notes(pattern: ET.Element) -> list[tuple[int, int, int]]:
    """``(pos, len, midi pitch)`` of a pattern's notes (step notes get 1/16 bar)."""
    out = []
    for n in pattern.findall("note"):
        ln = int(float(n.get("len", "12")))
        out.append((int(float(n.get("pos", "0"))), ln if ln > 0 else TICKS_PER_BAR // 16,
                    int(float(n.get("key", "57"))) + 12))     # LMMS key 57 = A4 = MIDI 69
    return out


def pattern_length(p: ET.Element) -> int:
    """A pattern's length in ticks: its ``len``, else as LMMS computes it (beat
    patterns: ``steps`` 16ths; melody patterns: the last note end rounded up to
    a bar, at least one bar)."""
    if p.get("len") is not None:
        return int(float(p.get("len")))
    if p.get("type", "1") == "0":
        return int(p.get("steps", "16")) * (TICKS_PER_BAR // 16)
    ends = [int(float(n.get("pos", "0"))) + max(int(float(n.get("len", "0"))), 1)
            for n in p.findall("note")]
    return max(1, int(math.ceil(max(ends, default=1) / TICKS_PER_BAR))) * TICKS_PER_BAR


def _muted(el: ET.Element) -> bool:
    return el.get("muted", "0") not in ("0", "", None)


def _instrument(track: ET.Element) -> tuple[str | None, str, bool]:
    """``(plugin, sample path, silent)`` of an instrument track."""
    it = track.find("instrumenttrack")
    if it is None:
        return None, "", True
    inst = it.find("instrument")
    plugin = inst.get("name") if inst is not None else None
    sample = ""
    if plugin == "audiofileprocessor":
        afp = inst.find("audiofileprocessor")
        sample = afp.get("src", "") if afp is not None else ""
    silent = float(it.get("vol", "100")) <= 0
    return plugin, sample, silent


def _song_clips(tc: ET.Element):
    return [e for tr in tc.findall("track") for e in tr
            if e.tag in ("pattern", "bbtco", "sampletco", "automationpattern")
            and e.get("pos") is not None]


def lmms_track_events(root: ET.Element) -> list[dict]:
    """Every sounding track of a project with its role and note events in ticks.

    Returns
    -------
    list of dict
        ``{name, plugin, sample, role, events}`` with ``events`` an array
        (k, 2) of (start tick, end tick) on the song timeline (one pass).
    """
    tc = root.find("song/trackcontainer")
    tracks = tc.findall("track")
    bb_tracks = [t for t in tracks if t.get("type") == "1"]
    inner = next((t.find("bbtrack/trackcontainer") for t in bb_tracks
                  if t.find("bbtrack/trackcontainer") is not None), None)
    inner_tracks = inner.findall("track") if inner is not None else []

    def bb_length(bb: int) -> int:
        ln = 0
        for t in inner_tracks:
            for p in t.findall("pattern"):
                if int(p.get("pos", "0")) // TICKS_PER_BAR == bb:
                    ln = max(ln, pattern_length(p))
        return max(TICKS_PER_BAR, int(math.ceil(ln / TICKS_PER_BAR)) * TICKS_PER_BAR)

    out = []

    def add(name, plugin, sample, notes):
        if not notes:
            return
        a = np.array(notes, float)
        role = lmms_track_role(name, plugin, sample, a[:, 2], a[:, 0], a[:, 0] + a[:, 1])
        if role is not None:
            out.append({"name": name, "plugin": plugin, "sample": sample, "role": role,
                        "events": np.column_stack([a[:, 0], a[:, 0] + a[:, 1]])})

    for t in tracks:
        if _muted(t):
            continue
        ttype, name = t.get("type"), t.get("name", "")
        if ttype == "0":
            plugin, sample, silent = _instrument(t)
            if silent:
                continue
            notes = []
            for p in t.findall("pattern"):
                if _muted(p):
                    continue
                p0, plen = int(p.get("pos", "0")), pattern_length(p)
                notes += [(p0 + pos, min(ln, max(plen - pos, 1)), k)
                          for pos, ln, k in _notes(p) if pos < plen]
            add(name, plugin, sample, notes)
        elif ttype == "2":
            notes = [(int(s.get("pos")), int(s.get("len", "0")), 60)
                     for s in t.findall("sampletco") if not _muted(s)]
            src = next((s.get("src", "") for s in t.findall("sampletco")), "")
            add(name, "sampletrack", src, notes)
    # Beat/Bassline clips: inner track patterns at index bb, looped over the clip
    for bb, t in enumerate(bb_tracks):
        if _muted(t):
            continue
        clips = [(int(c.get("pos")), int(c.get("len", "0"))) for c in t.findall("bbtco")
                 if not _muted(c)]
        if not clips:
            continue
        blen = bb_length(bb)
        for it in inner_tracks:
            if _muted(it) or it.get("type") != "0":
                continue
            plugin, sample, silent = _instrument(it)
            if silent:
                continue
            pat = [p for p in it.findall("pattern")
                   if int(p.get("pos", "0")) // TICKS_PER_BAR == bb and not _muted(p)]
            base = [(pos, ln, k) for p in pat for pos, ln, k in _notes(p)
                    if pos < pattern_length(p)]
            if not base:
                continue
            notes = []
            for c0, clen in clips:
                for rep in range(int(math.ceil(clen / blen))):
                    for pos, ln, k in base:
                        st = rep * blen + pos
                        if st < clen:
                            notes.append((c0 + st, min(ln, clen - st), k))
            add(it.get("name", ""), plugin, sample, notes)
    return out


def lmms_role_notes(project, repeats: int = 1, end_s: float | None = None,
                    pass_ticks: int | None = None) -> dict:
    """``{role: ndarray (k, 2) of (onset_s, offset_s)}`` for an LMMS project's render.

    Parameters
    ----------
    project : path of the ``.mmp`` / ``.mmpz``
    repeats : the song played this many times in a row (the realbench builder
        repeats short projects; one pass = the song end rounded up to a bar)
    end_s : drop events starting after this time (a cut render)
    pass_ticks : length of one pass when repeated (default: the builder's rule,
        the last clip end rounded up to a bar)

    Raises
    ------
    ValueError
        Unreadable project, or a tempo other than a constant BPM.
    """
    root = lmms_xml(project)
    head = root.find("head")
    bpm = float(head.get("bpm", "140"))
    tc = root.find("song/trackcontainer")
    clips = _song_clips(tc)
    if not clips:
        return {}
    if pass_ticks is None:      # the realbench builder's rule (clip len, 0 when absent)
        song_end = max(int(e.get("pos")) + int(e.get("len", "0")) for e in clips)
        pass_ticks = int(math.ceil(song_end / TICKS_PER_BAR)) * TICKS_PER_BAR
    one_pass = int(pass_ticks)
    sec = 60.0 / bpm / TICKS_PER_QUARTER
    out: dict = {}
    for tr in lmms_track_events(root):
        ev = np.vstack([tr["events"] + k * one_pass for k in range(max(1, int(repeats)))])
        ev = ev * sec
        if end_s is not None:
            ev = ev[ev[:, 0] < end_s]
        if len(ev):
            out[tr["role"]] = np.vstack([out[tr["role"]], ev]) if tr["role"] in out else ev
    return out


def hydrogen_role_notes(gt: dict) -> dict:
    """Hydrogen drum songs: percussion over the whole rendered content."""
    end = float(gt.get("content_end_s") or gt["duration_s"])
    return {"percussion": np.array([[0.0, end]])}


def find_project(original_file: str, work_dir) -> Path | None:
    """The project file of a ground-truth record: the builder's extracted
    package copy (``<work>/pkg/<package>/<original path>``) or the installed file."""
    orig = Path(original_file)
    work = Path(work_dir)
    for cand in sorted(work.glob("pkg/*")) if work.is_dir() else []:
        p = cand / str(orig).lstrip("/")
        if p.is_file():
            return p
    return orig if orig.is_file() else None


def song_role_notes(gt_json, work_dir) -> dict | None:
    """Role note spans for one realbench track (MMA, LMMS or Hydrogen), or None
    when its source is not available.

    MMA: ``<work>/mma/<id>.mid`` (:func:`engine.tags.roles.midi_role_notes`);
    LMMS: the project named by ``original_file``; Hydrogen: all percussion.
    """
    from .roles import midi_role_notes

    gt_json = Path(gt_json)
    gt = json.loads(gt_json.read_text())
    kind = gt.get("source_kind", "")
    tid = gt.get("id", gt_json.stem)
    end = float(gt.get("duration_s", 0)) or None
    if kind.startswith("mma") or tid.startswith("mma_"):
        midi = Path(work_dir) / "mma" / f"{tid}.mid"
        return midi_role_notes(midi) if midi.is_file() else None
    if kind.startswith("lmms"):
        proj = find_project(gt.get("original_file", ""), work_dir)
        if proj is None:
            return None
        m = re.search(r"one pass = (\d+) ticks", gt.get("notes", ""))
        return lmms_role_notes(proj, repeats=int(gt.get("song_repeats") or 1), end_s=end,
                               pass_ticks=int(m.group(1)) if m else None)
    if kind.startswith("hydrogen"):
        return hydrogen_role_notes(gt)
    return None
