"""rekordbox XML and Traktor NML from an extract run: schema, positions, paths, failures."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pandas as pd
import pytest

from engine.djsoftware import (DJExportError, file_uri, nml_location, path_from_uri,
                               rekordbox_tonality, traktor_key_value, write_dj_exports)
from engine.synth import synth_track


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from engine.cli import main

    base = tmp_path_factory.mktemp("dj")
    src = base / "my tracks é"
    src.mkdir()
    synth_track(124.0, n_bars=16, key="A minor", seed=1).write(src / "track one ü.wav")
    synth_track(100.0, n_bars=12, key="F# major", seed=2, lead_in_beats=2).write(
        src / "second track.wav")
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = base / "run out"
    rc = main(["extract", "--folder", str(src), "--out_dir", str(out), "--top_k", "3",
               "--bars", "2,4", "--jobs", "1", "--cache_dir", str(base / "cache"),
               "--dj_export", "rekordbox,traktor", "--dj_hot_cues", "2"])
    assert rc == 1                      # one file failed, the others were exported
    return out


def _loops(run_dir):
    df = pd.read_csv(run_dir / "all_loops_metadata.csv")
    return {(str(s), int(r)): (float(a), float(b))
            for s, r, a, b in zip(df["source_file"], df["rank"], df["start_time"], df["end_time"])}


def test_rekordbox_xml_matches_the_documented_schema_and_the_csv(run_dir):
    root = ET.parse(run_dir / "rekordbox.xml").getroot()
    assert root.tag == "DJ_PLAYLISTS" and root.get("Version") == "1.0.0"
    assert root.find("PRODUCT").get("Name")
    coll = root.find("COLLECTION")
    tracks = coll.findall("TRACK")
    assert int(coll.get("Entries")) == len(tracks) == 2           # broken.wav: no entry
    loops = _loops(run_dir)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    grids = {f["file"]: f["grid"] for f in summary["files_ok"]}
    n_marks = 0
    for tr in tracks:
        for attr in ("TrackID", "Name", "Kind", "Size", "TotalTime", "AverageBpm", "SampleRate",
                     "Location", "Tonality"):
            assert tr.get(attr) is not None, attr
        path = path_from_uri(tr.get("Location"))
        assert Path(path).is_file() and "broken" not in path
        assert tr.get("Location").startswith("file://localhost/")
        assert " " not in tr.get("Location") and "%20" in tr.get("Location")
        g = grids[path]
        assert int(tr.get("SampleRate")) == g["sample_rate"] == 44100
        assert int(tr.get("TotalTime")) == round(g["duration"])
        assert float(tr.get("AverageBpm")) == pytest.approx(g["bpm"], abs=0.006)
        tempo = tr.findall("TEMPO")
        assert len(tempo) >= 1
        t0 = tempo[0]
        assert float(t0.get("Inizio")) == pytest.approx(g["first_downbeat"], abs=1e-3)
        assert t0.get("Metro") == "4/4" and t0.get("Battito") == "1"
        assert float(t0.get("Bpm")) == pytest.approx(g["bpm"], abs=0.006)
        marks = tr.findall("POSITION_MARK")
        memory = [m for m in marks if m.get("Num") == "-1"]
        hot = [m for m in marks if m.get("Num") != "-1"]
        assert [m.get("Num") for m in hot] == ["0", "1"]
        assert all(m.get("Type") == "4" for m in marks)
        mine = {k: v for k, v in loops.items() if k[0] == path}
        assert len(memory) == len(mine) == 3
        for rank, m in enumerate(memory, start=1):
            a, b = mine[(path, rank)]
            assert abs(float(m.get("Start")) - a) <= 1e-3
            assert abs(float(m.get("End")) - b) <= 1e-3
            n_marks += 1
    assert n_marks == 6
    tonal = {path_from_uri(t.get("Location")).rsplit("/", 1)[-1]: t.get("Tonality")
             for t in tracks}
    assert tonal == {"track one ü.wav": "Am", "second track.wav": "F#"}
    node = root.find("PLAYLISTS/NODE")
    assert node.get("Name") == "ROOT" and node.get("Type") == "0"
    pl = node.find("NODE")
    assert pl.get("Type") == "1" and pl.get("Name") == "LoopLab run out"
    assert [t.get("Key") for t in pl.findall("TRACK")] == [t.get("TrackID") for t in tracks]


def test_rekordbox_xml_reads_with_pyrekordbox(run_dir):
    rb = pytest.importorskip("pyrekordbox.rbxml")
    xml = rb.RekordboxXml(str(run_dir / "rekordbox.xml"))
    assert xml.num_tracks == 2
    loops = _loops(run_dir)
    for tr in xml.get_tracks():
        path = str(tr["Location"])
        if not Path(path).is_absolute():   # pyrekordbox drops "file://localhost/" whole
            path = "/" + path
        assert Path(path).is_file()
        marks = [m for m in tr.marks if int(m.Num) == -1]
        for rank, m in enumerate(marks, start=1):
            a, b = loops[(path, rank)]
            assert abs(float(m.Start) - a) <= 1e-3 and abs(float(m.End) - b) <= 1e-3
        assert len(tr.tempos) >= 1


def test_traktor_nml_positions_in_ms(run_dir):
    root = ET.parse(run_dir / "collection.nml").getroot()
    assert root.tag == "NML" and root.get("VERSION")
    entries = root.findall("COLLECTION/ENTRY")
    assert int(root.find("COLLECTION").get("ENTRIES")) == len(entries) == 2
    loops = _loops(run_dir)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    grids = {f["file"]: f["grid"] for f in summary["files_ok"]}
    keys = []
    for e in entries:
        loc = e.find("LOCATION")
        d = loc.get("DIR")
        assert d.startswith("/:") and d.endswith("/:")
        path = "/" + "/".join(x for x in d.split("/:") if x) + "/" + loc.get("FILE")
        assert Path(path).is_file()
        keys.append(loc.get("VOLUME") + d + loc.get("FILE"))
        g = grids[path]
        assert float(e.find("TEMPO").get("BPM")) == pytest.approx(g["bpm"], abs=1e-5)
        cues = e.findall("CUE_V2")
        grid = [c for c in cues if c.get("TYPE") == "4"]
        assert len(grid) == 1
        assert float(grid[0].get("START")) == pytest.approx(g["first_downbeat"] * 1000, abs=1e-3)
        lp = [c for c in cues if c.get("TYPE") == "5"]
        assert len(lp) == 3
        for rank, c in enumerate(lp, start=1):
            a, b = loops[(path, rank)]
            assert abs(float(c.get("START")) - a * 1000) <= 1.0
            assert abs(float(c.get("LEN")) - (b - a) * 1000) <= 1.0
        assert [c.get("HOTCUE") for c in lp] == ["1", "2", "-1"]
    prim = [p.get("KEY") for p in root.findall("PLAYLISTS/NODE/SUBNODES/NODE/PLAYLIST/ENTRY/"
                                               "PRIMARYKEY")]
    assert prim == keys


def test_dj_export_command_from_a_run_folder(run_dir, tmp_path, capsys):
    from engine.cli import main

    before = (run_dir / "rekordbox.xml").read_bytes()
    (run_dir / "rekordbox.xml").unlink()
    (run_dir / "collection.nml").unlink()
    assert main(["dj-export", "--run_dir", str(run_dir), "--hot_cues", "2"]) == 0
    assert (run_dir / "rekordbox.xml").read_bytes() == before
    assert (run_dir / "collection.nml").is_file()
    assert "rekordbox.xml" in capsys.readouterr().out
    with pytest.raises(DJExportError, match="unknown DJ export format"):
        write_dj_exports(run_dir, "serato")
    with pytest.raises(DJExportError, match="run_summary.json"):
        write_dj_exports(tmp_path, "rekordbox")
    from engine.djsoftware import dj_export_bytes

    assert dj_export_bytes(run_dir, "rekordbox", hot_cues=2) == before
    assert dj_export_bytes(run_dir, "traktor").startswith(b"<?xml")
    # MP3 offset only moves MP3 sources (these are WAVs)
    out = write_dj_exports(run_dir, "rekordbox", hot_cues=2, mp3_offset_ms=26.0)
    assert Path(out["rekordbox"]).read_bytes() == before


def test_paths_and_keys():
    p = "/music/Sets 2024/Café del Mar – ñ.wav"
    uri = file_uri(p)
    assert uri == "file://localhost/music/Sets%202024/Caf%C3%A9%20del%20Mar%20%E2%80%93%20%C3%B1.wav"
    assert path_from_uri(uri) == p
    assert file_uri(r"C:\Users\dj\My Music\a b.mp3") == "file://localhost/C:/Users/dj/My%20Music/a%20b.mp3"
    assert path_from_uri("file://localhost/C:/Users/dj/My%20Music/a%20b.mp3") == \
        "C:/Users/dj/My Music/a b.mp3"
    assert nml_location(p) == ("", "/:music/:Sets 2024/:", "Café del Mar – ñ.wav")
    assert nml_location(r"C:\Users\dj\a.mp3") == ("C:", "/:Users/:dj/:", "a.mp3")
    assert rekordbox_tonality("A minor") == "Am" and rekordbox_tonality("no clear key") == ""
    assert traktor_key_value("C minor") == 12 and traktor_key_value("B major") == 11
    assert traktor_key_value(None) is None


def test_mp3_offset_moves_only_mp3_sources():
    from engine.djsoftware import DJLoop, DJTrack, rekordbox_xml, traktor_nml

    tracks = [DJTrack(path=f"/m/a.{ext}", duration=60.0, sample_rate=44100, bpm=120.0,
                      first_downbeat=0.5, key="C major", format=fmt,
                      loops=[DJLoop(2.5, 10.5, 1, 4, "LoopLab #1 4 bars")])
              for ext, fmt in (("mp3", "MPEG"), ("wav", "WAV"))]
    root = ET.fromstring(rekordbox_xml(tracks, "t", mp3_offset_ms=26.0))
    mp3, wav = root.findall("COLLECTION/TRACK")
    assert mp3.get("Kind") == "MP3 File" and wav.get("Kind") == "WAV File"
    assert mp3.find("TEMPO").get("Inizio") == "0.526" and wav.find("TEMPO").get("Inizio") == "0.500"
    assert mp3.find("POSITION_MARK").get("Start") == "2.526"
    assert wav.find("POSITION_MARK").get("End") == "10.500"
    nml = ET.fromstring(traktor_nml(tracks, "t", mp3_offset_ms=26.0))
    a, b = nml.findall("COLLECTION/ENTRY")
    assert float(a.find("CUE_V2[@TYPE='5']").get("START")) == pytest.approx(2526.0)
    assert float(b.find("CUE_V2[@TYPE='5']").get("START")) == pytest.approx(2500.0)
    assert float(b.find("CUE_V2[@TYPE='5']").get("LEN")) == pytest.approx(8000.0)
    assert b.find("MUSICAL_KEY").get("VALUE") == "0"
