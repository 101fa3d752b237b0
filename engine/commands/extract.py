"""``python -m engine extract``: find bars, rank and export loops for a file or a folder."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "extract"
HELP = ("Find tempo, beats and bar lines, rank bar-aligned loop candidates and export the "
        "best as seam-safe, loudness-normalised WAVs with metadata CSVs.")


def add_arguments(p):
    from ..config import PipelineConfig, add_arguments as add_config_arguments

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="one audio file")
    src.add_argument("--folder", help="a folder of audio files (walked recursively)")
    p.add_argument("--out_dir", default="out/loops", help="where loops, CSVs and the summary go")
    add_config_arguments(p, PipelineConfig)      # every setting: engine/config.py
    p.add_argument("--dj_export", default="",
                   help="also write DJ-software files beside all_loops_metadata.csv: "
                        "'rekordbox' (rekordbox.xml), 'traktor' (collection.nml) or both")
    from .dj_export import add_common

    add_common(p, prefix="dj_")


def config_from_args(args):
    """PipelineConfig from parsed flags (``--jobs 0``: one worker per core, at most 4)."""
    from ..config import PipelineConfig, from_args
    from ..pipeline import default_jobs

    return from_args(PipelineConfig, args, n_jobs=args.n_jobs or default_jobs())


def run(args) -> int:
    from ..kernels import ensure_kernels

    if args.backend == "local":   # before librosa is imported here: a damaged numba cache
        for note in ensure_kernels().messages:     # breaks even the import; rebuild it first
            print(f"note: {note}", file=sys.stderr)

    from tqdm import tqdm

    from ..pipeline import collect_inputs, run_batch

    cfg = config_from_args(args)
    dj_formats = ()
    if args.dj_export:
        from ..djsoftware import parse_formats

        try:
            dj_formats = parse_formats(args.dj_export)
        except ValueError as exc:
            raise SystemExit(f"error: --dj_export: {exc}")
    if args.input and Path(args.input).is_dir():
        raise SystemExit(f"error: --input {args.input} is a folder; to extract loops from every "
                         f"audio file in it, use --folder {args.input}")
    paths = collect_inputs(args.input, args.folder)
    if not paths:
        print(f"no audio files found in {args.folder}", file=sys.stderr)
        return 1
    bar = tqdm(total=len(paths), unit="file", desc="extract", disable=None)

    def progress(done, total, message):
        bar.update(done - bar.n)
        bar.set_postfix_str(message[-60:])

    result = run_batch(paths, args.out_dir, cfg, progress=progress)
    bar.close()
    s = result.summary
    for r in result.results:
        if r.ok:
            cached = " (cached analysis)" if r.from_cache else ""
            emb = f", embedding {r.embedding_backend}" if r.embedding_backend != "none" else ""
            rh = r.rhythm or {}
            print(f"ok     {r.path}: {r.bpm:.2f} BPM ({rh.get('meter', '?')}, tempo confidence "
                  f"{rh.get('tempo_confidence', 0):.2f}, bar confidence "
                  f"{rh.get('bar_confidence', 0):.2f}), key {r.key or '-'}, "
                  f"{r.n_exported} loops from {r.n_candidates} candidates{emb}{cached}")
            for w in r.warnings:
                print(f"       warning: {w}")
        else:
            print(f"FAILED {r.path}: {r.error}")
    print(f"{s['n_ok']} of {s['n_files']} files ok, {s['n_loops']} loops -> {result.out_dir} "
          f"(summary: run_summary.json, all loops: all_loops_metadata.csv"
          f"{', zip: loops_export.zip' if result.zip_path else ''})")
    if dj_formats and s["n_ok"]:
        from ..djsoftware import write_dj_exports

        for fmt, path in write_dj_exports(result.out_dir, dj_formats,
                                          hot_cues=args.dj_hot_cues,
                                          mp3_offset_ms=args.dj_mp3_offset_ms).items():
            print(f"wrote {path} ({fmt})")
    return 1 if result.n_failed else 0
