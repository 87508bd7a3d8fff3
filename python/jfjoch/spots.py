"""Spot finding stage: strong pixels, 8-connected spots, photon-weighted centroids.

The work is done by the ``jfjoch._core`` kernel (csrc/spots, algorithm in docs/spots.md). Conventions:

* Pixel coordinates: ``x`` = fast (column), ``y`` = slow (row), 0-based; the centre of pixel (i, j) is at
  (i, j) (add 0.5 to convert to a corner-origin convention).
* Centroid: mean pixel position weighted by the raw pixel values (photons, no background subtraction).
* Intensity: the sum of the raw pixel values of the spot's pixels, photons, NOT background-subtracted.
* A pixel is invalid when ``detector.mask`` is True, when its value is INT32_MIN (error) or when it is at or
  above the saturation (saturated). Saturated pixels never enter the local statistics, but an unmasked
  saturated pixel inside the resolution range joins the spot it touches (so a saturated Bragg peak still
  gives one spot, centred on its core).

Thread safety: :class:`SpotFinder` holds only read-only arrays; several threads may call
:meth:`SpotFinder.find` at once (the kernel releases the GIL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _core
from .backend import resolve_backend
from .errors import UsageError
from .experiment import Experiment

__all__ = ["SpotFinder", "SpotFinderSettings", "SpotList", "find_spots"]

_INT32_MAX = int(np.iinfo(np.int32).max)
_BACKENDS = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SpotFinderSettings:
    """Spot finder settings (mirror of ``jfjoch::SpotFinderSettings`` in csrc/spots/spots.hpp)."""

    photon_threshold: int = 10
    """``--spot-threshold``: a strong pixel has at least this many photons (counts)."""
    sigma: float = 3.0
    """``--spot-sigma``: a strong pixel exceeds the local mean by more than sigma standard deviations."""
    window_half: int = 7
    """Half-size of the local square window, pixels (1..10): 7 -> 15 x 15, centre pixel excluded."""
    min_pixels: int = 2
    """``--spot-min-pixels``: smallest spot, pixels."""
    min_isigma: float = 4.0
    """``--spot-min-isigma``: smallest I/σ(I) of a spot, I its background-subtracted sum over its pixels
    (docs/spots.md); 0: no test (the reference's behaviour)."""
    max_pixels: int = 1000
    """Largest spot, pixels (bigger connected blobs are rejected)."""
    high_resolution_A: float = 1.5
    """``--spot-high-resolution``: drop spots with d below this, Å (<= 0: no limit)."""
    low_resolution_A: float = math.inf
    """Drop spots with d above this, Å (inf or <= 0: no limit)."""
    ice_ring_width_q: float = 0.02
    """Half-width of the ice-ring flag, in q = 2π/d, 1/Å."""
    max_spots: int = 250
    """``--max-spots``: keep this many spots, strongest first (<= 0: all)."""

    def __post_init__(self) -> None:
        if not 1 <= self.window_half <= 10:
            raise UsageError(f"spot finder: window_half must be in 1..10, not {self.window_half}")
        if self.photon_threshold < 1:
            raise UsageError(f"spot finder: the photon threshold must be >= 1, not {self.photon_threshold}")
        if not self.sigma >= 0:
            raise UsageError(f"spot finder: sigma must be >= 0, not {self.sigma}")
        if not 1 <= self.min_pixels <= self.max_pixels:
            raise UsageError("spot finder: need 1 <= min_pixels <= max_pixels")
        if not (math.isfinite(self.min_isigma) and self.min_isigma >= 0):
            raise UsageError(f"spot finder: min_isigma must be a finite number >= 0, not {self.min_isigma}")

    def to_core(self) -> _core.SpotFinderSettings:
        """The kernel's settings struct."""
        s = _core.SpotFinderSettings()
        s.photon_threshold = int(self.photon_threshold)
        s.sigma = float(self.sigma)
        s.window_half = int(self.window_half)
        s.min_pixels = int(self.min_pixels)
        s.min_isigma = float(self.min_isigma)
        s.max_pixels = int(self.max_pixels)
        s.high_resolution_A = float(self.high_resolution_A) if math.isfinite(self.high_resolution_A) else 0.0
        s.low_resolution_A = float(self.low_resolution_A) if math.isfinite(self.low_resolution_A) else 0.0
        s.ice_ring_width_q = float(self.ice_ring_width_q)
        s.max_spots = int(self.max_spots)
        return s


def _empty(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass(frozen=True)
class SpotList:
    """Spots of one image, strongest first (intensity descending; ties by raster position).

    Per-spot arrays have one entry per spot; the image-level statistics count unmasked pixels.
    """

    x: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    """Centroid along the fast axis (column), pixels, pixel centre at integer (float32)."""
    y: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    """Centroid along the slow axis (row), pixels, pixel centre at integer (float32)."""
    intensity: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    """Sum of the raw values of the spot's pixels, photons, not background-subtracted (float32)."""
    n_pixels: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    """Pixels in the spot (int32)."""
    d: np.ndarray = field(default_factory=lambda: _empty(np.float32))
    """Resolution of the centroid, Å (float32)."""
    ice_ring: np.ndarray = field(default_factory=lambda: _empty(np.bool_))
    """True when the spot lies on a hexagonal-ice ring (bool)."""
    max_value: int = 0
    """Largest valid (unmasked, not saturated, not error) pixel value of the image, photons."""
    n_saturated: int = 0
    """Unmasked pixels at or above the saturation."""
    n_error: int = 0
    """Unmasked pixels holding the error value INT32_MIN."""
    n_strong_pixels: int = 0
    """Pixels that passed the strong-pixel test (saturated pixels not included)."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def xy(self) -> np.ndarray:
        """(n, 2) float64 centroids (x, y), pixels."""
        return np.stack([self.x, self.y], 1).astype(np.float64)


class SpotFinder:
    """Spot finder for one experiment: the pixel flags (mask + resolution range) are built once here.

    ``find`` may be called from several threads at once.
    """

    def __init__(
        self, experiment: Experiment, settings: SpotFinderSettings | None = None, backend: str = "auto"
    ) -> None:
        self.experiment = experiment
        self.settings = settings if settings is not None else SpotFinderSettings()
        self.backend = resolve_backend(backend, "spot finder")
        det = experiment.detector
        self._core_settings = self.settings.to_core()
        mask = None
        if det.mask is not None:
            mask = np.ascontiguousarray(np.asarray(det.mask) != 0, dtype=np.uint8)
            if mask.shape != (det.ny, det.nx):
                raise UsageError(f"detector mask has shape {mask.shape}, expected {(det.ny, det.nx)}")
        self.flags: np.ndarray = _core.spot_pixel_flags(
            mask, experiment.core, settings=self._core_settings
        )
        """(ny, nx) uint8: 1 = invalid, 2 = outside the resolution limits (read-only)."""
        self.flags.setflags(write=False)
        sat = det.saturation
        self.saturation: int = _INT32_MAX if sat is None else int(min(max(int(sat), 1), _INT32_MAX))
        """Counts at and above which a pixel is saturated (capped at 2^22 inside the kernel)."""

    def __reduce__(self):
        """Pickles as its inputs (the flags are rebuilt where it is unpickled)."""
        return (SpotFinder, (self.experiment, self.settings, self.backend))

    def _image(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        det = self.experiment.detector
        if img.shape != (det.ny, det.nx):
            raise UsageError(f"image has shape {img.shape}, expected {(det.ny, det.nx)}")
        if img.dtype != np.int32:
            if not np.issubdtype(img.dtype, np.integer):
                raise UsageError(f"image must hold integers (photon counts), not {img.dtype}")
            img = img.astype(np.int32)
        return np.ascontiguousarray(img)

    def find(self, image: np.ndarray) -> SpotList:
        """Spots of one (ny, nx) int32 image (other integer types are cast; no special-value mapping)."""
        x, y, inten, npx, d, ice, st = _core.find_spots(
            self._image(image),
            self.flags,
            self.saturation,
            self.experiment.core,
            settings=self._core_settings,
            backend=self.backend,
        )
        return SpotList(
            x=x,
            y=y,
            intensity=inten,
            n_pixels=npx,
            d=d,
            ice_ring=ice,
            max_value=int(st["max_value"]),
            n_saturated=int(st["n_saturated"]),
            n_error=int(st["n_error"]),
            n_strong_pixels=int(st["n_strong_pixels"]),
        )

    def strong_pixel_map(self, image: np.ndarray) -> np.ndarray:
        """(ny, nx) uint8: 1 strong pixel, 2 saturated pixel in the resolution range, 0 otherwise."""
        return _core.spot_strong_pixel_map(
            self._image(image), self.flags, self.saturation, self._core_settings, self.backend
        )


def find_spots(
    image: np.ndarray,
    experiment: Experiment,
    settings: SpotFinderSettings | None = None,
    backend: str = "auto",
) -> SpotList:
    """Find the spots of one image. For many images build a :class:`SpotFinder` once and call ``find``."""
    return SpotFinder(experiment, settings, backend).find(image)
