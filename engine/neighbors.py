"""Nearest-neighbour queries on a contact map, with tempo, pitch and key hints.

``query_neighbors(nn_csv, query, top_k)`` reads the ``contact_nearest_neighbors.csv``
written by :func:`engine.contact.write_artifacts`, finds the query loop and
returns its ``top_k`` neighbours with hints for mixing each one into the query.

BPM and key come from the analysis stored at build time (the ``file_bpm`` /
``neighbor_bpm`` columns of the CSV, or ``contact_loop_info.csv`` beside it),
so a query decodes no audio. Only for an older CSV without them, and unless
``disable_bpm_estimation``, each involved file is decoded once and measured
with the contact map's own estimator.

Tempo hints (all for playing the NEIGHBOUR against the query)
--------------------------------------------------------------
* **BPM hint.** The neighbour's target tempo is the query's tempo times a
  factor f in {1, 0.5, 2} (same, half or double time: all three mix), and f
  is the one needing the smallest pitch-fader move
  ``(query_bpm * f / neighbor_bpm - 1) * 100`` (ties prefer f = 1).
* **Stretch hint.** The DTW path's stretch ratio s (neighbour frames per
  query frame) says the neighbour must play s times faster; it is folded the
  same way (s, s/2 or 2s, the smallest move), so a 2-bar loop aligned to
  half of a 4-bar one does not ask for +100 %.
* **Reconciliation.** With both BPMs known the recommended fader move is
  the BPM hint (tempo measured over the whole loop; exact for loops whose
  length fixes the tempo), and ``stretch_agrees_with_bpm`` says whether the
  DTW stretch confirms it within 5 %. Without both BPMs the folded stretch
  is recommended (``hint_source``). ``cdj_pitch_range`` is the narrowest
  common CDJ pitch range that reaches the recommended move: "±6%", "±10%",
  "±16%", or "wide" (beyond 16 %: use a wider range, master tempo or a
  different pairing).

The seed's columns keep their names (``query_bpm_est, neighbor_bpm_est,
neighbor_target_bpm_from_stretch, neighbor_pitch_fader_pct_from_stretch,
neighbor_pitch_fader_pct_to_match_query_bpm``) but their values are now
half/double-time aware (the raw ratios stay recoverable from
``stretch_ratio_neighbor_over_file`` and the two BPMs), so the hints in one
row agree with each other instead of showing, e.g., -33.8 % next to +13.6 %.

Key hints use :func:`engine.key.key_compatibility` on Camelot codes (same
key, +-1 on the wheel, relative major/minor); "unknown" when a loop has no
clear key (drums).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .contact.artifacts import LOOP_INFO_CSV as LOOP_INFO_NAME
from .errors import LoopLabError

#: Columns the neighbours CSV must have (seed).
NN_COLUMNS = ("file", "neighbor_rank", "neighbor_file", "similarity", "distance",
              "stretch_ratio_neighbor_over_file")

#: Common CDJ pitch ranges, percent.
CDJ_RANGES = (6.0, 10.0, 16.0)

#: Stretch and BPM hints agree when their ratios differ by less than this.
AGREE_TOLERANCE = 0.05

#: Tempo factors tried for the BPM and stretch hints, in tie-break order.
TEMPO_FACTORS = (1.0, 0.5, 2.0)

#: Name of the per-loop info table written beside the neighbours CSV.


class QueryError(LoopLabError, ValueError):
    """The query or the neighbours CSV cannot be used (message says why)."""


@dataclass(frozen=True)
class TempoHint:
    """How to pitch a neighbour to mix with the query.

    Attributes
    ----------
    tempo_factor : float or None
        f in {1, 0.5, 2}: the neighbour plays at ``query_bpm * f``.
    target_bpm : float or None
        Neighbour's target tempo from the BPM hint.
    pitch_pct_bpm : float or None
        Fader move from the BPM hint (folded).
    stretch_folded : float
        Stretch ratio after half/double folding.
    pitch_pct_stretch : float or None
        Fader move from the stretch (folded).
    target_bpm_from_stretch : float or None
        ``neighbor_bpm * stretch_folded``.
    stretch_agrees : bool or None
        Stretch within :data:`AGREE_TOLERANCE` of the BPM hint (None if no BPM hint).
    recommended_pct : float or None
    source : {"bpm", "stretch", "none"}
    cdj_range : str
        "±6%", "±10%", "±16%", "wide" or "" when nothing is known.
    """

    tempo_factor: float | None
    target_bpm: float | None
    pitch_pct_bpm: float | None
    stretch_folded: float | None
    pitch_pct_stretch: float | None
    target_bpm_from_stretch: float | None
    stretch_agrees: bool | None
    recommended_pct: float | None
    source: str
    cdj_range: str


def _ok(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x)) and float(x) > 0
    except (TypeError, ValueError):
        return False


def fold_ratio(ratio: float) -> tuple[float, float]:
    """(f, ratio * f) for f in :data:`TEMPO_FACTORS` with the smallest ``|ratio * f - 1|``."""
    def move(f):                       # rounded so exact ties prefer the earlier factor
        return round(abs(ratio * f - 1.0), 9), TEMPO_FACTORS.index(f)

    best = min(TEMPO_FACTORS, key=move)
    return best, ratio * best


def cdj_range(pct) -> str:
    """Narrowest CDJ pitch range reaching ``pct`` percent: "±6%", "±10%", "±16%" or "wide"."""
    if pct is None or not math.isfinite(float(pct)):
        return ""
    a = abs(float(pct))
    for r in CDJ_RANGES:
        if a <= r + 1e-9:
            return f"±{r:g}%"
    return "wide"


def hint_columns(query_bpm, neighbor_bpm, stretch, query_key, neighbor_key,
                 query_camelot, neighbor_camelot) -> dict:
    """The tempo and key hint columns of one neighbour row.

    Tempo hints come from :func:`tempo_hint` (BPM, stretch ratio, pitch-fader
    moves, CDJ range), the key relation from :func:`engine.key.key_compatibility`
    on the Camelot codes (``key_compatible`` False and ``key_relation``
    "unknown" when a code is missing or invalid).
    """
    from .key import key_compatibility

    h = tempo_hint(query_bpm, neighbor_bpm, stretch)
    try:
        kc = key_compatibility(query_camelot, neighbor_camelot)
        k_ok, k_rel = kc.compatible, kc.relation
    except ValueError:
        k_ok, k_rel = False, "unknown"
    return {
        "query_bpm_est": query_bpm, "neighbor_bpm_est": neighbor_bpm,
        "neighbor_target_bpm_from_stretch": h.target_bpm_from_stretch,
        "neighbor_pitch_fader_pct_from_stretch": h.pitch_pct_stretch,
        "neighbor_pitch_fader_pct_to_match_query_bpm": h.pitch_pct_bpm,
        "neighbor_tempo_factor": h.tempo_factor,
        "neighbor_target_bpm": h.target_bpm,
        "stretch_agrees_with_bpm": h.stretch_agrees,
        "recommended_pitch_fader_pct": h.recommended_pct,
        "hint_source": h.source,
        "cdj_pitch_range": h.cdj_range,
        "query_key": query_key, "neighbor_key": neighbor_key,
        "query_camelot": query_camelot, "neighbor_camelot": neighbor_camelot,
        "key_compatible": k_ok, "key_relation": k_rel,
    }


def tempo_hint(query_bpm, neighbor_bpm, stretch) -> TempoHint:
    """Reconciled tempo hint for one neighbour (see module doc).

    Parameters
    ----------
    query_bpm, neighbor_bpm : float or None
    stretch : float or None
        ``stretch_ratio_neighbor_over_file`` from the DTW path.
    """
    factor = target = pct_bpm = None
    if _ok(query_bpm) and _ok(neighbor_bpm):
        q, nb = float(query_bpm), float(neighbor_bpm)
        factor, r = fold_ratio(q / nb)
        target = q * factor
        pct_bpm = (r - 1.0) * 100.0
    s_f = pct_s = target_s = None
    if _ok(stretch):
        _, s_f = fold_ratio(float(stretch))
        pct_s = (s_f - 1.0) * 100.0
        if _ok(neighbor_bpm):
            target_s = float(neighbor_bpm) * s_f
    agree = None
    if pct_bpm is not None and s_f is not None:
        agree = bool(abs(math.log(s_f / (1.0 + pct_bpm / 100.0))) <= math.log1p(AGREE_TOLERANCE))
    if pct_bpm is not None:
        rec, src = pct_bpm, "bpm"
    elif pct_s is not None:
        rec, src = pct_s, "stretch"
    else:
        rec, src = None, "none"
    return TempoHint(factor, target, pct_bpm, s_f, pct_s, target_s, agree, rec, src,
                     cdj_range(rec))


# --------------------------------------------------------------------------- inputs

def read_neighbors(nn_csv) -> pd.DataFrame:
    """Read and validate a neighbours CSV.

    Raises
    ------
    FileNotFoundError
        The CSV does not exist.
    QueryError
        Required columns are missing or the table is empty.
    """
    p = Path(nn_csv)
    if not p.is_file():
        raise FileNotFoundError(f"neighbours CSV not found: {p} (run `python -m engine "
                                f"contact-map` first)")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise QueryError(f"{p.name}: not a readable CSV ({exc})") from None
    missing = [c for c in NN_COLUMNS if c not in df.columns]
    if missing:
        raise QueryError(f"{p.name}: missing column(s) {', '.join(missing)}; expected "
                         f"{', '.join(NN_COLUMNS)}")
    if df.empty:
        raise QueryError(f"{p.name}: has no neighbour rows")
    df["file"] = df["file"].astype(str)
    df["neighbor_file"] = df["neighbor_file"].astype(str)
    return df


def read_loop_info(path) -> pd.DataFrame | None:
    """The per-loop info table (file, bpm, key, camelot, ...), or None if absent/unreadable."""
    p = Path(path)
    if p.is_dir():
        p = p / LOOP_INFO_NAME
    if not p.is_file():
        return None
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if "file" not in df.columns:
        return None
    df["file"] = df["file"].astype(str)
    return df


def _candidates_text(items, limit: int = 10) -> str:
    items = list(items)
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def resolve_query(query: str, files) -> str:
    """Find the one file ``query`` names.

    Order (seed's): exact full path (case-insensitive; first hit wins), then a
    unique basename (case-insensitive), then a unique case-insensitive substring.

    Raises
    ------
    QueryError
        No match, or several matches (the message lists them).
    """
    files = list(dict.fromkeys(str(f) for f in files))
    q = str(query).strip()
    if not q:
        raise QueryError("empty query: give a file path, file name or part of a name")
    ql = q.lower()
    qa = os.path.normcase(os.path.abspath(q))
    for f in files:
        if f.lower() == ql or os.path.normcase(os.path.abspath(f)) == qa:
            return f
    base = [f for f in files if Path(f).name.lower() == Path(q).name.lower()]
    if len(base) == 1:
        return base[0]
    if len(base) > 1:
        raise QueryError(f"{len(base)} loops are named {Path(q).name!r}; give the full path: "
                         f"{_candidates_text(base)}")
    sub = [f for f in files if ql in f.lower()]
    if len(sub) == 1:
        return sub[0]
    if len(sub) > 1:
        raise QueryError(f"{len(sub)} loops match {q!r}; be more specific: "
                         f"{_candidates_text(sub)}")
    names = sorted(Path(f).name for f in files)
    raise QueryError(f"no loop matches {q!r} among {len(files)} loops in the contact map "
                     f"(e.g. {_candidates_text(names, 5)})")


def _measure(path, cache: dict):
    """(bpm, key, camelot) by decoding ``path`` once; Nones if it fails."""
    if path in cache:
        return cache[path]
    from .contact import SequenceParams, estimate_loop_bpm, rhythm_features
    from .contact.sequences import estimate_loop_key

    out = (None, None, None)
    try:
        from .audio import load_mono

        params = SequenceParams()
        y, info = load_mono(path, params.sr, min_duration=0.2)
        feats = rhythm_features(y, params.sr, params)
        bpm, _ = estimate_loop_bpm(y, params.sr, feats, info.duration, params)
        key, cam, _ = estimate_loop_key(y, params.sr)
        out = (bpm, key, cam)
    except (LoopLabError, OSError, ValueError):
        pass
    cache[path] = out
    return out


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _str(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    s = str(x).strip()
    return s or None


def query_neighbors(nn_csv, query: str, top_k: int = 10, *, disable_bpm_estimation: bool = False,
                    loop_info: pd.DataFrame | None = None) -> pd.DataFrame:
    """The query's ``top_k`` neighbours with tempo, pitch and key hints.

    Parameters
    ----------
    nn_csv : str or Path
        ``contact_nearest_neighbors.csv``.
    query : str
        Full path, file name or a unique part of it.
    top_k : int
        At least 1; more than the saved neighbours returns all saved ones
        (``df.attrs["warnings"]`` says so).
    disable_bpm_estimation : bool
        Never decode audio: BPM/key only from the stored analysis.
    loop_info : DataFrame, optional
        Per-loop table (file, bpm, key, camelot); default: the CSV's own
        columns, else ``contact_loop_info.csv`` beside it.

    Returns
    -------
    DataFrame
        The seed's columns, then the hint columns described in the module doc.
        ``attrs["query"]`` is the resolved file; ``attrs["warnings"]`` a list.

    Raises
    ------
    QueryError
        Bad CSV, bad ``top_k`` or an unresolvable query.
    """
    if int(top_k) < 1:
        raise QueryError(f"top_k must be at least 1, got {top_k}")
    df = read_neighbors(nn_csv)
    target = resolve_query(query, pd.unique(df["file"]))
    rows = df[df["file"] == target].sort_values("neighbor_rank", kind="stable")
    warnings = []
    if int(top_k) > len(rows):
        warnings.append(f"only {len(rows)} neighbours were saved per loop; showing all of them "
                        f"(rebuild with a larger --top_k_neighbors for more)")
    rows = rows.head(int(top_k)).reset_index(drop=True)

    # stored analysis: explicit table > CSV columns > sibling loop-info table
    bpm_of, key_of, cam_of = {}, {}, {}
    info = loop_info if loop_info is not None else read_loop_info(Path(nn_csv).parent)
    if info is not None:
        for _, r in info.iterrows():
            f = str(r["file"])
            if "bpm" in info.columns and _num(r.get("bpm")) is not None:
                bpm_of[f] = _num(r["bpm"])
            if "key" in info.columns and _str(r.get("key")):
                key_of[f] = _str(r["key"])
            if "camelot" in info.columns and _str(r.get("camelot")):
                cam_of[f] = _str(r["camelot"])
    for side in ("file", "neighbor"):
        col_f = "file" if side == "file" else "neighbor_file"
        for col, store, conv in (("bpm", bpm_of, _num), ("key", key_of, _str),
                                 ("camelot", cam_of, _str)):
            c = f"{side}_{col}"
            if c in df.columns:
                for f, v in zip(df[col_f], df[c]):
                    if f not in store and conv(v) is not None:
                        store[f] = conv(v)
    involved = [target] + rows["neighbor_file"].tolist()
    estimated = 0
    if not disable_bpm_estimation and any(f not in bpm_of for f in involved):
        cache: dict = {}
        for f in involved:
            if f not in bpm_of:
                bpm, key, cam = _measure(f, cache)
                if bpm is not None:
                    bpm_of[f] = bpm
                    estimated += 1
                if key and f not in key_of:
                    key_of[f] = key
                if cam and f not in cam_of:
                    cam_of[f] = cam
    qb = bpm_of.get(target)
    qcam = cam_of.get(target)
    out = []
    for _, r in rows.iterrows():
        nf = r["neighbor_file"]
        out.append(hint_columns(qb, bpm_of.get(nf), _num(r["stretch_ratio_neighbor_over_file"]),
                                key_of.get(target), key_of.get(nf), qcam, cam_of.get(nf)))
    base = rows[[c for c in rows.columns if c in NN_COLUMNS]].copy()
    res = pd.concat([base.reset_index(drop=True), pd.DataFrame(out)], axis=1)
    res.attrs["query"] = target
    res.attrs["warnings"] = warnings
    res.attrs["bpm_estimated_files"] = estimated
    return res
