"""Audio-derived weak tags: one tag from each of six rule groups per loop.

The groups and thresholds follow the seed (``infer_universal_audio_tags``)
with its bugs fixed:

======================  ===========================================  ==============================
group                   rule (on :mod:`engine.tags.features`)          tags
======================  ===========================================  ==============================
tempo                   ``tempo_est`` (loop-length-snapped tempo)      tempo_slow < 95 <= tempo_mid
                                                                       < 130 <= tempo_fast
beat                    ``beat_cv`` (CV of beat intervals)             beat_stable < 0.18 <= beat_loose
sync                    ``syncopation`` (onsets between / on beats)    sync_low < 1.05 <= sync_high
percussive              ``percussive_ratio`` (HPSS energy share)       percussive_low < 0.35 <= _high
density                 ``onset_rate`` (onsets per second)             sparse < 2 <= mid < 4 <= dense
phrase                  ``phrase_acf`` (onset ACF at 1-2 bars)         phrase_free < 0.30 <= _regular
======================  ===========================================  ==============================

Fixes: the seed's phrase test took the maximum autocorrelation over lags
from 1 frame, which is always high, so every loop was ``phrase_regular``;
here only bar-scale lags count. The seed's tempo came from the onset
autocorrelation alone (octave errors); here
:func:`engine.rhythm.estimate_bpm` is checked against the loop's whole-bar
length and its backbeat (:func:`engine.tags.features._loop_tempo`), which
fixes its octave and 2:3 errors on short loops. The seed's percussive threshold (0.55) sat inside
the range of drum-only loops (HPSS puts a kick's tonal body in the harmonic
part: drum-only loops measure 0.45-0.9, pitched-only loops 0.01-0.2), so it is
0.35 here; the onset counter is more sensitive (see ``ONSET_DELTA``). Labels that come out constant on a
data set are reported and dropped (:func:`constant_labels`).

No leakage: each rule's inputs are listed in :data:`RULE_INPUTS`; a
classifier that learns a rule's tags must not see them (see
:func:`excluded_features`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class AudioRules:
    """Thresholds of the six rule groups (the seed's, except the percussive threshold)."""

    tempo_slow_below: float = 95.0
    tempo_fast_from: float = 130.0
    beat_stable_below: float = 0.18
    sync_high_from: float = 1.05
    percussive_high_from: float = 0.35
    density_mid_from: float = 2.0
    density_dense_from: float = 4.0
    phrase_regular_from: float = 0.30


#: Every tag a group can produce.
AUDIO_GROUPS = {
    "tempo": ("tempo_slow", "tempo_mid", "tempo_fast"),
    "beat": ("beat_stable", "beat_loose"),
    "sync": ("sync_low", "sync_high"),
    "percussive": ("percussive_low", "percussive_high"),
    "density": ("density_sparse", "density_mid", "density_dense"),
    "phrase": ("phrase_free", "phrase_regular"),
}

#: Features each rule reads directly, plus those that carry the same quantity
#: (a classifier given any of them could learn the threshold instead of the
#: sound). ``duration_sec`` reveals the tempo of whole-bar loops; the beat
#: tracker's outputs depend on the tempo; onset statistics are the density.
RULE_INPUTS = {
    "tempo": ("tempo_est", "duration_sec", "pulse_clarity", "beat_cv", "syncopation",
              "phrase_acf"),
    "beat": ("beat_cv", "tempo_est", "pulse_clarity", "duration_sec"),
    "sync": ("syncopation", "tempo_est", "beat_cv", "onset_strength_mean",
             "onset_strength_std"),
    "percussive": ("percussive_ratio", "harm_sub_share", "harm_low_share", "harm_mid_share",
                   "harm_high_share", "harm_air_share", "perc_sub_share", "perc_low_share",
                   "perc_mid_share", "perc_high_share", "perc_air_share", "perc_sub_fraction",
                   "perc_low_fraction", "perc_mid_fraction", "perc_high_fraction",
                   "perc_air_fraction", "harm_level_std",
                   "perc_level_std"),
    "density": ("onset_rate", "onset_strength_mean", "onset_strength_std", "pulse_clarity",
                "tempo_est", "duration_sec"),
    "phrase": ("phrase_acf", "pulse_clarity", "tempo_est", "beat_cv"),
}

_TAG_GROUP = {t: g for g, tags in AUDIO_GROUPS.items() for t in tags}


def tag_group(tag: str) -> str | None:
    """The rule group a tag belongs to (None for non-audio tags)."""
    return _TAG_GROUP.get(tag)


def excluded_features(tag: str) -> tuple:
    """Features a classifier for ``tag`` must not use (empty for non-audio tags)."""
    g = tag_group(tag)
    return RULE_INPUTS[g] if g else ()


def audio_tags(feats: dict, rules: AudioRules = AudioRules()) -> list[str]:
    """The six audio tags of one loop from its feature record.

    Parameters
    ----------
    feats : dict or Series
        Needs ``tempo_est, beat_cv, syncopation, percussive_ratio,
        onset_rate, phrase_acf`` (:func:`engine.tags.features.signal_features`).
    rules : AudioRules

    Returns
    -------
    list of str
        One tag per group, in group order.
    """
    t = float(feats["tempo_est"])
    tags = ["tempo_slow" if t < rules.tempo_slow_below
            else "tempo_mid" if t < rules.tempo_fast_from else "tempo_fast"]
    tags.append("beat_stable" if float(feats["beat_cv"]) < rules.beat_stable_below
                else "beat_loose")
    tags.append("sync_high" if float(feats["syncopation"]) >= rules.sync_high_from
                else "sync_low")
    tags.append("percussive_high" if float(feats["percussive_ratio"]) >=
                rules.percussive_high_from else "percussive_low")
    r = float(feats["onset_rate"])
    tags.append("density_sparse" if r < rules.density_mid_from
                else "density_mid" if r < rules.density_dense_from else "density_dense")
    tags.append("phrase_regular" if float(feats["phrase_acf"]) >= rules.phrase_regular_from
                else "phrase_free")
    return tags


def audio_tag_lists(frame: pd.DataFrame, rules: AudioRules = AudioRules()) -> list[list[str]]:
    """:func:`audio_tags` for every row of a feature frame."""
    return [audio_tags(row, rules) for _, row in frame.iterrows()]


def constant_labels(tag_lists, classes) -> list[str]:
    """Labels in ``classes`` that are on for every row or for none.

    Such a label carries no information (the seed's ``phrase_regular`` was on
    for all 95 of its loops); callers drop it and say so.
    """
    n = len(tag_lists)
    counts = {c: 0 for c in classes}
    for tags in tag_lists:
        for t in set(tags):
            if t in counts:
                counts[t] += 1
    return [c for c, k in counts.items() if k in (0, n)]


def warn_constant(labels, source: str) -> None:
    """Emit a :class:`UserWarning` naming constant labels."""
    if labels:
        warnings.warn(f"{source} labels constant in this data set (dropped): "
                      f"{', '.join(sorted(labels))}", UserWarning, stacklevel=3)
