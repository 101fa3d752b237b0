"""Per-loop features for the tag classifiers: one decode, one STFT, one HPSS.

Every loop file is decoded once (mono, 22.05 kHz, first ``max_seconds``) and
one pass computes three families of numbers, cached together per file
content (:func:`compute_features`):

* the seed's 53 classifier features (``duration_sec, tempo_est, rms_mean,
  ... pulse_clarity, mfcc_{1..20}_{mean,std}``), kept by name so datasets stay
  comparable;
* the quantities the audio-derived weak labels are thresholds on
  (``tempo_est, beat_cv, syncopation, percussive_ratio, onset_rate,
  phrase_acf``; see :mod:`engine.tags.labels_audio`);
* timbre and harmony descriptors: the shared per-loop statistics of
  :mod:`engine.descriptors` (log-mel, MFCC, chroma, contrast, spectral shape)
  plus tag-specific ones (key-invariant chroma ranks and peakiness, harmonic
  and percussive energy per band, vibrato modulation, brightness and level
  slopes), which carry what a part *is* rather than when it plays.

The seed decoded every file twice and ran HPSS twice (once for the features,
once for the audio labels); here both come from the same record.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DEFAULT_CACHE_DIR
from ..errors import AudioError, LoopLabError

#: Bumped whenever a feature's definition changes (part of the cache key).
TAGS_FEATURE_VERSION = "6"

#: Fewer cache misses than this are computed in-process.
PARALLEL_MIN_FILES = 24

#: Peak-picking threshold of the onset counter (librosa's default 0.07 missed
#: soft hats under sustained parts on generated loops; 0.03 counts them).
ONSET_DELTA = 0.03

N_MFCC = 20
#: Band edges (Hz) of the harmonic / percussive energy shares.
ENERGY_BANDS = (0.0, 120.0, 400.0, 2000.0, 6000.0, 11025.0)
_BAND_NAMES = ("sub", "low", "mid", "high", "air")

#: The seed's 53 tag-classifier features, in its order.
SEED_FEATURES = (["duration_sec", "tempo_est", "rms_mean", "rms_std", "zcr_mean",
                  "centroid_mean", "bandwidth_mean", "rolloff_mean", "flatness_mean",
                  "onset_strength_mean", "onset_strength_std", "percussive_ratio",
                  "pulse_clarity"]
                 + [f"mfcc_{i}_mean" for i in range(1, N_MFCC + 1)]
                 + [f"mfcc_{i}_std" for i in range(1, N_MFCC + 1)])

#: Rhythm quantities behind the audio-derived labels (not in the seed's 53).
RULE_FEATURES = ["beat_cv", "syncopation", "onset_rate", "phrase_acf"]


def descriptor_names() -> list[str]:
    """Names of the timbre/harmony descriptors, in order: the shared per-loop
    descriptors of :mod:`engine.descriptors` (``desc_*``: log-mel, MFCC, chroma, contrast,
    spectral shape: mean and spread) then the tag-specific ones below."""
    from ..descriptors import DESCRIPTOR_NAMES

    names = [f"desc_{n}" for n in DESCRIPTOR_NAMES]
    names += [f"chroma_rank_{i:02d}" for i in range(12)]
    names += ["chroma_peak_mean", "chroma_peak_std", "chroma_entropy_mean", "chroma_flux_mean",
              "chroma_n_active"]
    names += [f"harm_{b}_share" for b in _BAND_NAMES] + [f"perc_{b}_share" for b in _BAND_NAMES]
    names += [f"perc_{b}_fraction" for b in _BAND_NAMES]
    names += ["harm_level_std", "perc_level_std", "centroid_std", "flatness_std",
              "rolloff_std", "mfcc_delta_std", "spectral_flux_high",
              "vibrato_mod_share", "centroid_slope", "level_slope"]
    return names


FEATURE_NAMES = SEED_FEATURES + RULE_FEATURES + descriptor_names()


@dataclass(frozen=True)
class FeatureParams:
    """How per-loop tag features are computed.

    Attributes
    ----------
    sr : int
        Analysis rate.
    max_seconds : float
        Only the first ``max_seconds`` are analysed (the seed: 12 s for the
        features, 20 s for the audio labels; one window serves both here).
    n_fft, hop_length : int
        STFT frame.
    min_bpm, max_bpm : float
        Tempo range the estimate is folded into.
    """

    sr: int = 22050
    max_seconds: float = 20.0
    n_fft: int = 2048
    hop_length: int = 512
    min_bpm: float = 60.0
    max_bpm: float = 190.0

    def as_dict(self) -> dict:
        return asdict(self)


def _safe(x) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def _norm_acf(x: np.ndarray) -> np.ndarray:
    """Unbiased autocorrelation of the mean-removed ``x``, 1 at lag 0."""
    x = np.asarray(x, float) - float(np.mean(x))
    n = x.size
    if n < 4 or not np.any(x):
        return np.zeros(max(n, 1))
    f = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(f * np.conj(f))[:n]
    r = r / np.maximum(n - np.arange(n), 1)
    return r / (r[0] + 1e-12)


@functools.lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=128).astype(np.float32)


#: Loop lengths (bars of 4/4) whose tempo a loop may have.
LOOP_BARS = (1, 2, 4, 8, 16)
#: Backbeat score above which a candidate tempo counts as having its snare on 2 and 4.
BACKBEAT_MIN = 0.05


def _backbeat(env: np.ndarray, fps: float, bpm: float, duration: float) -> float | None:
    """(odd - even) / (odd + even) of the mid-band percussive onset strength on
    the beats of a grid at ``bpm`` starting at 0 s (a loop starts on its
    downbeat). Positive when the accents fall on beats 2 and 4 (the backbeat)
    at this tempo; at double the tempo they fall on the even beats instead."""
    beat = 60.0 / bpm
    nb = int(math.floor(duration / beat + 1e-6))
    if nb < 4:
        return None
    idx = np.round(np.arange(nb) * beat * fps).astype(int)
    idx = idx[idx < env.size]
    if idx.size < 4:
        return None
    v = np.array([env[max(0, i - 1):i + 2].max() for i in idx])
    odd, even = float(v[1::2].mean()), float(v[0::2].mean())
    return (odd - even) / (odd + even + 1e-9)


def _loop_tempo(y: np.ndarray, sr: int, duration: float, perc_mid_env: np.ndarray, fps: float,
                params: FeatureParams) -> float:
    """Loop tempo from the estimator, the loop's length and its backbeat.

    1. :func:`engine.rhythm.estimate_bpm` (octave chosen by kick contrast);
    2. candidates: the tempi at which the loop is 1, 2, 4, 8 or 16 bars of 4/4
       (a loop holds whole bars); an estimate within 4 % of one snaps to it;
    3. octave and 2:3 / 3:4 errors: when the snapped tempo has no backbeat
       (:func:`_backbeat` < 0) or the estimate matches no candidate, the
       candidate (same octave family, or any) with the strongest backbeat above
       :data:`BACKBEAT_MIN` wins; without one the estimate (or the nearest
       candidate) stays.

    On generated drum loops (74-166 BPM, 2 and 4 bars) the estimator alone gets
    the tempo class right for 69-74 %, this rule for 97-100 % (README "Tags").
    """
    from ..errors import AnalysisError
    from ..rhythm import estimate_bpm

    try:
        est = float(estimate_bpm(y, sr, params.min_bpm, params.max_bpm))
    except (AnalysisError, ValueError):
        return float("nan")
    if not (math.isfinite(est) and est > 0) or duration <= 0:
        return est
    cands = [240.0 * b / duration for b in LOOP_BARS
             if params.min_bpm <= 240.0 * b / duration <= params.max_bpm]
    near = [c for c in cands if abs(math.log(c / est)) <= math.log(1.04)]
    if near:
        c0 = near[0]
        group = [c for c in cands
                 if abs(abs(math.log2(c / c0)) - round(abs(math.log2(c / c0)))) < 0.01]
    else:
        c0, group = None, cands
    scores = {c: _backbeat(perc_mid_env, fps, c, duration) for c in group}
    scores = {c: b for c, b in scores.items() if b is not None}
    best = c0 if c0 is not None else est
    if c0 is None or (c0 in scores and scores[c0] < 0):
        pos = [c for c, b in scores.items() if b > BACKBEAT_MIN]
        if pos:
            best = max(pos, key=lambda c: scores[c])
        elif c0 is None and cands:
            best = min(cands, key=lambda c: abs(math.log(c / est)))
    return float(best)


#: HPSS median kernels on a spectrum pooled 4 bins to 1 (as engine.features):
#: ~0.4 s in time, ~390 Hz in frequency; ~8x faster than librosa's full-resolution hpss.
HPSS_TIME_KERNEL = 17
HPSS_FREQ_KERNEL = 9


def _hpss(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive magnitudes (Fitzgerald's median filtering with
    soft masks, as librosa's hpss), masks computed on 4-bin pooled spectra
    and spread back to every bin."""
    from scipy.ndimage import median_filter

    nb = (S.shape[0] - 1) // 4 * 4
    Sp = S[1:1 + nb].reshape(-1, 4, S.shape[1]).sum(axis=1)
    Hm = median_filter(Sp, size=(1, HPSS_TIME_KERNEL), mode="reflect")
    Pm = median_filter(Sp, size=(HPSS_FREQ_KERNEL, 1), mode="reflect")
    mask = Hm ** 2 / (Hm ** 2 + Pm ** 2 + 1e-12)
    full = np.repeat(mask, 4, axis=0)
    full = np.vstack([full[:1], full, np.repeat(full[-1:], S.shape[0] - 1 - nb, axis=0)])
    return S * full, S * (1.0 - full)


def signal_features(y: np.ndarray, sr: int, duration: float | None = None,
                    params: FeatureParams = FeatureParams()) -> dict:
    """Every tag feature of one mono signal (see the module docstring).

    Parameters
    ----------
    y : ndarray, shape (n,)
        Mono audio at ``sr`` (``params.sr``).
    sr : int
    duration : float, optional
        The loop's full length in seconds (default ``len(y) / sr``).
    params : FeatureParams

    Returns
    -------
    dict
        ``{name: float}`` for every name in :data:`FEATURE_NAMES`.
    """
    import librosa

    duration = float(len(y) / sr) if duration is None else float(duration)
    y = np.ascontiguousarray(y[: int(params.max_seconds * sr)], dtype=np.float32)
    if y.size < params.n_fft:
        y = np.pad(y, (0, params.n_fft - y.size))
    hop, n_fft = params.hop_length, params.n_fft
    fps = sr / hop
    from ..descriptors import loop_descriptors

    y_raw = y
    raw_rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0]
    # everything else is level-independent: the loop is scaled to RMS 0.1
    y = y * np.float32(0.1 / (float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) + 1e-9))
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True))
    P = S * S
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    f: dict = {}
    f["duration_sec"] = duration

    # --- spectral shape (seed names) ---
    rms = librosa.feature.rms(S=S, frame_length=n_fft)[0]
    f["rms_mean"], f["rms_std"] = float(raw_rms.mean()), float(raw_rms.std())
    f["zcr_mean"] = float(librosa.feature.zero_crossing_rate(y, frame_length=n_fft,
                                                             hop_length=hop)[0].mean())
    cent = librosa.feature.spectral_centroid(S=S, sr=sr)[0]
    bw = librosa.feature.spectral_bandwidth(S=S, sr=sr)[0]
    roll = librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85)[0]
    flat = librosa.feature.spectral_flatness(S=S)[0]
    f["centroid_mean"], f["bandwidth_mean"] = float(cent.mean()), float(bw.mean())
    f["rolloff_mean"], f["flatness_mean"] = float(roll.mean()), float(flat.mean())

    # --- onsets, tempo, rhythm-rule quantities ---
    mel = _mel_basis(sr, n_fft) @ P                     # BLAS, not librosa's einsum
    mel_db = librosa.power_to_db(mel, ref=np.max)
    env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
    n_loop = min(env.size, int(math.ceil(min(duration, params.max_seconds) * fps)) + 1)
    env = env[:n_loop]
    f["onset_strength_mean"], f["onset_strength_std"] = float(env.mean()), float(env.std())
    # --- HPSS once: percussive ratio, band shares, the backbeat envelope ---
    H, Pc = _hpss(S)
    mid = (freqs >= 150.0) & (freqs <= 4000.0)
    perc_mid_env = np.maximum(np.diff(np.log1p(100.0 * Pc[mid]), axis=1, prepend=0.0),
                              0.0).sum(axis=0)
    tempo = _loop_tempo(y[: int(math.ceil(duration * sr))], sr, min(duration, params.max_seconds),
                        perc_mid_env, fps, params)
    f["tempo_est"] = tempo if math.isfinite(tempo) else 120.0
    acf = _norm_acf(env)
    f["pulse_clarity"] = float(np.max(acf[1:120])) if acf.size > 2 else 0.0
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop,
                                        units="time", backtrack=False, delta=ONSET_DELTA)
    span = max(min(duration, params.max_seconds), 1e-3)
    f["onset_rate"] = float(len(onsets) / span)
    beat_frames = (60.0 / f["tempo_est"]) * fps
    # beat grid: the beat tracker seeded with the loop tempo
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop,
                                       bpm=f["tempo_est"], units="frames", trim=False)
    beats = np.asarray(beats, float)
    if beats.size >= 3:
        ibi = np.diff(beats)
        f["beat_cv"] = float(ibi.std() / (ibi.mean() + 1e-9))
    else:
        f["beat_cv"] = 1.0
    if beats.size >= 2:
        mids = (beats[:-1] + beats[1:]) / 2.0
        on_b = env[np.clip(np.round(beats).astype(int), 0, env.size - 1)].mean()
        on_m = env[np.clip(np.round(mids).astype(int), 0, env.size - 1)].mean()
        f["syncopation"] = float(on_m / (on_b + 1e-6))
    else:
        f["syncopation"] = 1.0
    # phrase regularity: the onset pattern repeats at 1-2 bars (lags of 4 and
    # 8 beats; 2 beats for loops shorter than 2 bars) - never lag 1 frame
    lags = [k * beat_frames for k in (4, 8) if k * beat_frames <= acf.size * 0.55]
    if not lags:
        lags = [k * beat_frames for k in (2,) if k * beat_frames <= acf.size * 0.6]
    vals = []
    for L in lags:
        i = int(round(L))
        lo, hi = max(1, i - 1), min(acf.size, i + 2)
        if lo < hi:
            vals.append(float(acf[lo:hi].max()))
    f["phrase_acf"] = max(vals) if vals else 0.0

    # --- percussive ratio and band shares ---
    eh, ep = float((H ** 2).sum()), float((Pc ** 2).sum())
    f["percussive_ratio"] = ep / (eh + ep + 1e-8)
    tot = eh + ep + 1e-12
    for name, lo, hi in zip(_BAND_NAMES, ENERGY_BANDS[:-1], ENERGY_BANDS[1:]):
        sel = (freqs >= lo) & (freqs < hi)
        f[f"harm_{name}_share"] = float((H[sel] ** 2).sum() / tot)
        f[f"perc_{name}_share"] = float((Pc[sel] ** 2).sum() / tot)
        # within-band percussive fraction: robust to how loud the other parts are
        hb, pb = float((H[sel] ** 2).sum()), float((Pc[sel] ** 2).sum())
        f[f"perc_{name}_fraction"] = pb / (hb + pb + 1e-12)
    f["harm_level_std"] = float(np.std(10 * np.log10((H ** 2).sum(axis=0) + 1e-10)))
    f["perc_level_std"] = float(np.std(10 * np.log10((Pc ** 2).sum(axis=0) + 1e-10)))

    # --- MFCC, log-mel bands, contrast ---
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    for i in range(N_MFCC):
        f[f"mfcc_{i + 1}_mean"] = float(mfcc[i].mean())
        f[f"mfcc_{i + 1}_std"] = float(mfcc[i].std())
    f["mfcc_delta_std"] = float(np.diff(mfcc[1:], axis=1).std()) if mfcc.shape[1] > 1 else 0.0
    # the shared timbre/harmony descriptors (engine.descriptors), on the loop as it is
    # (prefixed "desc_": their shape statistics share names with the seed's columns)
    f.update({f"desc_{k}": v for k, v in loop_descriptors(y_raw, sr).as_dict().items()})

    # --- chroma of the harmonic part: how many pitch classes, how stable ---
    chroma = librosa.feature.chroma_stft(S=H ** 2, sr=sr, n_fft=n_fft, tuning=0.0)
    csum = chroma.sum(axis=0) + 1e-9
    cn = chroma / csum
    energy_w = (H ** 2).sum(axis=0)
    w = energy_w / (energy_w.sum() + 1e-12)
    cm = (cn * w).sum(axis=1)
    for i in range(12):
        f[f"chroma_rank_{i:02d}"] = float(np.sort(cm)[::-1][i])   # sorted: key-invariant
    peak = cn.max(axis=0)
    f["chroma_peak_mean"], f["chroma_peak_std"] = float((peak * w).sum()), float(peak.std())
    ent = -(cn * np.log(cn + 1e-12)).sum(axis=0) / np.log(12)
    f["chroma_entropy_mean"] = float((ent * w).sum())
    f["chroma_flux_mean"] = float(np.abs(np.diff(cn, axis=1)).sum(axis=0).mean()
                                  if cn.shape[1] > 1 else 0.0)
    f["chroma_n_active"] = float((cm > 0.5 * cm.max()).sum()) if cm.max() > 0 else 0.0
    f["centroid_std"], f["flatness_std"] = float(cent.std()), float(flat.std())
    f["rolloff_std"] = float(roll.std())
    hi = freqs >= 4000.0
    flux = np.maximum(np.diff(np.log1p(S[hi]), axis=1), 0).sum(axis=0) if S.shape[1] > 1 \
        else np.zeros(1)
    f["spectral_flux_high"] = float(flux.mean())
    # vibrato / tremolo: share of the 2-15 Hz modulation of the harmonic
    # part's 200-3000 Hz bins that lies at 4-8 Hz (sung and bowed notes)
    T = H.shape[1]
    if T >= 32:
        sel = (freqs >= 200.0) & (freqs <= 3000.0)
        Lh = np.log1p(H[sel] * 100.0)
        Lh = Lh - Lh.mean(axis=1, keepdims=True)
        M = np.abs(np.fft.rfft(Lh * np.hanning(T)[None, :], axis=1)) ** 2
        mf = np.fft.rfftfreq(T, 1.0 / fps)
        wb = (H[sel] ** 2).mean(axis=1)
        band = M[:, (mf >= 4.0) & (mf <= 8.0)].sum(axis=1)
        allm = M[:, (mf >= 2.0) & (mf <= 15.0)].sum(axis=1) + 1e-12
        f["vibrato_mod_share"] = float((band / allm * wb).sum() / (wb.sum() + 1e-12))
    else:
        f["vibrato_mod_share"] = 0.0
    # risers and downlifters: how the brightness and the level move across the loop
    tt = np.linspace(-1.0, 1.0, cent.size)
    if cent.size > 2:
        f["centroid_slope"] = float(np.polyfit(tt, np.log(cent + 1.0), 1)[0])
        f["level_slope"] = float(np.polyfit(tt, 20 * np.log10(rms + 1e-6), 1)[0])
    else:
        f["centroid_slope"] = f["level_slope"] = 0.0
    return {k: _safe(f.get(k, 0.0)) for k in FEATURE_NAMES}


def file_features(path, params: FeatureParams = FeatureParams()) -> dict:
    """Decode ``path`` once and return :func:`signal_features` of it.

    Raises
    ------
    AudioError
        Not decodable, too short (< 0.2 s) or silent.
    """
    from ..audio import load_mono

    y, info = load_mono(path, params.sr, min_duration=0.2)
    if y.size < 2048:
        raise AudioError(path, f"too short for tag features ({y.size / params.sr:.2f} s)")
    return signal_features(y, params.sr, float(info.duration), params)


@dataclass
class FeatureTable:
    """Features of the usable files, in input order.

    Attributes
    ----------
    files : list of str
    hashes : list of str
    frame : DataFrame
        ``file`` then every name of :data:`FEATURE_NAMES`.
    failures : list of (file, message)
    """

    files: list
    hashes: list
    frame: pd.DataFrame
    failures: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)


def _cache_key(chash: str, params: FeatureParams) -> str:
    from ..cache import make_key

    return make_key(chash, {"p": params.as_dict(), "v": TAGS_FEATURE_VERSION},
                    kind="tags-features")


def _job(path, params):
    try:
        return file_features(path, params), None
    except (LoopLabError, OSError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return None, f"{Path(str(path)).name}: feature extraction failed ({type(exc).__name__}: {exc})"


def _noop(done, total, message):  # pragma: no cover - trivial
    return None


def compute_features(paths, params: FeatureParams = FeatureParams(), *,
                     cache_dir=DEFAULT_CACHE_DIR, use_cache: bool = True, n_jobs: int = 1,
                     progress=None) -> FeatureTable:
    """Tag features of ``paths``: decoded once per file content, cached.

    Files that fail are listed in ``failures`` with the reason and skipped.

    Parameters
    ----------
    paths : iterable of str or Path
    params : FeatureParams
    cache_dir : str or Path
        Analysis cache root; entries go under ``<cache_dir>/tags``.
    use_cache : bool
    n_jobs : int
        Parallel processes for cache misses (1 = serial, -1 = all cores).
    progress : callable, optional
        ``progress(done, total, message)``.
    """
    from ..audio import hash_files
    from ..cache import DiskCache

    progress = progress or _noop
    paths = [str(p) for p in paths]
    total = len(paths)
    cache = DiskCache(Path(cache_dir) / "tags", enabled=use_cache)
    results: list = [None] * total
    hashes, failures = hash_files(paths)
    failures = {k: f"{Path(paths[k]).name}: {msg}" for k, msg in failures.items()}
    todo = []
    for k, (p, h) in enumerate(zip(paths, hashes)):
        if h is None:
            continue
        hit = cache.get(_cache_key(h, params))
        if hit is not None:
            results[k] = hit
        else:
            todo.append((k, p, h))
    done = total - len(todo)
    progress(done, total, "tag features (cached)")

    def _store(k, p, h, out):
        feats, err = out
        if err is not None:
            failures[k] = err
        else:
            results[k] = feats
            cache.put(_cache_key(h, params), feats)

    if n_jobs and n_jobs != 1 and len(todo) >= PARALLEL_MIN_FILES:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
        for (k, p, h), out in zip(todo, par(delayed(_job)(p, params) for _, p, h in todo)):
            _store(k, p, h, out)
            done += 1
            progress(done, total, Path(p).name)
    else:
        for k, p, h in todo:
            _store(k, p, h, _job(p, params))
            done += 1
            progress(done, total, Path(p).name)
    keep = [k for k in range(total) if results[k] is not None]
    rows = [dict(file=paths[k], **results[k]) for k in keep]
    frame = pd.DataFrame(rows, columns=["file"] + FEATURE_NAMES)
    return FeatureTable(files=[paths[k] for k in keep], hashes=[hashes[k] for k in keep],
                        frame=frame,
                        failures=[(paths[k], failures[k]) for k in sorted(failures)])
