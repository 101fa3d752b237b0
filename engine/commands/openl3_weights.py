"""``python -m engine openl3-weights``: show where OpenL3 weights are looked for, or fetch them.

Without ``--download`` it lists, for every input representation and content
type, where it looked and what it found (checking found files); exit status
0 when the requested file was found and is valid, 1 otherwise.
``--download`` fetches the official ``.h5.gz`` from the openl3 project (the
only network access anywhere in the engine, and only on this request).
"""
from __future__ import annotations

NAME = "openl3-weights"
HELP = "List where OpenL3 weight files are searched and found, or --download an official one."


def add_arguments(p):
    from ..openl3 import CONTENT_TYPES, INPUT_REPRS

    p.add_argument("--download", action="store_true",
                   help="fetch the official weights file (needs internet)")
    p.add_argument("--input_repr", default="mel128", choices=INPUT_REPRS,
                   help="OpenL3 spectrogram input")
    p.add_argument("--content_type", default="music", choices=CONTENT_TYPES,
                   help="OpenL3 training content")
    p.add_argument("--dest", default=None, help="folder to save into; models/openl3/ when not given")
    p.add_argument("--weights", default=None, help="explicit file or folder to check")
    p.add_argument("--timeout", type=float, default=15.0, help="download timeout, seconds")


def run(args) -> int:
    from .. import openl3 as ol3
    from ..errors import ModelError

    if args.download:
        dest = args.dest or ol3.DEFAULT_WEIGHTS_DIR
        url = ol3.WEIGHTS_URL.format(repr=args.input_repr, content=args.content_type)
        print(f"downloading {url} (timeout {args.timeout:g} s) ...")
        path = ol3.download_weights(args.input_repr, args.content_type, dest=dest,
                                    timeout=args.timeout)
        print(f"saved and checked {path}")
        return 0

    print("OpenL3 weights search order: --weights, $%s (file or folder), installed openl3 "
          "package, %s" % (ol3.WEIGHTS_ENV, ol3.DEFAULT_WEIGHTS_DIR))
    status = 1
    combos = ([(args.input_repr, args.content_type)] if args.weights else
              [(r, c) for r in ol3.INPUT_REPRS for c in ol3.CONTENT_TYPES])
    for repr_, content in combos:
        if True:
            requested = (repr_, content) == (args.input_repr, args.content_type)
            try:
                search = ol3.find_weights(repr_, content, args.weights)
            except ModelError as exc:
                print(f"{'*' if requested else ' '} {repr_:6s} {content:5s}: {exc}")
                continue
            if search.path is None:
                line = "not found"
            else:
                try:
                    w = ol3.load_weights(search.path)
                    line = f"{search.path} (valid, {w.n_params:,} parameters)"
                    if requested:
                        status = 0
                except ModelError as exc:
                    line = f"INVALID: {exc}"
            print(f"{'*' if requested else ' '} {repr_:6s} {content:5s}: {line}")
            if requested:
                for where, p, st in search.tried:
                    print(f"      looked at {where}{': ' + p if p else ''} -> {st}")
    if status:
        print(f"requested weights ({args.input_repr}, {args.content_type}) not found: "
              "`python -m engine embed` will use the model-free 'spectral' backend. "
              "Get them with --download, or put the file in a folder above.")
    return status
