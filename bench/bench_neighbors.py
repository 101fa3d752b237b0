"""Neighbour aspects on loops with known song membership: P@5 / P@10 and seconds.

Loop set: from every dev-set track (``/tmp/looplab-devset``, see
../shared/realbench/README.md) ``--per_song`` loops of ``--bars`` bars cut at
ground-truth downbeats, evenly spread over the song, plus the same from
``--synth_songs`` generated tracks (engine.synth). "Same song" is the proxy
for "sounds like it and would mix with it".

For each aspect alone (rhythm, timbre, harmony, tempo), the weighted
``overall`` and a random ranking it prints P@5 and P@10 (share of a loop's 5
/ 10 nearest neighbours from its own song). Weights are chosen honestly: songs
are split in two halves (sorted ids, alternating); the weights that maximise
P@5 + P@10 on half A (pool: A's loops only) are reported on half B (pool: B only) and
vice versa. The engine's defaults (engine.config.AspectWeights) are also
scored on both halves.

``--scale N`` (default 2000) also times the whole neighbour build (decode once,
descriptors, DTW exact or shortlist, aspect graph) for 200 and N loops cut
from the dev set with overlapping windows, with a cold cache, against the
contact map alone (DTW only) in the same process.

    flock /tmp/looplab-heavy.lock python bench/bench_neighbors.py
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.aspects import ASPECTS, analyse_loop_set, build_aspect_graph  # noqa: E402
from engine.config import AspectWeights  # noqa: E402
from engine.contact import DTWParams, SequenceParams, pairwise_dtw  # noqa: E402

GRID = (0.0, 0.25, 0.5, 1.0)        # weights are scale-free: the largest is 1
SYNTH_SONGS = [  # bpm, key, timbre, patterns, swing
    (124, "A minor", "pad", ("four_on_floor", "breakbeat"), 0.0),
    (98, "D major", "pluck", ("breakbeat", "halftime"), 0.2),
    (140, "F# minor", "pad", ("halftime", "four_on_floor"), 0.0),
    (110, "Bb major", "pluck", ("four_on_floor",), 0.1),
    (128, "E minor", "pluck", ("breakbeat",), 0.0),
    (86, "C major", "pad", ("halftime", "breakbeat"), 0.3),
]


def _cut(y, sr, downbeats, n_loops, bars, out_dir, song, end_s, hop_bars=None):
    """Write loops of ``bars`` bars starting on downbeats; returns rows."""
    db = np.asarray(downbeats, dtype=float)
    db = db[db < end_s]
    last = len(db) - 1 - bars          # loop end must be a known downbeat
    if last < 0:
        return []
    if hop_bars:
        starts = list(range(0, last + 1, hop_bars))
    else:
        starts = sorted(set(np.linspace(0, last, n_loops).round().astype(int).tolist()))
    rows = []
    for b in starts:
        a, z = int(round(db[b] * sr)), int(round(db[b + bars] * sr))
        seg = y[a:z]
        if seg.shape[0] < sr:
            continue
        f = out_dir / song / f"{song}__bar{b:03d}_{bars}bars.wav"
        f.parent.mkdir(parents=True, exist_ok=True)
        if not f.exists():
            sf.write(str(f), seg, sr, subtype="PCM_16")
        rows.append({"file": str(f), "song": song, "bar": b, "bars": bars})
    return rows


def build_loopset(devset: Path, out: Path, per_song: int, bars: int, n_synth: int,
                  hop_bars=None, bar_options=None) -> pd.DataFrame:
    rows = []
    for js in sorted((devset / "gt").glob("*.json")):
        gt = json.loads(js.read_text())
        wav = js.with_suffix(".wav")
        if not wav.exists():
            continue
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        end = float(gt.get("content_end_s") or gt["duration_s"])
        for nb in (bar_options or (bars,)):
            r = _cut(y, sr, gt["downbeats_s"], per_song, nb, out, gt["id"], end, hop_bars)
            for x in r:
                x["kind"] = "real"
            rows += r
    from engine.synth import synth_track

    for i, (bpm, key, timbre, pats, swing) in enumerate(SYNTH_SONGS[:n_synth]):
        song = f"synth_{i}_{bpm}"
        t = synth_track(bpm, n_bars=40, section_bars=8, patterns=pats, swing=swing, key=key,
                        timbre=timbre, sr=22050, stereo=False, seed=100 + i)
        y = t.audio.reshape(len(t.audio), -1).mean(axis=1)
        for nb in (bar_options or (bars,)):
            r = _cut(y, t.sr, t.truth.downbeats, per_song, nb, out, song,
                     t.truth.duration, hop_bars)
            for x in r:
                x["kind"] = "synth"
            rows += r
    return pd.DataFrame(rows)


def dense(graph, values, n):
    M = np.full((n, n), -np.inf)
    M[graph.pa, graph.pb] = values
    M[graph.pb, graph.pa] = values
    return M


def precision_at(M, songs, idx, ks=(5, 10)):
    """Mean share of same-song loops among each query's k best (pool = idx)."""
    sub = M[np.ix_(idx, idx)].copy()
    np.fill_diagonal(sub, -np.inf)
    lab = np.asarray(songs)[idx]
    order = np.argsort(-sub, axis=1, kind="stable")
    out = {}
    for k in ks:
        top = order[:, :k]
        out[k] = float((lab[top] == lab[:, None]).mean())
    return out


def random_precision(songs, idx, ks=(5, 10), seed=0):
    rng = np.random.default_rng(seed)
    n = len(idx)
    R = rng.random((n, n))
    M = np.zeros((max(idx) + 1,) * 2)
    M[np.ix_(idx, idx)] = R
    return precision_at(M, songs, idx, ks)


def weighted(mats, w):
    tot = sum(w.values())
    return sum(w[a] * mats[a] for a in ASPECTS if w[a] > 0) / tot


def search_weights(mats, songs, idx):
    best = (-1.0, None)
    for combo in itertools.product(GRID, repeat=len(ASPECTS)):
        if max(combo) != 1.0:
            continue
        w = dict(zip(ASPECTS, combo))
        pk = precision_at(weighted(mats, w), songs, idx)
        p = pk[5] + pk[10]
        if p > best[0] + 1e-12:
            best = (p, w)
    return best


def quality(args):
    work = Path(args.work)
    loops = build_loopset(Path(args.devset), work / "loops", args.per_song, args.bars,
                          args.synth_songs)
    loops = loops.sort_values("file").reset_index(drop=True)
    print(f"loop set: {len(loops)} loops from {loops['song'].nunique()} songs "
          f"({(loops.kind == 'real').sum()} real from {loops[loops.kind == 'real'].song.nunique()}"
          f" dev-set tracks, {(loops.kind == 'synth').sum()} generated), {args.bars} bars each")
    t0 = time.perf_counter()
    lset = analyse_loop_set(loops["file"], SequenceParams(), cache_dir=work / "cache",
                            embedding="spectral", n_jobs=args.jobs)
    t_an = time.perf_counter() - t0
    files = lset.files
    song_of = dict(zip(loops["file"], loops["song"]))
    songs = np.array([song_of[f] for f in files])
    n = len(files)
    t0 = time.perf_counter()
    dtw = pairwise_dtw(lset.seqset, DTWParams(mode="exact"), cache_dir=work / "cache")
    t_dtw = time.perf_counter() - t0
    g = build_aspect_graph(lset, dtw)
    ge = build_aspect_graph(lset, dtw, timbre="embedding")
    mats = {a: dense(g, g.sims[a], n) for a in ASPECTS}
    mats_emb = dense(ge, ge.sims["timbre"], n)
    print(f"analysis {t_an:.1f} s (decode once: sequence, BPM, key, descriptors, spectral "
          f"embedding; cached after the first run), exact DTW {t_dtw:.1f} s, {n} loops")
    uniq = sorted(set(songs))
    halves = {"A": [s for i, s in enumerate(uniq) if i % 2 == 0],
              "B": [s for i, s in enumerate(uniq) if i % 2 == 1]}
    idx = {h: np.flatnonzero(np.isin(songs, v)) for h, v in halves.items()}
    idx["all"] = np.arange(n)
    chosen = {}
    for h in ("A", "B"):
        p, w = search_weights(mats, songs, idx[h])
        chosen[h] = w
        print(f"weights chosen on half {h} ({len(halves[h])} songs, {len(idx[h])} loops): "
              f"{w} -> P@5 + P@10 {p:.3f} on {h}")
    rows = []
    default = AspectWeights().as_dict()
    for pool in ("A", "B", "all"):
        r = {"pool": pool, "songs": len(set(songs[idx[pool]])), "loops": len(idx[pool])}
        for a in ASPECTS:
            pk = precision_at(mats[a], songs, idx[pool])
            r[f"{a}@5"], r[f"{a}@10"] = pk[5], pk[10]
        pk = precision_at(mats_emb, songs, idx[pool])
        r["timbre_spectral_emb@5"] = pk[5]
        pk = precision_at(weighted(mats, default), songs, idx[pool])
        r["overall_default@5"], r["overall_default@10"] = pk[5], pk[10]
        if pool in ("A", "B"):
            other = "B" if pool == "A" else "A"
            pk = precision_at(weighted(mats, chosen[other]), songs, idx[pool])
            r["overall_heldout@5"], r["overall_heldout@10"] = pk[5], pk[10]
        pk = random_precision(songs, idx[pool])
        r["random@5"], r["random@10"] = pk[5], pk[10]
        rows.append(r)
    df = pd.DataFrame(rows).set_index("pool").T
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 160):
        print("\nP@K = share of a loop's K nearest neighbours from its own song")
        print("overall_heldout: weights chosen on the OTHER half; overall_default: "
              f"engine defaults {default}")
        print(df.to_string())
    real = np.flatnonzero(loops.set_index("file").loc[files, "kind"].to_numpy() == "real")
    pk = precision_at(weighted(mats, default), songs, real)
    print(f"\nreal loops only (pool: {len(real)} dev-set loops): overall_default P@5 "
          f"{pk[5]:.3f}, P@10 {pk[10]:.3f}; "
          + ", ".join(f"{a} {precision_at(mats[a], songs, real)[5]:.3f}" for a in ASPECTS))
    per_song = []
    M = weighted(mats, default)
    sub = M.copy()
    np.fill_diagonal(sub, -np.inf)
    top = np.argsort(-sub, axis=1, kind="stable")[:, :5]
    hit = (songs[top] == songs[:, None]).mean(axis=1)
    per_song = pd.Series(hit).groupby(songs).mean().sort_values()
    print("weakest songs (overall_default P@5, pool: all): "
          + ", ".join(f"{s} {v:.2f}" for s, v in per_song.head(6).items()))


def scale(args):
    from engine.aspects import run_aspects
    from engine.contact import compute_sequences

    work = Path(args.work)
    loops = build_loopset(Path(args.devset), work / "scale_loops", 0, 4, args.synth_songs,
                          hop_bars=1, bar_options=(2, 4))
    loops = loops.sort_values("file").reset_index(drop=True)
    if len(loops) < args.scale:
        print(f"only {len(loops)} loops available for the scale run")
    step = max(1, len(loops) // args.scale)
    big = loops["file"].iloc[::step].iloc[: args.scale].tolist()
    for n in (200, len(big)):
        files = big[:: max(1, len(big) // n)][:n]
        cache = work / f"scale_cache_{n}"
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        seqset = compute_sequences(files, cache_dir=cache, n_jobs=args.jobs)
        dtw = pairwise_dtw(seqset, DTWParams(), cache_dir=cache)
        t_contact = time.perf_counter() - t0
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        g = run_aspects(files, cache_dir=cache, n_jobs=args.jobs)
        t_aspects = time.perf_counter() - t0
        t0 = time.perf_counter()
        g.neighbors(AspectWeights(rhythm=1, timbre=0.5, harmony=0, tempo=0), 10)
        t_rew = time.perf_counter() - t0
        shutil.rmtree(cache, ignore_errors=True)
        print(f"{n} loops: neighbour aspects end to end (cold cache) {t_aspects:.1f} s "
              f"({g.mode}, {g.pa.size} pairs); rhythm DTW only (baseline, same process) "
              f"{t_contact:.1f} s; ratio {t_aspects / max(t_contact, 1e-9):.2f}; "
              f"re-weighting all neighbours {t_rew * 1000:.0f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", default="/tmp/looplab-devset")
    ap.add_argument("--work", default="/tmp/neighbors-bench")
    ap.add_argument("--per_song", type=int, default=10)
    ap.add_argument("--bars", type=int, default=4)
    ap.add_argument("--synth_songs", type=int, default=6)
    ap.add_argument("--scale", type=int, default=2000, help="loops for the timing run; 0: skip")
    ap.add_argument("--no_quality", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if not (Path(args.devset) / "gt").is_dir():
        raise SystemExit(f"dev set not found at {args.devset} (see ../shared/realbench/README.md)")
    if not args.no_quality:
        quality(args)
    if args.scale:
        scale(args)


if __name__ == "__main__":
    main()
