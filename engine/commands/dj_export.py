"""``python -m engine dj-export``: rekordbox XML / Traktor NML from an extract run folder."""
from __future__ import annotations

NAME = "dj-export"
HELP = ("Write rekordbox.xml (rekordbox) and/or collection.nml (Traktor) into an extract run "
        "folder: each analysed track with its beat grid, key and its loops as saved loops.")


def add_arguments(p):
    p.add_argument("--run_dir", required=True,
                   help="extract output folder (holds run_summary.json, all_loops_metadata.csv)")
    p.add_argument("--formats", default="rekordbox,traktor",
                   help="rekordbox, traktor or both, comma-separated")
    add_common(p)


def add_common(p, prefix: str = ""):
    """Flags shared with ``extract --dj_export`` (``prefix`` "dj_" there)."""
    p.add_argument(f"--{prefix}hot_cues", type=int, default=0,
                   help="also put the best N loops on hot cues (0-8)")
    p.add_argument(f"--{prefix}mp3_offset_ms", type=float, default=0.0,
                   help="shift positions on MP3 sources by this many ms (positive = later); "
                        "see README 'DJ software'")


def run(args) -> int:
    from ..djsoftware import write_dj_exports

    out = write_dj_exports(args.run_dir, args.formats, hot_cues=args.hot_cues,
                           mp3_offset_ms=args.mp3_offset_ms)
    for fmt, path in out.items():
        print(f"wrote {path} ({fmt})")
    return 0
