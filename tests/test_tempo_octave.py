"""Tempo octave resolver (engine.tempo_octave) on generated tracks with known tempo."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine import tempo_octave as octave
from engine.config import AnalysisConfig
from engine.features import compute_track_features
from engine.rhythm import analyse_rhythm, estimate_bpm
from engine.synth import synth_track
from engine.tempo import pulse_context

SR = 22050
CFG = AnalysisConfig()


@pytest.fixture(scope="module")
def tracks():
    out = {}
    for bpm, pats, key in ((128.0, ("four_on_floor",), "A minor"), (66.0, None, "C major"),
                           (100.0, None, "D minor")):
        y = synth_track(bpm, n_bars=24, sr=SR, stereo=False, patterns=pats, key=key).audio[:, 0]
        tf, od = compute_track_features(y, SR, CFG)
        out[bpm] = (y, tf, od)
    return out


def test_shipped_model_matches_the_features():
    d = json.loads(octave.MODEL_PATH.read_text())
    assert d["features"] == list(octave.FEATURES)
    model = octave.load_model()
    assert model is not None
    for a in (model.mean, model.scale, model.coef):
        assert a.shape == (len(octave.FEATURES),) and np.isfinite(a).all()
    assert (model.scale > 0).all()
    assert "built_by" in model.info


def test_chord_change_interval_is_the_bar_for_one_chord_per_bar(tracks):
    for bpm, (_, tf, _) in tracks.items():
        bar = 4 * 60.0 / bpm        # synth_track plays one chord per bar
        assert octave.chord_change_interval(tf.chroma, tf.fps) == pytest.approx(bar, rel=0.05)


def test_chord_change_interval_needs_changes():
    flat = np.ones((12, 500)) * np.eye(12)[:, [0]]
    assert np.isnan(octave.chord_change_interval(flat, 43.0))


def test_resolver_moves_half_and_double_to_the_beat(tracks):
    for bpm, (_, tf, od) in tracks.items():
        for guess in (bpm / 2, bpm, bpm * 2):
            choice = octave.resolve_octave(od.envelope, od.low, od.mid, od.fps, guess,
                                           chroma=tf.chroma, chroma_fps=tf.fps)
            assert choice.bpm == pytest.approx(bpm, rel=0.01), (bpm, guess, choice)
            assert 0.0 <= choice.confidence <= 1.0


def test_pair_features_are_finite(tracks):
    _, tf, od = tracks[128.0]
    ctx = pulse_context(od.envelope, od.low, od.mid, od.fps)
    rep = octave.repetition_context(ctx, tf.chroma, tf.fps)
    lo, hi = octave.level_cues(ctx, 64.0, rep), octave.level_cues(ctx, 128.0, rep)
    assert hi.bpm == pytest.approx(128.0, rel=0.005)
    x = octave.pair_features(lo, hi, octave.chord_change_interval(tf.chroma, tf.fps))
    assert x.shape == (len(octave.FEATURES),) and np.isfinite(x).all()
    # without chroma the harmonic-rhythm feature is neutral (two beats per chord, log2 = 2)
    assert octave.pair_features(lo, hi, float("nan"))[octave.FEATURES.index("hrx")] == 2.0
    # ... and the chord-repetition cues are missing (NaN), the onset ones are not
    bare = octave.pair_features(octave.level_cues(ctx, 64.0), hi, float("nan"))
    chord = np.array([f.startswith("chroma_rep_") for f in octave.FEATURES])
    assert np.isnan(bare[chord]).all() and np.isfinite(bare[~chord]).all()


def _rep(names, values):
    return dict(zip(names, values))


def test_repetition_cues_find_the_bar_of_a_generated_track(tracks):
    """synth_track plays a one-bar drum pattern and one chord per bar: at the
    true tempo the kick repeats after 4 beats more than after 2, and the
    chords repeat after 1 beat (same chord) more than after 4 (next chord)."""
    names = octave.FEATURES[-(3 * len(octave.ACF_LAGS) + len(octave.CHROMA_LAGS)):]
    for bpm, (_, tf, od) in tracks.items():
        ctx = pulse_context(od.envelope, od.low, od.mid, od.fps)
        rep = octave.repetition_context(ctx, tf.chroma, tf.fps)
        r = _rep(names, octave.repetition_cues(rep, bpm))
        assert r["acf_l_4"] > r["acf_l_2"] + 0.15, (bpm, r)
        assert r["chroma_rep_1"] > r["chroma_rep_4"], (bpm, r)
        # the lags are in beats of the level: 2 beats at half tempo = 4 at the tempo
        half = _rep(names, octave.repetition_cues(rep, bpm / 2.0))
        assert half["acf_l_2"] == pytest.approx(r["acf_l_4"], abs=0.05)
        assert half["chroma_rep_2"] == pytest.approx(r["chroma_rep_4"], abs=0.05)
        no_chroma = _rep(names, octave.repetition_cues(octave.repetition_context(ctx), bpm))
        assert np.isnan(no_chroma["chroma_rep_1"]) and no_chroma["acf_l_4"] == r["acf_l_4"]


def test_a_missing_cue_counts_as_the_training_mean():
    model = octave.load_model()
    x = model.mean + 0.7 * model.scale            # some pair, every cue present
    x[-1] = model.mean[-1]
    missing = x.copy()
    missing[-1] = np.nan
    assert model.prob_upper(missing) == pytest.approx(model.prob_upper(x))
    assert np.isnan(missing[-1])                  # the caller's vector is left alone


def test_slow_song_below_the_dj_range_is_reported_at_its_tempo(tracks):
    y, tf, od = tracks[66.0]
    grid = analyse_rhythm(y, SR, CFG, onsets=od, chroma=tf.chroma, chroma_fps=tf.fps)
    assert CFG.min_bpm > 66.0
    assert grid.bpm == pytest.approx(66.0, abs=0.05)
    assert 0.0 <= grid.tempo_confidence <= 1.0
    # the fixed-tempo correction still wins over the resolver
    fixed = analyse_rhythm(y, SR, AnalysisConfig(bpm=132.0), onsets=od, chroma=tf.chroma,
                           chroma_fps=tf.fps)
    assert fixed.bpm == pytest.approx(132.0, abs=0.01) and fixed.tempo_confidence == 1.0
    # estimate_bpm keeps its contract: folded into [min_bpm, max_bpm)
    assert estimate_bpm(y, SR) == pytest.approx(132.0, rel=0.01)


def test_missing_or_undecided_model_keeps_the_estimate(tracks, tmp_path):
    _, _, od = tracks[100.0]
    assert octave.load_model(str(tmp_path / "none.json")) is None
    n = len(octave.FEATURES)
    undecided = octave.OctaveModel(mean=np.zeros(n), scale=np.ones(n), coef=np.zeros(n),
                                   intercept=0.0)          # p = 0.5 for every pair
    choice = octave.resolve_octave(od.envelope, od.low, od.mid, od.fps, 200.0, model=undecided)
    assert choice.bpm == 200.0 and choice.factor == 1.0 and choice.confidence == 0.0


def test_model_threshold_round_trips_and_defaults_to_one_half():
    model = octave.load_model()
    assert 0.5 <= model.threshold < 1.0
    d = model.to_json()
    assert octave.OctaveModel.from_json(d).threshold == model.threshold
    d.pop("threshold")
    assert octave.OctaveModel.from_json(d).threshold == 0.5


def test_a_high_threshold_keeps_the_estimate(tracks):
    model = octave.load_model()
    strict = octave.OctaveModel(model.mean, model.scale, model.coef, model.intercept,
                                info=model.info, threshold=1.0)
    _, tf, od = tracks[128.0]
    choice = octave.resolve_octave(od.envelope, od.low, od.mid, od.fps, 64.0,
                                   chroma=tf.chroma, chroma_fps=tf.fps, model=strict)
    assert choice.bpm == 64.0 and choice.factor == 1.0


def test_shipped_three_two_model_matches_its_features_and_round_trips():
    model = octave.load_model()
    assert model.triple is not None
    tri = model.triple
    assert tri.features == tuple(octave.TRIPLE_FEATURES)
    for a in (tri.mean, tri.scale, tri.coef):
        assert a.shape == (len(octave.TRIPLE_FEATURES),) and np.isfinite(a).all()
    assert 0.5 <= tri.threshold < 1.0
    back = octave.OctaveModel.from_json(json.loads(json.dumps(model.to_json())))
    assert back.triple is not None and np.allclose(back.triple.coef, tri.coef)
    assert back.triple.threshold == tri.threshold
    d = model.to_json()
    d.pop("triple")
    assert octave.OctaveModel.from_json(d).triple is None      # older files: no 3:2 check


def test_triple_features_are_finite(tracks):
    _, tf, od = tracks[100.0]
    ctx = pulse_context(od.envelope, od.low, od.mid, od.fps)
    lo, hi = octave.level_cues(ctx, 100.0), octave.level_cues(ctx, 150.0)
    x = octave.triple_features(lo, hi, octave.chord_change_interval(tf.chroma, tf.fps))
    assert x.shape == (len(octave.TRIPLE_FEATURES),) and np.isfinite(x).all()


@pytest.fixture(scope="module")
def three_two_track():
    """A generated arrangement (seed 42: 174.6 BPM, breakbeat sections) whose
    periodicity spectrum reads 2/3 of its tempo (116.4 BPM) before the 3:2 check."""
    from engine.synth import random_arranged_track

    tr = random_arranged_track(42, sr=SR, max_seconds=60)
    y = tr.audio[:, 0] if tr.audio.ndim > 1 else tr.audio
    tf, od = compute_track_features(y, SR, CFG)
    return tr.truth.bpm, y, tf, od


def test_three_two_check_moves_two_thirds_to_the_beat(three_two_track):
    bpm, y, tf, od = three_two_track
    g = analyse_rhythm(y, SR, CFG, onsets=od, chroma=tf.chroma, chroma_fps=tf.fps, mel=tf.mel)
    assert g.bpm == pytest.approx(bpm, rel=0.02)
    model = octave.load_model()
    choice = octave.resolve_octave(od.envelope, od.low, od.mid, od.fps, bpm * 2 / 3,
                                   chroma=tf.chroma, chroma_fps=tf.fps)
    assert choice.bpm == pytest.approx(bpm, rel=0.02) and choice.factor == 1.5
    assert choice.rounds[0].p_three_halves_over_keep > model.triple.threshold
    # the second round, from the beat, keeps it
    assert len(choice.rounds) == 2 and choice.rounds[1].factor == 1.0
    # without the 3:2 model the octave check alone keeps 2/3 of the tempo
    plain = octave.OctaveModel(model.mean, model.scale, model.coef, model.intercept,
                               threshold=model.threshold)
    kept = octave.resolve_octave(od.envelope, od.low, od.mid, od.fps, bpm * 2 / 3,
                                 chroma=tf.chroma, chroma_fps=tf.fps, model=plain)
    assert kept.bpm == pytest.approx(bpm * 2 / 3, rel=0.02)


def _nearest_tempo_model(target: float, k: float = 20.0) -> octave.OctaveModel:
    """A model whose only cue is the lower level's tempo: it prefers the level
    of each pair nearer ``target`` BPM (in octaves)."""
    def part(features, ratio):
        n = len(features)
        coef = np.zeros(n)
        coef[0] = -k        # feature 0 is log2(lower bpm / 110) in both models
        c = np.log2(target / np.sqrt(ratio) / 110.0)
        return octave.OctaveModel(np.zeros(n), np.ones(n), coef, k * c,
                                  features=tuple(features), threshold=0.6)
    m = part(octave.FEATURES, 2.0)
    m.triple = part(octave.TRIPLE_FEATURES, 1.5)
    return m


def test_decision_rounds_repeat_from_the_answer_until_it_stays():
    est = 132.0

    def at(f):
        return octave.LevelCues(bpm=est * f, alt=0.0, kick=0.0, comb=0.0,
                                profile={b: np.full(16, 1 / 16) for b in "flm"},
                                triple=0.0, line=0.0)
    lo_b, hi_b = octave.octave_range(70.0, 180.0)
    model = _nearest_tempo_model(66.0)
    one = octave.decide_octave(model, est, at, float("nan"), lo_b, hi_b, rounds=1)
    assert one.bpm == pytest.approx(88.0) and len(one.rounds) == 1      # 3:2 down, no octave
    full = octave.decide_octave(model, est, at, float("nan"), lo_b, hi_b)
    # round 2 moves 88 to 58.7 (nearer 66); round 3 keeps it and ends the search
    assert full.bpm == pytest.approx(est * 4 / 9) and full.factor == pytest.approx(4 / 9)
    assert [r.factor for r in full.rounds] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert full.rounds[0].bpm == pytest.approx(88.0)
    # rounds=1 is the single-round decision
    assert one.factor == full.rounds[0].factor
