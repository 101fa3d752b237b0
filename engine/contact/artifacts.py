"""Contact-map files: matrix and table CSVs, heatmaps, summary JSON (each written atomically)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .contact_map import ContactMap
from .frames import SequenceParams
from .graph import N_EIGENVALUES
from .sequences import SequenceSet

#: Square matrix CSVs are written only up to this many files (n^2 cells each).
MAX_MATRIX_CSV = 2500

#: Artifact file names (seed's), keyed as the summary's ``artifacts``.
ARTIFACT_NAMES = {
    "similarity_raw_csv": "contact_similarity_matrix_raw.csv",
    "similarity_csv": "contact_similarity_matrix.csv",
    "distance_csv": "contact_distance_matrix.csv",
    "stretch_ratio_csv": "contact_stretch_ratio_matrix.csv",
    "labels_csv": "contact_map_labels.csv",
    "order_csv": "contact_map_order.csv",
    "top_pairs_csv": "contact_top_pairs.csv",
    "nearest_neighbors_csv": "contact_nearest_neighbors.csv",
    "heatmap_png": "contact_similarity_heatmap.png",
    "heatmap_raw_png": "contact_similarity_heatmap_raw.png",
}
#: Extra artifacts (ours).
LOOP_INFO_CSV = "contact_loop_info.csv"
FAILED_CSV = "contact_failed_files.csv"
EDGES_CSV = "contact_edges.csv"
SUMMARY_JSON = "contact_map_summary.json"


def _matrix_csv(M: np.ndarray, files, path) -> None:
    from ..atomic import atomic_write_csv

    df = pd.DataFrame(M, index=list(files), columns=list(files))
    atomic_write_csv(df, path, index=True, float_format="%.10g")


def _heatmap(M: np.ndarray, order: np.ndarray, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    A = M[np.ix_(order, order)]
    n = A.shape[0]
    if n > 1500:                               # block-average big maps to <= 1500 px
        f = int(math.ceil(n / 1500))
        m = (n // f) * f
        A = A[:m, :m].reshape(m // f, f, m // f, f).mean(axis=(1, 3))
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(A, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("loops (Fiedler order)")
    ax.set_ylabel("loops (Fiedler order)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="similarity")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=170, format="png")
    plt.close(fig)


def write_artifacts(cmap: ContactMap, out_dir, *, seqset: SequenceSet | None = None,
                    top_k_neighbors: int = 10, top_pairs_limit: int = 500,
                    max_matrix_csv: int = MAX_MATRIX_CSV, heatmaps: bool = True,
                    extra_summary: dict | None = None) -> dict:
    """Write the seed's artifacts (and ours) into ``out_dir``, each atomically.

    Returns
    -------
    dict
        Artifact key -> path (the summary's ``artifacts`` plus ours).
    """
    from ..atomic import atomic_write_csv, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: str(out / v) for k, v in ARTIFACT_NAMES.items()}
    warnings = list(cmap.warnings)
    files = cmap.files
    info = seqset.info_frame() if seqset is not None else None
    if cmap.n <= max_matrix_csv:
        _matrix_csv(cmap.matrix("similarity_raw"), files, paths["similarity_raw_csv"])
        _matrix_csv(cmap.matrix("similarity"), files, paths["similarity_csv"])
        _matrix_csv(cmap.matrix("distance"), files, paths["distance_csv"])
        _matrix_csv(cmap.matrix("stretch"), files, paths["stretch_ratio_csv"])
    else:
        for k in ("similarity_raw_csv", "similarity_csv", "distance_csv", "stretch_ratio_csv"):
            paths.pop(k)
        warnings.append(f"{cmap.n} files: square matrix CSVs skipped (limit {max_matrix_csv}); "
                        f"see {EDGES_CSV}")
    if cmap.dtw.mode != "exact" or cmap.n > max_matrix_csv:
        d = cmap.dtw
        fa = np.asarray(files, dtype=object)
        edges = pd.DataFrame({"file_i": fa[d.pa], "file_j": fa[d.pb],
                              "similarity": cmap.sim, "similarity_raw": cmap.sim_raw,
                              "distance": d.distance, "overlap": d.overlap,
                              "stretch_ratio_j_over_i": d.stretch})
        paths["edges_csv"] = str(out / EDGES_CSV)
        atomic_write_csv(edges, paths["edges_csv"])
    atomic_write_csv(cmap.labels_frame(), paths["labels_csv"])
    atomic_write_csv(cmap.order_frame(), paths["order_csv"])
    top = cmap.top_pairs(top_pairs_limit)
    atomic_write_csv(top, paths["top_pairs_csv"])
    atomic_write_csv(cmap.nearest_neighbors(top_k_neighbors, info), paths["nearest_neighbors_csv"])
    if info is not None:
        paths["loop_info_csv"] = str(out / LOOP_INFO_CSV)
        atomic_write_csv(info, paths["loop_info_csv"])
        if seqset.failures:
            paths["failed_files_csv"] = str(out / FAILED_CSV)
            atomic_write_csv(pd.DataFrame(seqset.failures, columns=["file", "error"]),
                             paths["failed_files_csv"])
    if heatmaps:
        try:
            sim = cmap.matrix("similarity")
            _heatmap(sim, cmap.order, paths["heatmap_png"],
                     f"contact map ({cmap.params.sharpen_mode}), Fiedler order")
            if cmap.params.sharpen_mode != "none":
                _heatmap(cmap.matrix("similarity_raw"), cmap.order, paths["heatmap_raw_png"],
                         "contact map (raw), Fiedler order")
            else:
                paths.pop("heatmap_raw_png")
        except ImportError:
            warnings.append("matplotlib is not installed: heatmaps skipped")
            paths.pop("heatmap_png")
            paths.pop("heatmap_raw_png")
    else:
        paths.pop("heatmap_png")
        paths.pop("heatmap_raw_png")
    sp = seqset.params if seqset is not None else SequenceParams()
    from .. import CODE_VERSION

    summary = {
        "n_files": cmap.n,
        "params": {"sr": sp.sr, "max_seconds": sp.max_seconds, "max_frames": sp.max_frames,
                   "distance_metric": cmap.dtw.params.get("distance_metric", "cosine"),
                   "sharpen_mode": cmap.params.sharpen_mode,
                   "self_tune_k": cmap.params.self_tune_k, "mutual_knn": cmap.params.mutual_knn,
                   "sinkhorn_iters": cmap.params.sinkhorn_iters,
                   "sinkhorn_eps": cmap.params.sinkhorn_eps, "n_bins": cmap.params.n_bins,
                   "n_eigen_tags": cmap.params.n_eigen_tags,
                   "hop_length": sp.hop_length, "window_seconds": round(sp.window_seconds, 4),
                   "window_frames": sp.window_frames,
                   "channel_weights": list(sp.channel_weights),
                   "band_rad": cmap.dtw.params.get("band_rad"),
                   "mode": cmap.dtw.mode, "shortlist_k": cmap.dtw.params.get("shortlist_k"),
                   "top_k_neighbors": int(top_k_neighbors),
                   "top_pairs_limit": int(top_pairs_limit)},
        "artifacts": {k: v for k, v in paths.items()},
        "laplacian_eigenvalues": [float(x) for x in cmap.eigenvalues[:N_EIGENVALUES]],
        "top_overlaps": json.loads(top.head(50).to_json(orient="records")),
        "n_pairs_dtw": cmap.dtw.n_pairs,
        "dtw_seconds": round(float(cmap.dtw.seconds), 4),
        "dtw_from_cache": bool(cmap.dtw.from_cache),
        "median_distance": cmap.median_distance,
        "graph_components_before_bridging": cmap.n_components,
        "bridges_added": cmap.bridges_added,
        "fiedler_sign": "entry of largest magnitude made positive",
        "n_failed": len(seqset.failures) if seqset is not None else 0,
        "failed_files": [{"file": f, "error": e} for f, e in (seqset.failures if seqset else [])],
        "code_version": CODE_VERSION,
    }
    if extra_summary:
        summary.update(extra_summary)
    if warnings:
        summary["warnings"] = warnings
    paths["summary_json"] = str(out / SUMMARY_JSON)
    atomic_write_text(paths["summary_json"], json.dumps(summary, indent=2, default=_json_default))
    return paths


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
