"""Neighbour aspects: weights change the ranking, a stretched copy is found first, order-free."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from engine.aspects import (ASPECT_NEIGHBORS_CSV, ASPECT_NPZ, ASPECTS, aspect_query,
                            load_aspect_graph, run_aspects, tempo_similarity)
from engine.config import AspectWeights
from engine.synth import synth_loop

FULL = ("drums", "bass", "chords")
#: name -> (pattern, bpm, key, instruments, seed)
LOOPS = {
    "query": ("four_on_floor", 120.0, "A minor", FULL, 1),
    "same_groove_other_sound": ("four_on_floor", 120.0, None, ("drums",), 7),
    "other_groove_same_sound": ("breakbeat", 120.0, "A minor", FULL, 1),
    "halftime_d": ("halftime", 100.0, "D major", FULL, 3),
    "break_fs": ("breakbeat", 132.0, "F# major", ("drums", "bass"), 4),
    "waltzish": ("halftime", 90.0, None, ("drums",), 5),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import librosa

    d = tmp_path_factory.mktemp("aspect loops é")
    for name, (pat, bpm, key, inst, seed) in LOOPS.items():
        t = synth_loop(pat, bpm, bars=2, key=key, instruments=inst, seed=seed)
        sf.write(d / f"{name}.wav", t.audio, t.sr)
        if name == "query":
            y = librosa.effects.time_stretch(t.audio[:, 0].astype(np.float32), rate=1.06)
            sf.write(d / "query_stretched_plus6.wav", y, t.sr)
    return d


@pytest.fixture(scope="module")
def graph(folder, tmp_path_factory):
    return run_aspects(folder, cache_dir=tmp_path_factory.mktemp("cache"))


def _rank(graph, weights, query, other):
    q = next(f for f in graph.files if f.endswith(f"/{query}.wav"))
    nn = graph.neighbors(weights, top_k=len(graph.files), query=q)
    names = [f.rsplit("/", 1)[-1][:-4] for f in nn["neighbor_file"]]
    return names.index(other)


def test_weights_change_the_ranking_as_documented(graph):
    rhythm_only = AspectWeights.parse("rhythm=1")
    timbre_only = AspectWeights.parse("timbre")
    assert rhythm_only.as_dict() == {"rhythm": 1.0, "timbre": 0.0, "harmony": 0.0, "tempo": 0.0}
    a = "same_groove_other_sound"
    b = "other_groove_same_sound"
    assert _rank(graph, rhythm_only, "query", a) < _rank(graph, rhythm_only, "query", b)
    assert _rank(graph, timbre_only, "query", b) < _rank(graph, timbre_only, "query", a)
    assert _rank(graph, "harmony=1", "query", b) < _rank(graph, "harmony=1", "query", a)
    # overall is the weighted mean of the aspect columns
    nn = graph.neighbors({"rhythm": 2, "timbre": 1}, top_k=3)
    assert np.allclose(nn["overall"], (2 * nn["rhythm"] + nn["timbre"]) / 3)
    assert set(ASPECTS) <= set(nn.columns)
    for a in ASPECTS:
        assert nn[a].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown aspect"):
        AspectWeights.parse("groove=1")
    with pytest.raises(ValueError, match="positive"):
        AspectWeights.parse("rhythm=0")


def test_stretched_copy_is_found_first_with_hints_back_to_the_original_tempo(folder, tmp_path):
    # the query's stretched copy among loops of other songs (the fixture's two "twins"
    # share the query's song: same sound and key, or same groove and tempo)
    files = [f for f in sorted(folder.glob("*.wav")) if not f.stem.startswith(("same_", "other_"))]
    graph = run_aspects(files, cache_dir=tmp_path / "cache")
    res = aspect_query(graph, "query.wav", None, top_k=3)
    first = res.iloc[0]
    assert first["neighbor_file"].endswith("query_stretched_plus6.wav")
    assert first["query_bpm_est"] == pytest.approx(120.0, rel=0.01)
    assert first["neighbor_bpm_est"] == pytest.approx(127.2, rel=0.015)
    assert first["neighbor_target_bpm"] == pytest.approx(120.0, rel=0.01)
    assert first["recommended_pitch_fader_pct"] == pytest.approx(-5.66, abs=0.8)
    # the DTW path's stretch is coarser (frame steps, subsequence slack) but points the same way
    assert -8.0 < first["neighbor_pitch_fader_pct_from_stretch"] < -1.0
    assert bool(first["stretch_agrees_with_bpm"])
    assert first["cdj_pitch_range"] == "±6%"
    # and from the copy back to the original: +6 %
    back = aspect_query(graph, "query_stretched_plus6", None, top_k=1).iloc[0]
    assert back["neighbor_file"].endswith("/query.wav")
    assert back["neighbor_target_bpm"] == pytest.approx(127.2, rel=0.015)
    assert back["recommended_pitch_fader_pct"] == pytest.approx(6.0, abs=0.8)
    assert 1.0 < back["neighbor_pitch_fader_pct_from_stretch"] < 8.5
    # the rhythm aspect alone finds it first too
    r = aspect_query(graph, "query.wav", "rhythm=1", top_k=1).iloc[0]
    assert r["neighbor_file"].endswith("query_stretched_plus6.wav")


def test_results_do_not_depend_on_file_order(folder, graph, tmp_path):
    files = sorted(folder.glob("*.wav"))
    rng = np.random.default_rng(3)
    shuffled = [files[i] for i in rng.permutation(len(files))]
    g2 = run_aspects(shuffled, cache_dir=tmp_path / "cache2")
    for w in (None, "rhythm=1", "timbre=1,harmony=0.5"):
        a = graph.neighbors(w, 4).sort_values(["file", "neighbor_rank"]).reset_index(drop=True)
        b = g2.neighbors(w, 4).sort_values(["file", "neighbor_rank"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)


def test_tempo_similarity_is_half_double_aware():
    s = tempo_similarity([120, 120, 120, 120, np.nan], [120, 60, 240, 127.2, 120])
    assert s[0] == pytest.approx(1.0) and s[1] == pytest.approx(1.0) and s[2] == pytest.approx(1.0)
    assert 0.5 < s[3] < 0.7 and s[4] == 0.5


def test_contact_map_cli_writes_aspect_files_and_query_reweights(folder, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "cm"
    rc = main(["contact-map", "--folder", str(folder), "--out_dir", str(out), "--quiet",
               "--cache_dir", str(tmp_path / "cache"), "--no_heatmaps", "--jobs", "1",
               "--top_k_neighbors", "3"])
    assert rc == 0
    nn = pd.read_csv(out / ASPECT_NEIGHBORS_CSV)
    assert list(nn.columns[:8]) == ["file", "neighbor_rank", "neighbor_file", "overall",
                                    "rhythm", "timbre", "harmony", "tempo"]
    seed_nn = pd.read_csv(out / "contact_nearest_neighbors.csv")
    assert list(seed_nn.columns[:6]) == ["file", "neighbor_rank", "neighbor_file", "similarity",
                                         "distance", "stretch_ratio_neighbor_over_file"]
    g = load_aspect_graph(out)
    assert g.n == len(LOOPS) + 1 and (out / ASPECT_NPZ).is_file()
    capsys.readouterr()
    rc = main(["query", "--nn_csv", str(out / "contact_nearest_neighbors.csv"),
               "--query", "query.wav", "--top_k", "2", "--aspects", "timbre=1,rhythm=0.5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "aspect weights: rhythm=0.5, timbre=1, harmony=0, tempo=0" in text
    assert main(["query", "--nn_csv", str(out / "contact_nearest_neighbors.csv"),
                 "--query", "query.wav", "--aspects", "groove=1"]) == 2
    assert "unknown aspect" in capsys.readouterr().err
