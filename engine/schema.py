"""The candidate / loop table: every column, its unit and the stage that makes it.

One row per loop candidate flows through the per-track stages
(:data:`engine.stages.STAGES`), then ranking and export. Times are seconds
from the start of the source file everywhere in the pipeline; source-rate
sample positions exist only from the export on (``start_sample`` ...), which
converts once with ``round(seconds * source_rate)``.

Each stage declares the columns it needs and the columns it adds; the stage
runner checks them at the boundary (:func:`require`), so a missing or
misnamed column fails at the stage that should have made it, with its name,
instead of as a KeyError three modules later. The lists below are the single
source for the column names used by :mod:`engine.candidates`,
:mod:`engine.features`, :mod:`engine.scoring` and :mod:`engine.export`.

A leaf module: it imports nothing from the engine but :mod:`engine.errors`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import AnalysisError


@dataclass(frozen=True)
class Column:
    """One column of the candidate / loop table."""

    name: str
    unit: str
    stage: str
    doc: str = ""


def _cols(stage: str, unit: str, names) -> tuple:
    return tuple(Column(n, unit, stage) for n in names)


#: Made by the ``candidates`` stage (:func:`engine.candidates.generate_candidates`).
CANDIDATES = (
    Column("candidate_id", "index", "candidates", "row number within the track"),
    Column("start_time", "s", "candidates", "loop start (a downbeat), seconds into the source"),
    Column("end_time", "s", "candidates", "loop end (a downbeat), seconds into the source"),
    Column("bars", "bars", "candidates", "length in bars"),
    Column("bpm", "BPM", "candidates", "tempo over the loop"),
    Column("start_bar", "index", "candidates", "bar number of the start (0 = first full bar)"),
    Column("beats_per_bar", "beats", "candidates", "meter"),
    Column("meter", "name", "candidates", "the track's time signature, e.g. '4/4'"),
    Column("tempo_confidence", "0-1", "candidates",
           "the track's tempo confidence (1 when the user fixed the tempo)"),
    Column("bar_confidence", "0-1", "candidates",
           "the track's bar-phase confidence (margin of bar one over the runner-up)"),
)

#: Added by the analysis runner: which track a row belongs to (the file's stem).
TRACK = (Column("track_id", "name", "analyse", "the source file's stem, refreshed on cache hits"),)

#: The earlier scripts' 20 loop features (``candidate_features`` stage).
SEED_FEATURES = _cols("candidate_features", "feature", [
    "duration_sec", "rms_mean", "rms_std", "zcr_mean", "spectral_centroid_mean",
    "spectral_bandwidth_mean", "spectral_rolloff_mean", "onset_strength_mean",
    "onset_strength_std", "onset_density", "percussive_ratio", "kick_on_one_score",
    "snare_two_or_three_score", "hihat_grid_score", "boundary_drum_score",
    "drum_alignment_score", "periodicity_score", "periodicity_kick", "periodicity_snare",
    "periodicity_hihat",
])

#: Seam and repetition features (``candidate_features`` stage).
SEAM_FEATURES = (
    Column("seam_spectral_continuity", "cosine", "candidate_features",
           "tail spectrum vs the spectrum just before the start"),
    Column("seam_rms_jump_db", "dB", "candidate_features",
           "|level of the tail - level just before the start|"),
    Column("seam_onset_at_start", "feature", "candidate_features",
           "attack strength at the loop start (a clean 'one')"),
    Column("bar_repetition", "similarity", "candidate_features",
           "mean rhythmic/timbral similarity between the loop's bars"),
    Column("phrase_return", "similarity", "candidate_features",
           "similarity of the bar after the loop to its first bar"),
    Column("energy_stability", "ratio", "candidate_features", "1 - CV of per-bar RMS"),
    Column("harmonic_ratio", "ratio", "candidate_features", "1 - percussive_ratio"),
)

#: Arrangement features (``candidate_features`` stage): can a section change (a part
#: entering or leaving, a new groove or chord cycle) hide inside the loop? From per-bar
#: descriptors; the ``_rel`` ones are scaled by the track's median bar-to-bar change.
SECTION_FEATURES = (
    Column("bar_mel_jump_max", "log-mel", "candidate_features",
           "largest log-mel distance between consecutive bars inside the loop"),
    Column("bar_mel_jump_rel", "ratio", "candidate_features",
           "bar_mel_jump_max over the track's median bar-to-bar distance"),
    Column("bar_pattern_jump_max", "1-cosine", "candidate_features",
           "largest onset-pattern change between consecutive bars"),
    Column("bar_chroma_jump_max", "1-cosine", "candidate_features",
           "largest chroma change between consecutive bars"),
    Column("half_contrast", "log-mel", "candidate_features",
           "log-mel distance between the loop's first and second half"),
    Column("half_contrast_rel", "ratio", "candidate_features",
           "half_contrast over the track's median bar-to-bar distance"),
    Column("band_range_max", "log-mel", "candidate_features",
           "largest per-bar level range of any of 8 bands"),
    Column("band_flips", "count", "candidate_features", "bands that switch on/off inside the loop"),
    Column("bar_rms_range_db", "dB", "candidate_features", "loudest bar over quietest bar"),
    Column("silent_bar_frac", "ratio", "candidate_features", "bars far below the track's level"),
    Column("start_jump_rel", "ratio", "candidate_features",
           "change from the bar before the start to the first bar (relative)"),
    Column("end_jump_rel", "ratio", "candidate_features",
           "change from the last bar to the bar after the end (relative)"),
    Column("inside_vs_edges", "ratio", "candidate_features",
           "inside change relative to the larger edge change"),
)

#: Phrase features (``candidate_features`` stage): is the loop a whole musical phrase that
#: repeats seamlessly? From bar descriptors on the loop's own bar lines (chroma, onset
#: pattern, log-mel); bar similarity = 0.5 chroma cosine + 0.25 onset-pattern cosine
#: + 0.25 exp(-log-mel distance / the track's median bar-to-bar distance).
PHRASE_FEATURES = (
    Column("seam_return_bars", "similarity", "candidate_features",
           "the bars after the end vs the loop's first bars (half the loop, at least one)"),
    Column("seam_return_pre", "similarity", "candidate_features",
           "the bars before the start vs the loop's last bars"),
    Column("loop_lag_sim", "similarity", "candidate_features",
           "the loop vs the same length of music right after it, bar by bar"),
    Column("bar_lag1_sim", "similarity", "candidate_features",
           "consecutive bars around the loop"),
    Column("lag_gain", "similarity", "candidate_features", "loop_lag_sim - bar_lag1_sim"),
    Column("period_lag_gain", "similarity", "candidate_features",
           "local similarity at the loop's length minus the best at shorter lags"),
    Column("local_period_bars", "bars", "candidate_features",
           "the music's repetition period around the loop (1-8 bars)"),
    Column("track_period_bars", "bars", "candidate_features",
           "the track's repetition period on the loop's bar lines (1-8 bars)"),
    Column("bars_over_period", "ratio", "candidate_features", "bars / local_period_bars"),
)

#: Part-presence features (``candidate_features`` stage): does a part (track, instrument)
#: enter or leave between the loop's bars? From per-bar mel-band levels smoothed over
#: adjacent bands (different notes of one instrument barely move them) and per-bar
#: (band group x 16 step) cells; a change between two bars is the 90th percentile of their
#: per-band (per-cell) level differences (:class:`engine.features._BarParts`).
PART_FEATURES = (
    Column("part_change_db", "dB", "candidate_features",
           "largest band-level rise between any two bars of the loop"),
    Column("part_change_rel", "ratio", "candidate_features",
           "part_change_db over the track's median change between adjacent bars"),
    Column("part_cell_change_db", "dB", "candidate_features",
           "largest (band group x step) level change between any two bars of the loop"),
    Column("part_pattern_min_sim", "cosine", "candidate_features",
           "least similar pair of the loop's bars, per-band-group onset patterns"),
    Column("part_end_change_db", "dB", "candidate_features",
           "band-level change from the loop's first bar to the bar after its end"),
    Column("part_start_change_db", "dB", "candidate_features",
           "band-level change from the bar before the start to the loop's last bar"),
    Column("part_repeat_rel", "ratio", "candidate_features",
           "the loop's bars vs the as many bars after its end (or before its start, whichever "
           "match better), bar for bar: largest band-level or cell change over the track's "
           "median adjacent-bar change (99: no such block in the track)"),
    Column("part_track_change_rel", "ratio", "candidate_features",
           "the track's largest band-level change between adjacent bars over its median one "
           "(the same for every candidate of a track): small when no part enters or leaves"),
)

#: Per-candidate key (``key`` stage).
KEY = (
    Column("key", "name", "key", "e.g. 'A minor'"),
    Column("camelot", "code", "key", "Camelot wheel code, e.g. '8A'"),
    Column("key_confidence", "0-1", "key"),
)

#: Pooled embeddings (``embeddings`` stage, only with an embedding): a family of
#: columns named ``emb_mean_000 ..`` and ``emb_max_000 ..`` (the dimension
#: depends on the embedder; :func:`engine.embeddings.pooled_feature_names`).
EMBEDDING_PREFIXES = ("emb_mean_", "emb_max_")

#: Added by ranking (:func:`engine.scoring.score_candidates`, ``rank_track``).
SCORES = (
    Column("score", "0-1", "rank", "model or heuristic loop quality"),
    Column("score_source", "name", "rank", "'model:<name>' (e.g. model:loop_ranker) or 'heuristic'"),
    Column("beatmatch_composite_score", "0-1", "rank", "composite re-rank"),
    Column("rank_score", "0-1", "rank", "the column ranked by"),
    Column("rank", "index", "rank", "1-based rank among the exported loops"),
)

#: Added by the export (:func:`engine.export.export_track_loops`).
EXPORT = (
    Column("source_file", "path", "export"),
    Column("rank", "index", "export"),
    Column("file", "name", "export", "WAV file name inside the track folder"),
    Column("mp3_file", "name", "export"),
    Column("folder", "name", "export", "the track folder's name"),
    Column("start_sample", "samples@source", "export", "round(start_time * sr)"),
    Column("end_sample", "samples@source", "export", "round(end_time * sr)"),
    Column("export_start_sample", "samples@source", "export", "cut after zero-crossing snap"),
    Column("export_end_sample", "samples@source", "export"),
    Column("sr", "Hz", "export"),
    Column("channels", "count", "export"),
    Column("gain_db", "dB", "export"),
    Column("loudness_lufs", "LUFS", "export"),
    Column("peak_dbfs", "dBFS", "export"),
    Column("ceiling_limited", "bool", "export"),
    Column("loudness_lufs_before", "LUFS", "export"),
    Column("gain_capped", "bool", "export"),
    Column("seam", "name", "export"),
    Column("mp3_sr", "Hz", "export"),
    Column("mp3_channels", "count", "export"),
)

#: The earlier scripts' columns, always first in the metadata CSVs, in this order.
LEADING_COLUMNS = ("track_id", "start_time", "end_time", "bars", "bpm")


def names(columns) -> list[str]:
    """Column names of a group, in order."""
    return [c.name for c in columns]


CANDIDATE_COLUMNS = names(CANDIDATES)
FEATURE_COLUMNS = (names(SEED_FEATURES) + names(SEAM_FEATURES) + names(SECTION_FEATURES)
                   + names(PHRASE_FEATURES) + names(PART_FEATURES))
KEY_COLUMNS = names(KEY)
EXPORT_COLUMNS = tuple(names(EXPORT))


def describe(name: str) -> Column | None:
    """The :class:`Column` for a name (embedding columns included), or None."""
    for c in (*TRACK, *CANDIDATES, *SEED_FEATURES, *SEAM_FEATURES, *SECTION_FEATURES,
              *PHRASE_FEATURES, *PART_FEATURES, *KEY, *SCORES, *EXPORT):
        if c.name == name:
            return c
    if name.startswith(EMBEDDING_PREFIXES):
        return Column(name, "embedding", "embeddings")
    return None


def require(table, columns, stage: str, where: str = "") -> None:
    """Raise :class:`AnalysisError` if ``table`` lacks any of ``columns``.

    Parameters
    ----------
    table : DataFrame
    columns : iterable of str or Column
    stage : str
        The stage checking (named in the message).
    where : str
        The track, for the message.
    """
    wanted = [c.name if isinstance(c, Column) else c for c in columns]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        made_by = sorted({(describe(m).stage if describe(m) else "?") for m in missing})
        raise AnalysisError(f"{where + ': ' if where else ''}stage {stage!r}: candidate table "
                            f"lacks {missing} (made by stage(s) {made_by})")
