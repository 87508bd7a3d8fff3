"""Experiment model: beam, detector, goniometer, crystal.

Conventions (docs/conventions.md):

* Lab frame: the frame of the input file's NXmx vectors; the X-ray beam travels along +z.
* Pixels: 0-based, ``x`` = fast (column), ``y`` = slow (row); the centre of pixel (i, j) is at (i, j).
* A pixel sits at ``r = origin_mm + (x * fast + y * slow) * pixel_mm`` (mm, lab frame).
* Reciprocal vector of a pixel: ``s = r / (|r| * wavelength) - (0, 0, 1 / wavelength)`` in 1/Å (no 2π).
* Crystal: ``A`` (3x3) has the reciprocal basis vectors a*, b*, c* as its **columns** (1/Å, lab frame), so
  ``s = A @ (h, k, l)`` and ``hkl = inv(A) @ s``. The real-space basis has a, b, c as the **rows** of
  ``inv(A)`` (Å). This is the ``A_star`` convention of the truth files in ``shared/data``.
* Rotation: at goniometer angle ω, the crystal's A is ``Rot(axis, ω) @ A0``; a spot's s measured at ω is
  mapped to the crystal (ω = 0) frame by rotating it by -ω about the axis.

Units: mm and Å for lengths, degrees at the interfaces, radians inside kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from jfjoch import _core

__all__ = ["Beam", "Crystal", "Detector", "Experiment", "Goniometer"]


@dataclass(frozen=True)
class Beam:
    """Monochromatic X-ray beam along +z."""

    wavelength_A: float
    """Wavelength, Å."""
    polarization_fraction: float = 0.99
    """Fraction of the beam polarised along lab +x (0.5 = unpolarised; synchrotrons ~0.99)."""
    bandwidth: float = 0.0
    """Relative bandwidth (FWHM), 0 for monochromatic."""


@dataclass(frozen=True)
class Detector:
    """Flat pixel detector.

    ``mask`` is a boolean (ny, nx) array, True where a pixel is invalid (masked, gap, hot).
    """

    nx: int
    """Pixels along the fast axis (columns)."""
    ny: int
    """Pixels along the slow axis (rows)."""
    pixel_mm: float
    """Pixel size, mm (square pixels)."""
    origin_mm: np.ndarray
    """Lab position of the centre of pixel (0, 0), mm."""
    fast: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    """Unit lab vector along increasing column index."""
    slow: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    """Unit lab vector along increasing row index."""
    mask: np.ndarray | None = None
    """Invalid pixels (True = invalid), shape (ny, nx)."""
    saturation: int | None = None
    """Counts at and above which a pixel is saturated (treated as invalid)."""
    sensor_material: str = "Si"
    sensor_thickness_mm: float = 0.32

    @classmethod
    def from_beam_center(
        cls,
        nx: int,
        ny: int,
        pixel_mm: float,
        distance_mm: float,
        beam_x_px: float,
        beam_y_px: float,
        **kwargs,
    ) -> Detector:
        """Detector perpendicular to the beam with fast = +x, slow = +y (the Jungfraujoch layout)."""
        origin = np.array([-beam_x_px * pixel_mm, -beam_y_px * pixel_mm, distance_mm], dtype=float)
        return cls(nx=nx, ny=ny, pixel_mm=pixel_mm, origin_mm=origin, **kwargs)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the detector plane (fast × slow)."""
        n = np.cross(self.fast, self.slow)
        return n / np.linalg.norm(n)

    @property
    def distance_mm(self) -> float:
        """Distance from the sample to the detector plane along its normal, mm."""
        return float(abs(np.dot(self.origin_mm, self.normal)))

    @property
    def beam_center_px(self) -> tuple[float, float]:
        """Pixel coordinate (x, y) where the direct beam (+z) meets the detector plane."""
        g = _core.ExperimentGeometry(self.origin_mm, self.fast, self.slow, self.pixel_mm, 1.0, self.nx, self.ny)
        bx, by, _ = g.beam()
        return float(bx), float(by)

    def with_beam(self, beam_x_px: float, beam_y_px: float, distance_mm: float) -> Detector:
        """This detector moved so the direct beam hits (beam_x_px, beam_y_px) at distance_mm along the plane
        normal (the plane keeps its fast/slow directions)."""
        g = _core.ExperimentGeometry(self.origin_mm, self.fast, self.slow, self.pixel_mm, 1.0, self.nx, self.ny)
        return replace(self, origin_mm=np.asarray(g.with_beam(beam_x_px, beam_y_px, distance_mm).origin_mm))


@dataclass(frozen=True)
class Goniometer:
    """Single-axis rotation: image i covers [start + i*increment, start + (i+1)*increment] degrees."""

    axis: np.ndarray
    """Unit rotation axis in the lab frame (right-handed rotation)."""
    start_deg: float
    """Angle at the start of image 0, degrees."""
    increment_deg: float
    """Oscillation per image, degrees."""

    def angle_mid_deg(self, image: int | np.ndarray) -> np.ndarray | float:
        """Angle at the middle of an image's oscillation, degrees."""
        return self.start_deg + (np.asarray(image) + 0.5) * self.increment_deg


@dataclass(frozen=True)
class Crystal:
    """Crystal orientation matrix A = UB: columns a*, b*, c* in 1/Å (lab frame)."""

    A: np.ndarray

    @classmethod
    def from_real_space(cls, lattice: np.ndarray) -> Crystal:
        """From the real-space basis: rows a, b, c in Å."""
        return cls(A=np.linalg.inv(np.asarray(lattice, float)))

    @property
    def real_space(self) -> np.ndarray:
        """Real-space basis, rows a, b, c in Å."""
        return np.linalg.inv(self.A)

    @property
    def cell(self) -> tuple[float, float, float, float, float, float]:
        """Unit cell (a, b, c in Å; alpha, beta, gamma in degrees)."""
        return cell_from_lattice(self.real_space)

    def rotated(self, axis: np.ndarray, angle_deg: float) -> Crystal:
        """This crystal after a right-handed rotation by angle_deg about axis."""
        return Crystal(A=rotation_matrix(axis, angle_deg) @ self.A)


@dataclass(frozen=True)
class Experiment:
    """What the kernels need to know about one dataset."""

    beam: Beam
    detector: Detector
    goniometer: Goniometer | None = None
    unit_cell: tuple[float, ...] | None = None
    """Known cell (Å, degrees) from the file or the command line."""
    space_group: int | None = None
    """Known space-group number."""

    @cached_property
    def core(self) -> _core.ExperimentGeometry:
        """The geometry as the one C++ struct the kernels take (built once per Experiment)."""
        d, g = self.detector, self.goniometer
        return _core.ExperimentGeometry(
            np.asarray(d.origin_mm, float), np.asarray(d.fast, float), np.asarray(d.slow, float),
            float(d.pixel_mm), float(self.beam.wavelength_A), int(d.nx), int(d.ny),
            float(self.beam.polarization_fraction),
            None if g is None else np.asarray(g.axis, float),
            0.0 if g is None else float(g.start_deg), 0.0 if g is None else float(g.increment_deg),
        )  # fmt: skip

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("core", None)  # rebuilt on demand
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def with_beam(self, beam_x_px: float, beam_y_px: float, distance_mm: float) -> Experiment:
        """The same experiment with the detector moved to this beam centre (px) and distance (mm)."""
        return replace(self, detector=self.detector.with_beam(beam_x_px, beam_y_px, distance_mm))

    def pixels_to_recip(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) pixel coordinates -> (n, 3) reciprocal vectors, 1/Å, lab frame."""
        return self.core.pixels_to_recip(np.asarray(xy, float).reshape(-1, 2))

    def recip_to_pixels(self, s: np.ndarray) -> np.ndarray:
        """(n, 3) reciprocal vectors, 1/Å -> (n, 2) pixel coordinates (NaN where the ray misses)."""
        return self.core.recip_to_pixels(np.asarray(s, float).reshape(-1, 3))

    def resolution_map(self) -> np.ndarray:
        """(ny, nx) resolution d (Å) of every pixel centre."""
        d = self.detector
        yy, xx = np.mgrid[0 : d.ny, 0 : d.nx]
        s = self.pixels_to_recip(np.stack([xx.ravel(), yy.ravel()], 1))
        with np.errstate(divide="ignore"):
            return (1.0 / np.linalg.norm(s, axis=1)).reshape(d.ny, d.nx)


def rotation_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Right-handed rotation matrix about axis by angle_deg (degrees)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    w = np.radians(angle_deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(w) * K + (1 - np.cos(w)) * K @ K


def cell_from_lattice(lattice: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Cell parameters (Å, degrees) of a real-space basis given as rows a, b, c (Å)."""
    a, b, c = np.asarray(lattice, float)
    la, lb, lc = (float(np.linalg.norm(v)) for v in (a, b, c))

    def ang(u, v):
        return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))

    return la, lb, lc, ang(b, c), ang(a, c), ang(a, b)
