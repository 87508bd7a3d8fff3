"""The committed DIALS reference for the real thaumatin stills (tests/data/thaumatin_dials/).

``load_dials_fixture()`` returns DIALS 3.12's integrated reflections and per-image models as plain numpy
arrays (see tests/data/thaumatin_dials/README.md for every array, its units and conventions), so that a
test can compare our intensities with DIALS's without DIALS. ``dials_predict_px`` redoes DIALS's stills
prediction (Ewald-sphere projection + parallax correction) from the stored models, which both checks and
documents the conventions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parent / "data" / "thaumatin_dials" / "integrated.npz"


def load_dials_fixture(path: Path | str = FIXTURE) -> dict[str, np.ndarray]:
    """All arrays of the fixture, by name; skips the calling test when the file is missing."""
    path = Path(path)
    if not path.exists():
        pytest.skip(f"DIALS fixture not found: {path}")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def reciprocal_vectors(fx: dict[str, np.ndarray]) -> np.ndarray:
    """q = A·h (1/Å, DIALS lab frame) for each reflection, with the A of its image."""
    return np.einsum("nij,nj->ni", fx["A"][fx["image"]], fx["hkl"].astype(np.float64))


def delta_psi(fx: dict[str, np.ndarray]) -> np.ndarray:
    """DIALS's Δψ (rad, unsigned): the rotation about s0 × q that puts q on the Ewald sphere.

    DIALS 3.12's stills predictor (no mosaicity model) keeps only |Δψ| < 0.0015 rad."""
    q = reciprocal_vectors(fx)
    s0 = fx["s0"][fx["image"]]
    k = np.linalg.norm(s0, axis=1)
    qn = np.linalg.norm(q, axis=1)
    ang_now = np.arccos(np.clip(np.sum(q * s0, axis=1) / (qn * k), -1.0, 1.0))
    ang_bragg = np.arccos(np.clip(-qn / (2.0 * k), -1.0, 1.0))
    return np.abs(ang_now - ang_bragg)


def dials_predict_px(fx: dict[str, np.ndarray], parallax: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (x, y) in DIALS pixel coordinates (corner of the first pixel = 0) for each reflection.

    As DIALS's stills predictor: q = A·h is rotated in the (s0, q) plane onto the Ewald sphere,
    s1 = s0 + q' is intersected with the image's refined detector plane, and the millimetre position
    is turned into pixels with dxtbx's parallax correction (sensor mu, thickness)."""
    img = fx["image"]
    q = reciprocal_vectors(fx)
    s0 = fx["s0"][img]
    k = np.linalg.norm(s0, axis=1)
    s0h = s0 / k[:, None]
    qn = np.linalg.norm(q, axis=1)
    qperp = q - np.sum(q * s0h, axis=1)[:, None] * s0h
    e = qperp / np.linalg.norm(qperp, axis=1)[:, None]
    ca = -qn / (2.0 * k)
    sa = np.sqrt(1.0 - ca**2)
    s1 = s0 + qn[:, None] * (ca[:, None] * s0h + sa[:, None] * e)

    o = fx["detector_origin_mm"][img]
    fa = fx["detector_fast_axis"][img]
    sl = fx["detector_slow_axis"][img]
    sol = np.linalg.solve(np.stack([fa, sl, -s1], axis=2), -o[..., None])[..., 0]
    u, v = sol[:, 0], sol[:, 1]
    if parallax:
        mu = float(fx["sensor_mu_per_mm"])
        t0 = float(fx["sensor_thickness_mm"])
        p = o + u[:, None] * fa + v[:, None] * sl
        r = p / np.linalg.norm(p, axis=1)[:, None]
        n = np.cross(fa, sl)
        n /= np.linalg.norm(n, axis=1)[:, None]
        cos_t = np.abs(np.sum(r * n, axis=1))
        t = 1.0 / mu - (t0 / cos_t + 1.0 / mu) * np.exp(-mu * t0 / cos_t)
        u = u + t * np.sum(r * fa, axis=1)
        v = v + t * np.sum(r * sl, axis=1)
    ps = fx["pixel_size_mm"]
    return u / ps[0], v / ps[1]
