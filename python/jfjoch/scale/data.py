"""Inputs and results of scaling and merging (plain dataclasses of numpy arrays)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..experiment import Goniometer
from ..tables import ReflectionTable

__all__ = [
    "ErrorModel",
    "ImageScales",
    "ImageStats",
    "MergedReflections",
    "RunInfo",
    "ScaleInput",
    "ScaleResult",
    "ScaledObservations",
    "ShellStatistics",
]


@dataclass(frozen=True, eq=False)
class ImageStats:
    """Per-image results of the image-processing stage, for the report (optional)."""

    image: np.ndarray
    """Image numbers (int64)."""
    n_spots: np.ndarray
    """Spots found per image."""
    indexed: np.ndarray
    """Image indexed (bool)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", np.asarray(self.image, np.int64))
        object.__setattr__(self, "n_spots", np.asarray(self.n_spots, np.int64))
        object.__setattr__(self, "indexed", np.asarray(self.indexed, bool))
        if not len(self.image) == len(self.n_spots) == len(self.indexed):
            raise ValueError("ImageStats: image, n_spots and indexed must have equal lengths")


@dataclass(eq=False)
class ScaleInput:
    """One run (one `_process.h5`, one unmerged MTZ, or one in-memory pipeline result) to scale.

    ``reflections`` follows SPEC's ``/entry/reflections``: one row per reflection per image, I not divided
    by partiality or lp. Rotation data (``goniometer`` given and ``full_observations`` False): the partials
    of one reflection on consecutive images are summed into one full observation before merging.
    """

    reflections: ReflectionTable
    cell: tuple[float, float, float, float, float, float]
    """Unit cell a, b, c (Å), α, β, γ (degrees) of the run (refined)."""
    space_group: int | None = None
    """Space group number the indices are given in (None: not known; -S or P1 is used)."""
    wavelength: float = float("nan")
    """Incident wavelength, Å (NaN: unknown)."""
    goniometer: Goniometer | None = None
    """Rotation data: image i covers [start + i·increment, start + (i+1)·increment] degrees."""
    run_id: int = 0
    """Run number (each input its own); BATCH = image + 1 + batch offset of the run."""
    name: str = ""
    """Source (file name) for messages."""
    image_stats: ImageStats | None = None
    """Spots and indexing per image (the report's first plot); optional."""
    full_observations: bool = False
    """Rows are already full observations (e.g. an unmerged MTZ from another program): never summed."""

    @property
    def is_rotation(self) -> bool:
        """Rotation partials to be summed (a goniometer, rows not already full)."""
        return self.goniometer is not None and not self.full_observations

    @property
    def is_sweep(self) -> bool:
        """Images are consecutive slices of one sweep (G and B restrained to vary smoothly): rotation data,
        or an unmerged MTZ (consecutive batches)."""
        return self.goniometer is not None or self.full_observations


@dataclass(frozen=True)
class ErrorModel:
    """σ'² = a²(σ² + (b·I)²); ISa = 1/(a·b)."""

    a: float = 1.0
    b: float = 0.0

    @property
    def isa(self) -> float:
        return 1.0 / (self.a * self.b) if self.a > 0 and self.b > 0 else math.inf

    def as_dict(self) -> dict:
        return {"a": float(self.a), "b": float(self.b), "isa": _num(self.isa)}


@dataclass
class ShellStatistics:
    """Merging statistics of one resolution shell (or overall)."""

    d_max: float
    d_min: float
    n_obs: int
    n_unique: int
    n_possible: int
    multiplicity: float
    completeness: float
    """Percent."""
    i_over_sigma: float
    cc_half: float
    """Fraction (0..1)."""
    r_meas: float
    r_pim: float
    cc_anom: float | None = None
    cc_ref: float | None = None
    mean_i: float = float("nan")

    def as_dict(self) -> dict:
        d = {
            "d_max": _num(self.d_max),
            "d_min": _num(self.d_min),
            "n_obs": int(self.n_obs),
            "n_unique": int(self.n_unique),
            "multiplicity": _num(self.multiplicity),
            "completeness": _num(self.completeness),
            "i_over_sigma": _num(self.i_over_sigma),
            "cc_half": _num(self.cc_half),
            "r_meas": _num(self.r_meas),
            "r_pim": _num(self.r_pim),
        }
        if self.cc_anom is not None:
            d["cc_anom"] = _num(self.cc_anom)
        if self.cc_ref is not None:
            d["cc_ref"] = _num(self.cc_ref)
        return d


def _num(v: Any) -> float | None:
    """JSON-safe float: None for NaN/inf."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass(eq=False)
class ImageScales:
    """Per-image scaling parameters (one row per image of every run)."""

    run: np.ndarray
    image: np.ndarray
    batch: np.ndarray
    scale: np.ndarray
    """G (I_obs = G · partiality · lp · exp(-2 B s²) · I_true)."""
    b_factor: np.ndarray
    mosaicity: np.ndarray
    """Refined rocking-curve width σ (degrees) with -P rot; NaN otherwise."""
    wedge: np.ndarray
    """Oscillation width used for the image (degrees); NaN for stills."""
    cc: np.ndarray
    """CC of the image's scaled observations to the merged set (or the reference); NaN when undefined."""
    n_obs: np.ndarray
    accepted: np.ndarray
    reason: np.ndarray
    """Why an image was rejected ('' when accepted): 'min_image_cc', 'delta_cchalf', 'no_observations'."""

    def __len__(self) -> int:
        return len(self.image)

    def copy(self) -> ImageScales:
        return ImageScales(**{k: np.array(v, copy=True) for k, v in self.__dict__.items()})


@dataclass(eq=False)
class MergedReflections:
    """Merged intensities in the ASU of the space group (Friedel mates merged; with -A also separate)."""

    hkl: np.ndarray
    I: np.ndarray
    sigma: np.ndarray
    n_obs: np.ndarray
    d: np.ndarray
    centric: np.ndarray
    i_plus: np.ndarray | None = None
    sig_plus: np.ndarray | None = None
    i_minus: np.ndarray | None = None
    sig_minus: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.I)


@dataclass(eq=False)
class ScaledObservations:
    """Scaled, unmerged observations (rotation partials already summed): the `_unmerged.mtz` rows."""

    run: np.ndarray
    image: np.ndarray
    batch: np.ndarray
    hkl: np.ndarray
    """Original indices (in the merged setting, after any reindexing)."""
    asu: np.ndarray
    isym: np.ndarray
    I: np.ndarray
    """Scaled intensity I / (G · partiality · lp · exp(-2 B s²))."""
    sigma: np.ndarray
    """Error-model σ' scaled the same way."""
    d: np.ndarray
    fraction: np.ndarray
    """Recorded fraction (partiality; sum over the partials for rotation data)."""

    def __len__(self) -> int:
        return len(self.I)


@dataclass
class RunInfo:
    name: str
    run_id: int
    n_images: int
    batch_offset: int
    reindex: np.ndarray
    """Setting operator applied to the run's indices (hkl' = hkl @ R)."""
    rotation: bool
    wavelength: float
    goniometer: Goniometer | None = None


@dataclass(eq=False)
class ScaleResult:
    """Everything scaling and merging produced (see docs/scaling.md)."""

    space_group_number: int
    space_group_name: str
    cell: tuple[float, ...]
    wavelength: float
    merged: MergedReflections
    observations: ScaledObservations
    images: ImageScales
    shells: list[ShellStatistics]
    overall: ShellStatistics
    error_model: ErrorModel
    resolution_estimate: float | None
    rejections: dict[str, int]
    """Observations removed, by reason (before/while scaling)."""
    image_rejections: dict[str, int]
    runs: list[RunInfo]
    options: Any
    iterations: list[ImageScales] = field(default_factory=list)
    """Per-image parameters after each no-reference round (-> <prefix>_iter<N>_scale.dat)."""
    ambiguity: dict = field(default_factory=dict)
    reference: str | None = None
    anomalous: bool = False
    n_input_observations: int = 0
    timing: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    image_stats: list[ImageStats | None] = field(default_factory=list)
    wilson: dict = field(default_factory=dict)
    """Wilson plot: s² bin centres ('s2') and ln <I> ('ln_i')."""
    output_files: list[str] = field(default_factory=list)

    @property
    def kept_fraction(self) -> float:
        return len(self.observations) / max(self.n_input_observations, 1)

    def merging_stats_dict(self) -> dict:
        """The `<prefix>_merging_stats.json` content (SPEC keys)."""
        return {
            "shells": [s.as_dict() for s in self.shells],
            "overall": self.overall.as_dict(),
            "error_model": self.error_model.as_dict(),
            "resolution_estimate": _num(self.resolution_estimate),
            "space_group": self.space_group_name,
            "space_group_number": int(self.space_group_number),
            "unit_cell": [float(c) for c in self.cell],
            "rejections": {k: int(v) for k, v in self.rejections.items()},
            "image_rejections": {k: int(v) for k, v in self.image_rejections.items()},
            "n_images": len(self.images),
            "n_images_accepted": int(np.count_nonzero(self.images.accepted)),
        }
