"""OpenL3 weights: reading the official Keras-2 HDF5 files, finding them, downloading them."""
from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import PROJECT_ROOT
from ..errors import ModelError
from .frontend import check_options

#: Batch-norm epsilon of the official networks (Keras default 1e-3).
BN_EPS = 1e-3

#: The 16 weighted layers in order: ("bn", channels) or ("conv", in, out).
LAYER_SPECS = (
    ("bn", 1),
    ("conv", 1, 64), ("bn", 64), ("conv", 64, 64), ("bn", 64),
    ("conv", 64, 128), ("bn", 128), ("conv", 128, 128), ("bn", 128),
    ("conv", 128, 256), ("bn", 256), ("conv", 256, 256), ("bn", 256),
    ("conv", 256, 512), ("bn", 512), ("conv", 512, 512),
)
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
CONV_WEIGHTS = ("kernel", "bias")

#: Environment variable: a weights file, or a folder of official files.
WEIGHTS_ENV = "LOOPLAB_OPENL3_WEIGHTS"
#: Where ``openl3-weights --download`` puts files by default (also searched).
DEFAULT_WEIGHTS_DIR = PROJECT_ROOT / "models" / "openl3"
#: Official compressed weights (the openl3 project's ``models`` branch).
WEIGHTS_URL = "https://github.com/marl/openl3/raw/models/openl3_audio_{repr}_{content}-v0_4_0.h5.gz"


def weights_filename(input_repr: str, content_type: str) -> str:
    """Official file name, e.g. ``openl3_audio_mel128_music.h5``."""
    return f"openl3_audio_{input_repr}_{content_type}.h5"



# --------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class OpenL3Weights:
    """The 16 weighted layers of an OpenL3 audio network.

    Attributes
    ----------
    path : str
        File the weights came from.
    layers : tuple of dict
        In network order; BN layers hold ``gamma, beta, moving_mean,
        moving_variance``, conv layers ``kernel (3, 3, in, out), bias (out,)``,
        all float32.
    layer_names : tuple of str
        The names the file gave those layers (for messages only).
    """

    path: str
    layers: tuple
    layer_names: tuple = field(default_factory=tuple)

    @property
    def n_params(self) -> int:
        return int(sum(a.size for layer in self.layers for a in layer.values()))


def _decode(names) -> list[str]:
    out = []
    for n in np.atleast_1d(names):
        out.append(n.decode("utf8") if isinstance(n, (bytes, np.bytes_)) else str(n))
    return out


def _assign_names(kind: str, wnames: list[str]) -> list[str]:
    """Map a layer's weight names to canonical keys (by suffix, else by order)."""
    canon = BN_WEIGHTS if kind == "bn" else CONV_WEIGHTS
    keys = []
    for w in wnames:
        base = w.rsplit("/", 1)[-1].split(":", 1)[0]
        keys.append(base if base in canon else None)
    if None in keys or sorted(keys) != sorted(canon):
        keys = list(canon)                                    # Keras order
    return keys


def load_weights(path) -> OpenL3Weights:
    """Read an official OpenL3 audio weights file (Keras 2 HDF5).

    Layers are matched by the order of the layers that have weights, as
    Keras' ``load_weights`` does, so auto-generated names (``conv2d_17``,
    ``batch_normalization_3``...) never matter.

    Raises
    ------
    ModelError
        The file is missing or not HDF5, has no ``layer_names``, has a number
        of weighted layers other than 16, misses an array, or has an array of
        the wrong shape or with non-finite values. The message names the file,
        the layer and what is wrong.
    """
    import h5py

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ModelError(f"OpenL3 weights file not found: {where}")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{where}: not a readable HDF5 weights file ({exc})") from None
    with fh:
        root = fh
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]                      # saved with model.save()
        if "layer_names" not in root.attrs:
            raise ModelError(f"{where}: no 'layer_names' attribute; not a Keras 2 weights "
                             "file as written by save_weights()")
        weighted = []
        for lname in _decode(root.attrs["layer_names"]):
            if lname not in root:
                raise ModelError(f"{where}: layer {lname!r} is listed in layer_names "
                                 "but its group is missing")
            g = root[lname]
            wnames = _decode(g.attrs.get("weight_names", []))
            if wnames:
                weighted.append((lname, g, wnames))
        if len(weighted) != len(LAYER_SPECS):
            found = ", ".join(f"{n}({len(w)})" for n, _, w in weighted) or "none"
            raise ModelError(f"{where}: expected {len(LAYER_SPECS)} layers with weights "
                             f"(OpenL3 audio network), found {len(weighted)}: {found}")
        layers = []
        for i, (spec, (lname, g, wnames)) in enumerate(zip(LAYER_SPECS, weighted)):
            kind = spec[0]
            if kind == "bn":
                shapes = {k: (spec[1],) for k in BN_WEIGHTS}
                what = f"BatchNormalization({spec[1]})"
            else:
                shapes = {"kernel": (3, 3, spec[1], spec[2]), "bias": (spec[2],)}
                what = f"Conv2D({spec[1]}->{spec[2]}, 3x3)"
            label = f"weighted layer {i + 1}/16 {lname!r} (expected {what})"
            if len(wnames) != len(shapes):
                raise ModelError(f"{where}: {label} has {len(wnames)} weights "
                                 f"{wnames}, expected {len(shapes)} {list(shapes)}")
            arrays = {}
            for key, wname in zip(_assign_names(kind, wnames), wnames):
                if wname not in g:
                    raise ModelError(f"{where}: {label}: array {wname!r} is listed in "
                                     "weight_names but missing")
                a = np.asarray(g[wname], dtype=np.float32)
                if a.shape != shapes[key]:
                    raise ModelError(f"{where}: {label}: {key} {wname!r} has shape "
                                     f"{a.shape}, expected {shapes[key]}")
                if not np.all(np.isfinite(a)):
                    raise ModelError(f"{where}: {label}: {key} {wname!r} contains NaN/inf")
                arrays[key] = a
            if kind == "bn" and np.any(arrays["moving_variance"] + BN_EPS <= 0):
                raise ModelError(f"{where}: {label}: moving_variance + eps is not positive")
            layers.append(arrays)
    return OpenL3Weights(path=where, layers=tuple(layers),
                         layer_names=tuple(n for n, _, _ in weighted))


# --------------------------------------------------------------------------- search

@dataclass(frozen=True)
class WeightsSearch:
    """Result of :func:`find_weights`: the file found (or None) and every place tried."""

    path: Path | None
    tried: tuple          # of (place description, path, status)

    def describe(self) -> str:
        return "; ".join(f"{where}: {p} ({status})" if p else f"{where} ({status})"
                         for where, p, status in self.tried)


def installed_openl3_dir() -> Path | None:
    """Folder of an installed ``openl3`` package, found without importing it.

    ``importlib.util.find_spec`` only locates the package; importing openl3
    would import TensorFlow and the removed ``imp`` module.
    """
    try:
        spec = importlib.util.find_spec("openl3")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locs = list(spec.submodule_search_locations or [])
    if locs:
        return Path(locs[0])
    return Path(spec.origin).parent if spec.origin else None


def _check_candidate(p: Path, fname: str) -> tuple[Path | None, str]:
    if p.is_dir():
        f = p / fname
        return (f, "found") if f.is_file() else (None, f"no {fname} in this folder")
    if p.is_file():
        return p, "found"
    return None, "does not exist"


def find_weights(input_repr: str = "mel128", content_type: str = "music",
                 weights=None) -> WeightsSearch:
    """Locate an OpenL3 weights file.

    Order: the explicit ``weights`` path (a file, or a folder holding
    ``openl3_audio_<repr>_<content>.h5``), the ``LOOPLAB_OPENL3_WEIGHTS``
    environment variable (file or folder), the folder of an installed
    ``openl3`` package, then :data:`DEFAULT_WEIGHTS_DIR` (where
    ``python -m engine openl3-weights --download`` saves).

    Raises
    ------
    ModelError
        An explicit ``weights`` path that does not exist or lacks the file
        (an explicit request never falls back silently).
    """
    check_options(input_repr, content_type)
    fname = weights_filename(input_repr, content_type)
    tried = []
    if weights is not None and str(weights) != "":
        p = Path(weights).expanduser()
        found, status = _check_candidate(p, fname)
        tried.append(("--weights", str(p), status))
        if found is None:
            raise ModelError(f"OpenL3 weights {p}: {status}")
        return WeightsSearch(found, tuple(tried))
    places = []
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        places.append((f"${WEIGHTS_ENV}", Path(env).expanduser()))
    else:
        tried.append((f"${WEIGHTS_ENV}", "", "not set"))
    pkg = installed_openl3_dir()
    if pkg is not None:
        places.append(("installed openl3 package", pkg))
    else:
        tried.append(("installed openl3 package", "", "openl3 not installed"))
    places.append(("default folder", DEFAULT_WEIGHTS_DIR))
    for where, p in places:
        found, status = _check_candidate(p, fname)
        tried.append((where, str(p), status))
        if found is not None:
            return WeightsSearch(found, tuple(tried))
    return WeightsSearch(None, tuple(tried))


def download_weights(input_repr: str = "mel128", content_type: str = "music", dest=None,
                     timeout: float = 15.0, url: str | None = None) -> Path:
    """Fetch an official weights file (``.h5.gz``), check it and save it atomically.

    Only ever called on an explicit user request (``openl3-weights
    --download``); analysis never downloads.

    Raises
    ------
    ModelError
        No network, HTTP error, timeout, or a file that is not a valid
        OpenL3 audio weights file. The message says how to install it by hand.
    """
    from ..atomic import atomic_path

    check_options(input_repr, content_type)
    dest = Path(dest) if dest else DEFAULT_WEIGHTS_DIR
    url = url or WEIGHTS_URL.format(repr=input_repr, content=content_type)
    target = dest / weights_filename(input_repr, content_type)
    manual = (f"download {url} on a machine with internet access, gunzip it and put "
              f"{target.name} in {dest} (or point ${WEIGHTS_ENV} / --weights at it)")
    with tempfile.TemporaryDirectory() as tmpdir:
        gz = Path(tmpdir) / "weights.h5.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(gz, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ModelError(f"could not download OpenL3 weights from {url}: {reason} "
                             f"(no internet connection?). To install by hand: {manual}") from None
        dest.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".h5") as tmp:
            try:
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
            except OSError as exc:
                raise ModelError(f"downloaded file from {url} is not gzip data ({exc})") from None
            load_weights(tmp)                                 # validate before renaming
    return target


