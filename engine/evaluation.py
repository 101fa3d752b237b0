"""Held-out evaluation of loop rankers on tracks with ground truth or people's labels.

For every track the candidates are cut either on the engine's own grid (what
``extract`` does: rhythm analysis, then bar-aligned candidates) or on the true
grid (so ranking quality can be read apart from rhythm errors). Each ranker
scores the candidates, the distinct top-k is chosen as ``extract`` chooses it,
and metrics are computed per track, then averaged (:mod:`engine.metrics`).

Rankers: the loop-quality model (default: the shipped one), the heuristic,
the earlier implementation's composite (0.75 heuristic + 0.15 periodicity +
0.10 drum alignment, i.e. what ``extract`` ranked by before the model) and
random.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .config import AnalysisConfig
from .loop_truth import LoopTruth, grid_windows, label_windows, truth_from_realbench, truth_from_synth
from .ranker import baseline_scores, compare_rankers

#: "default model" is what ``extract`` ranks by by default: the shipped model's score with
#: its section guard; "model, no guard" the model's score alone (``--no_section_guard``);
#: "model+composite" puts the seed's composite re-rank on top (0.75 model + 0.15
#: periodicity + 0.10 drum alignment; ``extract --composite_rerank``).
RANKER_ORDER = ("default model", "model, no guard", "model + guard", "model+composite", "heuristic",
                "old composite", "random")


def truth_for(audio_path, work_dir=None) -> LoopTruth | None:
    """Ground truth beside an audio file: ``<stem>.truth.json`` (``engine synth``) or
    ``<stem>.json`` (realbench), else None."""
    p = Path(audio_path)
    synth_json = p.with_suffix(".truth.json")
    if synth_json.is_file():
        return truth_from_synth_json(synth_json, p.stem)
    rb = p.with_suffix(".json")
    if rb.is_file():
        d = json.loads(rb.read_text())
        if "downbeats_s" in d:
            return truth_from_realbench(rb, work_dir=work_dir)
    return None


def truth_from_synth_json(path, track_id: str) -> LoopTruth:
    """LoopTruth of a ``.truth.json`` written by ``python -m engine synth``."""
    from types import SimpleNamespace

    d = json.loads(Path(path).read_text())
    db = np.asarray(d["downbeats"], float)
    secs = np.asarray(d.get("sections", [db[0]]), float)
    lengths = d.get("section_lengths")
    if not lengths:
        idx = np.searchsorted(db, secs - 1e-6)
        lengths = list(np.diff(np.append(idx, len(db))).astype(int))
    gt = SimpleNamespace(downbeats=db, beats_per_bar=int(d["beats_per_bar"]), bpm=float(d["bpm"]),
                         key=d.get("key"), harmonic_period=int(d.get("harmonic_period", 4)),
                         section_instruments=[tuple(x) for x in d.get("section_instruments", [])],
                         section_patterns=list(d.get("section_patterns", [])),
                         bar_instruments=[tuple(x) for x in d.get("bar_instruments", [])],
                         bar_chords=[(int(c[0]), tuple(c[1])) for c in d.get("bar_chords", [])],
                         bar_sections=lambda: np.repeat(np.arange(len(lengths)), lengths)[:len(db)])
    return truth_from_synth(gt, track_id)


def engine_grid_rows(path, truth: LoopTruth, cfg: AnalysisConfig = AnalysisConfig(),
                     cache=None) -> tuple[pd.DataFrame, float]:
    """The engine's own candidates of ``path`` (rhythm analysis included) with truth labels."""
    from .pipeline import analyse_track

    a = analyse_track(path, cfg, cache=cache)
    c = a.candidates.copy()
    lab = label_windows(truth, c["start_time"], c["end_time"])
    lab.index = c.index
    return pd.concat([c, lab], axis=1), float(a.grid.bpm)


def truth_grid_rows(y: np.ndarray, sr: int, truth: LoopTruth, bars=(1, 2, 4, 8)) -> pd.DataFrame:
    """Whole-bar candidates on the true grid, with the engine's features and labels."""
    from .ranker import window_rows

    w = grid_windows(truth, bars)
    w["candidate_id"] = np.arange(len(w))
    return window_rows(y, sr, truth, w)


def score_table(df: pd.DataFrame, scorer=None, k: int = 5) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Every ranker's scores on ``df`` (needs ``group``), their metrics and per-track rows.

    Returns
    -------
    summary : dict  (ranker -> named metrics, averaged over tracks)
    per_track : DataFrame
    rows : DataFrame  (``df`` with ``pred_<ranker>`` columns)
    """
    from .scoring import minmax

    rows = df.copy()
    scores = {}
    if scorer is not None:
        from .config import RankConfig

        raw = scorer.predict(rows).astype(float)
        guarded = (scorer.rank_scores(rows, raw) if getattr(scorer, "guard", None) is not None
                   else None)
        # "default model" is what extract ranks by (RankConfig().section_guard)
        use_guard = guarded is not None and RankConfig().section_guard
        s = guarded if use_guard else raw
        comp = np.zeros(len(rows))
        for _, idx in rows.groupby("group").indices.items():
            comp[idx] = (0.75 * minmax(raw[idx])
                         + 0.15 * np.clip(rows["periodicity_score"].to_numpy()[idx], 0, 1)
                         + 0.10 * np.clip(rows["drum_alignment_score"].to_numpy()[idx], 0, 1))
        scores["default model"] = s
        if guarded is not None:
            scores["model, no guard" if use_guard else "model + guard"] = raw if use_guard else guarded
        scores["model+composite"] = comp
    scores["heuristic"] = baseline_scores(rows, "heuristic")
    scores["old composite"] = baseline_scores(rows, "old_composite")
    summary, per_track = compare_rankers(rows, scores, k)
    for name, s in scores.items():
        rows["pred_" + name.replace(" ", "_").replace("+", "_")] = s
    return summary, per_track, rows


def format_table(summary: dict, k: int = 5) -> str:
    """One line per ranker, e.g. ``default model: P@5 0.93 R@5 0.05 NDCG@5 0.91 ...``."""
    lines = []
    for name in RANKER_ORDER:
        if name in summary:
            m = summary[name]
            lines.append(f"{name}: P@{k} {m[f'P@{k}']:.2f} R@{k} {m[f'R@{k}']:.3f} "
                         f"NDCG@{k} {m[f'NDCG@{k}']:.2f} AP {m['AP']:.2f} "
                         f"in-section@{k} {m[f'in_section@{k}']:.2f}")
    return "\n".join(lines)


def pooled_in_section(per_track: pd.DataFrame, ranker: str) -> float:
    """Share of all top-k loops (pooled over tracks) that stay inside one section."""
    t = per_track[per_track["ranker"] == ranker]
    n = float(t["n_top"].sum())
    return float(t["n_in_section"].sum() / n) if n else float("nan")


def pooled_in_section_interval(per_track: pd.DataFrame, ranker: str, *, level: float = 0.95,
                               n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of :func:`pooled_in_section`, resampling whole tracks.

    Loops of one track succeed or fail together (one arrangement, one grid), so
    the tracks, not the loops, are the independent draws. With a dozen renders
    the interval is wide: it says how far another set of songs of the same kind
    may land from the figure measured here.

    Parameters
    ----------
    per_track : DataFrame
        Rows of :func:`engine.ranker.compare_rankers` (``ranker``, ``n_top``,
        ``n_in_section``).
    ranker : str
    level : float
        Coverage, in (0, 1).
    n_boot : int
        Bootstrap resamples (>= 1).
    seed : int

    Returns
    -------
    (low, high) : tuple of float
        NaN, NaN when the ranker has no top-k loops.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    t = per_track[per_track["ranker"] == ranker]
    n_top = t["n_top"].to_numpy(float)
    n_in = t["n_in_section"].to_numpy(float)
    if not len(t) or n_top.sum() <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n_boot, len(t)))
    tops = n_top[idx].sum(axis=1)
    shares = np.where(tops > 0, n_in[idx].sum(axis=1) / np.maximum(tops, 1.0), np.nan)
    lo, hi = np.nanpercentile(shares, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
