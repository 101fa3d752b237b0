"""``python -m engine query``: a loop's nearest rhythm neighbours with mixing hints."""
from __future__ import annotations

NAME = "query"
HELP = ("Show a loop's nearest neighbours from a contact map, with target BPM, pitch-fader "
        "move (half/double time aware), CDJ pitch range and key compatibility.")

#: Columns printed (the CSV gets all of them).
SHOWN = ("neighbor_rank", "neighbor", "similarity", "neighbor_bpm_est", "neighbor_target_bpm",
         "recommended_pitch_fader_pct", "cdj_pitch_range", "stretch_agrees_with_bpm",
         "neighbor_camelot", "key_relation")

#: Columns printed with --aspects.
ASPECT_SHOWN = ("neighbor_rank", "neighbor", "overall", "rhythm", "timbre", "harmony", "tempo",
                "neighbor_bpm_est", "neighbor_target_bpm", "recommended_pitch_fader_pct",
                "cdj_pitch_range", "neighbor_camelot", "key_relation")


def add_arguments(p):
    p.add_argument("--nn_csv", default="training/models/contact_map/contact_nearest_neighbors.csv",
                   help="contact_nearest_neighbors.csv from contact-map")
    p.add_argument("--query", required=True, help="full path, file name or a unique part of it")
    p.add_argument("--top_k", type=int, default=10, help="neighbours to show (at least 1)")
    p.add_argument("--out_csv", default=None, help="also write the table here")
    p.add_argument("--disable_bpm_estimation", action="store_true",
                   help="never decode audio; use only the BPM stored at build time")
    p.add_argument("--loop_info", default=None,
                   help="per-loop info CSV (default: contact_loop_info.csv beside --nn_csv)")
    p.add_argument("--aspects", default=None,
                   help="rank by weighted aspects instead of rhythm alone: 'default' (measured "
                        "weights), one aspect ('timbre') or weights such as "
                        "'rhythm=1,timbre=0.5,harmony=0,tempo=0.25'; reads contact_aspects.npz "
                        "beside --nn_csv")


def run(args) -> int:
    from pathlib import Path

    import pandas as pd

    from ..atomic import atomic_write_csv
    from ..neighbors import query_neighbors, read_loop_info

    shown = SHOWN
    if args.aspects is not None:
        from ..aspects import aspect_query
        from ..config import AspectWeights

        from ..neighbors import QueryError

        try:
            weights = AspectWeights.parse(args.aspects)
        except ValueError as exc:
            raise QueryError(f"--aspects: {exc}") from None
        df = aspect_query(Path(args.nn_csv).parent, args.query, weights, args.top_k)
        w = ", ".join(f"{a}={v:g}" for a, v in df.attrs["weights"].items())
        print(f"aspect weights: {w}")
        shown = ASPECT_SHOWN
    else:
        info = read_loop_info(args.loop_info) if args.loop_info else None
        df = query_neighbors(args.nn_csv, args.query, args.top_k,
                             disable_bpm_estimation=args.disable_bpm_estimation, loop_info=info)
    q = df.attrs.get("query", args.query)
    qb = df["query_bpm_est"].iloc[0] if len(df) else None
    qk = df["query_camelot"].iloc[0] if len(df) else None
    bpm_txt = f"{qb:.2f} BPM" if isinstance(qb, float) and qb == qb else "BPM unknown"
    print(f"query: {q} ({bpm_txt}{', key ' + str(qk) if isinstance(qk, str) else ''})")
    for w in df.attrs.get("warnings", []):
        print(f"note: {w}")
    show = df.copy()
    show["neighbor"] = [Path(f).name for f in show["neighbor_file"]]
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 40, "display.float_format", "{:.2f}".format):
        print(show[[c for c in shown if c in show.columns]].to_string(index=False))
    if args.out_csv:
        atomic_write_csv(df, args.out_csv)
        print(f"wrote {args.out_csv}")
    return 0
