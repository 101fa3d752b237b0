"""``python -m engine compare-label-sources``: one tag head per label source, compared."""
from __future__ import annotations

NAME = "compare-label-sources"
HELP = ("Train a tag head from each label source (filename, audio, hybrid; roles with "
        "--include_roles) on the same loops and write label_source_comparison.csv/.json.")


def add_arguments(p):
    from ..tags.cliutil import add_training_args

    p.add_argument("--folder", required=True, help="folder of loops (walked recursively)")
    p.add_argument("--out_dir", default="training/models")
    p.add_argument("--include_roles", action="store_true",
                   help="also the roles source (needs <folder>/roles.csv or --roles_csv)")
    p.add_argument("--roles_csv", default=None)
    add_training_args(p)


def run(args) -> int:
    from ..tags.cliutil import Bar, config_from_args, runtime_kwargs, show_progress
    from ..tags.train import compare_label_sources

    sources = ("filename", "audio", "hybrid") + (("roles",) if args.include_roles else ())
    bar = Bar(show_progress(args), "features")
    try:
        res = compare_label_sources(args.folder, args.out_dir, sources=sources,
                                    cfg=config_from_args(args), max_files=args.max_files,
                                    roles_csv=args.roles_csv, progress=bar,
                                    **runtime_kwargs(args))
    finally:
        bar.close()
    for src in sources:
        st = res[src]
        if st["status"] != "ok":
            print(f"{src:<9} {st['status']}: {st.get('error', '')}")
    for row in res["leaderboard"]["rows"]:
        print(f"{row['label_source']:<9} rows={row['n_rows']:<5} classes={row['n_classes']:<3} "
              f"test macro F1 {row['test_macro_f1_calibrated']:.3f} "
              f"(majority {row['test_macro_f1_majority_baseline']:.3f})")
    print(f"best: {res['leaderboard']['best']} -> {res['leaderboard']['csv']}")
    return 0
