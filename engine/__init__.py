"""LoopLab engine: turn music into DJ- and DAW-ready loops.

The engine never imports streamlit. Every public function works from the
command line (``python -m engine``), from tests and from the dashboard.

Start with :mod:`engine.stages` (the per-track stages, in order),
:mod:`engine.pipeline` (their runner, ranking, export, batches),
:mod:`engine.schema` (the candidate table's columns) and :mod:`engine.config`
(every setting); README's "Architecture" lists every module.
"""

__version__ = "0.1.0"

#: Part of every cache key. Bumping it is optional: the analysis cache key also
#: hashes the engine's source (:func:`engine.cache.engine_source_hash`).
CODE_VERSION = "2026.11.24-1"
