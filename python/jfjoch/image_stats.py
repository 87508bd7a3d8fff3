"""Per-image statistics from the spot list and the azimuthal profile (docs/azint.md, "Image statistics").

Definitions (defaults in :class:`ImageStatisticsSettings`):

* ``n_spots``: all spots; ``n_spots_low_resolution``: spots with d > 5 Å; ``n_spots_ice_ring``: spots
  flagged on an ice ring by the spot finder.
* ``background_estimate`` (photons/pixel): mean corrected intensity of the azimuthal profile over
  5.0 Å > d > 3.0 Å (q = 1.257 .. 2.094 1/Å, the solvent ring), leaving out bins whose
  centre lies within 0.04 1/Å of a hexagonal-ice ring. Bins are weighted by their pixel counts when the
  counts are given, so the estimate is exactly the mean of the corrected valid pixels in those bins;
  without counts the bins are weighted equally. NaN when no bin with data falls in the range. When counts
  are given, bins with fewer than 20 valid pixels are not used here nor in the ice-ring score.
* ``ice_ring_score``: for every ice ring inside the profile, (mean of the bins within 0.02 1/Å of the ring)
  / (a straight line fitted to the neighbour bins 0.04 .. 0.10 1/Å away on either side, excluding bins
  near any ring, evaluated at the ring bins) - 1;
  the score is the largest of these (0 ≈ no ice, 0.5 = a ring 50 % above its surroundings). NaN when no
  ring can be evaluated.
* ``resolution_estimate`` (Å): from the spots not on ice rings, 1 / s_est where s = 1/d and s_est is the
  95th percentile of s but never above the second-largest s (one stray spot cannot set it; for up to 21
  spots it is the second-largest). NaN with fewer than 5 such spots.
* ``max_value``, ``n_saturated``, ``n_error``: copied from the spot finder's image statistics.

All q are 1/Å with 2π (q = 2π/d), as in :mod:`jfjoch.azint`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from jfjoch.errors import InputError

__all__ = [
    "ICE_RING_D_A",
    "ImageStatistics",
    "ImageStatisticsSettings",
    "SpotArrays",
    "StatisticsCalculator",
    "compute_image_statistics",
    "ice_ring_score",
    "profile_background",
    "resolution_estimate",
]

ICE_RING_D_A: tuple[float, ...] = (3.897, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918, 1.883, 1.721)
"""d spacings (Å) of the strong hexagonal-ice (Ih) rings (the spot finder's list)."""

_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class ImageStatisticsSettings:
    """Ranges and thresholds of the per-image statistics (q in 1/Å with 2π, d in Å)."""

    low_resolution_d_A: float = 5.0
    """Spots with d above this count as low-resolution spots, Å."""
    background_d_A: tuple[float, float] = (5.0, 3.0)
    """Background from the profile between these d (low, high resolution), Å."""
    ice_ring_exclusion_q: float = 0.04
    """Background bins with centres closer than this to an ice ring are left out, 1/Å."""
    ice_ring_half_width_q: float = 0.02
    """Ice-ring score: bins with centres within this of a ring are 'on the ring', 1/Å."""
    ice_ring_neighbour_q: tuple[float, float] = (0.04, 0.10)
    """Ice-ring score: neighbour bins lie this far (min, max) from the ring, 1/Å."""
    resolution_percentile: float = 95.0
    """Percentile of spot 1/d giving the resolution estimate."""
    min_spots_for_resolution: int = 5
    """Fewer non-ice spots than this: resolution estimate NaN."""
    min_bin_pixels: int = 20
    """When pixel counts are given, profile bins with fewer valid pixels are not used (noisy edge bins)."""


class SpotsLike(Protocol):
    """What the statistics read from a spot list (jfjoch.spots.SpotList satisfies it)."""

    x: np.ndarray
    y: np.ndarray
    intensity: np.ndarray
    d: np.ndarray
    ice_ring: np.ndarray


@dataclass(frozen=True)
class SpotArrays:
    """Plain spot arrays (one entry per spot) plus the image-level counts, for callers without a SpotList."""

    x: np.ndarray
    """Spot x (fast, column), pixels."""
    y: np.ndarray
    """Spot y (slow, row), pixels."""
    intensity: np.ndarray
    """Spot intensity, photons."""
    d: np.ndarray
    """Spot resolution, Å."""
    ice_ring: np.ndarray
    """True where the spot lies on an ice ring."""
    max_value: int | None = None
    """Largest valid pixel value of the image, photons (None: unknown)."""
    n_saturated: int = 0
    """Unmasked saturated pixels."""
    n_error: int = 0
    """Unmasked pixels with the error value."""


@dataclass(frozen=True)
class ImageStatistics:
    """Statistics of one image; keys of :meth:`as_dict` are those of the `_process.h5` writer."""

    n_spots: int
    """Number of spots."""
    n_spots_low_resolution: int
    """Spots with d > settings.low_resolution_d_A (5 Å)."""
    n_spots_ice_ring: int
    """Spots flagged on an ice ring."""
    resolution_estimate: float
    """Å; NaN with too few spots."""
    background_estimate: float
    """Photons/pixel (corrected, normalised to a pixel at normal incidence); NaN without profile data."""
    ice_ring_score: float
    """Largest relative excess of the profile on an ice ring over its neighbours; NaN if not evaluable."""
    max_value: int | None = None
    """Largest valid pixel value, photons (None: unknown)."""
    n_saturated: int = 0
    """Unmasked saturated pixels."""
    n_error: int = 0
    """Unmasked pixels with the error value."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the statistics (``max_value`` left out when unknown)."""
        d = asdict(self)
        if d["max_value"] is None:
            del d["max_value"]
        return d


def _ice_q() -> np.ndarray:
    return _TWO_PI / np.asarray(ICE_RING_D_A)


def resolution_estimate(
    d: np.ndarray, ice_ring: np.ndarray | None = None, settings: ImageStatisticsSettings | None = None
) -> float:
    """Resolution estimate (Å) from spot resolutions d (Å); see the module docstring. NaN when too few."""
    s_cfg = settings or ImageStatisticsSettings()
    d = np.asarray(d, np.float64).ravel()
    keep = np.isfinite(d) & (d > 0)
    if ice_ring is not None:
        keep &= ~np.asarray(ice_ring, bool).ravel()
    s = 1.0 / d[keep]
    if s.size < max(2, s_cfg.min_spots_for_resolution):
        return math.nan
    s.sort()
    s_est = min(float(np.percentile(s, s_cfg.resolution_percentile)), float(s[-2]))
    return 1.0 / s_est


def profile_background(
    profile: np.ndarray,
    q: np.ndarray,
    count: np.ndarray | None = None,
    settings: ImageStatisticsSettings | None = None,
) -> float:
    """Background (photons/pixel) from the azimuthal profile; see the module docstring."""
    s_cfg = settings or ImageStatisticsSettings()
    profile = np.asarray(profile, np.float64)
    q = np.asarray(q, np.float64)
    d_lo, d_hi = s_cfg.background_d_A
    q_lo, q_hi = sorted((_TWO_PI / d_lo, _TWO_PI / d_hi))
    sel = (q >= q_lo) & (q <= q_hi) & np.isfinite(profile)
    near_ice = (np.abs(q[:, None] - _ice_q()[None, :]) < s_cfg.ice_ring_exclusion_q).any(axis=1)
    sel &= ~near_ice
    if count is not None:
        w = np.asarray(count, np.float64)
        sel &= w >= max(1, s_cfg.min_bin_pixels)
    else:
        w = np.ones_like(profile)
    if not sel.any():
        return math.nan
    return float(np.sum(profile[sel] * w[sel]) / np.sum(w[sel]))


def ice_ring_score(
    profile: np.ndarray,
    q: np.ndarray,
    count: np.ndarray | None = None,
    settings: ImageStatisticsSettings | None = None,
) -> float:
    """Largest relative excess of the profile on an ice ring over the neighbouring bins (see the module
    docstring); NaN when no ring has both on-ring and neighbour bins with data."""
    s_cfg = settings or ImageStatisticsSettings()
    profile = np.asarray(profile, np.float64)
    q = np.asarray(q, np.float64)
    ok = np.isfinite(profile)
    if count is not None:
        ok &= np.asarray(count) >= max(1, s_cfg.min_bin_pixels)
    dist = np.abs(q[:, None] - _ice_q()[None, :])  # (B, rings)
    near_any = (dist < s_cfg.ice_ring_neighbour_q[0]).any(axis=1)
    n_lo, n_hi = s_cfg.ice_ring_neighbour_q
    best = math.nan
    for r in range(dist.shape[1]):
        on = ok & (dist[:, r] <= s_cfg.ice_ring_half_width_q)
        nb = ok & ~near_any & (dist[:, r] >= n_lo) & (dist[:, r] <= n_hi)
        if not on.any() or not nb.any():
            continue
        # background under the ring: straight line through the neighbour bins (handles the slope of the
        # water ring, also when the neighbours of a ring in a cluster lie on one side only)
        if np.unique(q[nb]).size >= 2:
            slope, icpt = np.polyfit(q[nb], profile[nb], 1)
            base = float(np.mean(icpt + slope * q[on]))
        else:
            base = float(np.mean(profile[nb]))
        if not base > 0:
            continue
        excess = float(np.mean(profile[on])) / base - 1.0
        best = excess if math.isnan(best) else max(best, excess)
    return best


def _statistics(spots: SpotsLike, d: np.ndarray, ice: np.ndarray, background: float, ice_score: float,
                settings: ImageStatisticsSettings) -> ImageStatistics:  # fmt: skip
    """The ImageStatistics of one image from its spots' d (Å) and ice flags and its profile figures."""
    max_value = getattr(spots, "max_value", None)
    return ImageStatistics(
        n_spots=int(d.size),
        n_spots_low_resolution=int(np.count_nonzero(d > settings.low_resolution_d_A)),
        n_spots_ice_ring=int(np.count_nonzero(ice)),
        resolution_estimate=resolution_estimate(d, ice, settings),
        background_estimate=background,
        ice_ring_score=ice_score,
        max_value=None if max_value is None else int(max_value),
        n_saturated=int(getattr(spots, "n_saturated", 0)),
        n_error=int(getattr(spots, "n_error", 0)),
    )


def compute_image_statistics(
    spots: SpotsLike,
    profile: np.ndarray | None,
    q: np.ndarray | None,
    *,
    profile_count: np.ndarray | None = None,
    settings: ImageStatisticsSettings | None = None,
) -> ImageStatistics:
    """Statistics of one image.

    Args:
        spots: a ``SpotList`` or :class:`SpotArrays`: arrays ``x``, ``y`` (pixels), ``intensity``
            (photons), ``d`` (Å), ``ice_ring`` (bool), one entry each per spot; optional image-level
            ``max_value``, ``n_saturated``, ``n_error``.
        profile: azimuthal profile (B,), photons/pixel, NaN in empty bins; None: background and ice score NaN.
        q: bin centres (B,), 1/Å with 2π.
        profile_count: valid pixels per bin (B,); weights the background estimate.
        settings: ranges and thresholds.
    """
    s_cfg = settings or ImageStatisticsSettings()
    d = np.asarray(spots.d, np.float64).ravel()
    n = d.size
    for name in ("x", "y", "intensity", "ice_ring"):
        if np.asarray(getattr(spots, name)).ravel().size != n:
            raise InputError(f"image statistics: spot array '{name}' has a different length than 'd'")
    ice = np.asarray(spots.ice_ring, bool).ravel()
    if profile is not None and q is not None:
        profile = np.asarray(profile, np.float64).ravel()
        q = np.asarray(q, np.float64).ravel()
        if profile.shape != q.shape:
            raise InputError("image statistics: profile and q differ in length")
        background = profile_background(profile, q, profile_count, s_cfg)
        ice_score = ice_ring_score(profile, q, profile_count, s_cfg)
    else:
        background = ice_score = math.nan
    return _statistics(spots, d, ice, background, ice_score, s_cfg)


class StatisticsCalculator:
    """:func:`compute_image_statistics` for many images binned on the same q (the per-image pass): the
    selections that depend only on q are built once, and the straight line under each ice ring is fitted
    in closed form (the least-squares line :func:`ice_ring_score` gets from ``np.polyfit``, equal to
    rounding). Everything else is computed as :func:`compute_image_statistics` does. Read-only after
    construction: thread-safe."""

    def __init__(self, q: np.ndarray, settings: ImageStatisticsSettings | None = None) -> None:
        self.settings = s_cfg = settings or ImageStatisticsSettings()
        self.q = q = np.array(q, np.float64).ravel()
        d_lo, d_hi = s_cfg.background_d_A
        q_lo, q_hi = sorted((_TWO_PI / d_lo, _TWO_PI / d_hi))
        dist = np.abs(q[:, None] - _ice_q()[None, :])  # (B, rings)
        self._background = (q >= q_lo) & (q <= q_hi) & ~(dist < s_cfg.ice_ring_exclusion_q).any(axis=1)
        near_any = (dist < s_cfg.ice_ring_neighbour_q[0]).any(axis=1)
        n_lo, n_hi = s_cfg.ice_ring_neighbour_q
        self._on = dist <= s_cfg.ice_ring_half_width_q  # (B, rings)
        self._nb = ~near_any[:, None] & (dist >= n_lo) & (dist <= n_hi)
        self._min_count = max(1, s_cfg.min_bin_pixels)

    def _ice_ring_score(self, profile: np.ndarray, ok: np.ndarray) -> float:
        q = self.q
        y = np.where(ok, profile, 0.0)
        on = (self._on & ok[:, None]).astype(np.float64)
        nb = (self._nb & ok[:, None]).astype(np.float64)
        n_on, n_nb = on.sum(axis=0), nb.sum(axis=0)
        rings = (n_on > 0) & (n_nb > 0)
        if not rings.any():
            return math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_on = (y @ on) / n_on
            q_on = (q @ on) / n_on
            xm, ym = (q @ nb) / n_nb, (y @ nb) / n_nb
            dx = q[:, None] - xm[None, :]
            sxx = np.sum(nb * dx * dx, axis=0)
            sxy = np.sum(nb * dx * (y[:, None] - ym[None, :]), axis=0)
            # a line through two or more neighbour bins (their q differ), else their mean
            base = np.where(n_nb >= 2, ym + (sxy / sxx) * (q_on - xm), ym)
            excess = mean_on / base - 1.0
        good = rings & (base > 0)
        return float(np.max(excess[good])) if good.any() else math.nan

    def compute(self, spots: SpotsLike, profile: np.ndarray | None,
                count: np.ndarray | None = None) -> ImageStatistics:  # fmt: skip
        """Statistics of one image (the arguments of :func:`compute_image_statistics`; ``profile`` and
        ``count`` binned on this calculator's q)."""
        s_cfg = self.settings
        d = np.asarray(spots.d, np.float64).ravel()
        ice = np.asarray(spots.ice_ring, bool).ravel()
        if d.size != ice.size:
            raise InputError("image statistics: spot array 'ice_ring' has a different length than 'd'")
        if profile is not None:
            profile = np.asarray(profile, np.float64).ravel()
            if profile.shape != self.q.shape:
                raise InputError("image statistics: profile and q differ in length")
            ok = np.isfinite(profile)
            if count is not None:
                ok &= np.asarray(count).ravel() >= self._min_count
            sel = self._background & ok
            if sel.any():
                w = np.ones_like(profile) if count is None else np.asarray(count, np.float64).ravel()
                background = float(np.sum(profile[sel] * w[sel]) / np.sum(w[sel]))
            else:
                background = math.nan
            ice_score = self._ice_ring_score(profile, ok)
        else:
            background = ice_score = math.nan
        return _statistics(spots, d, ice, background, ice_score, s_cfg)
