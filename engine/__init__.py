"""LoopLab engine: turn music into DJ- and DAW-ready loops.

The engine never imports streamlit. Every public function works from the
command line (``python -m engine``), from tests and from the dashboard.

Modules, one per pipeline stage::

    audio       decode and validate audio files
    rhythm      tempo, beats, downbeats (bar phase)
    candidates  bar-aligned loop candidates, near-duplicate suppression
    features    per-track frame features, per-candidate aggregation
    key         musical key, Camelot / Open Key codes
    embeddings  OpenL3 (NumPy) and model-free spectral embeddings
    scoring     loop-quality scorer and composite re-rank
    export      seam-safe slicing, loudness normalisation, WAV/MP3, CSV, ZIP
    loudness    BS.1770 integrated loudness for any channel layout, peaks
    mp3         MP3 previews: MPEG rate, stereo downmix, LAME via libsndfile
    naming      safe file names, loop file names, ZIP member names
    dtw         compiled subsequence DTW, parallel over pairs
    contact     (package) rhythm sequences, DTW stage, sharpening, spectral order, artifacts
    neighbors   nearest-neighbour queries with BPM / pitch / key hints
    pipeline    per-track and batch orchestration, progress, parallelism
    cache       on-disk cache keyed by audio content, parameters and code version
    synth       synthetic tracks with ground truth (tests, demo, training)
"""

__version__ = "0.1.0"

#: Bumped whenever a change alters cached analysis results.
CODE_VERSION = "2026.12.01-ranker"
