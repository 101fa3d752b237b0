"""Rhythm contact map: DTW between loops, sharpening, spectral order, pseudo-labels.

Stages (each a pure function returning a small dataclass; the expensive ones
are cached on disk by content hash + parameters + code version)::

    compute_sequences(paths)      -> SequenceSet   decode once, 4-channel rhythm sequence,
                                                   BPM and key per loop        (cached per file)
    pairwise_dtw(seqset)          -> DTWResult     subsequence DTW, all pairs or a shortlist
                                                                               (cached per library)
    build_contact_map(dtw, sharp) -> ContactMap    similarity, sharpening, Laplacian, labels
                                                   (cheap: re-run it for every slider move)
    write_artifacts(cmap, out_dir)                 the seed's CSV/JSON/PNG files, atomically

Rhythm sequences
----------------
Every file is analysed at ONE frame rate (sr 22050 Hz, hop 512: 43.07
frames/s). Four channels per frame, as the seed: the z-scored onset envelope,
its first difference, the z-scored 20-180 Hz STFT magnitude (n_fft 2048) and
a z-scored per-frame periodicity strength from a tempogram of the onset
envelope. (The seed took the tempogram's per-frame maximum, which with
librosa's default normalisation is the lag-0 value 1.0 in every frame, i.e. a
constant; here the maximum is taken over lags of 30-300 BPM, so the channel
measures how periodic the rhythm is around each frame.) That channel varies
slowly and with tempo: at full weight it dominates the cosine between frames.
On generated loops the share of top-3 (raw similarity) neighbours with the
same drum pattern is 0.79 (24 drum loops, 4 patterns, 90-140 BPM) and 0.95
(200 loops of the benchmark) at full weight, 0.97 and 0.997 at weight 0.1,
so it enters with weight 0.1 (``SequenceParams.channel_weights``).

Long files are CROPPED to their first ``min(max_seconds, max_frames * hop /
sr)`` seconds (13.9 s with the defaults). The seed instead kept max_frames
evenly spaced columns of longer files, which put files longer than ~13.9 s
on a different time scale from shorter ones; cropping keeps one time scale,
so stretch ratios mean the same thing for every pair. Loops are usually
shorter than the window, and subsequence DTW matches a loop anywhere inside
a longer one, so nothing a loop contains is lost.

BPM per loop: an onset-autocorrelation tempo (librosa's tempogram estimator,
folded into [min_bpm, max_bpm]) refined by the loop's length: a loop is a
whole number of bars, so its tempo is ``60 * beats / duration`` for a whole
number of 4/4 or 3/4 bars; of the values whose beat grid from 0 s lines up
with the onsets, the one agreeing with the estimate (up to octave errors,
common bar counts preferred) wins, else the one with the strongest grid
(:func:`loop_tempo`; ``bpm_method`` says which). Inputs
that are not whole-bar loops should switch this off (``loop_snap=False``,
CLI ``--no_loop_snap``). ``bpm_source="rhythm"`` uses
:func:`engine.rhythm.estimate_bpm` instead of the onset estimate.
The key comes from :func:`engine.key.key_of_audio` (drum loops: no clear key).

DTW
---
Compiled subsequence DTW (:mod:`engine.dtw`), the shorter sequence as the
query, cost read at the warping path's true end; per pair the distance
(accumulated cost / path length), overlap ``min(1, path_len / max(Ti, Tj))``
and stretch ``(span_j + 1) / (span_i + 1)``. Subsequence DTW is not
symmetric when both loops have the same length (common: both cropped to the
window); then the loop with the smaller content hash is the query, so no
result depends on the order of the files.

Exact vs shortlist (``mode``)
-----------------------------
``exact`` runs DTW on all n(n-1)/2 pairs: every neighbour is exact, but the
cost grows with n^2 (about 0.33 ms of CPU per pair of 12-s loops: 200 loops
take 3.4 s on two cores, 2,000 loops would take about 6 minutes, 100,000
loops two years).
``shortlist`` (:func:`shortlist_pairs`) is a three-stage cascade:

1. each loop becomes a cheap vector, a soft bag-of-frames histogram over a
   32-word codebook of the library's own frames (or caller-supplied
   embeddings), and its ``candidate_factor * shortlist_k`` (240) nearest
   vectors are found with scikit-learn's exact ``NearestNeighbors``;
2. a coarse DTW on 4-frame averages (16x fewer cells) ranks those
   candidates; each loop keeps its best ``shortlist_k`` (60);
3. pairs are added until the candidate graph is connected, then the exact
   DTW runs on the O(n k) pairs that remain.

The similarity graph is then a sparse matrix and the Laplacian's
eigenvectors come from ``scipy.sparse.linalg.eigsh`` (dense ``eigh`` up to
2,000 loops). The price: a true DTW neighbour that neither stage ranks high
is missed, and pairs outside the shortlist have similarity 0 instead of a
small value, which changes the spectral order's fine detail but not its
blocks. ``bench/bench_contact.py`` measures the recall of the exact top-10
neighbours: 98 % on 300 generated loops, 94 % for 40 sampled loops of 2,000
(the coarse DTW is the lossy stage; ``shortlist_k`` 40 gave 97 % and 87 %).
2,000 loops take about 70 s end to end on two cores. ``auto`` (default) is
exact up to ``auto_exact_max`` (500) loops and shortlist above.
Costs per loop are constant in shortlist mode except stage 1's exact kNN
(O(n^2) vector distances, chunked): around 10^5 loops an approximate index
(e.g. HNSW) would replace it, and the DTW stages, whose pairs are
independent, could be spread over machines (joblib with its Dask backend).

Sharpening, ordering, labels
----------------------------
Raw similarity = exp(-d / median positive finite d) x overlap, diagonal 1.
``self_tuned_knn``: sigma_i = k-th smallest positive distance of row i,
sim = exp(-d^2 / (sigma_i sigma_j)) x overlap, kept on mutual (or, without
``mutual_knn``, union) k-nearest-neighbour edges. ``sinkhorn``: entries
floored at eps, rows and columns normalised alternately, symmetrised,
diagonal raised to >= 1, divided by the maximum. ``none``: the raw matrix.
Mutual kNN can cut the graph into pieces, which makes the Fiedler vector
arbitrary inside the null space; when that happens the edges of the minimum
spanning tree of the DTW distances that join different pieces are added
back with their raw similarity (``bridges_added`` in the summary), so the
graph is always connected.

Normalised Laplacian L = I - D^-1/2 S D^-1/2 (degrees floored at 1e-8). Each
eigenvector's sign is FIXED: its entry of largest magnitude is made positive
(ties broken by the sign of the sum of cubes), so bins and tags do not flip
between runs, library versions or file orders. ``cm_bin_k``: quantile bin of
the Fiedler value (seed's rule, computed from ranks so it is exact);
``lap_e{j}_pos|neg``: eigenvector j at or above its median.

Modules
-------
``frames``        :class:`SequenceParams`, :func:`rhythm_features` (one signal's sequence)
``tempo``         :func:`loop_tempo`, :func:`estimate_loop_bpm` (loop BPM)
``sequences``     :func:`analyse_loop`, :func:`compute_sequences` -> :class:`SequenceSet`
``common``        leaf: shared helpers (``noop_progress``, ``row_ranks``)
``params``        leaf: :class:`DTWParams` (how pairs are chosen and compared)
``shortlist``     :func:`shortlist_vectors`, :func:`shortlist_pairs` (shortlist mode)
``pairwise``      :func:`pairwise_dtw` -> :class:`DTWResult` (all pairs or the shortlist)
``contact_map``   :class:`SharpenParams`, :class:`ContactMap` and its tables
``graph``         sharpening, connectivity guard, Laplacian, :func:`build_contact_map`
``artifacts``     :func:`write_artifacts` (CSV, PNG, summary JSON)
``run``           :func:`run_contact_map` -> :class:`ContactRun` (the CLI's work)

Tunable module constants (``DENSE_EIG_MAX``, ``LOOP_GRID_MIN``, ...) live in
the module that reads them; patch them there, not on this package.
"""
from __future__ import annotations

from .artifacts import ARTIFACT_NAMES, write_artifacts
from .contact_map import ContactMap, SharpenParams
from .frames import RhythmFeatures, SequenceParams, rhythm_features
from .graph import build_contact_map, quantile_bins
from .pairwise import DTWResult, pairwise_dtw
from .params import DTWParams
from .run import ContactRun, run_contact_map
from .sequences import LoopInfo, SequenceSet, analyse_loop, compute_sequences
from .shortlist import shortlist_pairs, shortlist_vectors
from .tempo import estimate_loop_bpm, loop_tempo

__all__ = [
    "ARTIFACT_NAMES", "ContactMap", "ContactRun", "DTWParams", "DTWResult", "LoopInfo",
    "RhythmFeatures", "SequenceParams", "SequenceSet", "SharpenParams", "analyse_loop",
    "build_contact_map", "compute_sequences", "estimate_loop_bpm", "loop_tempo", "pairwise_dtw",
    "quantile_bins", "rhythm_features", "run_contact_map", "shortlist_pairs", "shortlist_vectors",
    "write_artifacts",
]
