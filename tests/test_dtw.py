"""Compiled subsequence DTW against librosa.sequence.dtw(subseq=True)."""
from __future__ import annotations

import librosa
import numpy as np
import pytest

from engine.dtw import all_pairs, dtw_pairs, pack_sequences, subseq_dtw


def _librosa(a, b, metric="cosine", band=None):
    kw = {"global_constraints": band is not None, "band_rad": band if band is not None else 0.25}
    D, wp = librosa.sequence.dtw(X=a.T, Y=b.T, subseq=True, metric=metric, **kw)
    # the cost at the path's true end (wp[0]); D is in the query-on-rows orientation
    return float(D[-1].min()), wp


def _assert_same(r, a, b, metric="cosine", band=None):
    cost, wp = _librosa(a, b, metric, band)
    assert r.cost == pytest.approx(cost, abs=1e-6, rel=1e-9)
    assert r.distance == pytest.approx(cost / len(wp), abs=1e-6)
    assert r.path_len == len(wp)
    assert (r.a_start, r.b_start) == tuple(int(x) for x in wp[-1])   # path start
    assert (r.a_end, r.b_end) == tuple(int(x) for x in wp[0])        # path end
    span_a = wp[:, 0].max() - wp[:, 0].min() + 1
    span_b = wp[:, 1].max() - wp[:, 1].min() + 1
    assert r.stretch_b_over_a == pytest.approx(span_b / span_a)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_random_pairs_match_librosa_both_orientations(metric):
    rng = np.random.default_rng(1)
    n_longer_first = n_shorter_first = 0
    for _ in range(40):
        na, nb = (int(x) for x in rng.integers(3, 90, 2))
        a = rng.normal(size=(na, 4))
        b = rng.normal(size=(nb, 4))
        r = subseq_dtw(a, b, metric)
        _assert_same(r, a, b, metric)
        # query = the shorter one, whichever comes first
        assert r.a_is_query == (na <= nb)
        n_longer_first += na > nb
        n_shorter_first += na < nb
    assert n_longer_first > 5 and n_shorter_first > 5


def test_ties_on_quantised_frames_follow_librosa_step_order():
    rng = np.random.default_rng(2)
    for _ in range(60):
        na, nb = (int(x) for x in rng.integers(2, 40, 2))
        a = rng.integers(-1, 2, size=(na, 4)).astype(float)
        b = rng.integers(-1, 2, size=(nb, 4)).astype(float)
        a[np.all(a == 0, axis=1)] = 1.0
        b[np.all(b == 0, axis=1)] = 1.0
        for metric in ("cosine", "euclidean"):
            _assert_same(subseq_dtw(a, b, metric), a, b, metric)


@pytest.mark.parametrize("band", [0.1, 0.25, 0.5])
def test_sakoe_chiba_band_matches_librosa_global_constraints(band):
    rng = np.random.default_rng(3)
    for _ in range(25):
        na, nb = (int(x) for x in rng.integers(8, 70, 2))
        a = rng.normal(size=(na, 4))
        b = rng.normal(size=(nb, 4))
        _assert_same(subseq_dtw(a, b, "cosine", band), a, b, "cosine", band)


def test_longer_first_file_matching_late_does_not_crash_and_reads_true_end():
    """Seed bug 19.1: file i longer, its match starting beyond file j's length."""
    rng = np.random.default_rng(4)
    long = rng.normal(size=(120, 4))
    short = long[70:100] + 0.01 * rng.normal(size=(30, 4))
    r = subseq_dtw(long, short)
    assert not r.a_is_query
    assert r.a_start >= short.shape[0]          # match starts after the short one's length
    assert abs(r.a_start - 70) <= 1 and abs(r.a_end - 99) <= 1
    _assert_same(r, long, short)
    # the true end-of-path cost is not the first cell's cost (the seed's 1e-9 "distances")
    first_cell = 1.0 - float(np.dot(short[0], long[r.a_start])
                             / np.linalg.norm(short[0]) / np.linalg.norm(long[r.a_start]))
    assert r.cost > first_cell + 1e-6


def test_batch_equals_single_calls_and_orientation_is_consistent():
    rng = np.random.default_rng(5)
    seqs = [rng.normal(size=(int(rng.integers(10, 60)), 4)) for _ in range(7)]
    packed = pack_sequences(seqs)
    pairs = all_pairs(len(seqs))
    res = dtw_pairs(packed, pairs)
    seen = []
    res_rev = dtw_pairs(packed, pairs[:, ::-1], progress=lambda d, t, m: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] == len(pairs)
    for p, (i, j) in enumerate(pairs):
        one = subseq_dtw(seqs[i], seqs[j])
        assert res.distance[p] == pytest.approx(one.distance, abs=1e-12)
        assert res.path_len[p] == one.path_len
        assert res.stretch_b_over_a[p] == pytest.approx(one.stretch_b_over_a)
        if len(seqs[i]) != len(seqs[j]):          # same query either way round
            assert res_rev.distance[p] == pytest.approx(res.distance[p], abs=1e-12)
            assert res_rev.stretch_b_over_a[p] == pytest.approx(1.0 / res.stretch_b_over_a[p])
        ov = min(1.0, one.path_len / max(len(seqs[i]), len(seqs[j])))
        assert res.overlap[p] == pytest.approx(ov)


def test_identical_sequences_have_zero_distance_and_unit_stretch():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(50, 4))
    r = subseq_dtw(a, a.copy())
    assert r.distance == pytest.approx(0.0, abs=1e-12)
    assert r.stretch_b_over_a == pytest.approx(1.0)
    assert r.path_len == 50


def test_zero_frames_are_finite_under_cosine():
    a = np.zeros((10, 4))
    b = np.ones((12, 4))
    r = subseq_dtw(a, b)
    assert np.isfinite(r.cost) and r.distance == pytest.approx(1.0)


def test_input_errors():
    with pytest.raises(ValueError, match="metric"):
        pack_sequences([np.ones((3, 4))], metric="manhattan")
    with pytest.raises(ValueError, match="2-D"):
        pack_sequences([np.ones(5)])
    with pytest.raises(ValueError, match="channel"):
        pack_sequences([np.ones((3, 4)), np.ones((3, 3))])
    with pytest.raises(ValueError, match="out of range"):
        dtw_pairs(pack_sequences([np.ones((3, 4)), np.ones((4, 4))]), [(0, 2)])
