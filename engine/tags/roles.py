"""Instrument roles per loop, with truth from material whose parts are known.

Role vocabulary (the Freesound Loop Dataset's instrumentation tags):
:data:`ROLES` = percussion, bass, chords, melody, fx, vocal.

Two sources of truth:

* **generated loops** (:func:`make_synth_role_loops`): :func:`engine.synth.synth_track`
  plays each part (drums, bass, chords, melody lead, fx riser/downlifter/zaps,
  formant-synthesised vocal) on or off at random per loop, so the roles are
  independent and known exactly (:data:`SYNTH_PART_ROLE`).
* **realbench renders** (:func:`make_realbench_role_loops`): loops cut on the
  ground-truth downbeats of a realbench set's MMA, LMMS and Hydrogen tracks.
  LMMS and Hydrogen truth comes from the projects
  (:mod:`engine.tags.project_roles`); for MMA each MIDI track's name is
  the MMA track (``Drum``, ``Bass-*``, ``Walk``, ``Chord-*``, ``Plectrum``,
  ``Arpeggio``, ...), its GM program and register say what it plays
  (:func:`midi_track_role`), and its notes say when it plays. A role is on in
  a loop when its tracks start at least 2 notes inside the loop or sound for
  at least a quarter of it (:func:`roles_in_span`).

Truth files are CSVs with columns ``file, roles`` (comma-joined), written
next to the loops as ``roles.csv`` (:data:`ROLES_CSV`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROLES = ("percussion", "bass", "chords", "melody", "fx", "vocal")

#: engine.synth part -> role.
SYNTH_PART_ROLE = {"drums": "percussion", "bass": "bass", "chords": "chords",
                   "melody": "melody", "fx": "fx", "vocal": "vocal"}

#: Name of the truth file written beside generated / cut loops.
ROLES_CSV = "roles.csv"


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


# --------------------------------------------------------------------------- truth files

def write_roles_csv(rows, path) -> Path:
    """Write ``[(file, [roles])]`` as ``file, roles`` (files relative to the CSV)."""
    from ..atomic import atomic_write_csv

    path = Path(path)
    out = []
    for f, roles in rows:
        fp = Path(f)
        try:
            rel = fp.resolve().relative_to(path.parent.resolve())
        except ValueError:
            rel = fp
        out.append({"file": str(rel), "roles": ",".join(r for r in ROLES if r in roles)})
    atomic_write_csv(pd.DataFrame(out, columns=["file", "roles"]), path)
    return path


def read_roles_csv(path) -> dict:
    """``{resolved file path: [roles]}`` from a truth CSV (relative paths are
    taken from the CSV's folder).

    Raises
    ------
    FileNotFoundError
        No such CSV.
    ValueError
        The CSV lacks ``file`` or ``roles``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"role truth file not found: {path}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"file", "roles"} - set(df.columns)
    if missing:
        raise ValueError(f"{path.name}: missing column(s) {sorted(missing)}")
    out = {}
    for f, r in zip(df["file"], df["roles"]):
        fp = Path(f)
        if not fp.is_absolute():
            fp = path.parent / fp
        out[str(fp.resolve())] = [x for x in str(r).split(",") if x]
    return out


# --------------------------------------------------------------------------- generated loops

def synth_role_loop(rng: np.random.Generator, seed: int, sr: int = 22050):
    """One generated loop with random parts, tempo, key, pattern, length.

    Returns
    -------
    audio : ndarray (n,) float32
    roles : list of str
    meta : dict
        bpm, bars, pattern, key, parts, swing, timbre.
    """
    from ..synth import DRUM_PATTERNS, PITCH_CLASSES, synth_track

    parts = [p for p in SYNTH_PART_ROLE if rng.random() < 0.5]
    if not parts:
        parts = [str(rng.choice(list(SYNTH_PART_ROLE)))]
    bpm = float(rng.uniform(70, 175))
    bars = int(rng.choice([1, 2, 2, 4]))
    pattern = str(rng.choice([p for p in DRUM_PATTERNS if p != "waltz"]))
    key = f"{PITCH_CLASSES[int(rng.integers(0, 12))]} {rng.choice(['major', 'minor'])}"
    swing = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.15, 0.33)]))
    timbre = str(rng.choice(["pad", "pluck", "organ"]))
    tr = synth_track(bpm, n_bars=bars, section_bars=bars, patterns=(pattern,), swing=swing,
                     key=key, timbre=timbre, instruments=tuple(parts), lead_in_beats=0,
                     lead_in_silence=0.0, tail_seconds=0.0, sr=sr, stereo=False, seed=seed,
                     level_db=float(rng.uniform(-9, -1)))
    n = int(round(bars * 4 * 60.0 / bpm * sr))
    roles = [SYNTH_PART_ROLE[p] for p in tr.truth.parts]
    return tr.audio[:n, 0].copy(), roles, {"bpm": bpm, "bars": bars, "pattern": pattern,
                                           "key": key, "parts": parts, "swing": swing,
                                           "timbre": timbre}


def make_synth_role_loops(out_dir, n: int = 200, seed: int = 0, sr: int = 22050,
                          progress=None) -> Path:
    """Write ``n`` generated loops (``synth_role_NNNN.wav``) and their ``roles.csv``.

    Returns the path of ``roles.csv``.
    """
    import soundfile as sf

    from ..atomic import atomic_path

    progress = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        y, roles, _ = synth_role_loop(rng, seed * 100003 + i, sr)
        p = out / f"synth_role_{i:04d}.wav"
        with atomic_path(p) as tmp:
            sf.write(tmp, y, sr, subtype="PCM_16", format="WAV")
        rows.append((p, roles))
        progress(i + 1, n, p.name)
    return write_roles_csv(rows, out / ROLES_CSV)


# --------------------------------------------------------------------------- realbench MMA

_MELODIC_PREFIXES = ("arpeggio", "scale", "solo", "melody", "aria")


def midi_track_role(name: str, program: int | None, channel: int | None,
                    median_pitch: float) -> str | None:
    """Role of one MMA MIDI track from its name, GM program and register.

    * channel 10 (index 9), ``Drum*`` tracks, or GM percussive programs
      (112-119, e.g. Synth Drum) -> percussion;
    * ``Walk*``, GM bass programs (32-39), or ``Bass*`` tracks whose median
      note is below C3 (MIDI 48) -> bass (MMA's Bass-type tracks also carry
      leads, e.g. HipHop's ``Bass-Lead``);
    * ``Chord*`` and ``Plectrum*`` (strummed) -> chords;
    * ``Arpeggio``, ``Scale``, ``Solo``, ``Melody``, ``Aria`` and the
      remaining ``Bass*`` tracks (single notes above the bass) -> melody;
    * anything else (tracks named for their instrument, e.g. the kara
      library's ``Piano1``): None here, and :func:`midi_role_notes` lets the
      notes decide (:func:`engine.tags.project_roles.role_from_notes`:
      3-note chords on 40 % of starts -> chords, median below C3 -> bass,
      else melody).
    """
    low = name.lower()
    if channel == 9 or low.startswith("drum") or (program is not None and 112 <= program <= 119):
        return "percussion"
    if low.startswith("walk") or (program is not None and 32 <= program <= 39):
        return "bass"
    if low.startswith("bass"):
        return "bass" if median_pitch < 48 else "melody"
    if low.startswith(("chord", "plectrum")):
        return "chords"
    if low.startswith(_MELODIC_PREFIXES):
        return "melody"
    return None


def midi_role_notes(midi_path) -> dict:
    """``{role: ndarray (k, 2) of (onset_s, offset_s)}`` from an MMA MIDI file.

    Tick times are converted with the file's tempo map (merged from every
    track). Tracks without a role (:func:`midi_track_role` None) are skipped.
    """
    import mido

    mf = mido.MidiFile(str(midi_path))
    tpb = mf.ticks_per_beat
    tempo_events = []
    for tr in mf.tracks:
        tick = 0
        for msg in tr:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_events.append((tick, msg.tempo))
    tempo_events = sorted(tempo_events) or [(0, 500000)]
    if tempo_events[0][0] != 0:
        tempo_events.insert(0, (0, 500000))
    ticks = np.array([t for t, _ in tempo_events], float)
    tempos = np.array([v for _, v in tempo_events], float)
    seg_sec = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * tempos[:-1] / 1e6 / tpb)])

    def to_sec(t):
        t = np.asarray(t, float)
        k = np.searchsorted(ticks, t, side="right") - 1
        return seg_sec[k] + (t - ticks[k]) * tempos[k] / 1e6 / tpb

    out: dict = {}
    for tr in mf.tracks:
        name = next((m.name for m in tr if m.type == "track_name"), "")
        program, channel = None, None
        tick = 0
        open_notes: dict = {}
        notes = []
        for msg in tr:
            tick += msg.time
            if msg.type == "program_change" and program is None:
                program = msg.program
            if msg.type in ("note_on", "note_off"):
                channel = msg.channel if channel is None else channel
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    open_notes.setdefault(key, []).append(tick)
                elif open_notes.get(key):
                    notes.append((open_notes[key].pop(0), tick, msg.note))
        if not notes:
            continue
        role = midi_track_role(name, program, channel,
                               float(np.median([n[2] for n in notes])))
        if role is None:            # a track named for its instrument (Piano1, CleanGuitar)
            from .project_roles import role_from_notes

            role = role_from_notes([n[2] for n in notes], [n[0] for n in notes],
                                   [n[1] for n in notes])
        arr = np.column_stack([to_sec([n[0] for n in notes]), to_sec([n[1] for n in notes])])
        out[role] = np.vstack([out[role], arr]) if role in out else arr
    return out


def roles_in_span(role_notes: dict, t0: float, t1: float, min_onsets: int = 2,
                  min_coverage: float = 0.25) -> list[str]:
    """Roles playing in [t0, t1): at least ``min_onsets`` note starts inside,
    or notes sounding over at least ``min_coverage`` of the span."""
    span = max(t1 - t0, 1e-9)
    on = []
    for role in ROLES:
        notes = role_notes.get(role)
        if notes is None or len(notes) == 0:
            continue
        starts = np.sum((notes[:, 0] >= t0) & (notes[:, 0] < t1))
        a = np.clip(notes[:, 0], t0, t1)
        b = np.clip(notes[:, 1], t0, t1)
        iv = np.column_stack([a, b])[b > a]
        cover = 0.0
        if iv.size:
            iv = iv[np.argsort(iv[:, 0])]
            cur_s, cur_e = iv[0]
            for s, e in iv[1:]:
                if s > cur_e:
                    cover += cur_e - cur_s
                    cur_s, cur_e = s, e
                else:
                    cur_e = max(cur_e, e)
            cover += cur_e - cur_s
        if starts >= min_onsets or cover / span >= min_coverage:
            on.append(role)
    return on


def realbench_mma_tracks(devset_dir, work_dir) -> list[tuple[Path, Path, Path]]:
    """``[(wav, gt_json, midi)]`` for every MMA track of a built dev set."""
    devset_dir, work_dir = Path(devset_dir), Path(work_dir)
    out = []
    for js in sorted((devset_dir / "gt").glob("mma_*.json")):
        midi = work_dir / "mma" / f"{js.stem}.mid"
        wav = devset_dir / "gt" / f"{js.stem}.wav"
        if midi.is_file() and wav.is_file():
            out.append((wav, js, midi))
    return out


def realbench_role_tracks(devset_dir, work_dir, kinds=("mma", "lmms", "hydrogen")
                          ) -> list[tuple[Path, Path, dict]]:
    """``[(wav, gt_json, role_notes)]`` for every track of a built realbench set
    whose role truth can be derived (:func:`engine.tags.project_roles.song_role_notes`:
    MMA MIDI, LMMS projects, Hydrogen songs); ``kinds`` filters by source kind."""
    from .project_roles import song_role_notes

    devset_dir = Path(devset_dir)
    out = []
    for js in sorted((devset_dir / "gt").glob("*.json")):
        wav = devset_dir / "gt" / f"{js.stem}.wav"
        try:
            kind = json.loads(js.read_text()).get("source_kind", "")
        except (OSError, ValueError):
            continue
        if not wav.is_file() or not any(kind.startswith(k) for k in kinds):
            continue
        notes = song_role_notes(js, work_dir)
        if notes:
            out.append((wav, js, notes))
    return out


def make_realbench_role_loops(devset_dir, work_dir, out_dir, *, bars=(2, 4),
                              per_track: int = 12, seed: int = 0, sr: int = 22050,
                              kinds=("mma", "lmms", "hydrogen"), progress=None) -> Path:
    """Cut loops on the ground-truth downbeats of a realbench set's tracks (MMA,
    LMMS, Hydrogen; :func:`realbench_role_tracks`) and write them with their
    role truth (``roles.csv``; a role is on when :func:`roles_in_span` says so).

    Loops start on evenly spread bars (random offset), ``bars`` long (cycled),
    and are written mono at ``sr``; near-silent cuts are skipped. Returns the
    path of ``roles.csv``.
    """
    import soundfile as sf
    import soxr

    from ..atomic import atomic_path

    progress = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tracks = realbench_role_tracks(devset_dir, work_dir, kinds)
    if not tracks:
        raise FileNotFoundError(f"no realbench tracks with role truth under {devset_dir} / "
                                f"{work_dir}")
    rows = []
    for ti, (wav, js, notes) in enumerate(tracks):
        gt = json.loads(js.read_text())
        downs = np.asarray(gt["downbeats_s"], float)
        end = float(gt.get("content_end_s") or gt["duration_s"])
        y, file_sr = sf.read(str(wav), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if file_sr != sr:
            y = soxr.resample(y, file_sr, sr)
        n_bars = len(downs)
        starts = np.linspace(0, max(n_bars - max(bars) - 1, 0), per_track).astype(int)
        starts = np.unique(np.clip(starts + rng.integers(0, 2, size=starts.size), 0, None))
        for k, b0 in enumerate(starts):
            nb = bars[k % len(bars)]
            if b0 + nb >= n_bars:
                continue
            t0, t1 = float(downs[b0]), float(downs[b0 + nb])
            if t1 > end:
                continue
            seg = y[int(round(t0 * sr)):int(round(t1 * sr))]
            if seg.size < sr or np.max(np.abs(seg)) < 1e-2:
                continue
            roles = roles_in_span(notes, t0, t1)
            if not roles:
                continue
            p = out / f"{js.stem}__bar{b0:03d}_{nb}bars.wav"
            with atomic_path(p) as tmp:
                sf.write(tmp, seg, sr, subtype="PCM_16", format="WAV")
            rows.append((p, roles))
        progress(ti + 1, len(tracks), js.stem)
    return write_roles_csv(rows, out / ROLES_CSV)


def song_of(path) -> str:
    """The source track of a cut loop (``<track>__bar...wav`` -> ``<track>``)."""
    return Path(str(path)).stem.split("__")[0]


# --------------------------------------------------------------------------- MMA part renders

def _write_midi_subset(midi_path, keep_roles, out_path) -> dict:
    """Copy an MMA MIDI file keeping only the tracks whose role is in ``keep_roles``
    (meta tracks always kept); returns ``{role: notes}`` of the kept tracks."""
    import mido

    mf = mido.MidiFile(str(midi_path))
    new = mido.MidiFile(ticks_per_beat=mf.ticks_per_beat, type=mf.type)
    for tr in mf.tracks:
        notes = [m for m in tr if m.type == "note_on" and m.velocity > 0]
        if not notes:
            new.tracks.append(tr)
            continue
        name = next((m.name for m in tr if m.type == "track_name"), "")
        program = next((m.program for m in tr if m.type == "program_change"), None)
        role = midi_track_role(name, program, notes[0].channel,
                               float(np.median([m.note for m in notes])))
        if role in keep_roles:
            new.tracks.append(tr)
    new.save(str(out_path))
    return midi_role_notes(out_path)


def make_mma_part_loops(devset_dir, work_dir, out_dir, *, variants: int = 3,
                        per_render: int = 6, bars=(2, 4), seed: int = 0, sr: int = 22050,
                        soundfont="/usr/share/sounds/sf2/FluidR3_GM.sf2",
                        progress=None) -> Path:
    """Loops with varied roles in real General-MIDI timbres: each MMA song of the
    dev set is re-rendered ``variants`` times by FluidSynth with a random subset
    of its role groups (each role kept with probability 1/2, at least one),
    then cut on its ground-truth downbeats; truth comes from the kept tracks'
    notes (:func:`roles_in_span`). Needs the ``fluidsynth`` program and a GM
    soundfont (development only; the shipped model's recipe records it).
    Returns the path of ``roles.csv``.
    """
    import shutil
    import subprocess
    import tempfile

    import soundfile as sf

    from ..atomic import atomic_path

    if shutil.which("fluidsynth") is None or not Path(soundfont).is_file():
        raise FileNotFoundError("make_mma_part_loops needs the fluidsynth program and "
                                f"the soundfont {soundfont}")
    progress = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tracks = realbench_mma_tracks(devset_dir, work_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="looplab-mma-") as tmpd:
        for ti, (wav, js, midi) in enumerate(tracks):
            gt = json.loads(js.read_text())
            downs = np.asarray(gt["downbeats_s"], float)
            present = [r for r in ROLES if r in midi_role_notes(midi)]
            for v in range(variants):
                keep = [r for r in present if rng.random() < 0.5] or [str(rng.choice(present))]
                sub = Path(tmpd) / f"{js.stem}_{v}.mid"
                notes = _write_midi_subset(midi, set(keep), sub)
                render = Path(tmpd) / f"{js.stem}_{v}.wav"
                subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(render), "-r", str(sr),
                                "-g", "0.5", str(soundfont), str(sub)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                y, _ = sf.read(str(render), dtype="float32", always_2d=True)
                y = y.mean(axis=1)
                n_bars = len(downs)
                starts = rng.choice(np.arange(1, max(2, n_bars - max(bars) - 1)),
                                    size=min(per_render, max(1, n_bars - max(bars) - 2)),
                                    replace=False)
                for k, b0 in enumerate(sorted(starts)):
                    nb = bars[k % len(bars)]
                    if b0 + nb >= n_bars:
                        continue
                    t0, t1 = float(downs[b0]), float(downs[b0 + nb])
                    seg = y[int(round(t0 * sr)):int(round(t1 * sr))]
                    if seg.size < sr or np.max(np.abs(seg)) < 1e-3:
                        continue
                    seg = seg * (0.5 / np.max(np.abs(seg)))
                    p = out / f"{js.stem}__v{v}_bar{b0:03d}_{nb}bars.wav"
                    with atomic_path(p) as tmp:
                        sf.write(tmp, seg, sr, subtype="PCM_16", format="WAV")
                    rows.append((p, roles_in_span(notes, t0, t1)))
            progress(ti + 1, len(tracks), js.stem)
    return write_roles_csv(rows, out / ROLES_CSV)
