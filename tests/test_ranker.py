"""Loop-quality model: metrics, ground-truth labels, grouped splits, training, default model."""
from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from engine import metrics as M
from engine.loop_truth import (LoopTruth, continues_like_start, grid_windows, label_windows,
                               lmms_bar_activity, lmms_bar_note_activity, lmms_bar_patterns, pattern_ids,
                               section_periods, sections_from_activity, training_windows,
                               truth_from_synth)
from engine.synth import random_arranged_track, synth_track


# --------------------------------------------------------------------------- metrics

def test_precision_recall_ap_by_hand():
    ranked = [1, 0, 1, 0, 0]
    assert M.precision_at_k(ranked, 1) == 1.0
    assert M.precision_at_k(ranked, 3) == pytest.approx(2 / 3)
    assert M.recall_at_k(ranked, 3, n_relevant=4) == pytest.approx(0.5)
    # AP = (1/1 + 2/3) / n_relevant
    assert M.average_precision(ranked) == pytest.approx((1 + 2 / 3) / 2)
    assert M.average_precision(ranked, n_relevant=4) == pytest.approx((1 + 2 / 3) / 4)


def test_k_larger_than_the_list():
    # missing ranks count as not relevant: 2 hits / k = 10
    assert M.precision_at_k([1, 1, 0], 10) == pytest.approx(0.2)
    assert M.recall_at_k([1, 1, 0], 10) == 1.0
    assert M.ndcg_at_k([1, 1, 0], 10) == pytest.approx(1.0)


def test_ndcg_by_hand_with_graded_gains_and_ideal():
    ranked = [0, 2, 1]
    dcg = 0 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    idcg = 3 / math.log2(2) + 1 / math.log2(3) + 0
    assert M.ndcg_at_k(ranked, 3) == pytest.approx(dcg / idcg)
    # the ideal may hold more candidates than the list shows
    idcg2 = 3 / math.log2(2) + 3 / math.log2(3)
    assert M.ndcg_at_k([2], 2, ideal=[0, 2, 2, 1]) == pytest.approx(3 / idcg2)


def test_ties_are_broken_in_input_order():
    scores = [0.5, 0.9, 0.5, 0.5]
    rel = [0, 1, 1, 0]
    ranked = M.rank_by_score(scores, rel)
    assert ranked.tolist() == [1, 0, 1, 0]          # 0.9 first, then the 0.5s as given
    assert M.precision_at_k(ranked, 2) == 0.5
    # all scores tied: the input order is the ranking
    assert M.rank_by_score([1, 1, 1], [0, 0, 1]).tolist() == [0, 0, 1]


def test_no_relevant_items_scores_zero():
    assert M.precision_at_k([0, 0, 0], 2) == 0.0
    assert M.recall_at_k([0, 0, 0], 2) == 0.0
    assert M.ndcg_at_k([0, 0, 0], 2) == 0.0
    assert M.average_precision([0, 0]) == 0.0
    named = M.ranking_metrics([0, 0, 1], 2, threshold=1)
    assert list(named) == ["P@2", "R@2", "NDCG@2", "AP"] and named["P@2"] == 0.0


def test_invalid_input_raises():
    with pytest.raises(ValueError, match="non-negative"):
        M.precision_at_k([1, -1], 1)
    with pytest.raises(ValueError, match="NaN"):
        M.ndcg_at_k([1, float("nan")], 2)
    with pytest.raises(ValueError, match="one-dimensional"):
        M.average_precision([[1, 0]])
    with pytest.raises(ValueError, match="positive integer"):
        M.precision_at_k([1], 0)
    with pytest.raises(ValueError, match="positive integer"):
        M.recall_at_k([1], 2.5)
    with pytest.raises(ValueError, match="shape"):
        M.rank_by_score([1, 2], [1])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert M.precision_at_k([], 3) == 0.0
        assert any("empty" in str(x.message) for x in w)


# --------------------------------------------------------------------------- labels

def test_in_section_interval_resamples_whole_tracks():
    from engine.evaluation import pooled_in_section, pooled_in_section_interval

    # 4 tracks x 5 loops: 5, 5, 4 and 0 in one section (70% pooled)
    pt = pd.DataFrame({"ranker": "m", "group": list("abcd"), "n_top": 5,
                       "n_in_section": [5, 5, 4, 0]})
    assert pooled_in_section(pt, "m") == pytest.approx(0.7)
    lo, hi = pooled_in_section_interval(pt, "m", n_boot=4000)
    # resampling tracks: one bad track in four makes the interval reach far down
    assert 0.2 <= lo < 0.7 < hi <= 1.0
    assert (lo, hi) == pooled_in_section_interval(pt, "m", n_boot=4000)   # seeded
    same = pt.assign(n_in_section=[4, 4, 4, 4])
    assert pooled_in_section_interval(same, "m") == pytest.approx((0.8, 0.8))
    assert all(math.isnan(x) for x in pooled_in_section_interval(pt, "other"))
    with pytest.raises(ValueError):
        pooled_in_section_interval(pt, "m", level=1.5)
    with pytest.raises(ValueError):
        pooled_in_section_interval(pt, "m", n_boot=0)


def test_labels_come_from_truth_not_features():
    tr = synth_track(120, n_bars=16, section_bars=[8, 8], sr=22050, seed=2,
                     section_instruments=[("drums",), ("drums", "bass", "chords")])
    t = truth_from_synth(tr.truth, "t")
    db, bar = t.downbeats, t.bar_duration
    lab = label_windows(t, [db[0], db[6], db[0] + 0.5 * t.beat_period, db[8], db[8], db[0]],
                        [db[4], db[10], db[4] + 0.5 * t.beat_period, db[12], db[10], db[0] + 2.5 * bar])
    # inside section 1 at the phrase start, drums only (every bar alike): good
    assert lab.loc[0, "relevance"] == 3 and lab.loc[0, "good"]
    # crosses the section change at bar 8
    assert not lab.loc[1, "one_section"] and lab.loc[1, "relevance"] == 0
    # half a beat off the grid: not a loop a DJ can use (labels v3)
    assert not lab.loc[2, "on_bar"] and lab.loc[2, "relevance"] == 0
    # chord section: 4 bars from the section start repeats seamlessly; 2 bars of the
    # 4-chord cycle stays in its section but jumps back at the seam
    assert lab.loc[3, "relevance"] == 3 and lab.loc[3, "seamless"]
    assert not lab.loc[4, "phrase_length_ok"] and not lab.loc[4, "seamless"]
    assert lab.loc[4, "relevance"] == 2
    # a 1-bar loop inside its section ranks below every multi-bar loop that stays
    one = label_windows(t, [db[0], db[8]], [db[1], db[9]])
    assert one["one_section"].all() and (one["relevance"] == 1).all()
    # 2.5 bars is not a whole number of bars
    assert not lab.loc[5, "whole_bars"]


def test_silent_break_and_typed_negatives():
    tr = synth_track(126, n_bars=12, section_bars=[4, 4, 4], sr=22050, seed=3, key=None,
                     section_instruments=[("drums",), (), ("drums",)], patterns=["breakbeat"])
    t = truth_from_synth(tr.truth, "t")
    w = training_windows(t, (1, 2, 4), rng=np.random.default_rng(0), negatives_per_type=0.3)
    lab = label_windows(t, w["start_time"], w["end_time"])
    assert set(w["kind"]) == {"grid", "shift_fraction", "shift_beats", "non_whole"}
    assert (lab.loc[w["kind"] != "grid", "relevance"] <= 1).all()
    assert not lab.loc[w["kind"] != "grid", "good"].any()
    silent = label_windows(t, [t.downbeats[4]], [t.downbeats[8]])
    assert not silent.loc[0, "has_content"] and silent.loc[0, "relevance"] == 0


def test_lmms_song_editor_gives_sections():
    xml = """<lmms-project><head bpm="120"/><song><trackcontainer>
      <track type="0" name="lead" muted="0"><pattern pos="0" steps="16" type="1">
        <note pos="0" len="384"/></pattern><pattern pos="768" type="1"><note pos="0" len="48"/></pattern></track>
      <track type="2" name="loop" muted="0"><sampletco pos="384" len="768"/></track>
      <track type="0" name="muted" muted="1"><pattern pos="0" type="1"><note pos="0" len="3000"/></pattern></track>
      <track type="5" name="auto"><automationpattern pos="0" len="1536"/></track>
    </trackcontainer></song></lmms-project>"""
    act = lmms_bar_activity(ET.fromstring(xml), 6)
    # lead: bars 0-1 (384 ticks) and bar 4; sample clip: bars 2-5; muted and automation ignored
    assert [sorted(a) for a in act] == [[0], [0], [1], [1], [0, 1], [1]]
    assert sections_from_activity(act).tolist() == [0, 0, 1, 1, 2, 3]
    # "x2" renders repeat the song at its bar-rounded length (1536 ticks = 8 bars)
    act2 = lmms_bar_activity(ET.fromstring(xml), 16, repeats=2)
    assert act2[8] == act[0] and act2[12] == act[4]


def test_lmms_note_activity_is_literal():
    # a clip spanning bars 0-3 whose notes sound in bars 0 and 2 only; a beat/bassline
    # clip over bars 0-3 whose 1-bar pattern has a hit on beat 1
    xml = """<lmms-project><head bpm="120"/><song><trackcontainer>
      <track type="0" name="lead" muted="0"><pattern pos="0" type="1">
        <note pos="0" len="96"/><note pos="384" len="96"/><note pos="700" len="10"/></pattern></track>
      <track type="1" name="beat" muted="0"><bbtrack><trackcontainer>
        <track type="0" name="kick"><pattern pos="0" steps="16" type="0"><note pos="0" len="-192"/></pattern></track>
      </trackcontainer></bbtrack><bbtco pos="0" len="768"/></track>
    </trackcontainer></song></lmms-project>"""
    root = ET.fromstring(xml)
    clips = lmms_bar_activity(root, 4)
    notes = lmms_bar_note_activity(root, 4)
    assert [sorted(a) for a in clips] == [[0, 1]] * 4
    assert [sorted(a) for a in notes] == [[0, 1], [1], [0, 1], [0, 1]]
    # sections follow both rules: bar 1 (lead silent) is its own section
    assert sections_from_activity(list(zip(clips, notes))).tolist() == [0, 1, 2, 2]


def test_seamless_repeats_and_periods_come_from_note_level_bar_content():
    # a 4-chord cycle (period 4) in one section of 12 bars; a drum-only groove after it
    truth = LoopTruth(track_id="t", downbeats=np.arange(21) * 2.0, beats_per_bar=4,
                      bar_section=np.array([0] * 12 + [1] * 8), bar_content=np.ones(20, bool),
                      phrase_bars=4, bar_period=np.ones(20, int), has_sections=True, source="x",
                      bar_pattern=np.array([0, 1, 2, 3] * 3 + [9] * 8))
    truth.bar_period = section_periods(truth.bar_pattern, truth.bar_section)
    assert truth.bar_period.tolist() == [4] * 12 + [1] * 8
    assert continues_like_start(truth, 0, 4) and continues_like_start(truth, 4, 8)
    assert not continues_like_start(truth, 0, 1) and not continues_like_start(truth, 0, 2)
    # the last 4 bars of the section: compared with the bars before it
    assert continues_like_start(truth, 8, 4) and not continues_like_start(truth, 9, 2)
    lab = label_windows(truth, [0, 0, 2, 24, 24, 26], [8, 2, 10, 28, 26, 28])
    assert lab["relevance"].tolist() == [3, 1, 2, 3, 1, 1]   # 1-bar loops rank below phrases
    # a through-composed chart (no period): a phrase of 4 whose next bars start like it
    chart = LoopTruth(track_id="c", downbeats=np.arange(17) * 2.0, beats_per_bar=4,
                      bar_section=np.zeros(16, int), bar_content=np.ones(16, bool), phrase_bars=4,
                      bar_period=np.ones(16, int), has_sections=False, source="mma",
                      bar_pattern=np.array([0, 1, 2, 3, 0, 1, 3, 3, 0, 1, 2, 3, 4, 1, 0, 0]))
    chart.bar_period = section_periods(chart.bar_pattern, chart.bar_section)
    assert chart.bar_period[0] == 0
    lab = label_windows(chart, [0, 0, 0, 2], [16, 8, 4, 10])
    # labels v3: 8 and 4 bars from the start repeat seamlessly; 2 bars (jumps back at the
    # seam) and 4 bars from bar 1 (mid-phrase) stay in the section: 2
    assert lab["relevance"].tolist() == [3, 3, 2, 2]


def test_lmms_notes_give_bar_content():
    xml = """<lmms-project><head bpm="120"/><song><trackcontainer>
      <track type="0" name="keys" muted="0"><pattern pos="0" type="1">
        <note pos="0" key="60" len="192"/><note pos="192" key="62" len="192"/>
        <note pos="384" key="60" len="192"/><note pos="576" key="62" len="192"/></pattern></track>
      <track type="2" name="loop" muted="0"><sampletco pos="0" len="384" src="a.wav"/></track>
    </trackcontainer></song></lmms-project>"""
    keys = lmms_bar_patterns(ET.fromstring(xml), 5)
    ids = pattern_ids(keys)
    # bars 0 and 2 hold the same note, but the sample clip plays in bar 0 only
    assert len(set(ids.tolist())) == 5
    assert keys[2] == frozenset({(0, 60, 0, 192)}) and keys[4] == frozenset()
    assert (1, "sample", "a.wav", 1) in keys[1]


def test_bar_level_arrangement_makes_sections():
    tr = synth_track(120, n_bars=8, section_bars=[8], sr=22050, seed=4, key="C major",
                     section_instruments=[("drums", "bass")],
                     bar_instruments=[("drums", "bass"), ("drums",)] * 4)
    t = truth_from_synth(tr.truth, "t")
    assert t.bar_section.tolist() == list(range(8))       # a part drops every other bar
    lab = label_windows(t, [t.downbeats[0]], [t.downbeats[4]])
    assert not lab.loc[0, "one_section"]


def test_random_arrangements_vary():
    tracks = [random_arranged_track(s, max_seconds=30) for s in range(6)]
    bpms = {round(t.truth.bpm) for t in tracks}
    assert len(bpms) == 6
    for t in tracks:
        g = t.truth
        assert sum(g.section_lengths) == len(g.downbeats) <= 30 / (g.beats_per_bar * 60 / g.bpm)
        assert len(g.section_instruments) == len(g.sections)


# --------------------------------------------------------------------------- split and training

def test_grouped_split_never_leaks():
    from engine.ranker import grouped_folds, grouped_split

    groups = np.repeat([f"t{i}" for i in range(13)], 7)
    for seed in range(20):
        tr, te = grouped_split(groups, 0.3, seed)
        assert not set(groups[tr]) & set(groups[te]) and te.any() and tr.any()
    folds = grouped_folds(groups, 3, 0)
    seen = set()
    for te in folds:
        assert not set(groups[te]) & set(groups[~te])
        seen |= set(groups[te])
    assert seen == set(groups)
    with pytest.raises(ValueError):
        grouped_split(["a", "a"], 0.5)


@pytest.mark.slow
def test_small_training_beats_random_on_held_out_tracks():
    from engine.ranker import (TrackSource, baseline_scores, build_dataset, per_track_metrics,
                               predict, train_booster)

    srcs = [TrackSource(track_id=f"s{i}", kind="synth", seed=5000 + i, max_seconds=35)
            for i in range(10)]
    df = build_dataset(srcs, (1, 2, 4), n_jobs=1)
    test = df["track_id"].isin(["s7", "s8", "s9"]).to_numpy()
    b = train_booster(df[~test], "rank:ndcg", rounds=60)
    ev = df[test & (df["kind"] == "grid").to_numpy()]
    model = per_track_metrics(ev, predict(b, ev))
    rnd = pd.concat([per_track_metrics(ev, baseline_scores(ev, "random", seed=s)) for s in range(5)])
    assert model["NDCG@5"].mean() > rnd["NDCG@5"].mean() + 0.1
    assert model["P@5"].mean() > rnd["P@5"].mean()


# --------------------------------------------------------------------------- shipped model

def test_shipped_model_loads_with_metadata():
    import json

    from engine.features import FEATURE_COLUMNS
    from engine.loop_truth import LABEL_VERSION
    from engine.ranker import (DEFAULT_MODEL_PATH, GUARD_ALTERNATIVES, GUARD_THRESHOLDS,
                               MODEL_FEATURES)
    from engine.schema import PART_FEATURES, names
    from engine.scoring import LoopScorer

    s = LoopScorer.load(DEFAULT_MODEL_PATH)
    # trained by today's code: every feature extract computes (the part-presence ones feed
    # the section guard instead), no tempo metadata
    assert s.feature_names == MODEL_FEATURES
    assert set(FEATURE_COLUMNS) - set(names(PART_FEATURES)) <= set(s.feature_names)
    assert s.guard is not None and s.guard.thresholds == GUARD_THRESHOLDS
    assert s.guard.alternatives == GUARD_ALTERNATIVES
    assert not {"bpm", "tempo_factor", "tempo_shift_pct"} & set(s.feature_names)
    for path in (DEFAULT_MODEL_PATH,):
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        for key in ("objective", "params", "data", "code", "command"):
            assert key in meta
        assert meta["label_version"] == LABEL_VERSION
        assert "train-ranker" in meta["command"]


def test_extract_reports_the_shipped_model(tmp_path):
    from engine.config import PipelineConfig
    from engine.pipeline import run_batch

    tr = synth_track(124, n_bars=8, sr=22050, seed=11)
    path = tr.write(tmp_path / "gen.wav")
    out = run_batch([path], tmp_path / "out", PipelineConfig(use_cache=False, n_jobs=1))
    meta = out.results[0].metadata
    assert out.results[0].ok and len(meta)
    assert (meta["score_source"] == "model:loop_ranker").all()


def test_people_labels_csv_become_rows(tmp_path):
    from engine.ranker import label_csv_rows

    tr = synth_track(120, n_bars=8, sr=22050, seed=4)
    path = tr.write(tmp_path / "mine.wav")
    db = tr.truth.downbeats
    pd.DataFrame({"source_file": [str(path)] * 3, "start_time": [db[0], db[1] + 0.3, db[4]],
                  "end_time": [db[4], db[3], db[6]], "label": ["good", "bad", "1"]}
                 ).to_csv(tmp_path / "labels.csv", index=False)
    rows = label_csv_rows(tmp_path / "labels.csv")
    assert rows["good"].tolist() == [True, False, True]
    assert rows["track_id"].nunique() == 1 and "bar_mel_jump_max" in rows
    pd.DataFrame({"source_file": [str(path)], "start_time": [0], "end_time": [1], "label": ["meh"]}
                 ).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="unknown labels"):
        label_csv_rows(tmp_path / "bad.csv")


@pytest.mark.slow
def test_train_and_evaluate_commands(tmp_path):
    import json

    from engine.cli import main

    model = tmp_path / "m" / "tiny.json"
    assert main(["train-ranker", "--synthetic", "3", "--objective", "rank:ndcg", "--rounds", "5",
                 "--jobs", "1", "--tempo_augment", "--out", str(model)]) == 0
    meta = json.loads(model.with_suffix(".meta.json").read_text())
    assert meta["objective"] == "rank:ndcg" and meta["data"]["tempo_augment"]
    assert "tempo_factor" not in json.loads(model.with_suffix(".features.json").read_text())
    folder = tmp_path / "eval"
    assert main(["synth", "--out", str(folder / "a.wav"), "--random_arrangement", "--seed", "3",
                 "--sr", "22050"]) == 0
    assert main(["evaluate", "--folder", str(folder), "--model", str(model), "--top_k", "5",
                 "--out_dir", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "eval_metrics.json").read_text())
    assert {"default model", "heuristic", "old composite", "random"} <= set(m["rankers"])
    lo, hi = m["in_section_interval"]["default model"]
    assert lo <= m["in_section_pooled"]["default model"] <= hi
    rows = pd.read_csv(tmp_path / "ev" / "eval_rows.csv")
    assert {"relevance", "pred_default_model", "pred_heuristic"} <= set(rows.columns)


def test_heuristic_with_a_warning_when_the_default_model_is_missing(tmp_path, monkeypatch):
    import engine.ranker
    from engine.config import RankConfig
    from engine.pipeline import load_scorer

    monkeypatch.setattr(engine.ranker, "DEFAULT_MODEL_PATH", tmp_path / "gone.ubj")
    with pytest.warns(RuntimeWarning, match="heuristic"):
        assert load_scorer(RankConfig()) is None
    assert load_scorer(RankConfig(model_path="heuristic")) is None
    with pytest.raises(Exception, match="not found"):
        load_scorer(RankConfig(model_path=str(tmp_path / "explicit.json")))


def test_composite_rerank_defaults_to_the_heuristic_only():
    from engine.config import RankConfig
    from engine.features import FEATURE_COLUMNS
    from engine.ranker import DEFAULT_MODEL_PATH
    from engine.scoring import LoopScorer, score_candidates

    rng = np.random.default_rng(0)
    f = pd.DataFrame(rng.random((6, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    f["bars"] = [1, 2, 4, 8, 4, 2]
    f["part_change_rel"] = [3.0, 0.2, 0.9, 0.1, 0.4, 2.0]     # the guard fails rows 2 and 5
    f["part_repeat_rel"] = 99.0                                # no repeating neighbours
    f["part_track_change_rel"] = 5.0                           # a track with sections
    s = LoopScorer.load(DEFAULT_MODEL_PATH)
    m = score_candidates(f, RankConfig(section_guard=False), s)
    assert (m["rank_score"] == m["score"]).all() and (m["score_source"] == "model:loop_ranker").all()
    g = score_candidates(f, RankConfig(), s)
    assert (g["score"] == m["score"]).all()
    low, high = g["rank_score"].iloc[[2, 5]], g["rank_score"].drop([2, 5])
    assert low.max() < high.min()
    h = score_candidates(f, RankConfig(), None)
    assert (h["rank_score"] == h["beatmatch_composite_score"]).all()
    forced = score_candidates(f, RankConfig(composite_on_model=True), s)
    assert (forced["rank_score"] == forced["beatmatch_composite_score"]).all()
    off = score_candidates(f, RankConfig(use_composite_rerank=False), None)
    assert (off["rank_score"] == off["score"]).all()


# --------------------------------------------------------------------------- part presence and section guard

def _true_grid_windows(tr, bars: int):
    """A synth track's truth, its true-grid windows of ``bars`` bars, their candidate
    features and labels, and the track's (features, onsets)."""
    from engine.config import AnalysisConfig
    from engine.features import candidate_features, compute_track_features

    t = truth_from_synth(tr.truth, "t")
    y = tr.audio.mean(axis=1).astype(np.float32)
    tf, on = compute_track_features(y, 22050, AnalysisConfig())
    w = grid_windows(t, (bars,))
    f = candidate_features(tf, on, w, t.beat_period)
    return t, w, f, label_windows(t, w["start_time"], w["end_time"]), (tf, on)


def test_part_presence_sees_a_part_entering_not_new_notes():
    """Chords entering between bars move the part-presence features far more than the
    chord changes of the same instruments from bar to bar (a quiet bass under the kick
    barely does: a known limit of these features)."""
    from engine.features import candidate_features

    tr = synth_track(120, n_bars=8, section_bars=[8], sr=22050, seed=5, key="C major",
                     section_instruments=[("drums", "chords", "bass")], crash=False,
                     bar_instruments=[("drums", "bass")] * 4 + [("drums", "chords", "bass")] * 4)
    t, w, f, lab, (tf, on) = _true_grid_windows(tr, 2)
    inside, across = f[lab["one_section"].to_numpy()], f[~lab["one_section"].to_numpy()]
    assert len(across) == 1 and len(inside) >= 4
    for col in ("part_change_db", "part_cell_change_db"):
        assert across[col].iloc[0] > 1.5 * inside[col].max(), col
    one_bar = candidate_features(tf, on, grid_windows(t, (1,)), t.beat_period)
    assert (one_bar["part_change_db"] == 0).all()


def test_section_guard_moves_changing_multibar_loops_below_the_rest():
    from engine.ranker import section_guard_meta
    from engine.scoring import SectionGuard

    df = pd.DataFrame({"bars": [1, 2, 2, 4, 4], "kind": "grid", "one_section": True,
                       "band_range_max": [5.0, 0.1, 0.9, 0.2, 0.1],
                       "part_cell_change_db": [9.0, 1.0, 1.0, 8.0, 1.0]})
    g = SectionGuard({"band_range_max": 0.5, "part_cell_change_db": 2.0})
    assert g.passes(df).tolist() == [True, True, False, False, True]   # 1 bar always passes
    s = g.apply([0.1, 0.2, 0.9, 0.8, 0.3], df)
    assert list(np.argsort(-s)) == [4, 1, 0, 2, 3]
    meta = {"section_guard": section_guard_meta(df, {"band_range_max": 0.5}, alternatives=())}
    assert meta["section_guard"]["training_pass_share"] == pytest.approx(0.75)
    assert SectionGuard.from_meta(meta).thresholds == {"band_range_max": 0.5}
    assert SectionGuard.from_meta(meta).alternatives == ()
    assert SectionGuard.from_meta({}) is None


def test_section_guard_alternative_rule_lets_repeating_loops_pass():
    """A loop failing the main rule passes when every feature of an alternative rule holds."""
    from engine.ranker import section_guard_meta
    from engine.scoring import SectionGuard

    df = pd.DataFrame({"bars": [1, 2, 4, 4, 4], "kind": "grid", "one_section": True,
                       "part_change_rel": [3.0, 0.2, 2.0, 2.0, 0.4],
                       "part_repeat_rel": [9.0, 9.0, 0.3, 1.5, 99.0]})
    alt = ({"part_repeat_rel": 0.8},)
    g = SectionGuard({"part_change_rel": 0.5}, alt)
    assert g.passes(df).tolist() == [True, True, True, False, True]
    assert SectionGuard({"part_change_rel": 0.5}).passes(df).tolist() == [True, True, False,
                                                                         False, True]
    meta = {"section_guard": section_guard_meta(df, {"part_change_rel": 0.5}, alt)}
    assert meta["section_guard"]["training_pass_share"] == pytest.approx(0.75)   # 3 of 4 multi-bar
    back = SectionGuard.from_meta(meta)
    assert back.thresholds == {"part_change_rel": 0.5} and back.alternatives == alt
    assert back.passes(df).tolist() == g.passes(df).tolist()


def test_part_repeat_sees_a_repeating_progression_not_a_part_entering():
    """Chords changing every bar inside one section: the loop's bars differ from each other,
    but the bars a loop length later repeat them; a loop across a part entering differs from
    the bars a loop length away on both sides."""
    from engine.features import PART_REPEAT_NONE

    # a tempo whose beat is a whole number of analysis frames (22 x 512 samples at 22.05 kHz):
    # the part-presence bars are tiled at a whole number of frames per bar, so at other
    # tempos the bars a loop length away drift off the bar lines by up to 2 frames a bar
    bpm = 60.0 * 22050 / (22 * 512)
    tr = synth_track(bpm, n_bars=24, section_bars=[24], sr=22050, seed=7, key="C major",
                     section_instruments=[("drums", "chords", "bass")], crash=False,
                     bar_instruments=[("drums", "chords")] * 12 + [("drums", "chords", "bass")] * 12)
    t, w, f, lab, _ = _true_grid_windows(tr, 4)
    bar0 = np.searchsorted(t.downbeats, w["start_time"].to_numpy() - 1e-3)
    rep = f["part_repeat_rel"].to_numpy()
    across = ~lab["one_section"].to_numpy()
    # loops well inside either half, on the chord cycle: repeated by their neighbours
    inside = lab["one_section"].to_numpy() & (bar0 % 4 == 0) & ((bar0 <= 4) | (bar0 >= 12))
    assert across.sum() == 3 and inside.sum() >= 4
    assert rep[across].min() > 1.5 * rep[inside].max()
    assert rep[inside].max() < 0.8
    assert f["part_change_rel"].to_numpy()[inside].max() > 0.5   # the old rule alone fails them
    assert (rep <= PART_REPEAT_NONE).all()


def test_part_track_change_tells_a_steady_track_from_one_with_a_part_entering():
    """``part_track_change_rel`` is one value per track: the largest adjacent-bar change
    over the median one. A steady groove (chords changing every bar, no part entering or
    leaving) stays under the section guard's steady-track rule, so all its loops pass; the
    same music with chords entering half way exceeds it, and the guard still acts there."""
    from engine.ranker import GUARD_ALTERNATIVES, GUARD_THRESHOLDS
    from engine.scoring import SectionGuard

    steady_rule = next(r for r in GUARD_ALTERNATIVES if "part_track_change_rel" in r)
    limit = steady_rule["part_track_change_rel"]
    guard = SectionGuard(GUARD_THRESHOLDS, GUARD_ALTERNATIVES)
    kw = dict(n_bars=16, section_bars=[16], sr=22050, seed=5, key="C major", crash=False,
              section_instruments=[("drums", "chords", "bass")])
    steady = synth_track(120, **kw)
    entering = synth_track(120, bar_instruments=[("drums", "bass")] * 8
                           + [("drums", "chords", "bass")] * 8, **kw)
    _, _, fs, _, _ = _true_grid_windows(steady, 2)
    _, _, fe, lab, _ = _true_grid_windows(entering, 2)
    fs, fe = fs.assign(bars=2), fe.assign(bars=2)
    assert fs["part_track_change_rel"].nunique() == 1 and fe["part_track_change_rel"].nunique() == 1
    assert fs["part_track_change_rel"].iloc[0] < limit < fe["part_track_change_rel"].iloc[0]
    assert guard.passes(fs).all()
    across = ~lab["one_section"].to_numpy()
    assert across.any() and not guard.passes(fe)[across].any()
