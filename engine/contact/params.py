"""Parameters of the contact map's DTW stage (a leaf module: imports nothing of the contact package)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import setting

#: Loops at or below this count use exact all-pairs DTW in ``mode="auto"``.
AUTO_EXACT_MAX = 500


@dataclass(frozen=True)
class DTWParams:
    """How pairs are chosen and compared.

    Attributes
    ----------
    distance_metric : {"cosine", "euclidean"}
    band_rad : float or None
        Sakoe-Chiba band as a fraction of the query length (None: no band).
    mode : {"auto", "exact", "shortlist"}
    shortlist_k : int
        Exact-DTW neighbours per loop in shortlist mode.
    candidate_factor : int
        Shortlist stage 1 keeps ``candidate_factor * shortlist_k`` nearest
        vectors per loop for the coarse DTW.
    coarse_pool : int
        Frames averaged per step of the coarse DTW (stage 2).
    auto_exact_max : int
        ``auto`` is exact up to this many loops.
    """

    distance_metric: str = setting("cosine", "frame distance inside DTW",
                                   choices=("cosine", "euclidean"))
    band_rad: float | None = setting(
        None, "Sakoe-Chiba band radius as a fraction of the shorter loop (default: none)",
        type=float)
    mode: str = setting("auto", "all-pairs DTW, DTW on a kNN shortlist, or auto (exact up to "
                        "--auto_exact_max loops)", choices=("auto", "exact", "shortlist"))
    shortlist_k: int = setting(60, "DTW candidates per loop (shortlist)")
    candidate_factor: int = 4
    coarse_pool: int = 4
    auto_exact_max: int = setting(AUTO_EXACT_MAX, "auto mode is exact up to this many loops")

    def as_dict(self) -> dict:
        return asdict(self)

    def resolved_mode(self, n: int) -> str:
        if self.mode not in ("auto", "exact", "shortlist"):
            raise ValueError(f"mode must be auto, exact or shortlist, got {self.mode!r}")
        if self.mode == "auto":
            return "exact" if n <= self.auto_exact_max else "shortlist"
        return self.mode
