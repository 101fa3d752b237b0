"""Export stage: seamless, unclipped, loudness-normalised loops with safe names.

All audio comes from engine.synth, whose true downbeats give sample-exact bar
boundaries to cut at.
"""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pyloudnorm as pyln
import pytest
import soundfile as sf

from engine.audio import probe
from engine.config import ExportConfig
from engine.errors import AudioError
from engine.export import (SEED_COLUMNS, export_loop, export_track_loops, make_zip,
                           render_loop, snap_to_zero_crossing, write_aggregate_csv)
from engine.loudness import measure_loudness
from engine.naming import loop_filename, sanitize_name
from engine.loudness import _gated_loudness
from engine.synth import synth_track

BPM = 124.0


def _downbeat_samples(track) -> np.ndarray:
    return np.round(track.truth.downbeats * track.sr).astype(np.int64)


def _source(tmp_path_factory, name, *, sr=44100, stereo=True, n_bars=8, level_db=-6.0,
            subtype="PCM_24", scale_to_peak=None, instruments=("drums", "bass", "chords"),
            seed=3):
    track = synth_track(BPM, n_bars=n_bars, sr=sr, stereo=stereo, seed=seed,
                        level_db=level_db, instruments=instruments)
    if scale_to_peak is not None:
        track.audio = (track.audio / np.max(np.abs(track.audio)) * scale_to_peak).astype(np.float32)
    path = track.write(tmp_path_factory.mktemp("src") / name, subtype=subtype)
    return track, probe(path)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """8 bars, 124 BPM, stereo 44.1 kHz, 24-bit."""
    return _source(tmp_path_factory, "source 124.wav")


def _read(path):
    y, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return y, sr


def _seam_and_within(y: np.ndarray, sr: int) -> tuple[float, float]:
    """Largest jump across the seam when played twice, and within the edges."""
    twice = np.concatenate([y, y])
    n = y.shape[0]
    seam = float(np.max(np.abs(twice[n] - twice[n - 1])))
    w = int(0.05 * sr)
    head = np.max(np.abs(np.diff(y[:w], axis=0)))
    tail = np.max(np.abs(np.diff(y[-w:], axis=0)))
    return seam, float(max(head, tail))


def _bad_cut(track, db):
    """A cut mid-note: start on a loud sample, end where the signal has the other sign."""
    x = track.audio[:, 0].astype(np.float64)
    bar = int(db[1] - db[0])
    lo = int(db[2] + 0.1 * track.sr)
    start = lo + int(np.argmax(np.abs(x[lo:lo + int(0.2 * track.sr)])))
    sign = np.sign(x[start])
    end0 = start + 2 * bar
    end = end0 - 60 + int(np.argmin(sign * x[end0 - 60:end0 + 60])) + 1   # last sample = end-1
    return start, end


# --------------------------------------------------------------------------- seams

@pytest.mark.parametrize("seam_mode", ["fade", "crossfade"])
def test_loops_repeat_without_click(src, tmp_path, seam_mode):
    track, info = src
    db = _downbeat_samples(track)
    cfg = ExportConfig(seam_mode=seam_mode)
    cuts = [(db[1], db[2]), (db[2], db[4]), (db[3], db[7]), (db[4], db[6]),
            _bad_cut(track, db)]
    for k, (a, b) in enumerate(cuts):
        loop = export_loop(info, a, b, tmp_path / f"loop{k}.wav", cfg)
        y, sr = _read(loop.path)
        assert sr == info.sr and y.shape[1] == 2
        seam, within = _seam_and_within(y, sr)
        assert seam <= within, (k, seam, within)
        assert abs(loop.start_sample - a) <= round(0.003 * sr)
        assert abs(loop.end_sample - b) <= round(0.003 * sr)


def test_bad_cut_clicks_without_seam_handling(src, tmp_path):
    """The seam check is able to fail: a raw mid-note cut does click."""
    track, info = src
    a, b = _bad_cut(track, _downbeat_samples(track))
    raw = ExportConfig(fade_ms=0.0, snap_mode="none")
    loop = export_loop(info, a, b, tmp_path / "raw.wav", raw)
    assert loop.seam == "none" and (loop.start_sample, loop.end_sample) == (a, b)
    seam, within = _seam_and_within(*_read(loop.path))
    assert seam > within
    fixed = export_loop(info, a, b, tmp_path / "fixed.wav", ExportConfig())
    seam, within = _seam_and_within(*_read(fixed.path))
    assert seam <= within


def test_fade_mode_starts_and_ends_at_zero(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    loop = export_loop(info, db[1], db[3], tmp_path / "f.wav", ExportConfig(fade_ms=5))
    y, _ = _read(loop.path)
    assert np.all(y[0] == 0) and np.all(y[-1] == 0)
    assert loop.seam == "fade"


def test_crossfade_keeps_downbeat_and_flows_like_the_source(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    cfg = ExportConfig(seam_mode="crossfade", snap_mode="none", crossfade_ms=10)
    loop = export_loop(info, db[2], db[4], tmp_path / "x.wav", cfg)
    assert loop.seam == "crossfade"
    y, _ = _read(loop.path)
    gain = 10 ** (loop.gain_db / 20)
    x, _ = _read(info.path)                           # the source as stored (24-bit)
    q = 2.0 ** -22                                     # PCM_24 rounding, with margin
    # the start is the untouched downbeat: no fade-in eats the transient
    np.testing.assert_allclose(y[:2000], x[db[2]:db[2] + 2000] * gain, atol=q)
    # the last sample is the one that preceded the start in the track
    np.testing.assert_allclose(y[-1], x[db[2] - 1] * gain, atol=q)
    assert y.shape[0] == db[4] - db[2]                 # exact bar length


def test_crossfade_falls_back_to_fade_at_track_start(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    loop = export_loop(info, 0, db[1], tmp_path / "s.wav", ExportConfig(seam_mode="crossfade"))
    assert loop.seam == "fade"


def test_joint_snap_keeps_exact_length(src, tmp_path):
    track, info = src
    a, b = _bad_cut(track, _downbeat_samples(track))
    loop = export_loop(info, a, b, tmp_path / "j.wav", ExportConfig(snap_mode="joint"))
    assert loop.end_sample - loop.start_sample == b - a
    assert loop.frames == b - a


def test_snap_to_zero_crossing():
    sr = 44100
    t = np.arange(sr // 10) / sr
    x = np.sin(2 * np.pi * 100 * t)                    # crossings every 220.5 samples
    crossings = np.flatnonzero(np.signbit(x[:-1]) != np.signbit(x[1:])) + 1
    idx = 1000
    k = snap_to_zero_crossing(np.stack([x, x], 1), idx, 132)
    assert k == crossings[np.argmin(np.abs(crossings - idx))]
    assert np.sign(x[k - 1]) != np.sign(x[k])
    assert snap_to_zero_crossing(x, idx, 0) == idx
    assert snap_to_zero_crossing(x, 10, 5) == 5       # no crossing: lowest level (nearest 0)
    # no crossing in reach (DC offset): the quietest position wins
    dc = 1.0 + 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)   # minimum at 200
    assert snap_to_zero_crossing(dc, 190, 20) == 200


# --------------------------------------------------------------------------- loudness

def _file_lufs(path):
    y, sr = _read(path)
    return pyln.Meter(sr).integrated_loudness(y), float(np.max(np.abs(y)))


@pytest.mark.parametrize("kind", ["hot", "quiet", "normal"])
def test_ceiling_holds_and_loudness_hits_target(tmp_path_factory, tmp_path, kind):
    if kind == "hot":        # peaks at exactly 0 dBFS (float file: nothing clipped on input)
        track, info = _source(tmp_path_factory, "hot.wav", subtype="FLOAT", scale_to_peak=1.0)
    elif kind == "quiet":    # about -44 LUFS: needs ~+30 dB
        track, info = _source(tmp_path_factory, "quiet.wav", level_db=-29.0)
    else:
        track, info = _source(tmp_path_factory, "normal.wav")
    db = _downbeat_samples(track)
    ceiling_lin = 10 ** (-1 / 20)
    for target in (-14.0, -23.0):
        cfg = ExportConfig(target_lufs=target)
        for k, (a, b) in enumerate([(db[1], db[2]), (db[2], db[6]), _bad_cut(track, db)]):
            loop = export_loop(info, a, b, tmp_path / f"{kind}{target}_{k}.wav", cfg)
            lufs, peak = _file_lufs(loop.path)
            assert peak < 1.0
            assert peak <= ceiling_lin * (1 + 1e-5)
            assert loop.peak_dbfs <= -1.0 + 1e-4
            if loop.ceiling_limited:
                assert lufs < target + 0.5
                assert peak == pytest.approx(ceiling_lin, rel=1e-3)   # gain used up to the ceiling
            else:
                assert abs(lufs - target) <= 0.5, (kind, target, k, lufs)
            assert loop.loudness_lufs == pytest.approx(lufs, abs=0.05)
        if target == -23.0:
            assert not loop.ceiling_limited          # drums at -23 LUFS leave headroom


def test_quiet_source_gets_its_gain(tmp_path_factory, tmp_path):
    track, info = _source(tmp_path_factory, "quiet2.wav", level_db=-29.0)
    db = _downbeat_samples(track)
    loop = export_loop(info, db[2], db[4], tmp_path / "q.wav", ExportConfig(target_lufs=-23))
    assert loop.gain_db > 20 and not loop.ceiling_limited
    assert _file_lufs(loop.path)[0] == pytest.approx(-23, abs=0.5)


def test_low_ceiling_is_respected_and_reported(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    loop = export_loop(info, db[1], db[3], tmp_path / "c.wav", ExportConfig(ceiling_dbfs=-6.0))
    _, peak = _file_lufs(loop.path)
    assert loop.ceiling_limited
    assert 20 * np.log10(peak) <= -6.0 + 1e-4


def test_silent_loop_is_not_pumped_up(tmp_path):
    sr = 44100
    x = np.random.default_rng(0).standard_normal((sr * 2, 2)).astype(np.float32) * 1e-6
    r = render_loop(x, sr, ExportConfig())
    assert r.gain_db <= 40.0
    assert np.max(np.abs(r.audio)) < 1e-3


def test_measure_loudness_layouts():
    sr = 48000
    rng = np.random.default_rng(1)
    t = np.arange(sr * 2) / sr
    st = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], 1) * 0.3
    st += rng.standard_normal(st.shape) * 0.01
    meter = pyln.Meter(sr)
    assert measure_loudness(st, sr) == pytest.approx(meter.integrated_loudness(st), abs=1e-6)
    # our own gated implementation agrees with pyloudnorm
    assert _gated_loudness(st, sr, np.ones(2)) == pytest.approx(meter.integrated_loudness(st),
                                                                abs=0.01)
    # 5.1: the LFE does not count
    five = np.stack([st[:, 0], st[:, 1], 0.5 * st[:, 0], 0.3 * st[:, 0], 0.3 * st[:, 1]], 1)
    lfe = 0.9 * np.sin(2 * np.pi * 50 * t)
    six = np.insert(five, 3, lfe, axis=1)
    ref5 = meter.integrated_loudness(five)
    assert measure_loudness(six, sr) == pytest.approx(ref5, abs=1e-6)
    # 7.1 (generic path) with empty sides equals the 5.1 value
    eight = np.concatenate([six, np.zeros((six.shape[0], 2))], axis=1)
    assert measure_loudness(eight, sr) == pytest.approx(ref5, abs=0.01)
    # shorter than a 400 ms gating block: measured repeated, still finite
    short = st[: int(0.1 * sr)]
    val = measure_loudness(short, sr)
    assert np.isfinite(val)
    assert val == pytest.approx(meter.integrated_loudness(np.tile(short, (5, 1))), abs=1e-6)
    assert measure_loudness(np.zeros((sr, 2)), sr) == float("-inf")


def test_short_loop_renders(tmp_path):
    sr = 44100
    x = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(0.2 * sr)) / sr)).astype(np.float32)
    r = render_loop(np.stack([x, x], 1), sr, ExportConfig(target_lufs=-14))
    assert np.isfinite(r.loudness_lufs_after)
    assert np.max(np.abs(r.audio)) <= 10 ** (-1 / 20) + 1e-7


# --------------------------------------------------------------------------- formats

def _surround(track):
    x = track.audio
    left, right = x[:, 0], x[:, 1]
    mid = 0.5 * (left + right)
    lfe = np.convolve(mid, np.ones(64) / 64, mode="same")
    return np.stack([left, right, 0.5 * mid, lfe, 0.4 * left, 0.4 * right], 1).astype(np.float32)


@pytest.mark.parametrize("case", ["44k stereo", "48k stereo", "8k mono", "192k float", "5.1"])
def test_layout_and_rate_kept_mp3_preview(tmp_path_factory, tmp_path, case):
    sr = {"44k stereo": 44100, "48k stereo": 48000, "8k mono": 8000, "192k float": 192000,
          "5.1": 44100}[case]
    track = synth_track(BPM, n_bars=3, sr=sr, stereo=case != "8k mono", seed=5)
    subtype = "FLOAT" if case == "192k float" else "PCM_24"
    if case == "5.1":
        track.audio = _surround(track)
    path = track.write(tmp_path_factory.mktemp("fmt") / f"{case}.wav", subtype=subtype)
    info = probe(path)
    channels = track.audio.shape[1]
    assert info.channels == channels and info.sr == sr
    db = _downbeat_samples(track)
    loop = export_loop(info, db[1], db[2], tmp_path / "l.wav", ExportConfig(export_mp3=True))
    meta = sf.info(str(loop.path))
    assert meta.samplerate == sr and meta.channels == channels
    assert meta.subtype == "PCM_24" and meta.format == "WAV"
    assert abs(meta.frames - (db[2] - db[1])) <= 2 * round(0.003 * sr)
    y, _ = _read(loop.path)
    assert np.max(np.abs(y)) < 1.0
    if channels > 1:     # channels really kept, not one channel copied
        assert not np.allclose(y[:, 0], y[:, 1])
    # MP3 preview: readable, legal layout and rate, about the same duration
    assert loop.mp3_path is not None and loop.mp3_path.exists()
    m, msr = sf.read(str(loop.mp3_path), always_2d=True)
    assert msr == loop.mp3_sr and msr in (8000, 11025, 12000, 16000, 22050, 24000, 32000,
                                          44100, 48000)
    assert m.shape[1] == loop.mp3_channels == min(channels, 2)
    assert m.shape[0] / msr == pytest.approx(meta.frames / sr, abs=0.06)
    assert np.max(np.abs(m)) <= 10 ** (-1 / 20) + 1e-6     # the preview obeys the ceiling too
    if case == "192k float":
        assert msr == 48000
    if case == "5.1":   # loudness measured without the LFE
        seg = sf.read(str(info.path), start=loop.start_sample, stop=loop.end_sample)[0]
        no_lfe = np.delete(seg, 3, axis=1)            # L R C Ls Rs: pyloudnorm's order
        assert loop.loudness_lufs_before == pytest.approx(
            pyln.Meter(sr).integrated_loudness(no_lfe), abs=0.5)


def test_hot_mp3_has_no_wraparound(tmp_path_factory, tmp_path):
    track, info = _source(tmp_path_factory, "hot_mp3.wav", subtype="FLOAT", scale_to_peak=1.0)
    db = _downbeat_samples(track)
    loop = export_loop(info, db[1], db[3], tmp_path / "h.wav", ExportConfig(export_mp3=True))
    w, _ = _read(loop.path)
    m, _ = _read(loop.mp3_path)
    n = min(len(w), len(m))
    assert np.max(np.abs(m)) < 1.0
    corr = np.corrcoef(w[:n, 0], m[:n, 0])[0, 1]
    assert corr > 0.95        # same waveform, no sign-flipped wrapped samples


def test_default_subtype_is_24_bit_and_invalid_config_rejected(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    assert sf.info(str(export_loop(info, db[1], db[2], tmp_path / "d.wav").path)).subtype \
        == "PCM_24"
    for bad in (dict(seam_mode="xfade"), dict(snap_mode="x"), dict(fade_ms=-1),
                dict(subtype="MPEG_LAYER_III"), dict(ceiling_dbfs=1.0)):
        with pytest.raises(ValueError):
            export_loop(info, db[1], db[2], tmp_path / "bad.wav", ExportConfig(**bad))
    with pytest.raises(AudioError):
        export_loop(info, info.frames + 10, info.frames + 5000, tmp_path / "out.wav")


# --------------------------------------------------------------------------- names, CSV, ZIP

@pytest.mark.parametrize("text,expected", [
    ("My Track", "My Track"),
    ("Café Ñandú 東京", "Café Ñandú 東京"),
    ("../evil", "evil"),
    ("../../etc/passwd", "etc_passwd"),
    ("AC/DC\\Back", "AC_DC_Back"),
    ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
    ("..", "track"),
    ("", "track"),
    ("  .hidden  ", "hidden"),
    ("tab\tnew\nline\x00nul", "tab new linenul"),
    ("a__b", "a__b"),
    ("bidi\u202egnp.exe", "bidignp.exe"),
    ("CON", "_CON"),
])
def test_sanitize_name(text, expected):
    assert sanitize_name(text) == expected


def test_sanitize_name_nfc_and_length():
    decomposed = "Cafe\u0301"
    assert sanitize_name(decomposed) == "Caf\u00e9"
    long = "東" * 300
    s = sanitize_name(long)
    assert len(s) <= 80 and len(s.encode("utf-8")) <= 180


def test_loop_filename_uses_rank():
    assert loop_filename("My Track", 1, 4, 124.0) == "My Track__01_4bars_124bpm.wav"
    assert loop_filename("../x/y", 12, 2, 123.5, "mp3") == "x_y__12_2bars_123.5bpm.mp3"
    assert loop_filename("a__b_", 3, 1, 90) == "a_b__03_1bars_90bpm.wav"
    assert loop_filename("///", 1, 8, 174) == "track__01_8bars_174bpm.wav"


def _selection(track, db, ranks=(2, 1, 3)):
    rows = []
    for rank, (i, bars) in zip(ranks, [(1, 1), (2, 2), (1, 4)]):
        a, b = int(db[i]), int(db[i + bars])
        rows.append({"rank": rank, "bars": bars, "bpm": BPM, "start_sample": a, "end_sample": b,
                     "start_time": a / track.sr, "end_time": b / track.sr,
                     "score": 1.0 / rank, "key": "A minor", "rms": 0.1 * rank})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("stem", ["Café Ñandú 東京", "../evil", "a/b\\c", 'x<y>:"|?*', "  .dots"])
def test_track_export_names_stay_inside(src, tmp_path, stem):
    track, info = src
    out = tmp_path / "out"
    table = export_track_loops(info, _selection(track, _downbeat_samples(track)), out,
                               ExportConfig(export_mp3=True), track_stem=stem)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parent == out for p in files)
    assert sorted(p.name for p in files) == sorted(
        [*table["file"], *table["mp3_file"], "loops_metadata.csv"])
    for name in table["file"]:
        assert name == sanitize_name(name) and "/" not in name and "\\" not in name
    assert list(table["rank"]) == [1, 2, 3]
    assert list(table["track_id"]) == [stem] * 3


def test_metadata_columns_and_rows(src, tmp_path):
    track, info = src
    db = _downbeat_samples(track)
    seen = []
    table = export_track_loops(info, _selection(track, db), tmp_path,
                               progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (3, 3)
    csv = pd.read_csv(tmp_path / "loops_metadata.csv")
    assert list(csv.columns[:5]) == list(SEED_COLUMNS)
    for col in ("source_file", "rank", "file", "start_sample", "end_sample", "export_start_sample",
                "export_end_sample", "sr", "channels", "gain_db", "loudness_lufs", "peak_dbfs",
                "ceiling_limited", "score", "key", "rms"):
        assert col in csv.columns
    assert len(csv) == 3 == len(table)
    assert list(csv["file"]) == [f"source 124__0{r}_{b}bars_124bpm.wav"
                                 for r, b in zip((1, 2, 3), (2, 1, 4))]
    assert (csv["sr"] == 44100).all() and (csv["channels"] == 2).all()
    assert csv["source_file"].iloc[0] == info.path
    for row in csv.itertuples():
        assert sf.info(str(tmp_path / row.file)).frames == row.export_end_sample - \
            row.export_start_sample


def test_shared_folder_keeps_every_track_and_replaces_stale(tmp_path_factory, tmp_path):
    t1, i1 = _source(tmp_path_factory, "one.wav", n_bars=6, seed=1)
    t2, i2 = _source(tmp_path_factory, "two.wav", n_bars=6, seed=2)
    out = tmp_path / "shared"
    a = export_track_loops(i1, _selection(t1, _downbeat_samples(t1)), out)
    b = export_track_loops(i2, _selection(t2, _downbeat_samples(t2)), out)
    csv = pd.read_csv(out / "loops_metadata.csv")
    assert len(csv) == 6 and set(csv["track_id"]) == {"one", "two"}
    # the same stem from another folder does not overwrite track one's files
    t3, i3 = _source(tmp_path_factory, "one.wav", n_bars=6, seed=4)
    c = export_track_loops(i3, _selection(t3, _downbeat_samples(t3)), out)
    assert not set(c["file"]) & set(a["file"])
    # re-exporting track one with fewer loops removes its stale rows and files
    fewer = _selection(t1, _downbeat_samples(t1)).query("rank <= 1")
    export_track_loops(i1, fewer, out)
    csv = pd.read_csv(out / "loops_metadata.csv")
    assert len(csv) == 1 + 3 + 3
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert wavs == sorted(csv["file"])
    assert set(b["file"]) <= set(wavs)


def test_long_unicode_name_survives_zip(src, tmp_path):
    track, info = src
    stem = "東京🎛" * 60
    table = export_track_loops(info, _selection(track, _downbeat_samples(track)).iloc[:1],
                               tmp_path / "o", track_stem=stem)
    name = table["file"][0]
    assert len(name.encode("utf-8")) < 255 and name.endswith("__02_1bars_124bpm.wav")
    with zipfile.ZipFile(make_zip(tmp_path / "o", tmp_path / "o.zip")) as zf:
        assert name in zf.namelist()


def test_empty_selection_writes_empty_table(src, tmp_path):
    track, info = src
    table = export_track_loops(info, pd.DataFrame(), tmp_path)
    assert table.empty and list(table.columns[:5]) == list(SEED_COLUMNS)
    assert (tmp_path / "loops_metadata.csv").exists()


def test_aggregate_csv_and_zip(tmp_path_factory, tmp_path):
    t1, i1 = _source(tmp_path_factory, "Track A.wav", n_bars=6, seed=1)
    t2, i2 = _source(tmp_path_factory, "Track B.wav", n_bars=6, seed=2)
    run = tmp_path / "run"
    a = export_track_loops(i1, _selection(t1, _downbeat_samples(t1)), run / "Track A")
    b = export_track_loops(i2, _selection(t2, _downbeat_samples(t2)).iloc[:2], run / "Track B")
    agg = write_aggregate_csv([a, run / "Track B"], run / "all_loops_metadata.csv")
    back = pd.read_csv(run / "all_loops_metadata.csv")
    assert len(agg) == len(back) == len(a) + len(b) == 5
    assert list(back.columns[:5]) == list(SEED_COLUMNS)
    assert list(back["track_id"]) == ["Track A"] * 3 + ["Track B"] * 2

    zpath = make_zip(run, run / "run.zip", arcname_root="../../run ✓")
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert "run.zip" not in " ".join(names)
    assert len(names) == 5 + 2 + 1
    for name in names:
        assert not name.startswith("/") and "\\" not in name
        assert ".." not in name.split("/")
        assert name.split("/")[0] == "run ✓"
    assert set(back["folder"]) == {"Track A", "Track B"}
    for row in back.itertuples():
        assert (run / row.folder / row.file).is_file()
    flat = make_zip([run / "Track A" / a["file"][0]], tmp_path / "flat.zip")
    with zipfile.ZipFile(flat) as zf:
        assert zf.namelist() == [a["file"][0]]


# --------------------------------------------------------------------------- atomicity

def test_failed_write_leaves_no_partial_file(src, tmp_path, monkeypatch):
    track, info = src
    db = _downbeat_samples(track)
    real_write = sf.write

    def broken_write(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 3], *args, **kwargs)     # half-written file
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    target = tmp_path / "loop.wav"
    with pytest.raises(OSError):
        export_loop(info, db[1], db[2], target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError):
        export_track_loops(info, _selection(track, db), tmp_path / "t")
    assert [p.name for p in (tmp_path / "t").iterdir()] == []
