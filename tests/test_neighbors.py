"""Neighbour queries: resolution, tempo/pitch/key hints, stored analysis, CLI."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import neighbors
from engine.neighbors import (NN_COLUMNS, QueryError, cdj_range, fold_ratio, query_neighbors,
                              resolve_query, tempo_hint)

SEED_HINT_COLUMNS = ["query_bpm_est", "neighbor_bpm_est", "neighbor_target_bpm_from_stretch",
                     "neighbor_pitch_fader_pct_from_stretch",
                     "neighbor_pitch_fader_pct_to_match_query_bpm"]


# --------------------------------------------------------------------------- hints

def test_half_and_double_time_choose_the_smallest_fader_move():
    h = tempo_hint(140.0, 70.0, None)              # neighbour is half-time: play it at 70
    assert h.tempo_factor == 0.5 and h.target_bpm == pytest.approx(70.0)
    assert h.pitch_pct_bpm == pytest.approx(0.0) and h.cdj_range == "±6%"
    h = tempo_hint(85.0, 172.0, None)              # neighbour at double time
    assert h.tempo_factor == 2.0 and h.target_bpm == pytest.approx(170.0)
    assert h.pitch_pct_bpm == pytest.approx((170 / 172 - 1) * 100)
    h = tempo_hint(124.0, 120.0, None)
    assert h.tempo_factor == 1.0 and h.pitch_pct_bpm == pytest.approx(100 * (124 / 120 - 1))
    assert fold_ratio(2 / 3) == (1.0, 2 / 3)       # tie between -33 % and +33 %: same tempo


@pytest.mark.parametrize("pct,expected", [(0.0, "±6%"), (5.99, "±6%"), (-6.0, "±6%"),
                                          (6.01, "±10%"), (-9.5, "±10%"), (12.0, "±16%"),
                                          (16.0, "±16%"), (-16.5, "wide"), (40.0, "wide"),
                                          (None, ""), (float("nan"), "")])
def test_cdj_ranges(pct, expected):
    assert cdj_range(pct) == expected


def test_stretch_hint_is_folded_and_reconciled_with_bpm():
    # same tempo; DTW aligned a 2-bar loop to half of a 4-bar one: stretch ~2
    h = tempo_hint(120.0, 120.0, 2.02)
    assert h.stretch_folded == pytest.approx(1.01)
    assert h.stretch_agrees and h.source == "bpm" and h.recommended_pct == pytest.approx(0.0)
    # consistent: 126 vs 120 and a stretch of 1.05
    h = tempo_hint(126.0, 120.0, 1.05)
    assert h.stretch_agrees
    assert h.target_bpm == pytest.approx(126.0)
    assert h.target_bpm_from_stretch == pytest.approx(126.0)
    assert h.recommended_pct == pytest.approx(5.0) and h.cdj_range == "±6%"
    # the seed's contradiction (-33.8 % vs +13.6 %): reported, BPM hint recommended
    h = tempo_hint(125.0, 110.0, 0.662)
    assert not h.stretch_agrees and h.source == "bpm"
    assert h.recommended_pct == pytest.approx(h.pitch_pct_bpm)
    assert h.pitch_pct_stretch == pytest.approx((0.662 * 2 - 1) * 100)   # folded: 1.324
    # without BPMs only the stretch is left
    h = tempo_hint(None, None, 0.52)
    assert h.source == "stretch" and h.recommended_pct == pytest.approx(4.0)
    assert h.tempo_factor is None and h.stretch_agrees is None
    h = tempo_hint(None, None, None)
    assert h.source == "none" and h.cdj_range == ""


# --------------------------------------------------------------------------- resolution

FILES = ["/music/loops/Break A.wav", "/music/loops/break_b.wav", "/music/other/Break A.wav",
         "/music/loops/house 124.wav"]


def test_resolve_query_order_and_errors():
    assert resolve_query("/MUSIC/loops/break_b.WAV", FILES) == "/music/loops/break_b.wav"
    assert resolve_query("house 124.wav", FILES) == "/music/loops/house 124.wav"
    assert resolve_query("HOUSE", FILES) == "/music/loops/house 124.wav"
    with pytest.raises(QueryError, match="2 loops are named") as e:
        resolve_query("Break A.wav", FILES)
    assert "/music/other/Break A.wav" in str(e.value)
    with pytest.raises(QueryError, match="3 loops match 'break'"):
        resolve_query("break", FILES)
    with pytest.raises(QueryError, match="no loop matches 'techno'.*4 loops"):
        resolve_query("techno", FILES)
    with pytest.raises(QueryError, match="empty"):
        resolve_query("  ", FILES)
    assert issubclass(QueryError, ValueError)       # seed raised ValueError


# --------------------------------------------------------------------------- query on a CSV

@pytest.fixture()
def nn_csv(tmp_path):
    q, b, c, d = (str(tmp_path / n) for n in ("q.wav", "b.wav", "c.wav", "d.wav"))
    rows = [(q, 1, b, 0.9, 0.10, 0.5), (q, 2, c, 0.8, 0.12, 120 / 130),
            (q, 3, d, 0.7, 0.20, 1.0), (b, 1, q, 0.9, 0.10, 2.0)]
    df = pd.DataFrame(rows, columns=list(NN_COLUMNS))
    p = tmp_path / "contact_nearest_neighbors.csv"
    df.to_csv(p, index=False)
    info = pd.DataFrame({"file": [q, b, c, d], "bpm": [120.0, 60.0, 130.0, np.nan],
                         "key": ["A minor", "E minor", "C major", None],
                         "camelot": ["8A", "9A", "8B", None]})
    info.to_csv(tmp_path / "contact_loop_info.csv", index=False)
    return p


def test_query_uses_stored_bpm_and_key_without_decoding(nn_csv, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("audio decoded although the analysis is stored")

    monkeypatch.setattr(neighbors, "_measure", boom)
    df = query_neighbors(nn_csv, "q.wav", top_k=3, disable_bpm_estimation=True)
    assert list(df.columns[:6]) == list(NN_COLUMNS)
    assert list(df.columns[6:11]) == SEED_HINT_COLUMNS
    assert df.attrs["query"].endswith("q.wav")
    b, c, d = (df.iloc[k] for k in range(3))
    # b: 60 BPM half-time partner -> play at 60 (factor 0.5), no fader move; stretch 0.5 folds to 1
    assert b["neighbor_tempo_factor"] == 0.5 and b["neighbor_target_bpm"] == pytest.approx(60.0)
    assert b["recommended_pitch_fader_pct"] == pytest.approx(0.0)
    assert b["neighbor_pitch_fader_pct_to_match_query_bpm"] == pytest.approx(0.0)
    assert b["neighbor_pitch_fader_pct_from_stretch"] == pytest.approx(0.0)
    assert b["stretch_agrees_with_bpm"] and b["cdj_pitch_range"] == "±6%"
    assert b["key_compatible"] and b["key_relation"] == "+1 (dominant)"
    # c: 130 -> 120 is -7.7 %: needs the ±10 % range; stretch agrees
    assert c["recommended_pitch_fader_pct"] == pytest.approx((120 / 130 - 1) * 100)
    assert c["cdj_pitch_range"] == "±10%" and c["stretch_agrees_with_bpm"]
    assert c["neighbor_target_bpm_from_stretch"] == pytest.approx(120.0)
    assert c["key_relation"] == "relative major/minor" and c["key_compatible"]
    # d: no BPM, no key -> stretch hint, key unknown
    assert d["hint_source"] == "stretch" and math.isnan(d["neighbor_bpm_est"])
    assert d["key_relation"] == "unknown" and not d["key_compatible"]


def test_query_top_k_and_csv_errors(nn_csv, tmp_path):
    df = query_neighbors(nn_csv, "q.wav", top_k=10, disable_bpm_estimation=True)
    assert len(df) == 3 and "only 3 neighbours" in df.attrs["warnings"][0]
    assert len(query_neighbors(nn_csv, "q.wav", top_k=1, disable_bpm_estimation=True)) == 1
    with pytest.raises(QueryError, match="at least 1"):
        query_neighbors(nn_csv, "q.wav", top_k=0)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"file": ["x"], "neighbor_file": ["y"]}).to_csv(bad, index=False)
    with pytest.raises(QueryError, match="missing column"):
        query_neighbors(bad, "x")
    with pytest.raises(FileNotFoundError):
        query_neighbors(tmp_path / "none.csv", "x")


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def built_map(tmp_path_factory):
    """A contact map of 8 generated loops (2 patterns x 4 tempos)."""
    from engine.contact import SharpenParams, run_contact_map
    from engine.synth import synth_loop

    d = tmp_path_factory.mktemp("nn_loops")
    for pat in ("four_on_floor", "breakbeat"):
        for bpm, bars in ((96.0, 2), (112.0, 4), (124.0, 4), (138.0, 2)):
            synth_loop(pat, bpm, bars=bars, seed=int(bpm), sr=22050).write(
                d / f"{pat}_{int(bpm)}.wav", subtype="PCM_16")
    out = tmp_path_factory.mktemp("nn_out")
    run_contact_map(d, out, top_k_neighbors=5, heatmaps=False,
                    sharpen_params=SharpenParams(self_tune_k=3),
                    cache_dir=tmp_path_factory.mktemp("nn_cache"))
    return out


def test_query_end_to_end_hints_are_consistent(built_map, monkeypatch):
    monkeypatch.setattr(neighbors, "_measure", lambda *a: (_ for _ in ()).throw(AssertionError))
    df = query_neighbors(built_map / "contact_nearest_neighbors.csv", "four_on_floor_124", 3)
    assert df.attrs["query"].endswith("four_on_floor_124.wav")
    assert df["query_bpm_est"].iloc[0] == pytest.approx(124.0, rel=1e-3)
    for _, r in df.iterrows():
        assert "four_on_floor" in r["neighbor_file"]
        true_n = float(r["neighbor_file"].rsplit("_", 1)[1][:-4])
        assert r["neighbor_bpm_est"] == pytest.approx(true_n, rel=1e-3)
        f, ratio = fold_ratio(124.0 / true_n)
        assert r["recommended_pitch_fader_pct"] == pytest.approx((ratio - 1) * 100, abs=0.2)
        assert r["hint_source"] == "bpm"
        assert r["cdj_pitch_range"] == cdj_range(r["recommended_pitch_fader_pct"])
        # the DTW stretch of a same-pattern neighbour confirms the BPM hint
        assert r["stretch_agrees_with_bpm"], r.to_dict()


def test_query_estimates_bpm_once_when_not_stored(built_map, tmp_path):
    nn = pd.read_csv(built_map / "contact_nearest_neighbors.csv")
    keep = [c for c in nn.columns if c in NN_COLUMNS]
    p = tmp_path / "contact_nearest_neighbors.csv"          # no loop info beside it
    nn[keep].to_csv(p, index=False)
    df = query_neighbors(p, "breakbeat_96", top_k=2)
    assert df["query_bpm_est"].iloc[0] == pytest.approx(96.0, rel=1e-3)
    assert df.attrs["bpm_estimated_files"] == 3
    off = query_neighbors(p, "breakbeat_96", top_k=2, disable_bpm_estimation=True)
    assert off["query_bpm_est"].isna().all() and (off["hint_source"] == "stretch").all()


def test_cli_query(built_map, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "q.csv"
    rc = main(["query", "--nn_csv", str(built_map / "contact_nearest_neighbors.csv"),
               "--query", "breakbeat_112", "--top_k", "2", "--out_csv", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "breakbeat_112.wav" in text and "112.00 BPM" in text
    df = pd.read_csv(out)
    assert len(df) == 2 and set(SEED_HINT_COLUMNS) <= set(df.columns)
    assert main(["query", "--nn_csv", str(built_map / "contact_nearest_neighbors.csv"),
                 "--query", "_1"]) == 2
    assert "loops match" in capsys.readouterr().err
