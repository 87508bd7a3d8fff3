"""Azimuthal integration: mean corrected intensity in bins uniform in q (docs/azint.md).

Units and conventions:

* ``q = 2π/d = 4π sin(θ)/λ`` in 1/Å (**with** 2π, like pyFAI's ``q_A^-1``), evaluated at pixel centres
  (the centre of pixel (i, j) is at (i, j); see :mod:`jfjoch.experiment`).
* Each pixel goes into exactly one bin, the one holding the q of its centre (no pixel splitting). Bin ``k``
  covers ``[q_min + k·w, q_min + (k+1)·w)`` with ``w = (q_max - q_min) / n_bins``.
* Corrected value of a pixel = counts / (solid-angle factor · polarisation factor); the solid-angle
  factor is cos³ of the angle between the ray and the detector normal (1 at normal incidence), the
  polarisation factor is ``f·(1 - (r_x/|r|)²) + (1 - f)·(1 - (r_y/|r|)²)`` for a beam polarised with
  fraction ``f`` along lab +x. The profile is the **mean** corrected value of the valid pixels in a bin
  (photons/pixel, normalised to a pixel at normal incidence and no polarisation loss).
* Left out: masked pixels (``Detector.mask``), error values (INT32_MIN, INT16_MIN for int16 images,
  0xFFFFFFFF for uint32, NaN for float images) and values >= ``Detector.saturation``.

Defaults: ``q_min`` = 0.1 1/Å, ``q_max`` = q at the detector corner farthest from the beam (pixel centre),
bin width 0.02 1/Å (``n_bins = ceil((q_max - q_min) / 0.02)``), polarisation fraction from the beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jfjoch import _core
from jfjoch.backend import resolve_backend
from jfjoch.errors import InputError, UsageError
from jfjoch.experiment import Experiment

__all__ = [
    "DEFAULT_BIN_WIDTH",
    "DEFAULT_Q_MIN",
    "AzimuthalIntegrator",
    "AzimuthalProfile",
    "AzintSettings",
    "azimuthal_integration",
    "prepare_image",
]

DEFAULT_Q_MIN = 0.1
"""Default lower edge of the first bin, 1/Å (with 2π): d = 62.8 Å."""
DEFAULT_BIN_WIDTH = float(_core.AZINT_DEFAULT_BIN_WIDTH)
"""Default bin width, 1/Å (with 2π)."""

_INT32_MIN = np.iinfo(np.int32).min
@dataclass(frozen=True)
class AzintSettings:
    """Binning and corrections (all q in 1/Å with 2π)."""

    q_min: float
    """Lower edge of bin 0, 1/Å."""
    q_max: float
    """Upper edge of the last bin, 1/Å."""
    n_bins: int
    """Number of bins, uniform in q."""
    polarization_fraction: float
    """Fraction of the beam polarised along lab +x (0.5 = unpolarised)."""
    solid_angle: bool = True
    """Divide by the solid-angle factor (cos³)."""
    polarization: bool = True
    """Divide by the polarisation factor."""

    @property
    def bin_width(self) -> float:
        """Bin width, 1/Å."""
        return (self.q_max - self.q_min) / self.n_bins

    def to_core(self) -> _core.AzintSettings:
        s = _core.AzintSettings()
        s.q_min = float(self.q_min)
        s.q_max = float(self.q_max)
        s.n_bins = int(self.n_bins)
        s.solid_angle = bool(self.solid_angle)
        s.polarization = bool(self.polarization)
        s.polarization_fraction = float(self.polarization_fraction)
        return s


@dataclass(frozen=True)
class AzimuthalProfile:
    """One azimuthally integrated image."""

    q: np.ndarray
    """Bin centres, 1/Å (with 2π), shape (B,)."""
    intensity: np.ndarray
    """Mean corrected intensity per bin, photons/pixel (NaN for bins without valid pixels), shape (B,)."""
    count: np.ndarray
    """Valid pixels per bin in this image, shape (B,)."""


def prepare_image(image: np.ndarray) -> np.ndarray:
    """The image as int32 (integer input) or float32 (float input), with error values mapped to
    INT32_MIN / NaN. int16: INT16_MIN is the error value; uint32: 0xFFFFFFFF is the error value and values
    above INT32_MAX are clipped to it (they are saturated anyway)."""
    a = np.asarray(image)
    if a.dtype == np.int32 or a.dtype == np.float32:
        return a
    if a.dtype == np.int16:
        out = a.astype(np.int32)
        out[a == np.iinfo(np.int16).min] = _INT32_MIN
        return out
    if a.dtype == np.uint32:
        out = np.minimum(a, np.iinfo(np.int32).max).astype(np.int32)
        out[a == np.iinfo(np.uint32).max] = _INT32_MIN
        return out
    if np.issubdtype(a.dtype, np.integer):
        if a.dtype.itemsize < 4 or a.dtype == np.uint16:
            return a.astype(np.int32)
        info = np.iinfo(np.int32)
        return np.clip(a, info.min + 1, info.max).astype(np.int32)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    raise InputError(f"azimuthal integration: unsupported image dtype {a.dtype}")


class AzimuthalIntegrator:
    """Azimuthal integrator for one experiment geometry and mask.

    The per-pixel bin index and correction weight are computed once here; :meth:`integrate` then costs one
    pass over the image. Instances are immutable after construction and thread-safe: several threads may
    call :meth:`integrate` at the same time (the GIL is released inside the kernel).
    """

    def __init__(
        self,
        experiment: Experiment,
        n_bins: int | None = None,
        q_min: float | None = None,
        q_max: float | None = None,
        polarization_fraction: float | None = None,
        *,
        solid_angle: bool = True,
        polarization: bool = True,
        backend: str = "auto",
    ) -> None:
        """
        Args:
            experiment: geometry, mask (``detector.mask``, True = invalid) and saturation.
            n_bins: number of bins; default ``ceil((q_max - q_min) / 0.02)``.
            q_min: lower edge of the first bin, 1/Å (with 2π); default 0.1 (0 when q_max is below that).
            q_max: upper edge of the last bin, 1/Å (with 2π); default q at the farthest detector corner.
            polarization_fraction: fraction polarised along lab +x; default ``experiment.beam``'s.
            solid_angle: apply the solid-angle correction.
            polarization: apply the polarisation correction.
            backend: ``"auto"`` (CUDA when compiled and a device is present, else the CPU), ``"cpu"`` or
                ``"cuda"`` (UsageError when no device is usable).
        """
        self._args = (experiment, n_bins, q_min, q_max, polarization_fraction)
        self._kwargs = {"solid_angle": solid_angle, "polarization": polarization, "backend": backend}
        det = experiment.detector
        if q_max is None:
            q_max = float(_core.azint_corner_q(experiment.core))
        if q_min is None:  # a detector that sees only q < 0.1 (small, far) starts at 0
            q_min = DEFAULT_Q_MIN if q_max > DEFAULT_Q_MIN else 0.0
        if not q_max > q_min:
            raise UsageError(
                f"azimuthal integration: q_max ({q_max:.4g}) must exceed q_min ({q_min:.4g}) 1/Å"
            )
        if n_bins is None:
            n_bins = max(1, math.ceil((q_max - q_min) / DEFAULT_BIN_WIDTH - 1e-9))
        if n_bins < 1:
            raise UsageError("azimuthal integration: n_bins must be >= 1")
        if polarization_fraction is None:
            polarization_fraction = experiment.beam.polarization_fraction
        self.settings = AzintSettings(
            q_min=float(q_min),
            q_max=float(q_max),
            n_bins=int(n_bins),
            polarization_fraction=float(polarization_fraction),
            solid_angle=solid_angle,
            polarization=polarization,
        )
        self.shape = (det.ny, det.nx)
        self.saturation = float(det.saturation) if det.saturation is not None else 0.0
        self.backend = resolve_backend(backend, "azimuthal integration")
        mask = None if det.mask is None else np.ascontiguousarray(det.mask, dtype=np.uint8)
        try:
            bins, weight = _core.azint_map(
                mask, experiment.core, settings=self.settings.to_core(), backend=self.backend
            )
        except ValueError as e:
            raise UsageError(f"azimuthal integration: {e}") from e
        bins.setflags(write=False)
        weight.setflags(write=False)
        self._bins = bins
        self._weight = weight
        edges = self.settings.q_min + self.settings.bin_width * np.arange(self.settings.n_bins + 1)
        edges.setflags(write=False)
        self._edges = edges

    def __reduce__(self):
        """Pickles as its inputs (the per-pixel map is rebuilt where it is unpickled)."""
        return (_make_integrator, (self._args, self._kwargs))

    @property
    def n_bins(self) -> int:
        return self.settings.n_bins

    @property
    def q_edges(self) -> np.ndarray:
        """Bin edges, 1/Å (with 2π), shape (B + 1,)."""
        return self._edges

    @property
    def q(self) -> np.ndarray:
        """Bin centres, 1/Å (with 2π), shape (B,)."""
        return 0.5 * (self._edges[:-1] + self._edges[1:])

    @property
    def d(self) -> np.ndarray:
        """Resolution of the bin centres, Å (2π / q), shape (B,)."""
        return 2.0 * np.pi / self.q

    @property
    def bin_map(self) -> np.ndarray:
        """Per-pixel bin index (ny, nx), -1 where the pixel is masked or outside the q range (read-only)."""
        return self._bins

    @property
    def weight(self) -> np.ndarray:
        """Per-pixel weight 1 / (solid angle · polarisation) (ny, nx) float32, 0 where not binned (read-only):
        the corrected value of a pixel is counts · weight."""
        return self._weight

    @property
    def correction(self) -> np.ndarray:
        """Per-pixel correction factor solid angle · polarisation (ny, nx); 0 where not binned."""
        with np.errstate(divide="ignore"):
            return np.where(self._bins >= 0, 1.0 / self._weight.astype(np.float64), 0.0)

    @property
    def pixel_count(self) -> np.ndarray:
        """Unmasked pixels per bin (before per-image error/saturation exclusions), shape (B,)."""
        b = self._bins.ravel()
        return np.bincount(b[b >= 0], minlength=self.n_bins)

    def integrate_with_counts(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean corrected intensity (B,) photons/pixel, NaN in empty bins; valid pixel count (B,))."""
        img = prepare_image(image)
        if img.shape != self.shape:
            raise InputError(
                f"azimuthal integration: image shape {img.shape} differs from detector {self.shape}"
            )
        img = np.ascontiguousarray(img)
        return _core.azint_integrate(
            img, self._bins, self._weight, self.n_bins, self.saturation, self.backend
        )

    def integrate(self, image: np.ndarray) -> np.ndarray:
        """Mean corrected intensity per bin (B,), photons/pixel; NaN in bins without valid pixels."""
        return self.integrate_with_counts(image)[0]

    def profile(self, image: np.ndarray) -> AzimuthalProfile:
        """Integrate one image and return q, intensity and count together."""
        mean, count = self.integrate_with_counts(image)
        return AzimuthalProfile(q=self.q, intensity=mean, count=count)


def _make_integrator(args: tuple, kwargs: dict) -> AzimuthalIntegrator:
    return AzimuthalIntegrator(*args, **kwargs)


def azimuthal_integration(
    image: np.ndarray,
    experiment: Experiment,
    n_bins: int | None = None,
    q_min: float | None = None,
    q_max: float | None = None,
    polarization_fraction: float | None = None,
    *,
    backend: str = "auto",
) -> AzimuthalProfile:
    """Integrate one image (one-shot form of :class:`AzimuthalIntegrator`; build the integrator once when
    integrating many images). q in 1/Å with 2π; intensity in photons/pixel."""
    integrator = AzimuthalIntegrator(
        experiment,
        n_bins=n_bins,
        q_min=q_min,
        q_max=q_max,
        polarization_fraction=polarization_fraction,
        backend=backend,
    )
    return integrator.profile(image)
