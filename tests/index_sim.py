"""Data builders for the indexing tests and bench/bench_index_fft.py: simulated still spot lists and the
shared ffbidx spot lists. Reciprocal vectors in 1/Å (no 2π), lattices as rows a, b, c in Å."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

# Upstream (PSI fast-feedback-indexer) true basis of the real lysozyme lists, approximately (README).
FFBIDX_TRUE_BASIS = np.array([[39.431, 25.274, 63.585], [28.514, 60.643, -41.787], [-29.096, 20.499, 9.895]])


def lattice_from_cell(cell) -> np.ndarray:
    """Rows a, b, c (Å): a along x, b in the xy plane."""
    a, b, c, al, be, ga = cell
    al, be, ga = np.radians([al, be, ga])
    ax = np.array([a, 0.0, 0.0])
    bx = np.array([b * np.cos(ga), b * np.sin(ga), 0.0])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(c * c - cx * cx - cy * cy)
    return np.array([ax, bx, [cx, cy, cz]])


def simulate_still(
    cell,
    rng: np.random.Generator,
    n_spots: int = 250,
    d_min: float = 2.0,
    wavelength: float = 1.0,
    noise: float = 3e-4,
    junk_fraction: float = 0.2,
    ewald_width: float = 0.004,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A still in a random orientation: (s (n, 3), lattice (3, 3) rows a, b, c, on_lattice mask (n,)).

    Reflections within ``ewald_width`` (1/Å) of the Ewald sphere to ``d_min`` (Å), Gaussian noise of
    ``noise`` 1/Å per component, and ``junk_fraction`` of the spots random points on the Ewald sphere.
    """
    L = lattice_from_cell(cell) @ Rotation.random(random_state=rng).as_matrix().T
    Astar = np.linalg.inv(L)  # columns a*, b*, c*
    hmax = [int(np.ceil(np.linalg.norm(v) / d_min)) for v in L]
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in hmax], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], 1)
    s = hkl @ Astar.T
    s0 = np.array([0.0, 0.0, 1.0 / wavelength])
    keep = (np.linalg.norm(s, axis=1) < 1.0 / d_min) & (np.linalg.norm(hkl, axis=1) > 0)
    keep &= np.abs(np.linalg.norm(s + s0, axis=1) - 1.0 / wavelength) < ewald_width
    s = s[keep]
    n_junk = round(n_spots * junk_fraction)
    n_sig = min(len(s), n_spots - n_junk)
    s = s[rng.choice(len(s), n_sig, replace=False)] + rng.normal(0.0, noise, (n_sig, 3))
    # junk: uniform on the Ewald sphere cap out to d_min
    two_theta_max = 2 * np.arcsin(wavelength / (2 * d_min))
    ct = rng.uniform(np.cos(two_theta_max), np.cos(0.05), n_junk)
    phi = rng.uniform(0, 2 * np.pi, n_junk)
    st = np.sqrt(1 - ct**2)
    junk = np.stack([st * np.cos(phi), st * np.sin(phi), ct], 1) / wavelength - s0
    allv = np.concatenate([s, junk])
    mask = np.concatenate([np.ones(n_sig, bool), np.zeros(n_junk, bool)])
    order = rng.permutation(len(allv))
    return allv[order], L, mask[order]


def load_ffbidx_list(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(first-line basis (3, 3) rows, s (n, 3)) of a shared ffbidx_spots file."""
    rows = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return np.array(rows[0], float).reshape(3, 3), np.array(rows[1:], float)


def load_truth_module(checks_dir: Path):
    """shared/checks/truth.py as a module (prediction and misorientation helpers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("jfjoch_shared_truth", Path(checks_dir) / "truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def stills_from_truth(
    truth, t: dict, rng: np.random.Generator, min_photons: float = 200.0, noise_px: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per still image of a truth.json dataset: (s (n, 3) 1/Å, A* (3, 3) truth) for the reflections with more
    than ``min_photons`` photons (truth_partials.npy), predicted on the detector, with Gaussian position
    noise of ``noise_px`` pixels, mapped back to reciprocal space (pixel centres at integers)."""
    P = t["partials"]
    lam, D, p = t["wavelength_A"], t["distance_mm"], t["pixel_size_mm"]
    bx, by = t["beam_center_px"]
    out = []
    for im, rec in enumerate(t["images"]):
        r = P[(P[:, 0] == im) & (P[:, 4] > min_photons)]
        A = np.array(rec["A_star_mid"])
        x, y = truth.s_to_xy(t, r[:, 1:4].astype(float) @ A.T)
        x = x + rng.normal(0, noise_px, len(x))
        y = y + rng.normal(0, noise_px, len(y))
        xyz = np.stack([(x - bx) * p, (y - by) * p, np.full_like(x, D)], 1)
        s = xyz / np.linalg.norm(xyz, axis=1)[:, None] / lam - np.array([0, 0, 1 / lam])
        out.append((s, A))
    return out
