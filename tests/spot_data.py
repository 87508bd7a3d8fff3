"""Synthetic images and geometry for the spot-finder tests and benchmark (shared builders)."""

from __future__ import annotations

import numpy as np

from jfjoch import Beam, Detector, Experiment


def experiment(
    nx: int,
    ny: int,
    mask: np.ndarray | None = None,
    saturation: int | None = None,
    distance_mm: float = 100.0,
    beam: tuple[float, float] | None = None,
) -> Experiment:
    """Flat detector, 75 µm pixels, 1 Å, beam at the image centre unless given."""
    bx, by = beam if beam is not None else (nx / 2.0, ny / 2.0)
    det = Detector.from_beam_center(nx, ny, 0.075, distance_mm, bx, by, mask=mask, saturation=saturation)
    return Experiment(beam=Beam(1.0), detector=det)


def gaussian_spots(
    ny: int,
    nx: int,
    n: int,
    rng: np.random.Generator,
    background: float = 0.5,
    photons: tuple[float, float] = (100.0, 5000.0),
    sigma_px: tuple[float, float] = (0.6, 1.2),
    margin: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson image (int32): flat background + n Gaussian spots; returns (image, (n, 3) x, y, photons)."""
    lam = np.full((ny, nx), background, dtype=np.float64)
    xs = rng.uniform(margin, nx - 1 - margin, n)
    ys = rng.uniform(margin, ny - 1 - margin, n)
    ph = rng.uniform(*photons, n)
    sg = rng.uniform(*sigma_px, n)
    r = 5
    for x, y, p, s in zip(xs, ys, ph, sg, strict=True):
        x0, y0 = round(x), round(y)
        ya, yb, xa, xb = max(y0 - r, 0), min(y0 + r + 1, ny), max(x0 - r, 0), min(x0 + r + 1, nx)
        yy, xx = np.mgrid[ya:yb, xa:xb]
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
        lam[ya:yb, xa:xb] += p * g / (2 * np.pi * s * s)
    return rng.poisson(lam).astype(np.int32), np.stack([xs, ys, ph], 1)


def module_gap_mask(
    ny: int, nx: int, module_y: int = 514, module_x: int = 1030, gap_y: int = 36, gap_x: int = 8
) -> np.ndarray:
    """JUNGFRAU-like module gaps: True in the gap rows/columns between modules."""
    m = np.zeros((ny, nx), bool)
    for y0 in range(module_y, ny, module_y + gap_y):
        m[y0 : y0 + gap_y] = True
    for x0 in range(module_x, nx, module_x + gap_x):
        m[:, x0 : x0 + gap_x] = True
    return m
