"""``python -m engine extract``: find bars, rank and export loops for a file or a folder."""
from __future__ import annotations

import sys

NAME = "extract"
HELP = ("Find tempo, beats and bar lines, rank bar-aligned loop candidates and export the "
        "best as seam-safe, loudness-normalised WAVs with metadata CSVs.")


def _bars(text: str) -> tuple:
    try:
        vals = tuple(sorted({int(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        raise SystemExit(f"error: --bars must be comma-separated whole numbers, got {text!r}")
    if not vals or min(vals) < 1:
        raise SystemExit("error: --bars needs at least one length of 1 bar or more")
    return vals


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="one audio file")
    src.add_argument("--folder", help="a folder of audio files (walked recursively)")
    p.add_argument("--out_dir", default="out/loops", help="where loops, CSVs and the summary go")
    p.add_argument("--bars", default="1,2,4,8", help="loop lengths in bars, comma-separated")
    p.add_argument("--top_k", type=int, default=5, help="loops to export per track")
    p.add_argument("--export_mp3", action="store_true", help="also write MP3 previews")
    p.add_argument("--beats_per_bar", type=int, default=0, choices=(0, 3, 4),
                   help="meter: 0 (default) detects it (4/4 unless the music is in three); "
                   "3 or 4 forces it")
    p.add_argument("--bpm", type=float, default=None,
                   help="fix the tempo (e.g. 128, or half/double of what was found); the engine "
                   "still finds the beats and bar lines on that grid")
    p.add_argument("--downbeat_offset", type=int, default=0,
                   help="shift bar one by N beats when the bar lines are off (e.g. 1, 2, -1)")
    p.add_argument("--min_bpm", type=float, default=70.0, help="lower end of the DJ tempo range")
    p.add_argument("--max_bpm", type=float, default=180.0, help="upper end of the DJ tempo range")
    p.add_argument("--adaptive_4_vs_8", action="store_true",
                   help="keep only 4- or 8-bar loops when one clearly fits the track better")
    p.add_argument("--max_overlap", type=float, default=0.5,
                   help="skip a candidate overlapping a better one by more than this fraction")
    p.add_argument("--embedding", default="none", choices=("none", "auto", "spectral", "openl3"),
                   help="pooled per-loop embeddings: auto = OpenL3 if weights are found, else the "
                   "model-free 'spectral' embedding")
    p.add_argument("--openl3_weights", default=None,
                   help="OpenL3 weights file or folder (else $LOOPLAB_OPENL3_WEIGHTS)")
    p.add_argument("--embedding_hop", type=float, default=0.5, help="seconds between embedding windows")
    p.add_argument("--model", default=None, help="XGBoost loop-quality model (JSON/UBJ with "
                   "<model>.features.json beside it); default: the shipped model "
                   "engine/models/loop_ranker.ubj; 'heuristic' for the transparent heuristic. "
                   "The score_source column names what ranked the loops")
    p.add_argument("--disable_composite_rerank", action="store_true",
                   help="never apply the composite re-rank (default: only on top of the heuristic)")
    p.add_argument("--composite_rerank", action="store_true",
                   help="apply the seed's composite re-rank on top of the model too")
    p.add_argument("--weight_model_score", type=float, default=0.75)
    p.add_argument("--weight_periodicity", type=float, default=0.15)
    p.add_argument("--weight_drum_alignment", type=float, default=0.10)
    p.add_argument("--fade_ms", type=float, default=5.0, help="fade at each seam, ms")
    p.add_argument("--seam_mode", default="fade", choices=("fade", "crossfade"),
                   help="fade both cuts, or crossfade the tail into the pre-roll (keeps the downbeat attack)")
    p.add_argument("--snap_mode", default="joint", choices=("joint", "each", "none"),
                   help="zero-crossing snapping: joint keeps the exact bar length")
    p.add_argument("--mp3_bitrate_kbps", type=int, default=192, help="MP3 preview bitrate")
    p.add_argument("--target_lufs", type=float, default=-14.0, help="loudness target (LUFS)")
    p.add_argument("--ceiling_dbfs", type=float, default=-1.0, help="peak ceiling (dBFS)")
    p.add_argument("--wav_subtype", default="PCM_24", choices=("PCM_16", "PCM_24", "FLOAT"))
    p.add_argument("--jobs", type=int, default=0, help="parallel workers (0 = one per core, max 4)")
    p.add_argument("--backend", default="local", choices=("local", "dask"),
                   help="run the batch locally (joblib) or on a Dask cluster")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://127.0.0.1:8786 (with --backend dask)")
    p.add_argument("--no_cache", action="store_true", help="ignore and do not write the analysis cache")
    p.add_argument("--cache_dir", default=None, help="analysis cache folder (default: ./cache)")
    p.add_argument("--zip", action="store_true", help="also pack the run into loops_export.zip")


def config_from_args(args):
    """PipelineConfig from parsed flags."""
    from dataclasses import replace

    from ..config import AnalysisConfig, ExportConfig, PipelineConfig, RankConfig
    from ..pipeline import default_jobs

    analysis = AnalysisConfig(beats_per_bar=args.beats_per_bar, min_bpm=args.min_bpm,
                              max_bpm=args.max_bpm, bars=_bars(args.bars),
                              adaptive_4_vs_8=args.adaptive_4_vs_8, embedding=args.embedding,
                              embedding_hop=args.embedding_hop, openl3_weights=args.openl3_weights,
                              bpm=args.bpm, downbeat_offset=args.downbeat_offset)
    if args.bpm is not None and not (20.0 <= args.bpm <= 400.0):
        raise SystemExit(f"error: --bpm must be between 20 and 400, got {args.bpm}")
    if args.min_bpm <= 0 or args.max_bpm <= args.min_bpm * 1.9:
        raise SystemExit("error: --max_bpm must be at least 1.9 x --min_bpm (a tempo octave)")
    rank = RankConfig(top_k=max(1, args.top_k), weight_model_score=args.weight_model_score,
                      weight_periodicity=args.weight_periodicity,
                      weight_drum_alignment=args.weight_drum_alignment,
                      use_composite_rerank=(False if args.disable_composite_rerank else
                                            True if args.composite_rerank else None),
                      max_overlap=args.max_overlap, model_path=args.model)
    export = replace(ExportConfig(), fade_ms=args.fade_ms, target_lufs=args.target_lufs,
                     ceiling_dbfs=args.ceiling_dbfs, subtype=args.wav_subtype,
                     export_mp3=args.export_mp3, seam_mode=args.seam_mode,
                     snap_mode=args.snap_mode, mp3_bitrate_kbps=args.mp3_bitrate_kbps)
    cfg = PipelineConfig(analysis=analysis, rank=rank, export=export,
                         n_jobs=args.jobs or default_jobs(), backend=args.backend,
                         scheduler=args.scheduler, use_cache=not args.no_cache,
                         make_zip=args.zip)
    if args.cache_dir:
        cfg = replace(cfg, cache_dir=args.cache_dir)
    return cfg


def run(args) -> int:
    from tqdm import tqdm

    from ..pipeline import collect_inputs, run_batch

    cfg = config_from_args(args)
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
    return 1 if result.n_failed else 0
