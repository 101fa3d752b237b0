"""``python -m engine contact-map``: rhythm DTW contact map of a folder of loops."""
from __future__ import annotations

NAME = "contact-map"
HELP = ("Compare loops by rhythm (compiled subsequence DTW), sharpen the similarity graph, "
        "order it by the Laplacian's Fiedler vector and write pseudo-labels, neighbours and "
        "heatmaps.")


def add_arguments(p):
    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--out_dir", default="training/models/contact_map", help="output folder")
    p.add_argument("--max_files", type=int, default=200,
                   help="use the first N files in path order; 0 or less: all")
    p.add_argument("--sr", type=int, default=22050, help="analysis sample rate")
    p.add_argument("--max_seconds", type=float, default=20.0,
                   help="crop window in seconds (files are cropped, never resampled in time)")
    p.add_argument("--max_frames", type=int, default=600,
                   help="crop window in frames of 512 samples (the smaller window applies)")
    p.add_argument("--distance_metric", default="cosine", choices=("cosine", "euclidean"),
                   help="frame distance inside DTW")
    p.add_argument("--n_bins", type=int, default=4, help="Fiedler quantile bins (cm_bin_k)")
    p.add_argument("--n_eigen_tags", type=int, default=3, help="eigenvectors turned into tags")
    p.add_argument("--sharpen_mode", default="self_tuned_knn",
                   choices=("none", "self_tuned_knn", "sinkhorn"))
    p.add_argument("--self_tune_k", type=int, default=7)
    p.add_argument("--disable_mutual_knn", action="store_true",
                   help="keep kNN edges found from either end (union) instead of both (mutual)")
    p.add_argument("--sinkhorn_iters", type=int, default=25)
    p.add_argument("--sinkhorn_eps", type=float, default=1e-8)
    p.add_argument("--top_k_neighbors", type=int, default=10, help="neighbours saved per loop")
    p.add_argument("--top_pairs_limit", type=int, default=500, help="rows of contact_top_pairs.csv")
    # ours
    p.add_argument("--mode", default="auto", choices=("auto", "exact", "shortlist"),
                   help="all-pairs DTW, DTW on a kNN shortlist, or auto (exact up to "
                        "--auto_exact_max loops)")
    p.add_argument("--auto_exact_max", type=int, default=500)
    p.add_argument("--shortlist_k", type=int, default=60,
                   help="DTW candidates per loop (shortlist)")
    p.add_argument("--shortlist_embedding", default="none",
                   choices=("none", "auto", "spectral", "openl3"),
                   help="shortlist mode: propose DTW candidates by mean audio embedding "
                        "(auto = OpenL3 when weights are found, else spectral) instead of "
                        "bag-of-frames rhythm vectors")
    p.add_argument("--openl3_weights", default=None, help="OpenL3 weights file or folder")
    p.add_argument("--band_rad", type=float, default=None,
                   help="Sakoe-Chiba band radius as a fraction of the shorter loop (default: none)")
    p.add_argument("--bpm_source", default="onset", choices=("onset", "rhythm"),
                   help="onset autocorrelation (fast) or the beat tracker of engine.rhythm")
    p.add_argument("--no_loop_snap", action="store_true",
                   help="do not refine BPM from the loop length (inputs are not whole bars)")
    p.add_argument("--disable_bpm_estimation", action="store_true", help="no BPM per loop")
    p.add_argument("--disable_key_estimation", action="store_true", help="no key per loop")
    p.add_argument("--jobs", type=int, default=0,
                   help="processes decoding audio (0 = one per core; 1 = in-process)")
    p.add_argument("--threads", type=int, default=0, help="DTW threads (0 = all cores)")
    p.add_argument("--no_heatmaps", action="store_true")
    p.add_argument("--no_cache", action="store_true", help="ignore and do not write the cache")
    p.add_argument("--cache_dir", default=None, help="analysis cache folder (default: ./cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _ProgressBars:
    """tqdm bars for ``progress(done, total, message)``: one per phase."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.phase = None

    def __call__(self, done, total, message):
        if not self.enabled:
            return
        from tqdm import tqdm

        phase = "DTW pairs" if str(message).startswith("DTW") else "loops"
        if phase != self.phase:
            self.close()
            self.phase = phase
            unit = "pair" if phase == "DTW pairs" else "file"
            self.bar = tqdm(total=total, desc=phase, unit=unit, dynamic_ncols=True, leave=True)
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(str(message)[-40:], refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args) -> int:
    import os

    from ..config import DEFAULT_CACHE_DIR
    from ..contact import DTWParams, SequenceParams, SharpenParams, run_contact_map

    if args.threads and args.threads > 0:
        import numba

        numba.set_num_threads(min(int(args.threads), numba.config.NUMBA_NUM_THREADS))
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    seq = SequenceParams(sr=args.sr, max_seconds=args.max_seconds, max_frames=args.max_frames,
                         loop_snap=not args.no_loop_snap, bpm_source=args.bpm_source)
    dtw = DTWParams(distance_metric=args.distance_metric, band_rad=args.band_rad, mode=args.mode,
                    shortlist_k=args.shortlist_k, auto_exact_max=args.auto_exact_max)
    sharp = SharpenParams(sharpen_mode=args.sharpen_mode, self_tune_k=args.self_tune_k,
                          mutual_knn=not args.disable_mutual_knn,
                          sinkhorn_iters=args.sinkhorn_iters, sinkhorn_eps=args.sinkhorn_eps,
                          n_bins=args.n_bins, n_eigen_tags=args.n_eigen_tags)
    bars = _ProgressBars(not args.quiet)
    try:
        res = run_contact_map(args.folder, args.out_dir, max_files=args.max_files, seq_params=seq,
                              dtw_params=dtw, sharpen_params=sharp,
                              top_k_neighbors=args.top_k_neighbors,
                              top_pairs_limit=args.top_pairs_limit,
                              estimate_bpm=not args.disable_bpm_estimation,
                              estimate_key=not args.disable_key_estimation,
                              cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
                              use_cache=not args.no_cache, n_jobs=jobs,
                              heatmaps=not args.no_heatmaps,
                              shortlist_embedding=args.shortlist_embedding,
                              openl3_weights=args.openl3_weights, progress=bars)
    finally:
        bars.close()
    cm = res.cmap
    t = res.timings
    print(f"{cm.n} loops, {res.dtw.n_pairs} DTW pairs ({res.dtw.mode}"
          f"{', cached' if res.dtw.from_cache else ''}): sequences {t['sequences_seconds']:.1f} s, "
          f"DTW {t['dtw_seconds']:.1f} s, map {t['contact_map_seconds']:.2f} s, "
          f"files {t['artifacts_seconds']:.1f} s")
    for f, e in res.seqset.failures:
        print(f"skipped {f}: {e}")
    for w in cm.warnings:
        print(f"note: {w}")
    print(f"wrote {len(res.artifacts)} files to {args.out_dir}")
    return 0
