"""Data builders for the TORO indexer tests and benchmark (shared/data/ffbidx_spots, hewl_stills1)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .conftest import SHARED_CHECKS

# Upstream's approximate true basis of the image* lists (rows a, b, c, Å); see ffbidx_spots/README.md.
IMAGE_TRUE_BASIS = np.array(
    [
        [39.431335, 25.273994, 63.585350],
        [28.513729, 60.642746, -41.786659],
        [-29.096014, 20.499205, 9.895323],
    ]
)
IMAGE_FILES = [f"image{i}_{k}.txt" for i in range(10) for k in ("local", "radial")]
TEST_FILES = ["test0.txt", "test1.txt", "test2.txt"]


def load_truth_module():
    """shared/checks/truth.py as a module (prediction and misorientation code)."""
    spec = importlib.util.spec_from_file_location("shared_truth", SHARED_CHECKS / "truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_spot_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cell basis rows a, b, c in Å (3, 3); spots s (n, 3) in 1/Å) from an ffbidx spot file."""
    rows = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    cell = np.array(rows[0], dtype=float).reshape(3, 3)
    s = np.array(rows[1:], dtype=float)
    return cell, s


def lattice_match(ours: np.ndarray, true: np.ndarray, tol: float = 0.05) -> tuple[bool, np.ndarray]:
    """(ok, M): ours = M @ true with M integer and unimodular (within tol), i.e. the same lattice."""
    m = ours @ np.linalg.inv(true)
    mr = np.round(m)
    ok = bool(np.max(np.abs(m - mr)) < tol and abs(round(np.linalg.det(mr))) == 1)
    return ok, mr


def xy_to_s(t: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reciprocal vectors (1/Å) of detector positions (px, pixel centres at integers), truth.json geometry."""
    lam = t["wavelength_A"]
    p = t["pixel_size_mm"]
    bx, by = t["beam_center_px"]
    r = np.stack([(x - bx) * p, (y - by) * p, np.full_like(x, t["distance_mm"])], axis=1)
    return r / (np.linalg.norm(r, axis=1, keepdims=True) * lam) - np.array([0.0, 0.0, 1.0 / lam])


def stills_spots(
    t: dict,
    image: int,
    rng: np.random.Generator,
    noise_px: float = 0.3,
    junk: float = 0.1,
    photons: float = 200.0,
) -> np.ndarray:
    """Spots of one hewl_stills1 image: reflections with > photons, 0.3 px noise, 10% junk spots added."""
    p = t["partials"]
    sel = p[(p[:, 0] == image) & (p[:, 4] > photons)]
    truth = load_truth_module()
    x, y = truth.predict(t, image, sel[:, 1:4])
    ok = np.isfinite(x) & np.isfinite(y)
    x = x[ok] + rng.normal(0.0, noise_px, ok.sum())
    y = y[ok] + rng.normal(0.0, noise_px, ok.sum())
    nj = round(junk * len(x))
    w, h = t["image_size_px"]
    x = np.concatenate([x, rng.uniform(0, w - 1, nj)])
    y = np.concatenate([y, rng.uniform(0, h - 1, nj)])
    s = xy_to_s(t, x, y)
    return s[rng.permutation(len(s))]
