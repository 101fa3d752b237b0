"""All tunable settings: the single source of defaults, validation and help.

Each stage takes the small frozen dataclass that concerns it; the CLI and the
dashboard build them. ``as_dict`` output feeds the analysis cache key, so any
parameter that changes a result must live here (module constants are covered
too: the key also hashes the engine's source, :func:`engine.cache.make_key`).

Command-line flags are generated from these dataclasses
(:func:`add_arguments` / :func:`from_args`, used by ``python -m engine
extract``). A field becomes a flag when it is declared with :func:`setting`
and a ``help`` text; the flag is ``--<field name>`` unless ``flag=`` says
otherwise. To add a flag, add a field::

    bpm: float | None = setting(None, "tempo to use instead of estimating it (BPM)",
                                type=float)

and it appears in ``extract --help``, reaches the stage through the config
and enters the cache key. Validation lives in ``__post_init__`` (raising
:class:`engine.errors.ConfigError`), so the CLI, the dashboard and library
callers get the same checks.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from .errors import ConfigError

#: Extensions the batch walker picks up (lower case). m4a/aac need ffmpeg.
AUDIO_EXTENSIONS = (".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".ogg",
                    ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4")

#: Project root (the folder holding engine/).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Default on-disk analysis cache; safe to delete.
DEFAULT_CACHE_DIR = PROJECT_ROOT / "cache"


def setting(default, help: str | None = None, *, flag: str | None = None, choices=None,
            type=None, parse=None, negate: bool = False, cli_default=MISSING):
    """A dataclass field with its command-line flag described in its metadata.

    Parameters
    ----------
    default
        The default value (the single source of it).
    help : str, optional
        Help text; without it the field has no flag.
    flag : str, optional
        The flag's name (default ``--<field name>``).
    choices : sequence, optional
        Allowed values (checked by argparse).
    type : callable, optional
        argparse ``type`` (default: the default's type; ``str`` for None).
    parse : callable, optional
        ``parse(text) -> value`` for structured values (e.g. ``"1,2,4,8"``);
        the flag's default is then shown as ``format_value(default)``.
    negate : bool
        A boolean that defaults to True, turned off by the flag (``--no_cache``).
    cli_default : optional
        A different default on the command line (e.g. ``--jobs 0`` = one per core).
    """
    md = {"help": help, "flag": flag, "choices": choices, "type": type, "parse": parse,
          "negate": negate, "cli_default": cli_default}
    return field(default=default, metadata={"cli": md} if help else {})


def format_value(value) -> str:
    """How a default is written on the command line (tuples as ``1,2,4,8``)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_bars(text) -> tuple:
    """``"4,8"`` -> ``(4, 8)``: loop lengths in whole bars, sorted, at least 1."""
    if isinstance(text, (tuple, list)):
        text = ",".join(map(str, text))
    try:
        vals = tuple(sorted({int(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bars must be comma-separated whole numbers, got {text!r}")
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("--bars needs at least one length of 1 bar or more")
    return vals


def _flag_fields(cls):
    """(field, cli metadata) of ``cls`` and its nested config dataclasses, in order."""
    for f in fields(cls):
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            yield from _flag_fields(f.default_factory)
        elif "cli" in f.metadata:
            yield f, f.metadata["cli"]


def add_arguments(parser, cls) -> None:
    """Add one flag per :func:`setting` field with help text of ``cls`` (nested included)."""
    for f, md in _flag_fields(cls):
        flag = md["flag"] or f"--{f.name}"
        default = f.default if md["cli_default"] is MISSING else md["cli_default"]
        kw = {"dest": f.name, "help": md["help"]}
        if isinstance(f.default, bool):     # a switch; absent -> the field's default
            kw["action"] = "store_false" if md["negate"] else "store_true"
            kw["default"] = argparse.SUPPRESS
        else:
            if md["choices"] is None:
                kw["metavar"] = flag.lstrip("-").upper()
            kw["default"] = format_value(default) if md["parse"] else default
            kw["type"] = md["parse"] or md["type"] or (str if default is None else type(default))
            if md["choices"] is not None:
                kw["choices"] = md["choices"]
        parser.add_argument(flag, **kw)


def from_args(cls, args, **overrides):
    """An instance of ``cls`` from parsed flags (nested configs included); validation runs."""
    values = {}
    for f in fields(cls):
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            values[f.name] = from_args(f.default_factory, args)
        elif "cli" in f.metadata and hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    values.update(overrides)
    return cls(**values)


#: Largest user grid shift (``AnalysisConfig.grid_shift_ms``): one beat at 30 BPM.
MAX_GRID_SHIFT_MS = 2000.0


@dataclass(frozen=True)
class AnalysisConfig:
    """Decoding, rhythm and feature settings.

    Attributes
    ----------
    sr : int
        Analysis sample rate (mono copy). Export always uses the source rate.
    n_fft, hop_length : int
        STFT size and hop for frame features (seed: 2048 / 512).
    beats_per_bar : int
        Meter: 0 (default) detects it (4/4 unless the music shows a bar of
        three beats); 3 or 4 forces it.
    min_bpm, max_bpm : float
        DJ tempo range; half/double tempo estimates are folded into it.
    bars : tuple of int
        Loop lengths to generate, in bars.
    adaptive_4_vs_8 : bool
        Seed's optional choice between 4- and 8-bar loops.
    adaptive_margin : float
        Score margin for the adaptive choice.
    min_duration : float
        Shortest usable input in seconds (validation).
    embedding : {"none", "auto", "spectral", "openl3"}
        Per-candidate pooled embeddings: none (default, fastest); auto
        (OpenL3 when weights are found, else spectral); spectral (model-free);
        openl3 (fails clearly without weights).
    embedding_hop : float
        Seconds between embedding windows (computed once per track).
    openl3_weights : str, optional
        OpenL3 weights file or folder (else $LOOPLAB_OPENL3_WEIGHTS, else an
        installed openl3 package).
    bpm : float, optional
        User correction: the track's tempo. The engine still finds the beats'
        phase and the bar lines, on a constant grid at exactly this tempo
        (the dashboard's "half" / "double" buttons set it).
    downbeat_offset : int
        User correction: shift bar one by this many beats (modulo the meter;
        the dashboard's "shift bar" button).
    grid_shift_ms : float
        User correction: move every beat (and bar line) by this many
        milliseconds, after the tempo and beat phase are found (the
        dashboard's "nudge" buttons, like the grid shift of DJ software).
    """

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    beats_per_bar: int = setting(
        0, "meter: 0 (default) detects it (4/4 unless the music is in three); 3 or 4 forces it",
        choices=(0, 3, 4))
    min_bpm: float = setting(70.0, "lower end of the DJ tempo range")
    max_bpm: float = setting(180.0, "upper end of the DJ tempo range")
    bars: tuple = setting((1, 2, 4, 8), "loop lengths in bars, comma-separated", parse=parse_bars)
    adaptive_4_vs_8: bool = setting(
        False, "keep only 4- or 8-bar loops when one clearly fits the track better")
    adaptive_margin: float = 0.03
    min_duration: float = 0.5
    embedding: str = setting(
        "none", "pooled per-loop embeddings: auto = OpenL3 if weights are found, else the "
        "model-free 'spectral' embedding", choices=("none", "auto", "spectral", "openl3"))
    embedding_hop: float = setting(0.5, "seconds between embedding windows")
    openl3_weights: str | None = setting(
        None, "OpenL3 weights file or folder (else $LOOPLAB_OPENL3_WEIGHTS)")
    bpm: float | None = setting(
        None, "fix the tempo (e.g. 128, or half/double of what was found); the engine still "
        "finds the beats and bar lines on that grid", type=float)
    downbeat_offset: int = setting(
        0, "shift bar one by N beats when the bar lines are off (e.g. 1, 2, -1)")
    grid_shift_ms: float = setting(
        0.0, "move the whole beat grid by this many milliseconds (positive = later) when "
        "every beat sits early or late, e.g. 100 or -20", type=float)

    def __post_init__(self):
        if self.min_bpm <= 0 or self.max_bpm < self.min_bpm * 1.9:
            raise ConfigError(f"max_bpm ({self.max_bpm:g}) must be at least 1.9 x min_bpm "
                              f"({self.min_bpm:g}): the tempo range must hold a whole octave")
        if not self.bars or min(self.bars) < 1:
            raise ConfigError(f"bars must hold at least one length of 1 bar or more, got {self.bars}")
        if self.beats_per_bar not in (0, 3, 4):
            raise ConfigError(f"beats_per_bar must be 0 (choose), 3 or 4, got {self.beats_per_bar}")
        if self.bpm is not None and not (20.0 <= self.bpm <= 400.0):
            raise ConfigError(f"bpm must be between 20 and 400, got {self.bpm:g}")
        if not (abs(self.grid_shift_ms) <= MAX_GRID_SHIFT_MS):
            raise ConfigError(f"grid_shift_ms must be within +-{MAX_GRID_SHIFT_MS:g} ms (a beat "
                              f"at 30 BPM), got {self.grid_shift_ms:g}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RankConfig:
    """How candidates are scored and the top K chosen.

    The composite re-rank follows the seed: model 0.75, periodicity 0.15,
    drum alignment 0.10 (negative weights clipped, then renormalised).
    By default it applies on top of the heuristic but not on top of a trained
    model, which already weighs those cues and ranks better alone
    (bench/bench_ranker.py): ``composite_on_model`` asks for it there too,
    ``use_composite_rerank=False`` turns it off everywhere.
    """

    top_k: int = setting(5, "loops to export per track")
    weight_model_score: float = setting(0.75, "composite weight of the model score")
    weight_periodicity: float = setting(0.15, "composite weight of drum periodicity")
    weight_drum_alignment: float = setting(0.10, "composite weight of drum alignment")
    use_composite_rerank: bool = setting(
        True, "never apply the composite re-rank (default: only on top of the heuristic, "
        "see composite_on_model)", flag="--disable_composite_rerank", negate=True)
    composite_on_model: bool = setting(
        False, "apply the seed's composite re-rank on top of the model too (it lowered the "
        "model's P@5 in bench/bench_ranker.py)", flag="--composite_rerank")
    max_overlap: float = setting(
        0.5, "skip a candidate overlapping a better one by more than this fraction")
    section_guard: bool = setting(
        True, "do not apply the model's section guard (by default multi-bar loops whose bars "
        "change more than the track's adjacent bars usually do rank below the rest, so the "
        "top loops stay inside one arrangement section)", flag="--no_section_guard", negate=True)
    model_path: str | None = setting(
        None, "XGBoost loop-quality model (JSON/UBJ with <model>.features.json beside it); "
        "default: the shipped model engine/models/loop_ranker.ubj; 'heuristic' for the "
        "transparent heuristic. The score_source column names what ranked the loops",
        flag="--model")

    def __post_init__(self):
        if self.top_k < 1:
            raise ConfigError(f"top_k must be 1 or more, got {self.top_k}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportConfig:
    """How loops are written.

    Attributes
    ----------
    fade_ms : float
        Length of the fade in and out at the seams.
    zero_cross_ms : float
        How far a cut may move to reach a zero crossing.
    target_lufs : float
        Integrated loudness target (ITU-R BS.1770), e.g. -14.
    ceiling_dbfs : float
        Sample-peak ceiling; gain is reduced so no sample exceeds it.
    subtype : str
        libsndfile WAV subtype ("PCM_24", "PCM_16", "FLOAT").
    export_mp3 : bool
        Also write an MP3 preview (libsndfile's encoder; no ffmpeg needed).
    mp3_bitrate_kbps : int
        Nominal preview bitrate (clamped to what the preview's MPEG version
        allows: 32-320 kbps at 32-48 kHz, less at lower rates).
    seam_mode : {"fade", "crossfade"}
        How the loop's end meets its start when repeated. "fade" (default):
        short fade-in and fade-out of ``fade_ms`` at both cuts. "crossfade":
        the sampler technique: the last ``crossfade_ms`` of the loop are
        crossfaded with the audio just *before* the loop's start, so the
        repeat flows into the first sample exactly as the track did; the
        downbeat transient is left untouched (no fade-in). Falls back to
        "fade" when there is not enough audio before the start.
    crossfade_ms : float
        Crossfade length for ``seam_mode="crossfade"``.
    snap_mode : {"each", "joint", "none"}
        Zero-crossing snapping: "joint" (default) shifts both cuts by the
        same amount, at most ``zero_cross_ms``, so the start lands on a zero
        crossing and the loop keeps its exact bar length (a DAW or sampler
        that repeats it never drifts off the grid); "each" moves each cut
        independently to its nearest crossing (length may change by up to
        ``2 * zero_cross_ms``); "none" cuts exactly.
    max_gain_db : float
        Largest gain loudness normalisation may apply, so a near-silent loop
        is not pumped up into audible noise.
    """

    fade_ms: float = setting(5.0, "fade at each seam, ms")
    zero_cross_ms: float = 3.0
    target_lufs: float = setting(-14.0, "loudness target (LUFS)")
    ceiling_dbfs: float = setting(-1.0, "peak ceiling (dBFS)")
    subtype: str = setting("PCM_24", "WAV sample format", flag="--wav_subtype",
                           choices=("PCM_16", "PCM_24", "FLOAT"))
    export_mp3: bool = setting(False, "also write MP3 previews")
    mp3_bitrate_kbps: int = setting(192, "MP3 preview bitrate")
    seam_mode: str = setting(
        "fade", "fade both cuts, or crossfade the tail into the pre-roll (keeps the downbeat "
        "attack)", choices=("fade", "crossfade"))
    crossfade_ms: float = 10.0
    snap_mode: str = setting("joint", "zero-crossing snapping: joint keeps the exact bar length",
                             choices=("joint", "each", "none"))
    max_gain_db: float = 40.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ContactSettings:
    """A contact-map run's own settings (its stages take :class:`engine.contact.SequenceParams`,
    :class:`engine.contact.DTWParams` and :class:`engine.contact.SharpenParams`, whose
    fields declare their flags the same way)."""

    max_files: int = setting(200, "use the first N files in path order; 0 or less: all")
    top_k_neighbors: int = setting(10, "neighbours saved per loop")
    top_pairs_limit: int = setting(500, "rows of contact_top_pairs.csv")
    shortlist_embedding: str = setting(
        "none", "shortlist mode: propose DTW candidates by mean audio embedding (auto = OpenL3 "
        "when weights are found, else spectral) instead of bag-of-frames rhythm vectors",
        choices=("none", "auto", "spectral", "openl3"))
    openl3_weights: str | None = setting(None, "OpenL3 weights file or folder")
    estimate_bpm: bool = setting(True, "no BPM per loop", flag="--disable_bpm_estimation",
                                 negate=True)
    estimate_key: bool = setting(True, "no key per loop", flag="--disable_key_estimation",
                                 negate=True)
    n_jobs: int = setting(0, "processes decoding audio (0 = one per core; 1 = in-process)",
                          flag="--jobs")
    threads: int = setting(0, "DTW threads (0 = all cores)")
    heatmaps: bool = setting(True, "no heatmap PNGs", flag="--no_heatmaps", negate=True)
    use_cache: bool = setting(True, "ignore and do not write the cache", flag="--no_cache",
                              negate=True)
    cache_dir: str = setting(str(DEFAULT_CACHE_DIR), "analysis cache folder")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one extraction run needs."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    n_jobs: int = setting(1, "parallel workers (0 = one per core, max 4)", flag="--jobs",
                          cli_default=0)
    backend: str = setting("local", "run the batch locally (joblib) or on a Dask cluster",
                           choices=("local", "dask"))
    scheduler: str | None = setting(
        None, "Dask scheduler address, e.g. tcp://127.0.0.1:8786 (with --backend dask)")
    use_cache: bool = setting(True, "ignore and do not write the analysis cache",
                              flag="--no_cache", negate=True)
    cache_dir: str = setting(str(DEFAULT_CACHE_DIR), "analysis cache folder")
    make_zip: bool = setting(False, "also pack the run into loops_export.zip", flag="--zip")

    def as_dict(self) -> dict:
        return asdict(self)


#: Aspects of neighbour similarity (engine.aspects), in order.
NEIGHBOR_ASPECTS = ("rhythm", "timbre", "harmony", "tempo")


@dataclass(frozen=True)
class AspectWeights:
    """Weights of the neighbour aspects in ``overall`` (engine.aspects); any values >= 0.

    The defaults were chosen by ``bench/bench_neighbors.py`` on half of the
    dev-set songs (same-song precision P@5 + P@10, half "A") and checked on the
    other half (README, "Neighbours by aspect").
    Only their ratios matter. ``parse("rhythm=1,timbre=0.5")`` gives the
    named aspects and 0 for the others.
    """

    rhythm: float = 0.5
    timbre: float = 1.0
    harmony: float = 1.0
    tempo: float = 0.25

    def __post_init__(self):
        for a in NEIGHBOR_ASPECTS:
            v = float(getattr(self, a))
            if not v >= 0.0 or v == float("inf"):
                raise ValueError(f"aspect weight {a} must be a finite number >= 0, got {v}")

    def as_dict(self) -> dict:
        return {a: float(getattr(self, a)) for a in NEIGHBOR_ASPECTS}

    @classmethod
    def parse(cls, text: str) -> "AspectWeights":
        """``"rhythm=1,timbre=0.5"`` (aspects not named weigh 0); ``"default"`` or ""
        gives the defaults; a single aspect name (``"timbre"``) weighs only that one."""
        t = (text or "").strip().lower()
        if t in ("", "default", "overall"):
            return cls()
        vals = {a: 0.0 for a in NEIGHBOR_ASPECTS}
        for part in t.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, num = part.partition("=")
            name = name.strip()
            if name not in vals:
                raise ValueError(f"unknown aspect {name!r} in {text!r}; use "
                                 f"{', '.join(NEIGHBOR_ASPECTS)}")
            try:
                vals[name] = float(num) if num.strip() else 1.0
            except ValueError:
                raise ValueError(f"aspect weight for {name} is not a number: {num!r}") from None
        if sum(vals.values()) <= 0:
            raise ValueError(f"at least one aspect weight must be positive in {text!r}")
        return cls(**vals)

    @classmethod
    def coerce(cls, w) -> "AspectWeights":
        """AspectWeights from None (defaults), a dict, a string or an AspectWeights."""
        if w is None:
            return cls()
        if isinstance(w, cls):
            return w
        if isinstance(w, str):
            return cls.parse(w)
        if isinstance(w, dict):
            unknown = set(w) - set(NEIGHBOR_ASPECTS)
            if unknown:
                raise ValueError(f"unknown aspect(s) {sorted(unknown)}; use "
                                 f"{', '.join(NEIGHBOR_ASPECTS)}")
            return cls(**{a: float(w.get(a, 0.0)) for a in NEIGHBOR_ASPECTS})
        raise TypeError(f"aspect weights must be None, a dict, a string or AspectWeights, "
                        f"not {type(w).__name__}")
