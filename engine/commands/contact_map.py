"""``python -m engine contact-map``: rhythm DTW contact map of a folder of loops."""
from __future__ import annotations

NAME = "contact-map"
HELP = ("Compare loops by rhythm (compiled subsequence DTW), sharpen the similarity graph, "
        "order it by the Laplacian's Fiedler vector and write pseudo-labels, neighbours and "
        "heatmaps.")


def add_arguments(p):
    from ..config import ContactSettings, add_arguments as add_config_arguments
    from ..contact import DTWParams, SequenceParams, SharpenParams

    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--out_dir", default="training/models/contact_map", help="output folder")
    for cls in (ContactSettings, SequenceParams, DTWParams, SharpenParams):
        add_config_arguments(p, cls)       # flags from the dataclasses' fields
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

    from ..config import ContactSettings, from_args
    from ..contact import DTWParams, SequenceParams, SharpenParams, run_contact_map

    run = from_args(ContactSettings, args)
    if run.threads and run.threads > 0:
        import numba

        numba.set_num_threads(min(int(run.threads), numba.config.NUMBA_NUM_THREADS))
    jobs = run.n_jobs if run.n_jobs > 0 else (os.cpu_count() or 1)
    bars = _ProgressBars(not args.quiet)
    try:
        res = run_contact_map(args.folder, args.out_dir, max_files=run.max_files,
                              seq_params=from_args(SequenceParams, args),
                              dtw_params=from_args(DTWParams, args),
                              sharpen_params=from_args(SharpenParams, args),
                              top_k_neighbors=run.top_k_neighbors,
                              top_pairs_limit=run.top_pairs_limit,
                              estimate_bpm=run.estimate_bpm, estimate_key=run.estimate_key,
                              cache_dir=run.cache_dir, use_cache=run.use_cache, n_jobs=jobs,
                              heatmaps=run.heatmaps, shortlist_embedding=run.shortlist_embedding,
                              openl3_weights=run.openl3_weights, progress=bars)
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
