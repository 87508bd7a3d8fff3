"""Fast in-house simulator of JUNGFRAU rotation and still images (tests and benchmarks).

The physics is deliberately simple and fully documented in docs/simulate.md:

* reflections: all P1 indices to ``d_min`` minus systematic absences (gemmi), with |F|² from a seeded
  Wilson-like random set per asymmetric-unit reflection or from a PDB/MTZ model (gemmi);
* stills: Gaussian or Lorentzian partiality in the excitation error ε = |s + s0| - 1/λ (1/Å) with
  width ``sqrt(spot_width_recip² + (|s|·mosaicity)²)``;
* rotation: Gaussian rocking curve integrated over each frame's oscillation, times the Lorentz factor
  1 / (λ |(e × s)·z|) = 1 / sin 2θ for an axis perpendicular to the beam;
* times polarisation and solid angle; spots are 2-D Gaussians (``psf_sigma_px``) integrated over pixels;
  background = constant + water ring (times polarisation and solid angle); Poisson noise (seeded);
  saturation and mask.

Units: Å, mm, degrees at the interface; photons for intensities. Geometry conventions are those of
``jfjoch.experiment`` and of the truth files in shared/data (beam along +z, fast = +x, slow = +y).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from scipy.special import erf, ndtr

from . import _core
from .errors import InputError, UsageError
from .experiment import rotation_matrix

__all__ = [
    "JF_GAP_X",
    "JF_GAP_Y",
    "JF_MODULE_NX",
    "JF_MODULE_NY",
    "DetectorLayout",
    "Frame",
    "ReflectionSet",
    "SimulatedPaths",
    "SimulationSettings",
    "Simulator",
    "b_matrix",
    "detector_layout",
    "model_intensities",
    "p1_indices",
    "random_rotation",
    "render_spots",
    "simulate_dataset",
    "space_group_of",
    "wilson_intensities",
]

JF_MODULE_NX = 1030
"""Columns of one assembled JUNGFRAU module (4 chips of 256 + 2 x 3 inter-chip pixels)."""
JF_MODULE_NY = 514
"""Rows of one assembled JUNGFRAU module (2 chips of 256 + 2 inter-chip pixels)."""
JF_GAP_X = 8
"""Gap between module columns in the assembled frame, pixels."""
JF_GAP_Y = 36
"""Gap between module rows in the assembled frame, pixels."""

MASK_GAP = 1
"""pixel_mask bit of module-gap pixels (NXmx bit 0, as in shared/data)."""
MASK_HOT = 256
"""pixel_mask value of hot pixels (as in shared/data; they read as saturated)."""


# ----------------------------------------------------------------------------------------------------
# Detector layout
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorLayout:
    """An assembled frame of ``nx`` x ``ny`` pixels made of rectangular modules (x = fast, y = slow)."""

    nx: int
    ny: int
    modules: tuple[tuple[int, int, int, int], ...]
    """Each module as (x0, y0, width, height) in pixels of the assembled frame."""
    name: str = "plain"

    def gap_mask(self) -> np.ndarray:
        """(ny, nx) bool, True on pixels not covered by a module (inter-module gaps)."""
        covered = np.zeros((self.ny, self.nx), bool)
        for x0, y0, w, h in self.modules:
            covered[y0 : y0 + h, x0 : x0 + w] = True
        return ~covered


def jungfrau_layout(rows: int, cols: int) -> DetectorLayout:
    """Jungfraujoch-assembled JUNGFRAU: ``rows`` x ``cols`` modules of 1030 x 514 px with 8/36 px gaps."""
    nx = cols * JF_MODULE_NX + (cols - 1) * JF_GAP_X
    ny = rows * JF_MODULE_NY + (rows - 1) * JF_GAP_Y
    mods = tuple(
        (c * (JF_MODULE_NX + JF_GAP_X), r * (JF_MODULE_NY + JF_GAP_Y), JF_MODULE_NX, JF_MODULE_NY)
        for r in range(rows)
        for c in range(cols)
    )
    return DetectorLayout(nx=nx, ny=ny, modules=mods, name=f"JUNGFRAU {rows * cols // 2}M")


def detector_layout(detector: str | tuple[int, int]) -> DetectorLayout:
    """Layout for ``"1M"`` (2 modules, 1030 x 1064), ``"4M"`` (8 modules, 2068 x 2164) or ``(nx, ny)``."""
    if isinstance(detector, str):
        key = detector.strip().upper()
        if key == "1M":
            return jungfrau_layout(2, 1)
        if key == "4M":
            return jungfrau_layout(4, 2)
        raise UsageError(f"unknown detector {detector!r}: use 1M, 4M or NXxNY")
    try:
        nx, ny = (int(v) for v in detector)
    except (TypeError, ValueError):
        raise UsageError(f"detector must be '1M', '4M' or (nx, ny), got {detector!r}") from None
    if nx < 8 or ny < 8 or nx * ny > 64_000_000:
        raise UsageError(f"detector size {nx} x {ny} out of range")
    return DetectorLayout(nx=nx, ny=ny, modules=((0, 0, nx, ny),), name=f"plain {nx}x{ny}")


# ----------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulationSettings:
    """Everything that defines a simulated dataset (same settings + seed -> same bytes)."""

    detector: str | tuple[int, int] = "1M"
    mode: str = "rotation"
    """"rotation" or "stills"."""
    n_images: int = 10
    cell: tuple[float, float, float, float, float, float] = (79.344, 79.344, 37.81, 90.0, 90.0, 90.0)
    """Unit cell a, b, c (Å), alpha, beta, gamma (degrees)."""
    space_group: str | int = "P 43 21 2"
    wavelength_A: float = 1.0
    distance_mm: float = 80.0
    beam_center_px: tuple[float, float] | None = None
    """Beam centre (x, y) in pixels; default: the frame centre + (0.3, -0.2) px."""
    pixel_mm: float = 0.075
    U: np.ndarray | None = field(default=None, compare=False)
    """Orientation: (3, 3) rotation for all images, (n_images, 3, 3) for stills; None = random (seeded)."""
    rotation_axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    omega_start_deg: float = 0.0
    omega_width_deg: float = 0.5
    mosaicity_deg: float = 0.05
    """Mosaic spread (Gaussian sigma), degrees."""
    spot_width_recip: float = 2.0e-4
    """Intrinsic reciprocal-space width (sigma of the excitation-error profile), 1/Å."""
    partiality: str = "gaussian"
    """Stills partiality profile in the excitation error: "gaussian" or "lorentzian"."""
    psf_sigma_px: float = 0.6
    """Spot point-spread function (Gaussian sigma), pixels."""
    d_min_A: float | None = None
    """High-resolution limit, Å; default: the detector corner (at least 1.2 Å)."""
    d_max_A: float = 60.0
    wilson_B: float = 15.0
    """B factor of the random Wilson-like intensities, Å²."""
    photons_per_intensity: float = 600.0
    """Photons of a fully recorded reflection with |F|² = 1 (Wilson mean at d = ∞), Lorentz = 1."""
    model: str | None = None
    """PDB/mmCIF (structure factors by gemmi) or MTZ (intensity or amplitude column) for |F|²."""
    model_scale: float | None = None
    """Photons per unit |F|² for a model; default: scaled so the mean |F|² at 4-5 Å matches the Wilson set."""
    crystal: bool = True
    """False: no crystal in the beam, so no reflections: blank frames of background, water ring and noise
    (e.g. the empty frames of a grid scan)."""
    background: float = 1.0
    """Constant background, photons per pixel (at the beam centre, before polarisation/solid angle)."""
    water_ring: float = 2.0
    """Water-ring peak, photons per pixel."""
    water_ring_d_A: float = 3.1
    water_ring_width: float = 0.012
    """Water-ring sigma in 1/d, 1/Å."""
    polarization_fraction: float = 0.99
    noise: bool = True
    """Poisson noise; False writes rint(expected photons)."""
    saturation: int = 32766
    n_hot_pixels: int = 6
    seed: int = 0
    threads: int = 1
    """CPU threads of the per-pixel kernel (0 = all); does not change the output bytes."""
    backend: str = "cpu"
    """Kernel backend: "cpu", "cuda" or "auto" (same per-pixel code and random streams)."""

    def validate(self) -> None:
        """Raise UsageError with a one-line message on any bad value."""
        detector_layout(self.detector)
        if self.mode not in ("rotation", "stills"):
            raise UsageError(f"mode must be 'rotation' or 'stills', got {self.mode!r}")
        if not 1 <= int(self.n_images) <= 100_000:
            raise UsageError(f"n_images must be in 1..100000, got {self.n_images}")
        if len(self.cell) != 6 or min(self.cell[:3]) <= 0 or not all(0 < a < 180 for a in self.cell[3:]):
            raise UsageError(f"bad unit cell {self.cell}")
        try:
            gemmi.UnitCell(*self.cell)
        except (ValueError, RuntimeError, TypeError):
            raise UsageError(f"bad unit cell {self.cell}") from None
        space_group_of(self.space_group)
        for name in ("wavelength_A", "distance_mm", "pixel_mm", "psf_sigma_px", "photons_per_intensity"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("mosaicity_deg", "spot_width_recip", "background", "water_ring", "wilson_B"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.mosaicity_deg == 0 and self.spot_width_recip == 0:
            raise UsageError("mosaicity_deg and spot_width_recip cannot both be 0")
        if self.mode == "rotation" and not self.omega_width_deg > 0:
            raise UsageError(f"omega_width_deg must be > 0, got {self.omega_width_deg}")
        if self.mode == "rotation" and abs(self.omega_width_deg) * self.n_images > 350:
            raise UsageError("rotation range must stay below 350 degrees")
        if self.partiality not in ("gaussian", "lorentzian"):
            raise UsageError(f"partiality must be 'gaussian' or 'lorentzian', got {self.partiality!r}")
        if self.d_min_A is not None and not 0.5 <= self.d_min_A < self.d_max_A:
            raise UsageError(f"d_min_A must be in [0.5, d_max_A), got {self.d_min_A}")
        if not 1 <= self.saturation <= 2**31 - 1:
            raise UsageError(f"saturation must be in 1..2^31-1, got {self.saturation}")
        if not 0.0 <= self.polarization_fraction <= 1.0:
            raise UsageError("polarization_fraction must be in [0, 1]")
        if np.linalg.norm(self.rotation_axis) == 0:
            raise UsageError("rotation_axis must not be zero")
        if self.U is not None:
            U = np.asarray(self.U, float)
            ok_shape = U.shape == (3, 3) or (self.mode == "stills" and U.shape == (int(self.n_images), 3, 3))
            if not ok_shape:
                raise UsageError(f"U must be (3, 3) (or (n_images, 3, 3) for stills), got {U.shape}")
            Us = U.reshape(-1, 3, 3)
            err = np.abs(np.einsum("nij,nkj->nik", Us, Us) - np.eye(3)).max()
            if err > 1e-6 or np.any(np.linalg.det(Us) < 0):
                raise UsageError("U must be a proper rotation matrix")
        if self.model is not None and not Path(self.model).is_file():
            raise InputError(f"model file not found: {self.model}")
        if self.beam_center_px is not None and len(self.beam_center_px) != 2:
            raise UsageError("beam_center_px must be (x, y)")
        if self.backend not in ("cpu", "cuda", "auto"):
            raise UsageError(f"backend must be 'cpu', 'cuda' or 'auto', got {self.backend!r}")
        if self.backend == "cuda" and not (_core.cuda_compiled and _core.cuda_device_count() > 0):
            raise UsageError("backend 'cuda' needs a CUDA build and a CUDA device (use 'cpu' or 'auto')")
        if self.threads < 0:
            raise UsageError(f"threads must be >= 0, got {self.threads}")
        if not 0 < self.psf_sigma_px <= 16:
            raise UsageError(f"psf_sigma_px must be in (0, 16], got {self.psf_sigma_px}")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"seed must be in 0..2^63-1, got {self.seed}")


def space_group_of(sg: str | int) -> gemmi.SpaceGroup:
    """gemmi space group from a number or a Hermann-Mauguin symbol; UsageError if unknown."""
    from .scale.symmetry import space_group

    return space_group(sg)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed random rotation matrix (from a normalised Gaussian quaternion)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def b_matrix(cell: Sequence[float]) -> np.ndarray:
    """Reciprocal basis a*, b*, c* as columns (1/Å) in gemmi's standard orthogonal frame."""
    uc = gemmi.UnitCell(*cell)
    lattice = np.array(uc.orth.mat).T  # rows a, b, c (Å)
    return np.linalg.inv(lattice)


# ----------------------------------------------------------------------------------------------------
# Reflections and intensities
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReflectionSet:
    """P1 reflections (no systematic absences) with their full intensity in photons (before L, P, Ω)."""

    hkl: np.ndarray
    """(n, 3) int32 Miller indices (P1)."""
    photons: np.ndarray
    """(n,) float64 photons of the fully recorded reflection (Lorentz, polarisation, solid angle = 1)."""


def p1_indices(cell: Sequence[float], sg: gemmi.SpaceGroup, d_min: float, d_max: float) -> np.ndarray:
    """All (h, k, l) with d_min <= d <= d_max that are not systematically absent in ``sg``."""
    uc = gemmi.UnitCell(*cell)
    hmax = [math.floor(L / d_min) for L in (uc.a, uc.b, uc.c)]
    h, k, l = np.meshgrid(*(np.arange(-m, m + 1, dtype=np.int32) for m in hmax), indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], 1)
    s2 = np.einsum("ni,ni->n", hkl @ b_matrix(cell).T, hkl @ b_matrix(cell).T)
    with np.errstate(divide="ignore"):
        d = 1.0 / np.sqrt(s2)
    hkl = hkl[(d >= d_min) & (d <= d_max)]
    ops = sg.operations()
    absent = np.array(ops.systematic_absences(hkl), bool)
    return np.ascontiguousarray(hkl[~absent])


def _asu_keys(hkl: np.ndarray, sg: gemmi.SpaceGroup) -> np.ndarray:
    """One int64 key per reflection, equal for symmetry mates and Friedel mates.

    The key is the largest packed (h, k, l) over the point-group images ``hkl @ R`` (gemmi's symmetry
    operations) and their Friedel mates: a canonical representative of the orbit, vectorised.
    """
    hkl = np.asarray(hkl, np.int64)
    best = None
    for op in sg.operations().sym_ops:
        R = np.array(op.rot, np.int64) // op.DEN
        m = hkl @ R
        for sign in (1, -1):
            key = (
                (sign * m[:, 0] + 1024) * 4_194_304 + (sign * m[:, 1] + 1024) * 2048 + (sign * m[:, 2] + 1024)
            )
            best = key if best is None else np.maximum(best, key)
    return best


def wilson_intensities(
    hkl: np.ndarray, cell: Sequence[float], sg: gemmi.SpaceGroup, B: float, rng: np.random.Generator
) -> np.ndarray:
    """Random |F|² (mean 1 at d = ∞, Wilson fall-off exp(-B/(2d²))), equal for symmetry mates.

    One exponential (acentric) random value per asymmetric-unit reflection, drawn in the order of the
    sorted ASU keys so the values do not depend on the P1 order.
    """
    keys = _asu_keys(hkl, sg)
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    draw = rng.exponential(1.0, size=uniq.size)
    B_mat = b_matrix(cell)
    rep = hkl[first] @ B_mat.T  # one representative per orbit: bit-identical values for mates
    s2 = np.einsum("ni,ni->n", rep, rep)
    return (draw * np.exp(-B * s2 / 2.0))[inv]


def model_intensities(path: str | Path, hkl: np.ndarray, sg: gemmi.SpaceGroup, d_min: float) -> np.ndarray:
    """|F|² from a model (PDB/mmCIF or MTZ, read by ``jfjoch.io.models``) for each P1 reflection.

    Each P1 reflection takes the value of its symmetry/Friedel orbit under the model's space group
    (``sg`` when the file states none); 0 where the model has no value.
    """
    from .io.models import read_model_intensities

    mhkl, vals, msg = read_model_intensities(path, d_min)
    group = msg or sg
    mkeys = _asu_keys(mhkl, group)
    order = np.argsort(mkeys)
    mkeys, vals = mkeys[order], vals[order]
    out = np.zeros(len(hkl))
    if mkeys.size == 0:
        return out
    keys = _asu_keys(hkl, group)
    pos = np.clip(np.searchsorted(mkeys, keys), 0, mkeys.size - 1)
    hit = mkeys[pos] == keys
    out[hit] = vals[pos[hit]]
    return out


# ----------------------------------------------------------------------------------------------------
# The simulator
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """One simulated image and the reflections rendered on it."""

    index: int
    image: np.ndarray
    """(ny, nx) int32 counts."""
    A_star: np.ndarray
    """A* at the middle of the image (columns a*, b*, c*, 1/Å, lab frame)."""
    hkl: np.ndarray
    """(m, 3) int32 P1 indices of the reflections on this image."""
    xy: np.ndarray
    """(m, 2) float64 spot centres, pixels."""
    photons: np.ndarray
    """(m,) float64 noiseless photons of each reflection on this image."""


class Simulator:
    """Precomputes geometry, mask, background and reflections; renders frames one at a time.

    Thread safety: ``frame(i)`` only reads the precomputed state, so frames may be rendered from
    several threads; every frame has its own random stream (seed, i), so the bytes do not depend on
    the order.
    """

    def __init__(self, settings: SimulationSettings) -> None:
        settings.validate()
        self.s = s = settings
        self.layout = detector_layout(s.detector)
        self.nx, self.ny = self.layout.nx, self.layout.ny
        bc = s.beam_center_px
        self.beam_center = (
            (float(bc[0]), float(bc[1])) if bc is not None else (self.nx / 2 + 0.3, self.ny / 2 - 0.2)
        )
        self.sg = space_group_of(s.space_group)
        rng = np.random.default_rng([s.seed, 0x5EED])
        self.mask = self._make_mask(rng)
        self.pixel_class = np.zeros(self.mask.shape, np.uint8)
        """Per-pixel class for the kernel: 0 normal, 1 gap (always 0), 2 hot (always saturated)."""
        self.pixel_class[(self.mask & MASK_GAP) != 0] = 1
        self.pixel_class[self.mask == MASK_HOT] = 2
        self.d_min = s.d_min_A if s.d_min_A is not None else max(1.2, self._corner_resolution())
        self.axis = np.asarray(s.rotation_axis, float) / np.linalg.norm(s.rotation_axis)
        B = b_matrix(s.cell)
        if s.U is not None:
            Us = np.asarray(s.U, float).reshape(-1, 3, 3)
            Us = np.broadcast_to(Us, (s.n_images, 3, 3)) if s.mode == "stills" else Us[:1]
        elif s.mode == "stills":
            Us = np.stack([random_rotation(rng) for _ in range(s.n_images)])
        else:
            Us = random_rotation(rng)[None]
        self.A0 = np.einsum("nij,jk->nik", Us, B)
        """Stills: A* of each image; rotation: (1, 3, 3) A* at omega = 0."""
        hkl = p1_indices(s.cell, self.sg, self.d_min, s.d_max_A)
        if s.model is None:
            I = wilson_intensities(hkl, s.cell, self.sg, s.wilson_B, rng) * s.photons_per_intensity
        else:
            F2 = model_intensities(s.model, hkl, self.sg, self.d_min)
            if s.model_scale is not None:
                scale = s.model_scale
            else:  # match the Wilson set's mean photons in the 4-5 Å shell
                d = 1.0 / np.linalg.norm(hkl @ B.T, axis=1)
                shell = (d >= 4.0) & (d <= 5.0) & (F2 > 0)
                target = s.photons_per_intensity * np.exp(-s.wilson_B / (2 * 4.5**2))
                scale = target / F2[shell].mean() if shell.any() else 1.0
            I = F2 * scale
        keep = I > 0 if s.crystal else np.zeros(len(I), bool)  # no crystal: no reflections at all
        self.reflections = ReflectionSet(hkl=hkl[keep], photons=I[keep])
        self.background_map = self._background()
        if s.mode == "rotation":
            self._prepare_rotation()

    # -- geometry -------------------------------------------------------------------------------
    def _pixel_k(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Unit ray directions of pixel positions (x, y) (any shape) -> (..., 3)."""
        s = self.s
        bx, by = self.beam_center
        r = np.stack(
            np.broadcast_arrays((x - bx) * s.pixel_mm, (y - by) * s.pixel_mm, np.float64(s.distance_mm)), -1
        )
        return r / np.linalg.norm(r, axis=-1, keepdims=True)

    def _pol_solid(self, k: np.ndarray) -> np.ndarray:
        """Polarisation x relative solid angle (1 at the beam centre) for unit rays k (..., 3)."""
        f = self.s.polarization_fraction
        pol = f * (1 - k[..., 0] ** 2) + (1 - f) * (1 - k[..., 1] ** 2)
        return pol * k[..., 2] ** 3

    def _corner_resolution(self) -> float:
        xs = np.array([0, self.nx - 1, 0, self.nx - 1], float)
        ys = np.array([0, 0, self.ny - 1, self.ny - 1], float)
        k = self._pixel_k(xs, ys)
        two_theta = np.arccos(k[:, 2]).max()
        return float(self.s.wavelength_A / (2 * np.sin(two_theta / 2)))

    def _make_mask(self, rng: np.random.Generator) -> np.ndarray:
        mask = np.where(self.layout.gap_mask(), MASK_GAP, 0).astype(np.uint32)
        good = np.flatnonzero(mask.ravel() == 0)
        if self.s.n_hot_pixels > 0:
            hot = rng.choice(good, size=min(self.s.n_hot_pixels, good.size), replace=False)
            mask.ravel()[hot] = MASK_HOT
        return mask

    def _background(self) -> np.ndarray:
        """(ny, nx) float32 background photons: (constant + water ring) x polarisation x solid angle."""
        s = self.s
        bx, by = self.beam_center
        dx = ((np.arange(self.nx) - bx) * s.pixel_mm)[None, :]
        dy = ((np.arange(self.ny) - by) * s.pixel_mm)[:, None]
        inv_r = 1.0 / np.sqrt(dx * dx + dy * dy + s.distance_mm**2)  # broadcast (ny, nx)
        kz = s.distance_mm * inv_r
        q = np.sqrt(np.maximum(2.0 * (1.0 - kz), 0.0)) / s.wavelength_A  # 1/d = 2 sin(theta) / lambda
        ring = s.water_ring * np.exp(-((q - 1 / s.water_ring_d_A) ** 2) / (2 * s.water_ring_width**2))
        f = s.polarization_fraction
        kx2, ky2 = (dx * inv_r) ** 2, (dy * inv_r) ** 2
        pol = f * (1 - kx2) + (1 - f) * (1 - ky2)
        return ((s.background + ring) * pol * kz**3).astype(np.float32)

    def xy_of_s(self, svec: np.ndarray) -> np.ndarray:
        """(n, 3) reciprocal vectors (1/Å) -> (n, 2) pixel positions (NaN where the ray points back)."""
        s = self.s
        kv = svec + np.array([0.0, 0.0, 1.0 / s.wavelength_A])
        z = np.where(kv[:, 2] > 0, kv[:, 2], np.nan)
        bx, by = self.beam_center
        return np.stack(
            [bx + s.distance_mm * kv[:, 0] / z / s.pixel_mm, by + s.distance_mm * kv[:, 1] / z / s.pixel_mm],
            1,
        )

    def _on_detector(self, xy: np.ndarray) -> np.ndarray:
        return (
            (xy[:, 0] >= -0.5) & (xy[:, 0] < self.nx - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < self.ny - 0.5)
        )

    def _sigma_eps(self, svec: np.ndarray) -> np.ndarray:
        eta = np.radians(self.s.mosaicity_deg)
        return np.sqrt(self.s.spot_width_recip**2 + (np.linalg.norm(svec, axis=1) * eta) ** 2)

    # -- stills ---------------------------------------------------------------------------------
    def _stills_reflections(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.s
        lam = s.wavelength_A
        A = self.A0[i]
        sv = self.reflections.hkl @ A.T
        kv = sv + np.array([0.0, 0.0, 1.0 / lam])
        eps = np.linalg.norm(kv, axis=1) - 1.0 / lam
        sig = self._sigma_eps(sv)
        t = eps / sig
        if s.partiality == "gaussian":
            sel = np.abs(t) < 4.5
            part = np.exp(-0.5 * t[sel] ** 2)
        else:
            sel = np.abs(t) < 40.0
            part = 1.0 / (1.0 + t[sel] ** 2)
        idx = np.flatnonzero(sel)
        xy = self.xy_of_s(sv[idx])
        on = self._on_detector(xy)
        idx, xy, part = idx[on], xy[on], part[on]
        ph = self.reflections.photons[idx] * part * self._pol_solid(self._pixel_k(xy[:, 0], xy[:, 1]))
        return idx, xy, ph

    # -- rotation -------------------------------------------------------------------------------
    def _prepare_rotation(self) -> None:
        """Diffraction angles of every reflection (two per reflection), their positions and widths."""
        s = self.s
        lam = s.wavelength_A
        e = self.axis
        sc = self.reflections.hkl @ self.A0[0].T  # at omega = 0
        s_par = np.outer(sc @ e, e)
        s_perp = sc - s_par
        e_x_s = np.cross(e, sc)
        a, b, c = s_par[:, 2], s_perp[:, 2], e_x_s[:, 2]
        target = -lam * np.einsum("ni,ni->n", sc, sc) / 2.0  # z of R(phi) s on the Ewald sphere
        rho = np.hypot(b, c)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosv = (target - a) / rho
        ok = np.abs(cosv) < 1.0 - 1e-9
        idx = np.flatnonzero(ok)
        base = np.arctan2(c[idx], b[idx])
        dphi = np.arccos(cosv[idx])
        w0 = s.omega_start_deg
        events_i, events_phi = [], []
        for sign in (1.0, -1.0):
            phi = np.degrees(base + sign * dphi)
            phi = w0 - 20.0 + np.mod(phi - (w0 - 20.0), 360.0)  # into [w0 - 20, w0 + 340)
            events_i.append(idx)
            events_phi.append(phi)
        ri = np.concatenate(events_i)
        phi = np.concatenate(events_phi)
        w_end = w0 + s.n_images * s.omega_width_deg
        # position and Lorentz factor at the diffraction angle
        cphi, sphi = np.cos(np.radians(phi))[:, None], np.sin(np.radians(phi))[:, None]
        sv = s_par[ri] + cphi * s_perp[ri] + sphi * e_x_s[ri]
        rate = np.abs(np.cross(e, sv)[:, 2])  # d(eps)/d(phi), 1/Å per radian
        rate = np.maximum(rate, 1e-6)
        sig_phi = np.degrees(self._sigma_eps(sv) / rate)
        sig_phi = np.minimum(sig_phi, 5.0)
        inside = (phi + 4.5 * sig_phi > w0) & (phi - 4.5 * sig_phi < w_end)
        xy = self.xy_of_s(sv)
        keep = inside & self._on_detector(xy)
        ri, phi, sig_phi, rate, xy = ri[keep], phi[keep], sig_phi[keep], rate[keep], xy[keep]
        lorentz = np.minimum(1.0 / (lam * rate), 50.0)
        full = self.reflections.photons[ri] * lorentz * self._pol_solid(self._pixel_k(xy[:, 0], xy[:, 1]))
        order = np.argsort(phi - 4.5 * sig_phi, kind="stable")
        self._rot = {
            "ri": ri[order],
            "phi": phi[order],
            "sig": sig_phi[order],
            "xy": xy[order],
            "full": full[order],
            "lo": (phi - 4.5 * sig_phi)[order],
        }

    def _rotation_reflections(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.s
        r = self._rot
        lo_w = s.omega_start_deg + i * s.omega_width_deg
        hi_w = lo_w + s.omega_width_deg
        # events whose 4.5-sigma window overlaps [lo_w, hi_w]: lo < hi_w (sorted) and phi + 4.5 sig > lo_w
        n = int(np.searchsorted(r["lo"], hi_w, side="left"))
        cand = np.flatnonzero(r["phi"][:n] + 4.5 * r["sig"][:n] > lo_w)
        phi, sig = r["phi"][cand], r["sig"][cand]
        frac = ndtr((hi_w - phi) / sig) - ndtr((lo_w - phi) / sig)
        ph = r["full"][cand] * frac
        return r["ri"][cand], r["xy"][cand], ph

    # -- frames ---------------------------------------------------------------------------------
    def A_star_mid(self, i: int) -> np.ndarray:
        """A* at the middle of image i (1/Å, columns a*, b*, c*)."""
        if self.s.mode == "stills":
            return self.A0[i]
        w = self.s.omega_start_deg + (i + 0.5) * self.s.omega_width_deg
        return rotation_matrix(self.axis, w) @ self.A0[0]

    def reflections_on(self, i: int, min_photons: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hkl (m, 3), xy (m, 2), photons (m,)) of the reflections recorded on image i."""
        if self.s.mode == "stills":
            ri, xy, ph = self._stills_reflections(i)
        else:
            ri, xy, ph = self._rotation_reflections(i)
        keep = ph >= min_photons
        return self.reflections.hkl[ri[keep]], xy[keep], ph[keep]

    def expected(self, xy: np.ndarray, photons: np.ndarray) -> np.ndarray:
        """Noiseless expected photons (ny, nx) float32: background + spots (PSF integrated over pixels)."""
        return _core.sim_expected(
            self.background_map, np.asarray(xy, float).reshape(-1, 2), np.asarray(photons, float),
            self.s.psf_sigma_px, backend=self.s.backend,
        )  # fmt: skip

    def frame(self, i: int) -> Frame:
        """Render image i (int32 counts; gap pixels 0, hot pixels at saturation).

        Counts are Poisson(expected) from a counter-based random stream keyed by (seed, i, pixel) in the
        C++ kernel (csrc/simulate), or rint(expected) with ``noise=False``; clipped at saturation.
        """
        if not 0 <= i < self.s.n_images:
            raise UsageError(f"image {i} out of range 0..{self.s.n_images - 1}")
        hkl, xy, ph = self.reflections_on(i)
        img = _core.sim_frame(
            self.background_map, self.pixel_class, np.ascontiguousarray(xy, float).reshape(-1, 2),
            np.ascontiguousarray(ph, float), self.s.psf_sigma_px, self.s.seed, i, noise=self.s.noise,
            saturation=self.s.saturation, n_threads=self.s.threads, backend=self.s.backend,
        )  # fmt: skip
        return Frame(index=i, image=img, A_star=self.A_star_mid(i), hkl=hkl, xy=xy, photons=ph)

    def frames(self) -> Iterator[Frame]:
        for i in range(self.s.n_images):
            yield self.frame(i)


def render_spots(img: np.ndarray, xy: np.ndarray, photons: np.ndarray, sigma_px: float) -> None:
    """Add 2-D Gaussian spots (sigma in px, integrated over each pixel) to img (ny, nx) in place.

    Vectorised numpy reference of the C++ kernel's spot rendering (``_core.sim_expected``).
    """
    if len(photons) == 0:
        return
    ny, nx = img.shape
    R = max(1, math.ceil(4.0 * sigma_px))
    off = np.arange(-R, R + 1)
    cx = np.floor(xy[:, 0] + 0.5).astype(np.int64)
    cy = np.floor(xy[:, 1] + 0.5).astype(np.int64)
    px = cx[:, None] + off[None, :]
    py = cy[:, None] + off[None, :]
    k = 1.0 / (math.sqrt(2.0) * sigma_px)
    wx = 0.5 * (erf((px + 0.5 - xy[:, :1]) * k) - erf((px - 0.5 - xy[:, :1]) * k))
    wy = 0.5 * (erf((py + 0.5 - xy[:, 1:]) * k) - erf((py - 0.5 - xy[:, 1:]) * k))
    w = photons[:, None, None] * wy[:, :, None] * wx[:, None, :]
    valid = ((py >= 0) & (py < ny))[:, :, None] & ((px >= 0) & (px < nx))[:, None, :]
    flat = (py[:, :, None] * nx + px[:, None, :])[valid]
    acc = np.bincount(flat, weights=w[valid], minlength=nx * ny)
    img += acc.reshape(ny, nx).astype(img.dtype)


# ----------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedPaths:
    """Files written by simulate_dataset."""

    master: Path
    data: Path
    truth: Path
    partials: Path


def simulate_dataset(
    path_prefix: str | Path,
    *,
    detector: str | tuple[int, int] = "1M",
    mode: str = "rotation",
    n_images: int = 10,
    cell: Sequence[float] = (79.344, 79.344, 37.81, 90.0, 90.0, 90.0),
    space_group: str | int = "P 43 21 2",
    wavelength_A: float = 1.0,
    distance_mm: float = 80.0,
    seed: int = 0,
    **kwargs,
) -> SimulatedPaths:
    """Simulate a dataset and write it in the Jungfraujoch layout.

    Writes ``<prefix>_master.h5``, ``<prefix>_data_000001.h5`` (int32, one chunk per image,
    bitshuffle+LZ4) and, beside them, ``truth.json`` and ``truth_partials.npy`` in the form of
    shared/data (so one dataset per directory). ``kwargs`` are further SimulationSettings fields
    (beam_center_px, U, mosaicity_deg, psf_sigma_px, model, noise, ...). Every file is written under a
    temporary name and renamed when complete.
    """
    from .io.jfj_writer import write_dataset

    unknown = set(kwargs) - set(SimulationSettings.__dataclass_fields__)
    if unknown:
        raise UsageError(f"unknown simulation option(s): {', '.join(sorted(unknown))}")
    settings = SimulationSettings(
        detector=detector,
        mode=mode,
        n_images=int(n_images),
        cell=tuple(float(v) for v in cell),
        space_group=space_group,
        wavelength_A=float(wavelength_A),
        distance_mm=float(distance_mm),
        seed=int(seed),
        **kwargs,
    )
    sim = Simulator(settings)
    master, data, truth, partials = write_dataset(Path(path_prefix), sim)
    return SimulatedPaths(master=master, data=data, truth=truth, partials=partials)
