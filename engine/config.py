"""All tunable settings in one place.

Each stage takes the small frozen dataclass that concerns it; the CLI and the
dashboard build them from flags and widgets. ``as_dict`` output feeds the cache
key, so any parameter that changes a result must live here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Extensions the batch walker picks up (lower case). m4a/aac need ffmpeg.
AUDIO_EXTENSIONS = (".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".ogg",
                    ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4")

#: Project root (the folder holding engine/).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Default on-disk analysis cache; safe to delete.
DEFAULT_CACHE_DIR = PROJECT_ROOT / "cache"


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
    """

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    beats_per_bar: int = 0
    min_bpm: float = 70.0
    max_bpm: float = 180.0
    bars: tuple = (1, 2, 4, 8)
    adaptive_4_vs_8: bool = False
    adaptive_margin: float = 0.03
    min_duration: float = 0.5
    embedding: str = "none"
    embedding_hop: float = 0.5
    openl3_weights: str | None = None
    bpm: float | None = None
    downbeat_offset: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RankConfig:
    """How candidates are scored and the top K chosen.

    The composite re-rank follows the seed: model 0.75, periodicity 0.15,
    drum alignment 0.10 (negative weights clipped, then renormalised).
    ``use_composite_rerank`` None (default) applies it on top of the heuristic
    but not on top of a trained model, which already weighs those cues and
    ranks better alone (bench/bench_ranker.py); True or False forces it.
    """

    top_k: int = 5
    weight_model_score: float = 0.75
    weight_periodicity: float = 0.15
    weight_drum_alignment: float = 0.10
    use_composite_rerank: bool | None = None   # None: on for the heuristic, off for a model
    max_overlap: float = 0.5
    model_path: str | None = None

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

    fade_ms: float = 5.0
    zero_cross_ms: float = 3.0
    target_lufs: float = -14.0
    ceiling_dbfs: float = -1.0
    subtype: str = "PCM_24"
    export_mp3: bool = False
    mp3_bitrate_kbps: int = 192
    seam_mode: str = "fade"
    crossfade_ms: float = 10.0
    snap_mode: str = "joint"
    max_gain_db: float = 40.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one extraction run needs."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    n_jobs: int = 1
    backend: str = "local"          # "local" (joblib) or "dask"
    scheduler: str | None = None    # tcp://HOST:PORT for dask
    use_cache: bool = True
    cache_dir: str = str(DEFAULT_CACHE_DIR)
    make_zip: bool = False

    def as_dict(self) -> dict:
        return asdict(self)
