"""``python -m engine key``: musical key, Camelot and Open Key of audio files."""
from __future__ import annotations

NAME = "key"
HELP = "Detect the musical key of tracks or loops (key, Camelot, Open Key, confidence)."


def add_arguments(p):
    p.add_argument("--input", action="append", default=[], metavar="FILE",
                   help="audio file; repeat for several")
    p.add_argument("--folder", default=None,
                   help="also analyse every audio file below this folder (recursive)")
    p.add_argument("--sr", type=int, default=22050, help="analysis sample rate")
    p.add_argument("--profile", default=None,
                   help="key profile: albrecht (default), krumhansl, temperley, temperley99, aarden")
    p.add_argument("--bars", action="store_true",
                   help="detect beats and bar lines first (as extract does) and weigh the chord "
                        "and bass on bar one, phrase starts and cadences; slower (about 1.5 s "
                        "per 4-minute track instead of 0.1 s)")
    p.add_argument("--out_csv", default=None,
                   help="also write the table to this CSV file")


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..audio import find_audio_files, load_mono
    from ..errors import LoopLabError
    from ..key import DEFAULT_PROFILE, PROFILES, key_of_audio

    profile = args.profile or DEFAULT_PROFILE
    if profile not in PROFILES:
        print(f"error: unknown --profile {profile!r}; choose from {', '.join(sorted(PROFILES))}",
              file=sys.stderr)
        return 2
    files = [Path(f) for f in args.input]
    if args.folder:
        files += find_audio_files(args.folder)
    if not files:
        print("error: give at least one --input FILE or a --folder", file=sys.stderr)
        return 2

    rows, failed = [], 0
    width = max(len(f.name) for f in files)
    print(f"{'file':<{width}}  {'key':<12} {'camelot':>7} {'open_key':>8} {'confidence':>10}")
    for f in files:
        try:
            y, _info = load_mono(f, args.sr)
        except (LoopLabError, FileNotFoundError) as exc:
            failed += 1
            print(f"{f.name:<{width}}  error: {exc}")
            rows.append({"file": str(f), "key": "", "camelot": "", "open_key": "",
                         "confidence": "", "error": str(exc)})
            continue
        downbeats = None
        if args.bars:
            try:
                downbeats = _downbeats(y, args.sr, f)
            except LoopLabError as exc:          # too short / no beat: key without the grid
                print(f"{f.name}: no bar grid ({exc}); key from the whole chroma", file=sys.stderr)
        k = key_of_audio(y, args.sr, profile=profile, downbeats=downbeats)
        print(f"{f.name:<{width}}  {k.key:<12} {k.camelot or '-':>7} {k.open_key or '-':>8} "
              f"{k.confidence:>10.2f}")
        rows.append({"file": str(f), "key": k.key, "camelot": k.camelot or "",
                     "open_key": k.open_key or "", "confidence": round(k.confidence, 3),
                     "error": ""})
    if args.out_csv:
        import pandas as pd

        from ..atomic import atomic_write_csv

        atomic_write_csv(pd.DataFrame(rows), args.out_csv, index=False)
        print(f"wrote {args.out_csv}")
    if failed == len(files):
        return 2
    return 1 if failed else 0


def _downbeats(y, sr: int, path):
    """Bar lines of a mono signal, found as the extract pipeline finds them."""
    from ..config import AnalysisConfig
    from ..features import compute_track_features
    from ..rhythm import analyse_rhythm

    cfg = AnalysisConfig(sr=sr)
    frames, onsets = compute_track_features(y, sr, cfg)
    grid = analyse_rhythm(y, sr, cfg, onsets=onsets, chroma=frames.chroma, chroma_fps=frames.fps,
                          mel=frames.mel, path=str(path))
    return grid.downbeats
