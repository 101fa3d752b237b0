"""Key detection, Camelot / Open Key codes and harmonic compatibility.

Accuracy is measured on engine.synth tracks in all 24 keys with several
tempos and instrumentations, scored exact and with the MIREX weighted score
(mir_eval's rules: exact 1, fifth above 0.5, relative 0.3, parallel 0.2).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.key import (MIN_TONAL_SHARE, NO_CLEAR_KEY, PROFILES, Chroma, KeyCompat, camelot_code, estimate_key,
                        key_compatibility, key_from_camelot, key_of_audio, open_key_code,
                        parse_camelot, segment_keys, track_chroma, track_key)
from engine.synth import PITCH_CLASSES, key_name, synth_track

SR = 22050

#: (bpm, timbre, instruments) cycled over the 24 keys, two per key.
CONFIGS = (
    (96.0, "pad", ("drums", "bass", "chords")),
    (128.0, "organ", ("chords",)),
    (150.0, "pluck", ("bass", "chords")),
    (172.0, "pad", ("drums", "chords")),
    (118.0, "pluck", ("drums", "chords")),       # quiet decaying chords under loud drums
    (138.0, "organ", ("bass", "chords")),
)


def mirex_score(true_tonic, true_mode, est_tonic, est_mode) -> tuple[str, float]:
    """MIREX / mir_eval weighted key score and the error class."""
    if est_tonic is None:
        return "none", 0.0
    if (est_tonic, est_mode) == (true_tonic, true_mode):
        return "exact", 1.0
    if est_mode == true_mode and (est_tonic - true_tonic) % 12 == 7:
        return "fifth", 0.5
    if true_mode == "major" and est_mode == "minor" and (est_tonic - true_tonic) % 12 == 9:
        return "relative", 0.3
    if true_mode == "minor" and est_mode == "major" and (est_tonic - true_tonic) % 12 == 3:
        return "relative", 0.3
    if est_tonic == true_tonic and est_mode != true_mode:
        return "parallel", 0.2
    return "other", 0.0


def _mono(track) -> np.ndarray:
    return track.audio[:, 0] if track.audio.ndim == 2 else track.audio


@pytest.fixture(scope="module")
def key_set():
    """48 short mono tracks: every key twice, different tempo and instruments."""
    items = []
    i = 0
    for mode in ("major", "minor"):
        for tonic in range(12):
            for rep in range(2):
                bpm, timbre, inst = CONFIGS[i % len(CONFIGS)]
                tr = synth_track(bpm, n_bars=8, section_bars=4, key=(tonic, mode), timbre=timbre,
                                 instruments=inst, sr=SR, stereo=False, seed=i)
                items.append((tonic, mode, bpm, timbre, inst, _mono(tr)))
                i += 1
    return items


# --------------------------------------------------------------------------- accuracy

def test_accuracy_all_24_keys(key_set):
    counts: dict[str, int] = {}
    scores = []
    misses = []
    for tonic, mode, bpm, timbre, inst, y in key_set:
        est = key_of_audio(y, SR)
        kind, s = mirex_score(tonic, mode, est.tonic, est.mode)
        counts[kind] = counts.get(kind, 0) + 1
        scores.append(s)
        if kind != "exact":
            misses.append(f"{key_name(tonic, mode)} {bpm:g} {timbre} {'+'.join(inst)} -> {est.key}")
    n = len(scores)
    exact = counts.get("exact", 0) / n
    weighted = float(np.mean(scores))
    report = f"n={n} exact={exact:.3f} weighted={weighted:.3f} classes={counts} misses={misses}"
    print(report)
    assert exact >= 0.85, report
    assert weighted >= 0.90, report


def test_track_chroma_default_hop_matches_truth(key_set):
    # the lead's path: chroma at hop 512 once per track, key from it
    for tonic, mode, _bpm, _timbre, _inst, y in key_set[::5]:
        ch = track_chroma(y, SR)
        est = track_key(ch)
        assert (est.tonic, est.mode) == (tonic, mode), est
        assert est.key == key_name(tonic, mode)
        assert est.camelot == camelot_code(tonic, mode)
        assert 0.5 <= est.confidence <= 1.0


@pytest.mark.parametrize("bpm,pattern", [(96.0, "four_on_floor"), (124.0, "breakbeat"),
                                         (140.0, "halftime"), (174.0, "electro")])
def test_drum_only_tracks_have_no_clear_key(bpm, pattern):
    tr = synth_track(bpm, n_bars=8, key=None, instruments=("drums",), patterns=(pattern,),
                     sr=SR, stereo=False, seed=int(bpm))
    est = key_of_audio(_mono(tr), SR)
    assert est.key == NO_CLEAR_KEY
    assert est.tonic is None and est.mode is None
    assert est.camelot is None and est.open_key is None
    assert est.confidence == 0.0
    assert not est.is_clear
    assert est.tonal_share is not None and est.tonal_share < MIN_TONAL_SHARE


def test_stereo_44k_input_gives_same_key():
    tr = synth_track(124.0, n_bars=8, key="D minor", sr=44100, stereo=True, seed=5)
    est = key_of_audio(tr.audio, 44100)          # (n, 2): averaged to mono
    assert est.key == "D minor"
    assert est.camelot == "7A" and est.open_key == "12m"


@pytest.mark.parametrize("cents", [35.0, -30.0, -31.77])   # -31.77 = A tuned to 432 Hz
def test_tuning_correction(cents):
    import soxr

    tr = synth_track(120.0, n_bars=8, key="C# minor", timbre="pluck", sr=SR, stereo=False, seed=7)
    y = _mono(tr)
    # play the track 2^(cents/1200) faster: every pitch moves by `cents`
    shifted = soxr.resample(y, SR * 2 ** (cents / 1200.0), SR).astype(np.float32)
    ch = track_chroma(shifted, SR)
    assert abs(ch.tuning_cents - cents) < 5.0, ch.tuning_cents
    est = track_key(ch)
    assert est.key == "C# minor", est


# --------------------------------------------------------------------------- chroma

def test_chroma_shape_times_and_values():
    tr = synth_track(130.0, n_bars=4, key="G major", sr=SR, stereo=False, seed=2)
    y = _mono(tr)
    ch = track_chroma(y, SR, hop_length=512)
    assert isinstance(ch, Chroma)
    n = 1 + y.size // 512
    assert ch.values.shape == (12, n) and ch.values.dtype == np.float32
    assert ch.times.shape == (n,)
    assert ch.frame_rate == pytest.approx(SR / 512)
    assert np.allclose(np.diff(ch.times), 512 / SR)
    assert np.all(np.isfinite(ch.values)) and ch.values.min() >= 0
    assert ch.tonality.shape == (n,) and 0 <= ch.tonality.min() and ch.tonality.max() <= 1
    assert abs(ch.tuning_cents) < 3
    # G major's pitch classes dominate the average
    mean = ch.values.mean(axis=1)
    top = set(np.argsort(mean)[::-1][:3].tolist())
    assert top <= {7, 11, 2, 0, 4, 9, 6}          # G major scale


def test_chroma_progress_and_bad_input():
    calls = []
    y = np.zeros(SR, np.float32)
    ch = track_chroma(y, SR, progress=lambda d, t, m: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] == ch.n_frames
    assert estimate_key(ch.values, tonal_share=ch.tonal_share()).key == NO_CLEAR_KEY
    with pytest.raises(ValueError):
        track_chroma(np.zeros((10, 2)), SR)


def test_short_input_does_not_crash():
    tr = synth_track(120.0, n_bars=1, key="A minor", sr=SR, stereo=False, lead_in_beats=0,
                     lead_in_silence=0.0, tail_seconds=0.0)
    ch = track_chroma(_mono(tr)[: SR // 4], SR)       # 0.25 s, shorter than the window
    assert ch.values.shape[0] == 12 and ch.n_frames >= 1


# --------------------------------------------------------------------------- segments

@pytest.fixture(scope="module")
def drums_then_music():
    """8 bars of drums only, then 8 bars in B minor (drums, bass, chords), at 120 BPM."""
    drums = synth_track(120.0, n_bars=8, key=None, instruments=("drums",), sr=SR, stereo=False,
                        lead_in_beats=0, lead_in_silence=0.0, tail_seconds=0.0, seed=3)
    music = synth_track(120.0, n_bars=8, key="B minor", sr=SR, stereo=False, lead_in_beats=0,
                        lead_in_silence=0.0, tail_seconds=0.0, seed=4)
    y = np.concatenate([_mono(drums), _mono(music)])
    return track_chroma(y, SR), 2.0               # chroma, bar length in seconds


def test_segment_keys_per_loop(drums_then_music):
    ch, bar = drums_then_music
    starts = [0.0, 4 * bar, 8 * bar, 12 * bar]
    ends = [s + 4 * bar for s in starts]
    keys = segment_keys(ch, starts, ends)
    assert len(keys) == 4
    assert [k.key for k in keys[:2]] == [NO_CLEAR_KEY, NO_CLEAR_KEY]
    assert [k.key for k in keys[2:]] == ["B minor", "B minor"]
    assert all(k.camelot == "10A" for k in keys[2:])
    assert keys[3].confidence > 0.5


def test_segment_keys_edge_cases(drums_then_music):
    ch, bar = drums_then_music
    out = segment_keys(ch, [1000.0], [1010.0])        # past the end
    assert out[0].key == NO_CLEAR_KEY
    assert segment_keys(ch, [], []) == []
    with pytest.raises(ValueError):
        segment_keys(ch, [0.0, 1.0], [2.0])
    # a prior from the whole track keeps a loop's own "no clear key" verdict
    k = segment_keys(ch, [0.0], [4 * bar], track_weight=0.5)[0]
    assert k.key == NO_CLEAR_KEY
    k = segment_keys(ch, [8 * bar], [10 * bar], track_weight=0.5)[0]
    assert k.key == "B minor"


# --------------------------------------------------------------------------- estimate_key

def _triad_chroma(root: int, minor: bool = False) -> np.ndarray:
    v = np.full(12, 0.05)
    for iv in (0, 3 if minor else 4, 7):
        v[(root + iv) % 12] = 1.0
    return v


def test_estimate_key_vector_and_matrix():
    # I-IV-V in D major as three chord frames
    frames = np.stack([_triad_chroma(2), _triad_chroma(7), _triad_chroma(9)], axis=1)
    est = estimate_key(frames)
    assert est.key == "D major" and est.camelot == "10B" and est.open_key == "3d"
    assert est.runner_up is not None and est.margin > 0
    single = estimate_key(frames.mean(axis=1))
    assert single.key == est.key
    assert est.tonal_share is None


def test_estimate_key_refuses_flat_or_atonal():
    assert estimate_key(np.ones(12)).key == NO_CLEAR_KEY
    assert estimate_key(np.zeros(12)).key == NO_CLEAR_KEY
    assert estimate_key(np.zeros((12, 0))).key == NO_CLEAR_KEY
    # a convincing chroma is still refused when it carries almost no tonal energy
    assert estimate_key(_triad_chroma(0), tonal_share=0.01).key == NO_CLEAR_KEY
    # chromatic cluster: nothing fits a key profile
    v = np.zeros(12)
    v[[0, 1, 2, 3, 6, 9]] = 1.0
    assert estimate_key(v).key == NO_CLEAR_KEY


def test_estimate_key_validates_input():
    with pytest.raises(ValueError):
        estimate_key(np.ones((11, 4)))
    with pytest.raises(ValueError):
        estimate_key(np.ones(7))
    with pytest.raises(ValueError):
        estimate_key(np.full(12, np.nan))
    with pytest.raises(ValueError):
        estimate_key(_triad_chroma(0), profile="nope")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_finds_a_clear_progression(profile):
    # i-iv-V-i in E minor with the harmonic-minor leading tone
    frames = np.stack([_triad_chroma(4, True), _triad_chroma(9, True), _triad_chroma(11),
                       _triad_chroma(4, True)], axis=1)
    assert estimate_key(frames, profile=profile).key == "E minor"


# --------------------------------------------------------------------------- codes

#: Reference Camelot wheel (as printed by Mixed In Key), written out by hand.
CAMELOT_TABLE = {
    "1A": "G# minor", "1B": "B major", "2A": "D# minor", "2B": "F# major",
    "3A": "A# minor", "3B": "C# major", "4A": "F minor", "4B": "G# major",
    "5A": "C minor", "5B": "D# major", "6A": "G minor", "6B": "A# major",
    "7A": "D minor", "7B": "F major", "8A": "A minor", "8B": "C major",
    "9A": "E minor", "9B": "G major", "10A": "B minor", "10B": "D major",
    "11A": "F# minor", "11B": "A major", "12A": "C# minor", "12B": "E major",
}
#: Open Key: C major = 1d, A minor = 1m, +1 per fifth.
OPEN_KEY_TABLE = {
    "C major": "1d", "A minor": "1m", "G major": "2d", "E minor": "2m", "D major": "3d",
    "B minor": "3m", "A major": "4d", "F# minor": "4m", "E major": "5d", "C# minor": "5m",
    "B major": "6d", "G# minor": "6m", "F# major": "7d", "D# minor": "7m", "C# major": "8d",
    "A# minor": "8m", "G# major": "9d", "F minor": "9m", "D# major": "10d", "C minor": "10m",
    "A# major": "11d", "G minor": "11m", "F major": "12d", "D minor": "12m",
}


def _parse(name: str) -> tuple[int, str]:
    tonic, mode = name.split()
    return PITCH_CLASSES.index(tonic), mode


def test_camelot_table_all_24():
    assert len(CAMELOT_TABLE) == 24
    for code, name in CAMELOT_TABLE.items():
        tonic, mode = _parse(name)
        assert camelot_code(tonic, mode) == code, name
        assert key_from_camelot(code) == (tonic, mode)
    assert camelot_code(9, "minor") == "8A"
    assert camelot_code(0, "major") == "8B"
    assert camelot_code(6, "minor") == "11A"
    assert camelot_code(4, "major") == "12B"
    assert camelot_code(None, None) is None
    assert camelot_code(21, "minor") == "8A"       # tonic taken mod 12
    with pytest.raises(ValueError):
        camelot_code(0, "dorian")


def test_open_key_table_all_24():
    assert len(OPEN_KEY_TABLE) == 24
    for name, code in OPEN_KEY_TABLE.items():
        assert open_key_code(*_parse(name)) == code, name
    assert open_key_code(None, "major") is None


def test_parse_camelot():
    assert parse_camelot("8A") == (8, "A")
    assert parse_camelot(" 12b ") == (12, "B")
    assert parse_camelot("01B") == (1, "B")
    for bad in ("13A", "0B", "8C", "A8", "", "8", "8AB"):
        with pytest.raises(ValueError):
            parse_camelot(bad)


@pytest.mark.parametrize("a,b,compatible,relation", [
    ("8A", "8A", True, "same key"),
    ("8A", "9A", True, "+1 (dominant)"),
    ("8A", "7A", True, "-1 (subdominant)"),
    ("12A", "1A", True, "+1 (dominant)"),        # wheel wraps 12 -> 1
    ("1B", "12B", True, "-1 (subdominant)"),
    ("8A", "8B", True, "relative major/minor"),
    ("11B", "11A", True, "relative major/minor"),
    ("8A", "10A", False, "clash"),
    ("8A", "9B", False, "clash"),
    ("3B", "9B", False, "clash"),
    ("8A", None, False, "unknown"),
    ("", "8A", False, "unknown"),
    (float("nan"), "8A", False, "unknown"),
    (None, None, False, "unknown"),
])
def test_key_compatibility(a, b, compatible, relation):
    res = key_compatibility(a, b)
    assert isinstance(res, KeyCompat)
    assert (res.compatible, res.relation) == (compatible, relation)


def test_key_compatibility_agrees_with_music_theory():
    # +1 on the wheel is the dominant (a fifth up) in both modes
    for tonic in range(12):
        for mode in ("major", "minor"):
            here = camelot_code(tonic, mode)
            assert key_compatibility(here, camelot_code(tonic + 7, mode)).relation == "+1 (dominant)"
            assert key_compatibility(here, camelot_code(tonic + 5, mode)).relation == \
                "-1 (subdominant)"
            rel = (tonic + 9) % 12 if mode == "major" else (tonic + 3) % 12
            other = "minor" if mode == "major" else "major"
            assert key_compatibility(here, camelot_code(rel, other)).relation == \
                "relative major/minor"
            assert key_compatibility(here, camelot_code(tonic + 1, mode)).relation == "clash"
    with pytest.raises(ValueError):
        key_compatibility("8A", "Am")


def test_key_estimate_as_dict():
    est = estimate_key(_triad_chroma(9, True))
    d = est.as_dict()
    assert d["key"] == "A minor" and d["camelot"] == "8A" and d["open_key"] == "1m"
    assert not math.isnan(d["correlation"])


# --------------------------------------------------------------------------- CLI

def test_cli_key(tmp_path, capsys):
    from engine.cli import main

    tonal = synth_track(124.0, n_bars=8, key="A minor", sr=SR, stereo=True, seed=11)
    drums = synth_track(124.0, n_bars=8, key=None, instruments=("drums",), sr=SR, seed=12)
    p1 = tonal.write(tmp_path / "loops" / "am.wav")
    p2 = drums.write(tmp_path / "loops" / "drums.flac")
    out_csv = tmp_path / "keys.csv"
    rc = main(["key", "--input", str(p1), "--input", str(p2), "--out_csv", str(out_csv)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "A minor" in text and "8A" in text and "1m" in text
    assert NO_CLEAR_KEY in text
    import pandas as pd

    df = pd.read_csv(out_csv)
    assert list(df["camelot"].fillna("")) == ["8A", ""]

    rc = main(["key", "--folder", str(tmp_path / "loops")])
    text = capsys.readouterr().out
    assert rc == 0 and "am.wav" in text and "drums.flac" in text


def test_cli_key_reports_bad_files(tmp_path, capsys):
    from engine.cli import main

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    rc = main(["key", "--input", str(bad)])
    text = capsys.readouterr().out
    assert rc == 2 and "broken.wav" in text and "error" in text
    rc = main(["key"])
    assert rc == 2


# --------------------------------------------------------------------------- trap progressions

#: Progressions that fool a total-chroma profile match (issue 17): the
#: dominant chord sounds as often as the tonic, natural minor shares its
#: notes with the relative major, a mixolydian loop's notes are those of
#: the major key a fourth above, two-chord vamps leave most of the scale out.
#: Labels follow the MIREX convention: tonic + quality of the tonic triad.
TRAPS = (
    ("V-heavy major I-V-vi-IV", ("I", "V", "vi", "IV"), "major"),
    ("V-heavy major I-V-IV-V", ("I", "V", "IV", "V"), "major"),
    ("ii-V-I", ("ii", "V", "I", "I"), "major"),
    ("natural minor i-VI-III-VII", ("i", "bVI", "bIII", "bVII"), "minor"),
    ("mixolydian I-bVII-IV-I", ("I", "bVII", "IV", "I"), "major"),
    ("vamp I-IV", ("I", "IV"), "major"),
    ("vamp i-bVII", ("i", "bVII"), "minor"),
)


@pytest.fixture(scope="module")
def trap_set():
    """Each trap in three keys, with and without bass and drums (21 tracks), with their bar lines."""
    items = []
    for name, progression, mode in TRAPS:
        for j, (tonic, inst, timbre) in enumerate(((2, ("drums", "bass", "chords"), "pluck"),
                                                   (8, ("bass", "chords"), "organ"),
                                                   (11, ("drums", "chords"), "pad"))):
            tr = synth_track(104.0 + 12 * j, n_bars=8, key=(tonic, mode), timbre=timbre,
                             instruments=inst, progression=progression, sr=SR, stereo=False,
                             seed=j)
            items.append((name, tonic, mode, inst, _mono(tr), tr.truth.downbeats))
    return items


def test_trap_progressions(trap_set):
    """The evidence model names the tonic where a profile match reads V or the relative key."""
    shipped, profile_only, misses = [], [], []
    for name, tonic, mode, inst, y, _downbeats in trap_set:
        ch = track_chroma(y, SR, hop_length=2048)
        est = track_key(ch)
        kind, s = mirex_score(tonic, mode, est.tonic, est.mode)
        shipped.append((kind, s))
        if kind != "exact":
            misses.append(f"{name} {key_name(tonic, mode)} {'+'.join(inst)} -> {est.key}")
        if name.startswith("V-heavy"):         # the case: never the dominant's key
            assert est.key == key_name(tonic, mode), (name, inst, est)
        old = estimate_key(ch.values, tonal_share=ch.tonal_share(), weights={"profile": 1.0})
        profile_only.append(mirex_score(tonic, mode, old.tonic, old.mode)[0] == "exact")
    exact = np.mean([k == "exact" for k, _ in shipped])
    weighted = np.mean([s for _, s in shipped])
    report = f"exact={exact:.3f} weighted={weighted:.3f} profile-only exact={np.mean(profile_only):.3f} misses={misses}"
    print(report)
    # natural minor without a cadence and modal loops stay partly ambiguous (relative /
    # parallel readings); the profile match alone gets under half of these right
    assert exact >= 0.80 and weighted >= 0.85, report
    assert exact > np.mean(profile_only) + 0.25, report


def test_scale_fit_counts_absent_notes():
    from engine.key import scale_fit

    # C major scale with G and D loud (a V-heavy mix): F present, F# absent
    v = np.array([1.0, 0, 0.6, 0, 0.8, 0.5, 0, 1.6, 0, 0.7, 0, 0.9])
    fit = scale_fit(v)
    assert fit[0] > fit[7]                        # C major fits better than G major
    assert fit[0] == pytest.approx(0.0)           # nothing outside C major
    assert fit[12 + 9] == pytest.approx(0.0)      # ... nor outside A minor (relative)


def test_synth_progression_option():
    from engine.synth import parse_numeral

    assert parse_numeral("bVII") == (10, 4) and parse_numeral("vi") == (9, 3)
    with pytest.raises(ValueError):
        parse_numeral("Vx")
    with pytest.raises(ValueError):
        synth_track(120.0, n_bars=2, key="C major", progression=(), sr=SR, stereo=False)


def test_segment_keys_use_the_track_prior():
    # a 1-bar loop holding only the V chord of a V-heavy C major track
    tr = synth_track(120.0, n_bars=8, key="C major", progression=("I", "V", "vi", "IV"),
                     instruments=("bass", "chords"), sr=SR, stereo=False, seed=3)
    y = _mono(tr)
    ch = track_chroma(y, SR)
    bar = 2.0
    t0 = tr.truth.downbeats[1]                   # the V bar
    alone, with_track = (segment_keys(ch, [t0], [t0 + bar], track_weight=w)[0] for w in (0.0, 0.5))
    assert with_track.key == "C major", with_track
    assert alone.key != "C major" or alone.confidence <= with_track.confidence


# --------------------------------------------------------------------------- bar grid

def _bars_of(tr):
    from engine.key import _activity, bar_chroma

    ch = track_chroma(_mono(tr), SR, hop_length=2048)
    return ch, bar_chroma(ch.values, ch.times, tr.truth.downbeats, bass=ch.bass,
                          activity=_activity(ch))


@pytest.mark.parametrize("tonic", (2, 9))
def test_bar_evidence_hears_resolution(tonic):
    """Bar one, phrase starts and V->I over bar lines point at the tonic of generated progressions."""
    from engine.key import bar_evidence

    # V-heavy major: the tonic chord on bar one of every 4-bar phrase
    tr = synth_track(112.0, n_bars=8, key=(tonic, "major"), progression=("I", "V", "vi", "IV"),
                     instruments=("bass", "chords"), sr=SR, stereo=False, seed=tonic)
    _ch, bars = _bars_of(tr)
    assert bars.n_bars == 8 and bars.phrase.sum() == 2
    ev = bar_evidence(bars)
    assert int(np.argmax(ev["phrase_one"])) == tonic
    # (bar one over ALL bars of I-V-vi-IV weighs I and vi alike, so with the
    # harmonic discount it may name the relative minor: only phrase starts decide)
    assert int(np.argmax(ev["bar_one"])) % 12 in (tonic, (tonic + 9) % 12)
    # ii-V-I: the only dominant that resolves over a bar line is the key's own
    tr = synth_track(112.0, n_bars=8, key=(tonic, "major"), progression=("ii", "V", "I", "I"),
                     instruments=("chords",), sr=SR, stereo=False, seed=tonic)
    ev = bar_evidence(_bars_of(tr)[1])
    assert int(np.argmax(ev["cadence"][:12])) == tonic
    # natural minor: the phrase opens on i, not on the relative major's I
    tr = synth_track(112.0, n_bars=8, key=(tonic, "minor"), progression=("i", "bVI", "bIII", "bVII"),
                     instruments=("bass", "chords"), sr=SR, stereo=False, seed=tonic)
    ev = bar_evidence(_bars_of(tr)[1])
    assert int(np.argmax(ev["phrase_one"])) == 12 + tonic


def test_bar_chroma_needs_two_bars_of_music():
    from engine.key import bar_chroma

    tr = synth_track(120.0, n_bars=4, key="C major", instruments=("chords",), sr=SR, stereo=False)
    ch = track_chroma(_mono(tr), SR, hop_length=2048)
    assert bar_chroma(ch.values, ch.times, tr.truth.downbeats[:1]) is None
    assert bar_chroma(ch.values, ch.times, []) is None
    drums = synth_track(120.0, n_bars=4, key=None, instruments=("drums",), sr=SR, stereo=False)
    dch = track_chroma(_mono(drums), SR, hop_length=2048)
    from engine.key import _activity
    assert bar_chroma(dch.values, dch.times, drums.truth.downbeats, activity=_activity(dch)) is None
    # drum-only stays "no clear key" with a grid too
    assert track_key(dch, downbeats=drums.truth.downbeats).key == NO_CLEAR_KEY


def test_trap_progressions_with_bar_grid(trap_set):
    """With the bar lines known (as in extract) the traps are read at least as well."""
    shipped, misses = [], []
    for name, tonic, mode, inst, y, downbeats in trap_set:
        ch = track_chroma(y, SR, hop_length=2048)
        est = track_key(ch, downbeats=downbeats)
        kind, s = mirex_score(tonic, mode, est.tonic, est.mode)
        shipped.append((kind, s))
        if kind != "exact":
            misses.append(f"{name} {key_name(tonic, mode)} {'+'.join(inst)} -> {est.key}")
        if name.startswith("V-heavy"):
            assert est.key == key_name(tonic, mode), (name, inst, est)
    exact = np.mean([k == "exact" for k, _ in shipped])
    weighted = np.mean([s for _, s in shipped])
    report = f"exact={exact:.3f} weighted={weighted:.3f} misses={misses}"
    print(report)
    assert exact >= 0.80 and weighted >= 0.85, report


def test_segment_keys_and_cli_with_bar_grid(tmp_path, capsys):
    from engine.cli import main

    tr = synth_track(120.0, n_bars=8, key="E major", progression=("I", "V", "vi", "IV"),
                     instruments=("drums", "bass", "chords"), sr=SR, stereo=False, seed=5)
    y = _mono(tr)
    ch = track_chroma(y, SR)
    db = tr.truth.downbeats
    ests = segment_keys(ch, db[::2], db[::2] + 4.0, track_weight=0.5, downbeats=db)
    assert [e.key for e in ests] == ["E major"] * 4
    assert key_of_audio(y, SR, downbeats=db).key == "E major"
    path = tmp_path / "e.wav"
    tr.write(path)
    assert main(["key", "--input", str(path), "--bars"]) == 0
    assert "E major" in capsys.readouterr().out


def test_harmonic_discount_removes_the_twelfth_of_a_low_note():
    """The harmonic discount (on by default) takes a C's 3rd partial (a G) out of the chroma."""
    from engine.key import HARMONIC_DISCOUNT

    t = np.arange(int(3 * SR)) / SR
    f0 = 440.0 * 2 ** ((48 - 69) / 12)                # C3, 130.8 Hz
    y = sum(0.6 ** (h - 1) * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 5)).astype(np.float32)
    plain = track_chroma(y, SR, harmonic_discount=0.0).values.mean(axis=1)
    clean = track_chroma(y, SR, harmonic_discount=0.5).values.mean(axis=1)
    assert plain[7] > 0.5 * plain[0]                   # G (3rd partial) is strong in a plain chroma
    assert clean[7] < 0.5 * plain[7]                   # ... and much weaker once discounted
    assert clean[0] == pytest.approx(plain[0], rel=0.2)
    np.testing.assert_array_equal(track_chroma(y, SR).values,
                                  track_chroma(y, SR, harmonic_discount=HARMONIC_DISCOUNT).values)
