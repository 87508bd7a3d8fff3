"""Bragg integration kernel: summation and 2-D profile fitting of predicted reflections on one image.

Thin typed wrapper of ``jfjoch._core.integrate_image`` (csrc/integrate; equations, settings and flags in
docs/integration_kernel.md). The public ``jfjoch.integrate()`` stage builds on :func:`integrate_image`.

Conventions and units:

* Pixel coordinates: ``x`` = fast (column), ``y`` = slow (row), 0-based; the centre of pixel (i, j) is at
  (i, j). A pixel belongs to the signal disc of a prediction when the distance from its centre to (x, y)
  is <= r1, to its background annulus when r2 < d <= r3 (radii in pixels).
* Counts and intensities are photons; backgrounds are photons/pixel.
* Invalid pixels: ``mask`` nonzero, or the error value INT32_MIN. Saturated: value >= ``saturation``.

Thread safety: :func:`integrate_image` keeps no state; several threads may integrate different images at
the same time (the kernel releases the GIL).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntFlag

import numpy as np

from . import _core
from .azint import prepare_image
from .errors import InputError, UsageError

__all__ = [
    "DEFAULT_RADII",
    "DROPPED",
    "Flag",
    "IntegratedImage",
    "IntegrationKernelSettings",
    "ProfileSource",
    "integrate_image",
    "radii_from_option",
]


class Flag(IntFlag):
    """Per-reflection flag bits (uint32; mirror of ``jfjoch::IntegrationFlag``). Bits 16..31 are reserved
    for the pipeline."""

    SUMMED = 1
    """Summation succeeded: I_sum, sigma_sum are valid."""
    PROFILE_FITTED = 2
    """The profile fit converged: I_prf, sigma_prf are valid."""
    SATURATED = 4
    """A disc pixel is saturated: I_sum is kept but underestimates (the profile fit leaves saturated pixels
    out)."""
    OVERLAP = 8
    """Another prediction lies closer than 2·r1 (the discs overlap)."""
    MASKED = 16
    """Dropped: a disc pixel is masked or an error value."""
    FEW_BACKGROUND = 32
    """Dropped: fewer than min_background_pixels background pixels after clipping."""
    EDGE = 64
    """Dropped: the disc leaves the detector (or x, y is not finite)."""
    PROFILE_REFERENCE = 128
    """This reflection was used to learn the profile it was fitted with."""
    PROFILE_FAILED = 256
    """No usable profile, or the fit did not converge: I_prf is NaN (the summation values stay)."""


DROPPED = Flag.MASKED | Flag.FEW_BACKGROUND | Flag.EDGE
"""Any of these: the reflection was not measured (I_sum is NaN)."""


class ProfileSource:
    """Where a group's profile came from (``IntegratedImage.profile_source``)."""

    NONE = 0
    """Too few references in the group and in the image: no profile fitting for the group."""
    OWN = 1
    """Learned from the group's own references."""
    GLOBAL = 2
    """The group had too few references: the profile of all references of the image."""


DEFAULT_RADII = (5.5, 7.5, 9.5)
"""Default (r1, r2, r3), pixels. Evidence (shared/data/hewl_stills1, all 100 images, every truth reflection
integrated at its true position, 48 900 with >= 20 photons; table in docs/integration_kernel.md): the spots
have tails, so the median I_sum/true (>= 100 photons) is 0.943 / 0.966 / 0.977 / 0.981 / 0.985 for
r1 = 3 / 4 / 5 / 5.5 / 6 px (annulus r1+2..r1+4), and the photons left outside the disc inflate
(I - true)/sigma: its SD (>= 20 photons) is 2.60 / 1.70 / 1.29 / 1.18 / 1.12, while the RMS error of weak
spots (20..100 photons) is 16.5 / 13.5 / 12.7 / 13.3 / 15.0 photons. r1 = 5.5 keeps that SD well inside the
acceptance bar 0.8..1.3 at 5 % more noise than r1 = 5 (1.29, on the bar); the annulus follows the one-value
rule (r1 + 2, r1 + 4)."""

_BACKENDS = ("auto", "cpu", "cuda")
_fallback_warned = threading.Event()


def _check_flags_mirror() -> None:
    core = dict(_core.INTEGRATION_FLAGS)
    mine = {f.name: int(f) for f in Flag}
    if core != mine:  # pragma: no cover - a build/source mismatch
        raise ImportError(f"jfjoch._core integration flags {core} differ from jfjoch.integration_kernel.Flag")


_check_flags_mirror()


@dataclass(frozen=True)
class IntegrationKernelSettings:
    """Settings of the integration kernel (mirror of ``jfjoch::IntegrationSettings``); radii in pixels."""

    r1: float = DEFAULT_RADII[0]
    """Signal disc radius, pixels: pixels whose centre lies within r1 of the prediction."""
    r2: float = DEFAULT_RADII[1]
    """Inner radius of the background annulus, pixels (exclusive)."""
    r3: float = DEFAULT_RADII[2]
    """Outer radius of the background annulus, pixels (inclusive); at most 32."""
    bg_clip_sigma: float = 3.0
    """One clip pass over the annulus: pixels above mean + k·sqrt(max(mean, 1 photon)) are dropped."""
    min_background_pixels: int = 6
    """A reflection with fewer background pixels (after clipping) is dropped (FEW_BACKGROUND)."""
    profile_min_isigma: float = 10.0
    """I_sum/sigma_sum of a profile reference (also: SUMMED, not SATURATED or OVERLAP)."""
    profile_min_reflections: int = 8
    """References a group needs for its own profile (fewer: the image's global profile)."""
    profile_multiplier: float = 6.0
    """Fit aperture: only disc pixels within min(r1, profile_multiplier·sigma_p/2) of the prediction (and
    the 3×3 pixels around it) enter the fit; sigma_p is the learned profile's RMS width per axis, pixels.
    6 = a ±3 sigma_p aperture."""
    oversampling: int = 5
    """Profile cells per pixel along each axis (1..10)."""

    def __post_init__(self) -> None:
        try:
            self.to_core()
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from e

    def to_core(self) -> _core.IntegrationSettings:
        """The kernel's settings struct (validated: ValueError with a one-line message)."""
        s = _core.IntegrationSettings()
        s.r1 = float(self.r1)
        s.r2 = float(self.r2)
        s.r3 = float(self.r3)
        s.bg_clip_sigma = float(self.bg_clip_sigma)
        s.min_background_pixels = int(self.min_background_pixels)
        s.profile_min_isigma = float(self.profile_min_isigma)
        s.profile_min_reflections = int(self.profile_min_reflections)
        s.profile_multiplier = float(self.profile_multiplier)
        s.oversampling = int(self.oversampling)
        _core.integration_validate(s)
        return s

    @property
    def profile_size(self) -> int:
        """G: profiles are G×G cells of 1/oversampling pixels, cell (G-1)/2 at offset 0."""
        return int(_core.integration_profile_size(float(self.r1), int(self.oversampling)))

    @classmethod
    def from_radii(cls, radii: str | Sequence[float], **kwargs) -> IntegrationKernelSettings:
        """Settings with the radii of :func:`radii_from_option` (other fields from kwargs or defaults)."""
        r1, r2, r3 = radii_from_option(radii)
        return cls(r1=r1, r2=r2, r3=r3, **kwargs)


def radii_from_option(value: str | Sequence[float]) -> tuple[float, float, float]:
    """Integration radii from the CLI form ``r1`` or ``r1,r2,r3`` (a string or a sequence of numbers).
    One value means r2 = r1 + 2, r3 = r1 + 4 (pixels). Must satisfy 0 < r1 < r2 < r3 (UsageError)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise UsageError(f"integration radii: expected 'r1' or 'r1,r2,r3' in pixels, not {value!r}") from None
    else:
        try:
            vals = [float(v) for v in value]
        except (TypeError, ValueError):
            raise UsageError(f"integration radii: expected 1 or 3 numbers, not {value!r}") from None
    if len(vals) == 1:
        vals = [vals[0], vals[0] + 2.0, vals[0] + 4.0]
    if len(vals) != 3:
        raise UsageError(f"integration radii: expected 'r1' or 'r1,r2,r3', got {len(vals)} values")
    r1, r2, r3 = vals
    if not all(np.isfinite(vals)) or not 0 < r1 < r2 < r3:
        raise UsageError(f"integration radii must satisfy 0 < r1 < r2 < r3, got {r1:g}, {r2:g}, {r3:g}")
    return r1, r2, r3


@dataclass(frozen=True)
class IntegratedImage:
    """Integration results of one image: per reflection (n,) and per profile group (n_groups, ...)."""

    I_sum: np.ndarray
    """Summation intensity, photons in the r1 disc minus background (NaN where dropped)."""
    sigma_sum: np.ndarray
    """Its standard uncertainty, photons."""
    I_prf: np.ndarray
    """Profile-fitted intensity, photons in the r1 disc (same quantity as I_sum); NaN unless PROFILE_FITTED."""
    sigma_prf: np.ndarray
    """Its standard uncertainty, photons."""
    background: np.ndarray
    """Mean of the clipped background annulus, photons/pixel (NaN without background pixels)."""
    n_disc: np.ndarray
    """Disc pixels on the detector (int32)."""
    n_background: np.ndarray
    """Background pixels used (int32)."""
    flags: np.ndarray
    """:class:`Flag` bits (uint32)."""
    profiles: np.ndarray
    """Profile each group was fitted with, (n_groups, G, G) float64: the fraction of the disc photons in a
    pixel centred at offset ((u - H)/oversampling, (v - H)/oversampling) px, H = (G - 1)/2, row = v (y).
    Zeros for a group without a profile (or when profile fitting did not run)."""
    profile_width: np.ndarray
    """sigma_p of each group's profile, pixels (RMS width per axis; NaN without a profile)."""
    profile_n_reference: np.ndarray
    """Profile references in each group (int32)."""
    profile_source: np.ndarray
    """:class:`ProfileSource` of each group (int32)."""
    oversampling: int
    """Profile cells per pixel."""

    def __len__(self) -> int:
        return int(self.I_sum.shape[0])


def _resolve_backend(backend: str) -> str:
    b = backend.lower()
    if b not in _BACKENDS:
        raise UsageError(f"integration: backend must be one of {', '.join(_BACKENDS)}, not {backend!r}")
    compiled = bool(getattr(_core, "cuda_compiled", False))
    if b == "cuda" and _core.cuda_device_count() == 0:
        why = "no CUDA device is present" if compiled else "this build has no CUDA"
        raise UsageError(f"integration: the CUDA backend was requested but {why}")
    if b == "auto" and compiled and _core.cuda_device_count() == 0 and not _fallback_warned.is_set():
        _fallback_warned.set()
        warnings.warn("jfjoch: no CUDA device found, integration runs on the CPU", RuntimeWarning, stacklevel=3)
    return b


def _positions(a, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise InputError(f"integration: {name} must be a 1-D array of one value per reflection")
    return np.ascontiguousarray(arr)


def integrate_image(
    image: np.ndarray,
    mask: np.ndarray | None,
    saturation: float | None,
    x: np.ndarray,
    y: np.ndarray,
    settings: IntegrationKernelSettings | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
    profile: bool = True,
    backend: str = "auto",
) -> IntegratedImage:
    """Integrate the predictions (x, y) on one image by summation and (``profile=True``) profile fitting.

    Args:
        image: (ny, nx) counts; int32 (INT32_MIN = error) or another integer type (int16: INT16_MIN,
            uint32: 0xFFFFFFFF are the error values, see :func:`jfjoch.azint.prepare_image`).
        mask: (ny, nx) bool/uint8, True/nonzero = invalid pixel; or None.
        saturation: pixels with value >= saturation are saturated (None or <= 0: no test).
        x, y: predicted positions, pixels (float32 or float64), one per reflection.
        settings: radii and profile settings (default :class:`IntegrationKernelSettings`).
        group: profile group of each reflection (integers in 0..n_groups-1), or None (all in group 0).
        n_groups: number of profile groups.
        profile: also learn profiles and fit them (False: summation only, I_prf = NaN).
        backend: "auto" (CUDA when compiled and a device is present), "cpu" or "cuda".
    """
    settings = settings if settings is not None else IntegrationKernelSettings()
    img = prepare_image(image)
    if img.dtype != np.int32:
        raise InputError(f"integration: the image must have an integer type, not {np.asarray(image).dtype}")
    if img.ndim != 2:
        raise InputError("integration: the image must be 2-D (ny, nx)")
    img = np.ascontiguousarray(img)
    m = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != img.shape:
            raise InputError(f"integration: mask shape {m.shape} differs from the image {img.shape}")
        m = np.ascontiguousarray(m, dtype=np.uint8) if m.dtype != np.bool_ else np.ascontiguousarray(m)
    xs = _positions(x, "x", None)
    ys = _positions(y, "y", xs.shape[0])
    if int(n_groups) < 1:
        raise UsageError(f"integration: n_groups must be >= 1, not {n_groups}")
    g = None
    if group is not None:
        g = np.asarray(group)
        if g.ndim != 1 or g.shape[0] != xs.shape[0] or not np.issubdtype(g.dtype, np.integer):
            raise InputError("integration: group must be a 1-D integer array of one value per reflection")
        if g.size and (g.min() < 0 or g.max() >= n_groups):
            raise InputError(f"integration: group values must lie in 0..{int(n_groups) - 1}")
        g = np.ascontiguousarray(g, dtype=np.int32)
    sat = 0.0 if saturation is None else float(saturation)
    b = _resolve_backend(backend)
    r = _core.integrate_image(img, m, sat, xs, ys, g, int(n_groups), settings.to_core(), bool(profile), b)
    values = {f.name: r[f.name] for f in fields(IntegratedImage) if f.name != "oversampling"}
    return IntegratedImage(**values, oversampling=int(settings.oversampling))
