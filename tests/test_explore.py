"""engine/explore.py: the library the part-2 pages share (no Streamlit)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from engine import explore
from engine.contact import SharpenParams
from engine.errors import AnalysisError


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("explore")
    files = explore.demo_loops(d / "loops", n=8, seed=5)
    return explore.build_library(files, cache_dir=d / "cache")


def test_sharpening_reuses_the_distances(lib):
    before = explore.dtw_counters()
    n0 = explore.COUNTERS["sharpen"]
    a = explore.sharpen(lib, SharpenParams(self_tune_k=3))
    b = explore.sharpen(lib, SharpenParams(sharpen_mode="sinkhorn", sinkhorn_iters=5))
    assert explore.dtw_counters() == before
    assert explore.COUNTERS["sharpen"] == n0 + 2
    assert not np.allclose(a.sim, b.sim)
    assert np.allclose(a.sim_raw, b.sim_raw)


def test_binned_heatmap_is_the_block_mean(lib):
    cmap = explore.sharpen(lib)
    full = explore.heatmap_view(cmap)
    assert not full.binned and full.values.shape == (8, 8)
    order = np.asarray(cmap.order)
    assert np.allclose(full.values, cmap.matrix("similarity")[np.ix_(order, order)])
    binned = explore.heatmap_view(cmap, max_cells=3)
    assert binned.binned and binned.values.shape == (3, 3)
    M = full.values
    edges = [0, 3, 5, 8]                      # np.linspace(0, 8, 4).round()
    for a in range(3):
        for b in range(3):
            want = M[edges[a]:edges[a + 1], edges[b]:edges[b + 1]].mean()
            assert binned.values[a, b] == pytest.approx(want)
    assert sorted(np.concatenate(binned.members).tolist()) == list(range(8))


def test_map_pairs_and_neighbours(lib):
    cmap = explore.sharpen(lib)
    pts = explore.map_coords(cmap)
    assert len(pts) == 8 and np.isfinite(pts[["x", "y"]].to_numpy()).all()
    assert pts["x"].std() > 0 and pts["y"].std() > 0
    p = explore.pair_similarity(cmap, 0, 1)
    q = explore.pair_similarity(cmap, 1, 0)
    assert p["similarity"] == q["similarity"] and p["stretch"] == pytest.approx(1 / q["stretch"])
    nb = explore.neighbors_of(lib, lib.files[0], {"rhythm": 1.0}, top_k=3)
    assert len(nb) == 3 and (nb["overall"].diff().dropna() <= 1e-12).all()
    assert {"cdj_pitch_range", "recommended_pitch_fader_pct", "key_relation"} <= set(nb.columns)


def test_artifacts_zip(lib):
    z = zipfile.ZipFile(io.BytesIO(explore.artifacts_zip(lib, explore.sharpen(lib))))
    names = set(z.namelist())
    assert {"contact_map_labels.csv", "contact_nearest_neighbors.csv",
            "contact_aspects.npz"} <= names


def test_too_few_loops(tmp_path):
    with pytest.raises(AnalysisError, match="at least 3"):
        explore.build_library(["a.wav", "b.wav"], cache_dir=tmp_path)
