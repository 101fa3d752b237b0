"""Tag classifiers: label sources, split, model, roles truth, CLI (issue 11).

Generated loops carry known truth (engine.synth); features are computed
once per module and shared.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from engine.tags.features import FEATURE_NAMES, signal_features
from engine.tags.labels_audio import (AUDIO_GROUPS, audio_tags, constant_labels,
                                      excluded_features)
from engine.tags.labels_filename import FILENAME_TAGS, filename_tags
from engine.tags.model import (TrainConfig, calibrate_thresholds, majority_baseline,
                               train_multilabel)
from engine.tags.split import iterative_split, train_val_test_split

SR = 22050


# --------------------------------------------------------------------------- filename labels

@pytest.mark.parametrize("name,expected", [
    ("Funky_DnB_break 174bpm.wav", ["breaks", "dnb", "funk"]),
    ("drum and bass roller.wav", ["breaks", "dnb"]),
    ("deep_house_chords_124.wav", ["house"]),
    ("laid back groove 90.wav", ["chilled", "groove"]),
    ("Electro-Funk.aiff", ["electronic", "funk"]),
    ("chillout_jazzy_keys.wav", ["chilled", "jazz"]),
    ("trip-hop beat.flac", ["triphop"]),
    ("Neo-Soul Rhodes.wav", ["soul"]),
    ("punk rock drums.wav", ["punk", "rock"]),
    ("marching snare.wav", ["march"]),
    ("Disco Strings.wav", ["disco"]),
    ("downtempo pad.wav", ["downbeat"]),
    ("techno_stab.wav", ["techno"]),
    ("metal riff.wav", ["metal"]),
    ("rocket launch.wav", []),            # no word match inside longer words
    ("soulja.wav", []),
    ("/music/house/plain kick.wav", []),  # folder names are not read
])
def test_filename_tags_match_table(name, expected):
    assert filename_tags(name) == expected
    assert set(expected) <= set(FILENAME_TAGS)
    assert len(FILENAME_TAGS) == 17


# --------------------------------------------------------------------------- split

def test_iterative_split_stratifies_every_label():
    rng = np.random.default_rng(0)
    Y = (rng.random((600, 12)) < rng.uniform(0.05, 0.5, 12)).astype(int)
    tr, va, te = train_val_test_split(Y, 0.2, 0.2, 42)
    assert len(set(tr) | set(va) | set(te)) == 600 and not set(tr) & set(te)
    assert abs(len(te) - 120) <= 2 and abs(len(va) - 120) <= 2
    share = Y[te].sum(0) / Y.sum(0)
    assert np.all(np.abs(share - 0.2) < 0.06), share
    # deterministic per seed
    assert np.array_equal(iterative_split(Y, 0.2, 7)[1], iterative_split(Y, 0.2, 7)[1])
    with pytest.raises(ValueError):
        iterative_split(Y[:4], 0.2)


# --------------------------------------------------------------------------- model pieces

def test_threshold_guardrails_and_majority_baseline():
    cfg = TrainConfig(low_support_cutoff=6, low_support_floor=0.3).clamped()
    Y = np.array([[1, 0, 0]] * 3 + [[0, 1, 0]] * 17)
    P = np.column_stack([np.r_[[0.15] * 3, [0.05] * 17], np.r_[[0.1] * 3, [0.9] * 17],
                         np.full(20, 0.4)])
    th = calibrate_thresholds(Y, P, ["a", "b", "c"], cfg)
    assert th["a"] == pytest.approx(0.3)      # 3 positives < cutoff: raised to the floor
    assert th["b"] == pytest.approx(0.12)     # lowest threshold with the best F1
    assert th["c"] == 0.5                     # no validation positives
    base = majority_baseline(Y, Y, ["a", "b", "c"])
    assert base["per_label"]["b"]["majority_value"] == 1
    assert base["per_label"]["a"]["f1"] == 0.0
    assert 0 < base["macro_f1"] < 1


def test_constant_labels_found():
    assert constant_labels([["x", "y"], ["x"], ["x", "z"]], ["x", "y", "z", "w"]) == ["x", "w"]


# --------------------------------------------------------------------------- generated loops

@pytest.fixture(scope="module")
def truth_loops():
    from engine.tags.truth import audio_truth_loops

    loops = audio_truth_loops(36, seed=3, sr=SR)
    feats = [signal_features(y, SR) for y, _ in loops]
    return loops, feats


def test_features_complete_and_finite(truth_loops):
    _, feats = truth_loops
    f = feats[0]
    assert list(f) == FEATURE_NAMES
    assert all(np.isfinite(v) for v in f.values())


def test_audio_labels_match_generator_truth(truth_loops):
    from engine.tags.truth import agreement

    loops, feats = truth_loops
    tags = [audio_tags(f) for f in feats]
    for t in tags:        # exactly one tag per group
        assert [g for g, opts in AUDIO_GROUPS.items() for x in t if x in opts] == list(AUDIO_GROUPS)
    agree = agreement(tags, [t for _, t in loops])
    assert agree["density"]["n"] >= 20 and agree["density"]["agreement"] >= 0.9, agree
    assert agree["percussive"]["n"] >= 15 and agree["percussive"]["agreement"] >= 0.9, agree
    assert agree["tempo"]["n"] >= 20 and agree["tempo"]["agreement"] >= 0.9, agree


def test_phrase_rule_is_not_constant(truth_loops):
    """The seed's phrase test (max ACF from lag 1) was on for every loop."""
    _, feats = truth_loops
    vals = np.array([f["phrase_acf"] for f in feats])
    assert vals.min() < 0.9 and vals.max() > 0.3


def test_leak_free_audio_labels_beat_majority(truth_loops):
    loops, feats = truth_loops
    frame = pd.DataFrame(feats)
    frame.insert(0, "file", [f"loop{i}.wav" for i in range(len(feats))])
    tags = [audio_tags(f) for f in feats]
    excl = {t: list(excluded_features(t)) for ts in tags for t in ts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_multilabel(frame, tags, label_source="audio",
                               cfg=TrainConfig(n_estimators=100, min_tag_count=4, n_jobs=1),
                               excluded=excl)
    rep = res.report
    for c in rep["classes"]:
        # every audio label's rule inputs are excluded from its learner, and reported
        assert not set(excluded_features(c)) & set(res.bundle["label_features"][c])
        assert set(rep["excluded_features"][c]) == set(excluded_features(c))
        assert "prevalence" in rep["label_metrics_test"][c]
        assert "majority_baseline" in rep["label_metrics_test"][c]
    assert rep["test_metrics"]["macro_f1_calibrated"] > rep["majority_baseline"]["test_macro_f1"]


# --------------------------------------------------------------------------- roles

def test_synth_parts_are_independent_and_audible():
    from engine.synth import synth_track

    tr = synth_track(120, n_bars=2, section_bars=2, key="C major",
                     instruments=("melody", "fx", "vocal"), lead_in_beats=0,
                     lead_in_silence=0, tail_seconds=0, sr=SR, stereo=False, seed=2,
                     return_stems=True)
    assert tr.truth.parts == ("melody", "fx", "vocal")
    for p in tr.truth.parts:
        assert np.sqrt(np.mean(tr.meta["stems"][p] ** 2)) > 1e-3
    assert "drums" not in tr.meta["stems"]
    assert tr.truth.onsets.size > 4


def test_midi_roles_truth(tmp_path):
    import mido

    from engine.tags.roles import midi_role_notes, midi_track_role, roles_in_span

    assert midi_track_role("Drum", 0, 9, 40) == "percussion"
    assert midi_track_role("Bass-Synthdrum", 118, 3, 40) == "percussion"
    assert midi_track_role("Walk", 32, 2, 40) == "bass"
    assert midi_track_role("Bass-Lead", 81, 4, 70) == "melody"
    assert midi_track_role("Chord-Guitar", 27, 5, 60) == "chords"
    assert midi_track_role("Arpeggio", 0, 6, 72) == "melody"
    mf = mido.MidiFile(ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)])   # 120 BPM
    mf.tracks.append(meta)
    for name, ch, prog, notes in (("Drum", 9, 0, [(0, 36), (480, 38), (960, 36), (1440, 38)]),
                                  ("Chord", 1, 0, [(3840, 60)])):
        tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name),
                             mido.Message("program_change", channel=ch, program=prog)])
        t = 0
        for start, n in notes:
            tr.append(mido.Message("note_on", channel=ch, note=n, velocity=90, time=start - t))
            tr.append(mido.Message("note_off", channel=ch, note=n, velocity=0, time=240))
            t = start + 240
        mf.tracks.append(tr)
    p = tmp_path / "x.mid"
    mf.save(p)
    notes = midi_role_notes(p)
    assert set(notes) == {"percussion", "chords"}
    assert notes["chords"][0, 0] == pytest.approx(4.0)     # tick 3840 at 120 BPM
    assert roles_in_span(notes, 0.0, 2.0) == ["percussion"]
    assert roles_in_span(notes, 3.9, 4.2) == ["chords"]    # sounds over > 1/4 of the span


_LMMS_PROJECT = """<?xml version="1.0"?>
<lmms-project version="1.0" type="song" creator="LMMS">
 <head bpm="120" timesig_numerator="4" timesig_denominator="4"/>
 <song>
  <trackcontainer type="song">
   <track type="0" name="Lead" muted="0">
    <instrumenttrack vol="100"><instrument name="tripleoscillator"/></instrumenttrack>
    <pattern pos="192" type="1" steps="16" muted="0">
     <note pos="0" len="48" key="60"/><note pos="48" len="48" key="62"/>
    </pattern>
   </track>
   <track type="0" name="kick01.ogg" muted="0">
    <instrumenttrack vol="100"><instrument name="audiofileprocessor">
     <audiofileprocessor src="drums/kick01.ogg"/></instrument></instrumenttrack>
    <pattern pos="0" len="384" type="0" steps="32" muted="0">
     <note pos="0" len="-192" key="57"/><note pos="48" len="-192" key="57"/>
    </pattern>
   </track>
   <track type="0" name="Silent pad" muted="1">
    <instrumenttrack vol="100"><instrument name="tripleoscillator"/></instrumenttrack>
    <pattern pos="0" len="192" type="1" steps="16"><note pos="0" len="192" key="48"/></pattern>
   </track>
   <track type="1" name="Beat/Bassline 0" muted="0">
    <bbtrack><trackcontainer type="bbtrackcontainer">
     <track type="0" name="Default preset" muted="0">
      <instrumenttrack vol="100"><instrument name="tripleoscillator"/></instrumenttrack>
      <pattern pos="0" type="1" steps="16">
       <note pos="0" len="96" key="24"/><note pos="96" len="96" key="27"/>
      </pattern>
     </track>
     <track type="0" name="Default preset" muted="0">
      <instrumenttrack vol="100"><instrument name="zynaddsubfx"/></instrumenttrack>
      <pattern pos="0" type="1" steps="16">
       <note pos="0" len="192" key="48"/><note pos="0" len="192" key="52"/>
       <note pos="0" len="192" key="55"/>
      </pattern>
     </track>
    </trackcontainer></bbtrack>
    <bbtco pos="384" len="384" muted="0"/>
   </track>
  </trackcontainer>
 </song>
</lmms-project>
"""


def test_lmms_role_truth(tmp_path):
    """An LMMS project written here, read as the realbench LMMS renders are."""
    import zlib

    from engine.tags.project_roles import lmms_role_notes, lmms_track_role
    from engine.tags.roles import roles_in_span

    assert lmms_track_role("BD 03", "audiofileprocessor", "drums/bassdrum03.ogg") == "percussion"
    assert lmms_track_role("Mute Bass", "audiofileprocessor",
                           "drumsynth/instrument/mute_bass.ds") == "bass"
    assert lmms_track_role("Woosh", "kicker") == "fx"
    assert lmms_track_role("Kick hi", "kicker") == "percussion"
    assert lmms_track_role("Strings (high)", "audiofileprocessor",
                           "stringsnpads/strings01.ogg") == "chords"
    assert lmms_track_role("Default preset", "zynaddsubfx", "", [72, 74, 76], [0, 12, 24],
                           [12, 24, 36]) == "melody"
    mmp = tmp_path / "song.mmp"
    mmp.write_text(_LMMS_PROJECT)
    mmpz = tmp_path / "song.mmpz"                       # qCompress: 4-byte length + zlib
    data = _LMMS_PROJECT.encode()
    mmpz.write_bytes(len(data).to_bytes(4, "big") + zlib.compress(data))
    for path in (mmp, mmpz):
        notes = lmms_role_notes(path)
        assert set(notes) == {"melody", "percussion", "bass", "chords"}
        bar = 2.0                                        # 4 beats at 120 BPM
        # the lead pattern starts at bar 1 (tick 192); its notes are 1 beat long
        assert notes["melody"][:, 0] == pytest.approx([bar, bar + 0.5])
        assert notes["percussion"][:, 0] == pytest.approx([0.0, 0.5])
        # the Beat/Bassline clip at bar 2 (2 bars long) loops its 1-bar pattern twice
        assert sorted(notes["bass"][:, 0]) == pytest.approx([4.0, 5.0, 6.0, 7.0])
        assert len(notes["chords"]) == 6
    # the muted pad plays nothing; bar 0 has only the kick
    assert roles_in_span(notes, 0.0, bar) == ["percussion"]
    assert roles_in_span(notes, bar, 2 * bar) == ["melody"]
    assert roles_in_span(notes, 2 * bar, 4 * bar) == ["bass", "chords"]
    # a short project repeated twice by the realbench builder: one pass = 4 bars
    twice = lmms_role_notes(mmp, repeats=2)
    assert len(twice["bass"]) == 8 and max(twice["bass"][:, 0]) == pytest.approx(8.0 + 7.0)


def test_song_grouped_folds_weights_and_majority_fallback():
    from engine.tags.songcv import calibrate_roles, decide, mix_weights, song_folds

    songs = np.repeat([f"song{i}" for i in range(7)], 5)
    folds = song_folds(songs, 3, seed=1)
    for s in set(songs):                                  # no song on both sides
        assert len(set(folds[songs == s])) == 1
    assert set(folds) == {0, 1, 2}
    kind = np.array(["synth"] * 30 + ["full"] * 10)
    w = mix_weights(kind, 0.5)                            # generated rows: half the weight
    assert w[kind == "synth"].sum() == pytest.approx(w[kind == "full"].sum())
    # a label the scores cannot separate falls back to always on; a separable one does not
    rng = np.random.default_rng(0)
    y_common = (rng.random(200) < 0.9).astype(int)
    y_rare = (rng.random(200) < 0.3).astype(int)
    proba = np.column_stack([rng.random(200), 0.2 + 0.6 * y_rare])
    th = calibrate_roles(np.column_stack([y_common, y_rare]), proba, ["a", "b"],
                         TrainConfig())
    assert th["a"] == 0.0 and 0.2 < th["b"] <= 0.8
    P = decide(np.array([[0.0, 0.1]]), ["a", "b"], {"a": 0.5, "b": 0.5})
    assert P.tolist() == [[0, 1]]                         # at least one tag: the likeliest


@pytest.mark.slow
def test_shipped_roles_model_on_held_out_generated_loops(tmp_path):
    """The default model (trained on seed-1 loops) on loops from another seed."""
    from engine.tags.classify import DEFAULT_ROLES_MODEL, classify_files
    from engine.tags.model import _f1
    from engine.tags.roles import ROLES, make_synth_role_loops, read_roles_csv

    if not DEFAULT_ROLES_MODEL.is_file():
        pytest.skip("default roles model not built")
    csv = make_synth_role_loops(tmp_path / "loops", n=60, seed=77)
    truth = read_roles_csv(csv)
    df, failures = classify_files(sorted(truth), cache_dir=tmp_path / "cache", n_jobs=1)
    assert not failures and len(df) == 60
    pred = [set(s.split(",")) for s in df["predicted_tags"]]
    Y = np.array([[r in truth[f] for r in ROLES] for f in df["file"]], int)
    P = np.array([[r in p for r in ROLES] for p in pred], int)
    f1 = [_f1(Y[:, j], P[:, j]) for j in range(len(ROLES))]
    assert np.mean(f1) >= 0.85, dict(zip(ROLES, np.round(f1, 3)))


# --------------------------------------------------------------------------- CLI end to end

def test_cli_train_tags_contact_and_combined_classify(tmp_path, truth_loops):
    from engine.cli import main

    loops, _ = truth_loops
    folder = tmp_path / "loops"
    folder.mkdir()
    names = ["funky house", "funky techno", "house jazz", "techno"]
    rows = []
    for i, (y, t) in enumerate(loops[:24]):
        p = folder / f"{names[i % 4]} {i:02d}.wav"
        sf.write(p, y, SR)
        rows.append({"file": str(p), "contact_tags": "lap_e1_pos" if i % 2 else "lap_e1_neg",
                     "contact_bin": f"cm_bin_{i % 3}"})
    labels = tmp_path / "contact_map_labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    cache = str(tmp_path / "cache")
    common = ["--n_estimators", "100", "--min_tag_count", "3", "--jobs", "1", "--quiet",
              "--cache_dir", cache]
    assert main(["train-tags", "--folder", str(folder), "--label_source", "filename",
                 "--model_out", str(tmp_path / "m.joblib"), "--report_out",
                 str(tmp_path / "r.json"), "--dataset_out", str(tmp_path / "d.csv")]
                + common) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["label_source"] == "filename"
    assert set(rep["classes"]) == {"funk", "house", "jazz", "techno"}
    for key in ("macro_f1_calibrated", "micro_f1_calibrated", "macro_f1_default"):
        assert key in rep["test_metrics"]
    ds = pd.read_csv(tmp_path / "d.csv")
    assert list(ds.columns[:2]) == ["file", "tags"]
    assert main(["train-contact", "--labels_csv", str(labels), "--model_out",
                 str(tmp_path / "c.joblib"), "--report_out", str(tmp_path / "cr.json"),
                 "--dataset_out", str(tmp_path / "cd.csv")] + common) == 0
    out = tmp_path / "pred.csv"
    assert main(["classify", "--model", str(tmp_path / "m.joblib"), "--contact_model",
                 str(tmp_path / "c.joblib"), "--folder", str(folder), "--out", str(out),
                 "--jobs", "1", "--quiet", "--cache_dir", cache]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == 24
    for col in ("file", "predicted_tags", "prob_funk", "prob_house", "predicted_contact_tags",
                "prob_contact_lap_e1_pos", "prob_contact_cm_bin_0"):
        assert col in pred.columns
    assert pred["predicted_tags"].str.len().min() > 0      # argmax fallback: never empty
    cmp_dir = tmp_path / "cmp"
    assert main(["compare-label-sources", "--folder", str(folder), "--out_dir", str(cmp_dir)]
                + common) == 0
    board = pd.read_csv(cmp_dir / "label_source_comparison.csv")
    assert set(board["label_source"]) <= {"filename", "audio", "hybrid"}
    assert "test_macro_f1_calibrated" in board.columns
    js = json.loads((cmp_dir / "label_source_comparison.json").read_text())
    assert js["leaderboard"]["best"] == board["label_source"].iloc[0]
    for src in ("filename", "audio", "hybrid"):
        assert js[src]["status"] in ("ok", "empty_dataset")


def test_classify_reports_bad_files(tmp_path):
    from engine.tags.classify import classify_files
    from engine.tags.model import TrainConfig, train_multilabel

    good = tmp_path / "a.wav"
    sf.write(good, 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR * 2) / SR), SR)
    bad = tmp_path / "b.wav"
    bad.write_bytes(b"not audio")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((30, 3)), columns=["rms_mean", "zcr_mean", "tempo_est"])
    X.insert(0, "file", [f"f{i}" for i in range(30)])
    tags = [["x"] if i % 2 else ["y"] for i in range(30)]
    res = train_multilabel(X, tags, label_source="filename",
                           cfg=TrainConfig(n_estimators=100, min_tag_count=2, n_jobs=1))
    df, failures = classify_files([good, bad], res.bundle, cache_dir=tmp_path / "c", n_jobs=1)
    assert list(df["file"]) == [str(good)]
    assert failures and "b.wav" in failures[0][1]
