"""Contact map on generated loops with known rhythm patterns and tempos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import contact
from engine.contact import (ARTIFACT_NAMES, DTWParams, DTWResult, SequenceParams, SharpenParams,
                            build_contact_map, compute_sequences, pairwise_dtw,
                            quantile_bins, rhythm_features, write_artifacts)
from engine.errors import AnalysisError

PATTERNS = ("four_on_floor", "breakbeat", "halftime", "electro")
#: (bpm, bars) per loop of each pattern: 90-140 BPM, 2-4 bars
TEMPI = ((90.0, 2), (100.0, 3), (110.0, 4), (120.0, 2), (130.0, 3), (140.0, 4))
N = len(PATTERNS) * len(TEMPI)


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    """24 mono drum loops (4 patterns x 6 tempos); path -> truth."""
    from engine.synth import synth_loop

    d = tmp_path_factory.mktemp("contact_loops")
    truth = {}
    for p, pat in enumerate(PATTERNS):
        for t, (bpm, bars) in enumerate(TEMPI):
            tr = synth_loop(pat, bpm, bars=bars, seed=10 * p + t, sr=22050)
            path = d / f"{pat}_{int(bpm)}bpm.wav"
            tr.write(path, subtype="PCM_16")
            truth[str(path)] = {"pattern": pat, "bpm": bpm, "bars": bars}
    return d, truth


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("contact_cache")


@pytest.fixture(scope="module")
def seqset(loops, cache_dir):
    d, truth = loops
    return compute_sequences(sorted(truth), cache_dir=cache_dir)


@pytest.fixture(scope="module")
def dtw(seqset, cache_dir):
    return pairwise_dtw(seqset, DTWParams(mode="exact"), cache_dir=cache_dir)


def _patterns(files, truth):
    return [truth[f]["pattern"] for f in files]


# --------------------------------------------------------------------------- sequences

def test_sequences_share_one_frame_rate_and_are_cropped_not_decimated():
    p = SequenceParams()
    assert p.window_frames == 600                         # min(600 frames, 20 s)
    sr = p.sr
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(30 * sr)).astype(np.float32)     # 30 s
    short = long[: 5 * sr]
    f_long = rhythm_features(long, sr, p)
    f_short = rhythm_features(short, sr, p)
    assert f_long.sequence.shape == (600, 4)
    # 5 s at 43.07 frames/s: the same time scale as the long file (no decimation)
    assert f_short.sequence.shape[0] == int(5 * sr / p.hop_length) + 1
    # the raw onset envelope of the short file is the long one's first frames
    n = f_short.onset_envelope.size - 3
    assert np.allclose(f_short.onset_envelope[:n], f_long.onset_envelope[:n], atol=1e-4)


def test_sequences_and_bpm_per_loop(seqset, loops):
    _, truth = loops
    assert len(seqset) == N and not seqset.failures
    for f, seq, li in zip(seqset.files, seqset.sequences, seqset.info):
        t = truth[f]
        assert seq.shape[1] == 4 and seq.dtype == np.float32
        assert seq.shape[0] == li.n_frames <= 600
        assert li.duration == pytest.approx(t["bars"] * 4 * 60 / t["bpm"], abs=1e-3)
        # loops are whole bars: the loop length fixes the tempo exactly, up to
        # the half/double-time ambiguity every tempo estimate has
        octaves = np.log2(li.bpm / t["bpm"])
        assert abs(octaves - round(octaves)) < 1e-3, (f, li.bpm)
        assert li.bpm_method in ("loop_length", "loop_grid")
        assert li.key is None and li.camelot is None          # drums only: no clear key
    info = seqset.info_frame()
    assert list(info.columns[:6]) == ["file", "bpm", "bpm_method", "key", "camelot",
                                      "key_confidence"]


def test_key_and_camelot_per_loop(loops, tmp_path):
    from engine.synth import synth_loop

    _, truth = loops
    files = []
    for key in ("A minor", "C major"):
        tr = synth_loop("four_on_floor", 120.0, bars=2, key=key, sr=22050, seed=3,
                        instruments=("drums", "bass", "chords"))
        files.append(str(tr.write(tmp_path / f"{key}.wav", subtype="PCM_16")))
    ss = compute_sequences(files + sorted(truth)[:1], use_cache=False)
    assert [i.camelot for i in ss.info] == ["8A", "8B", None]
    assert [i.key for i in ss.info] == ["A minor", "C major", None]


def test_failed_files_are_reported_and_the_rest_continue(loops, tmp_path):
    d, truth = loops
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    good = sorted(truth)[:3]
    ss = compute_sequences(good + [str(bad), str(empty)], use_cache=False)
    assert ss.files == good
    failed = dict(ss.failures)
    assert set(failed) == {str(bad), str(empty)}
    assert all(msg for msg in failed.values())
    with pytest.raises(AnalysisError, match="at least 3 usable"):
        compute_sequences(good[:2] + [str(bad)], use_cache=False)


def test_sequence_cache_hit_returns_same_data(loops, seqset, cache_dir):
    _, truth = loops
    again = compute_sequences(sorted(truth), cache_dir=cache_dir)
    for a, b in zip(seqset.sequences, again.sequences):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------- DTW

def test_pairwise_dtw_matches_single_pair_dtw(seqset, dtw):
    from engine.dtw import subseq_dtw

    assert dtw.mode == "exact" and dtw.n_pairs == N * (N - 1) // 2
    assert np.all(dtw.pa < dtw.pb)
    for p in (0, 7, 50, 119):
        i, j = int(dtw.pa[p]), int(dtw.pb[p])
        r = subseq_dtw(seqset.sequences[i], seqset.sequences[j])
        if seqset.sequences[i].shape[0] != seqset.sequences[j].shape[0]:
            assert dtw.distance[p] == pytest.approx(r.distance, abs=1e-9)
            assert dtw.stretch[p] == pytest.approx(r.stretch_b_over_a)
    # real distances, not the seed's first-cell ~1e-9 values
    assert np.median(dtw.distance) > 0.01


def test_dtw_cache_and_file_order_independence(seqset, dtw, cache_dir):
    again = pairwise_dtw(seqset, DTWParams(mode="exact"), cache_dir=cache_dir)
    assert again.from_cache
    assert np.array_equal(again.distance, dtw.distance)
    perm = np.random.default_rng(3).permutation(len(seqset))
    shuffled = seqset.subset(perm)
    fresh = pairwise_dtw(shuffled, DTWParams(mode="exact"), use_cache=False)
    D0 = dict(zip(zip(np.array(seqset.files)[dtw.pa], np.array(seqset.files)[dtw.pb]),
                  dtw.distance))
    for a, b, d in zip(np.array(shuffled.files)[fresh.pa], np.array(shuffled.files)[fresh.pb],
                       fresh.distance):
        assert D0.get((a, b), D0.get((b, a))) == pytest.approx(d, abs=1e-12)


# --------------------------------------------------------------------------- structure

def test_patterns_form_four_contiguous_blocks_and_top3_share_pattern(dtw, loops):
    _, truth = loops
    cm = build_contact_map(dtw, SharpenParams())
    pats = _patterns(cm.files, truth)
    ordered = [pats[i] for i in cm.order]
    runs = [ordered[0]] + [b for a, b in zip(ordered, ordered[1:]) if a != b]
    assert len(runs) == 4 and set(runs) == set(PATTERNS), ordered
    nn = cm.nearest_neighbors(3)
    for f, g in zip(nn["file"], nn["neighbor_file"]):
        assert truth[f]["pattern"] == truth[g]["pattern"], (f, g)
    # four loosely coupled groups: four small Laplacian eigenvalues, then a gap
    assert cm.eigenvalues[3] < 0.5 * cm.eigenvalues[4]


@pytest.mark.parametrize("mode", ["none", "sinkhorn"])
def test_other_sharpen_modes_recover_patterns_by_spectral_clustering(dtw, loops, mode):
    from sklearn.cluster import SpectralClustering
    from sklearn.metrics import adjusted_rand_score

    _, truth = loops
    cm = build_contact_map(dtw, SharpenParams(sharpen_mode=mode))
    S = cm.matrix("similarity")
    assert np.allclose(S, S.T) and np.allclose(np.diag(S), 1.0)
    assert S.min() >= 0 and S.max() <= 1.0 + 1e-12
    lab = SpectralClustering(4, affinity="precomputed", random_state=0).fit_predict(S)
    assert adjusted_rand_score(_patterns(cm.files, truth), lab) == pytest.approx(1.0)


def test_labels_are_stable_across_runs_and_file_orders(seqset, dtw):
    a = build_contact_map(dtw).labels_frame()
    b = build_contact_map(dtw).labels_frame()
    pd.testing.assert_frame_equal(a, b)
    perm = np.random.default_rng(11).permutation(len(seqset))
    other = build_contact_map(pairwise_dtw(seqset.subset(perm), DTWParams(mode="exact"),
                                           use_cache=False)).labels_frame()
    m = a.merge(other, on="file", suffixes=("", "_perm"))
    assert len(m) == len(a)
    assert (m["contact_bin"] == m["contact_bin_perm"]).all()
    assert (m["contact_tags"] == m["contact_tags_perm"]).all()
    assert np.allclose(m["fiedler_value"], m["fiedler_value_perm"], atol=1e-8)
    # the fixed sign: the largest |Fiedler value| is positive
    f = a["fiedler_value"].to_numpy()
    assert f[np.argmax(np.abs(f))] > 0


def test_tags_follow_the_seed_vocabulary(dtw):
    cm = build_contact_map(dtw, SharpenParams(n_bins=4, n_eigen_tags=3))
    vocab = set()
    for t in cm.tags:
        parts = t.split(",")
        assert parts == sorted(set(parts)) and len(parts) == 4
        vocab.update(parts)
    assert vocab <= {f"cm_bin_{k}" for k in range(4)} | {
        f"lap_e{j}_{s}" for j in (1, 2, 3) for s in ("pos", "neg")}
    assert np.bincount(cm.bins).tolist() == [6, 6, 6, 6]


def test_quantile_bins_equal_the_seed_rule_on_distinct_values():
    rng = np.random.default_rng(0)
    for n in (5, 13, 16, 37):
        v = rng.normal(size=n)
        for nb in (2, 3, 4, 5):
            edges = np.quantile(v, np.arange(1, nb) / nb)
            seed = np.searchsorted(edges, v, side="right")
            assert np.array_equal(quantile_bins(v, nb), seed)


def _toy(dist, overlap=None):
    n = dist.shape[0]
    i, j = np.triu_indices(n, 1)
    o = np.ones(i.size) if overlap is None else overlap[i, j]
    return DTWResult(files=[f"f{k}" for k in range(n)], hashes=[str(k) for k in range(n)],
                     lengths=np.full(n, 100), pa=i, pb=j, distance=dist[i, j], overlap=o,
                     stretch=np.ones(i.size), mode="exact")


def test_disconnected_knn_graph_is_bridged():
    # two tight triples far apart: mutual 2-NN never crosses between them
    pts = np.array([0.0, 0.1, 0.2, 10.0, 10.1, 10.2])
    D = np.abs(pts[:, None] - pts[None, :])
    cm = build_contact_map(_toy(D), SharpenParams(self_tune_k=2))
    assert cm.n_components == 2 and cm.bridges_added == 1
    assert cm.warnings
    assert cm.eigenvalues[1] > 1e-9                       # connected: one zero eigenvalue
    side = cm.fiedler > np.median(cm.fiedler)
    assert set(np.flatnonzero(side)) in ({0, 1, 2}, {3, 4, 5})


def test_union_knn_keeps_more_edges_than_mutual(dtw):
    mutual = build_contact_map(dtw, SharpenParams(mutual_knn=True))
    union = build_contact_map(dtw, SharpenParams(mutual_knn=False))
    assert (union.sim > 0).sum() >= (mutual.sim > 0).sum()
    assert np.all((mutual.sim > 0) <= (union.sim > 0))


def test_shortlist_mode_and_sparse_eigensolver(seqset, loops, monkeypatch):
    _, truth = loops
    res = pairwise_dtw(seqset, DTWParams(mode="shortlist", shortlist_k=5), use_cache=False)
    assert res.mode == "shortlist" and res.n_pairs < N * (N - 1) // 2
    dense = build_contact_map(res)
    monkeypatch.setattr(contact.graph, "DENSE_EIG_MAX", 3)  # force scipy.sparse.linalg.eigsh
    sparse = build_contact_map(res)
    assert np.allclose(dense.eigenvalues[:4], sparse.eigenvalues[:4], atol=1e-6)
    assert abs(np.corrcoef(dense.fiedler, sparse.fiedler)[0, 1]) > 0.999
    nn = sparse.nearest_neighbors(1)
    assert np.mean([truth[f]["pattern"] == truth[g]["pattern"]
                    for f, g in zip(nn["file"], nn["neighbor_file"])]) >= 0.9


def test_embedding_shortlist_finds_same_pattern_neighbours(loops, tmp_path):
    from engine.contact import run_contact_map

    folder, truth = loops
    res = run_contact_map(folder, tmp_path / "emb", dtw_params=DTWParams(mode="shortlist",
                                                                          shortlist_k=6),
                          shortlist_embedding="spectral", estimate_key=False, heatmaps=False,
                          cache_dir=tmp_path / "cache")
    assert res.dtw.mode == "shortlist" and "embedding_seconds" in res.timings
    nn = res.cmap.nearest_neighbors(1)
    assert np.mean([truth[f]["pattern"] == truth[g]["pattern"]
                    for f, g in zip(nn["file"], nn["neighbor_file"])]) >= 0.9


def test_auto_mode_switches_on_size(seqset):
    assert DTWParams(auto_exact_max=30).resolved_mode(N) == "exact"
    assert DTWParams(auto_exact_max=10).resolved_mode(N) == "shortlist"
    with pytest.raises(ValueError):
        DTWParams(mode="fast").resolved_mode(5)


# --------------------------------------------------------------------------- artifacts and CLI

def test_artifacts_have_the_seed_names_and_columns(dtw, seqset, tmp_path):
    cm = build_contact_map(dtw)
    paths = write_artifacts(cm, tmp_path, seqset=seqset, top_k_neighbors=5, top_pairs_limit=20)
    for name in ARTIFACT_NAMES.values():
        assert (tmp_path / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temp files
    sim = pd.read_csv(tmp_path / "contact_similarity_matrix.csv", index_col=0)
    assert list(sim.index) == list(sim.columns) == cm.files
    assert np.allclose(np.diag(sim.to_numpy()), 1.0)
    lab = pd.read_csv(paths["labels_csv"])
    assert list(lab.columns) == ["file", "contact_bin", "contact_tags", "fiedler_value"]
    order = pd.read_csv(paths["order_csv"])
    assert list(order.columns) == ["rank", "file", "index"]
    top = pd.read_csv(paths["top_pairs_csv"])
    assert list(top.columns[:5]) == ["file_i", "file_j", "similarity", "distance",
                                     "stretch_ratio_j_over_i"]
    assert len(top) == 20 and top["similarity"].is_monotonic_decreasing
    nn = pd.read_csv(paths["nearest_neighbors_csv"])
    assert list(nn.columns[:6]) == ["file", "neighbor_rank", "neighbor_file", "similarity",
                                    "distance", "stretch_ratio_neighbor_over_file"]
    assert {"file_bpm", "neighbor_bpm", "file_camelot", "neighbor_camelot"} <= set(nn.columns)
    assert (nn.groupby("file")["neighbor_rank"].apply(list)
            .apply(lambda r: r == [1, 2, 3, 4, 5])).all()
    info = pd.read_csv(tmp_path / "contact_loop_info.csv")
    assert {"file", "bpm", "key", "camelot", "duration"} <= set(info.columns)
    summary = json.loads((tmp_path / "contact_map_summary.json").read_text())
    assert {"n_files", "params", "artifacts", "laplacian_eigenvalues",
            "top_overlaps"} <= set(summary)
    assert {"sr", "max_seconds", "max_frames", "distance_metric", "sharpen_mode", "self_tune_k",
            "mutual_knn", "sinkhorn_iters", "sinkhorn_eps", "n_bins",
            "n_eigen_tags"} <= set(summary["params"])
    assert set(ARTIFACT_NAMES) <= set(summary["artifacts"])
    assert summary["n_files"] == N and len(summary["laplacian_eigenvalues"]) == 10


def test_cli_contact_map_and_errors(loops, tmp_path, cache_dir, capsys):
    from engine.cli import main

    d, _ = loops
    out = tmp_path / "cm"
    rc = main(["contact-map", "--folder", str(d), "--out_dir", str(out), "--quiet",
               "--cache_dir", str(cache_dir), "--top_k_neighbors", "4", "--no_heatmaps"])
    assert rc == 0
    assert (out / "contact_nearest_neighbors.csv").is_file()
    assert f"{N} loops" in capsys.readouterr().out
    assert main(["contact-map", "--folder", str(tmp_path / "nope"), "--out_dir", str(out),
                 "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(Path(d).glob("*.wav"))[:2]:
        (few / f.name).write_bytes(f.read_bytes())
    assert main(["contact-map", "--folder", str(few), "--out_dir", str(out), "--quiet"]) == 2
    assert "at least 3" in capsys.readouterr().err
