"""``python -m engine embed``: per-window embeddings of one audio file to .npz.

Writes ``embedding`` (frames x dims, float32) and ``timestamps`` (seconds),
plus ``backend``, ``hop_size`` and ``center``, atomically. The backend is
OpenL3 (NumPy re-implementation, official weights) when weights are found,
else the model-free ``spectral`` embedding, and the command says which.
"""
from __future__ import annotations


NAME = "embed"
HELP = ("Compute per-window audio embeddings (OpenL3 with official weights, no TensorFlow; "
        "or the model-free 'spectral' backend) and save them as .npz.")


def add_arguments(p):
    from ..openl3 import CONTENT_TYPES, EMBEDDING_SIZES, INPUT_REPRS

    p.add_argument("--input", required=True, help="audio file")
    p.add_argument("--out", required=True, help="output .npz (embedding, timestamps)")
    p.add_argument("--backend", default="auto", choices=("auto", "openl3", "spectral"),
                   help="auto: OpenL3 if weights are found, else spectral")
    p.add_argument("--weights", default=None,
                   help="OpenL3 weights .h5 file or folder (else $LOOPLAB_OPENL3_WEIGHTS, "
                        "an installed openl3 package, models/openl3/)")
    p.add_argument("--input_repr", default="mel128", choices=INPUT_REPRS,
                   help="OpenL3 spectrogram input")
    p.add_argument("--content_type", default="music", choices=CONTENT_TYPES,
                   help="OpenL3 training content (selects the weights file)")
    p.add_argument("--embedding_size", type=int, default=512, choices=EMBEDDING_SIZES,
                   help="OpenL3 embedding dimension")
    p.add_argument("--hop_size", type=float, default=0.1, help="seconds between 1-s windows")
    p.add_argument("--no_center", action="store_true",
                   help="do not pad half a window at the start (timestamps = window starts)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from ..audio import load_mono, probe
    from ..embeddings import embedding_timeline, get_embedder

    embedder = get_embedder(args.backend, weights=args.weights, input_repr=args.input_repr,
                            content_type=args.content_type,
                            embedding_size=args.embedding_size)
    if embedder.name == "spectral":
        if args.backend == "auto":
            print(f"note: {embedder.note}")
        print("backend: spectral (model-free log-mel/chroma/tempogram summary; not OpenL3)")
    else:
        print(f"backend: {embedder.name} (NumPy OpenL3, {embedder.note})")

    info = probe(args.input)
    # native rate: the OpenL3 path resamples with resampy itself, as openl3 does
    y, info = load_mono(args.input, sr=info.sr, min_duration=0.01, info=info)

    from tqdm import tqdm

    bar = tqdm(total=1, desc="embed", unit="step", disable=True if args.quiet else None)

    def progress(done, total, message):
        bar.total = max(int(total), 1)
        bar.update(int(done) - bar.n)
        bar.set_postfix_str(str(message)[-40:])

    tl = embedding_timeline(y, info.sr, embedder, hop_size=args.hop_size,
                            center=not args.no_center, progress=progress)
    bar.close()
    out = tl.save(args.out)
    print(f"wrote {out}: {len(tl)} windows x {tl.dim} dims ({tl.backend}, hop {args.hop_size:g} s, "
          f"{info.duration:.1f} s of audio)")
    return 0
