"""Geometry refinement (public API: :func:`refine`): least squares on spot positions and, for rotation
data, diffraction angles; the cell is constrained to the lattice symmetry.

The model and the solver are C++ (csrc/refine/refine.hpp, one call per refinement, GIL released):
parameters [beam_x px, beam_y px, distance mm, t1, t2, t3 rad, free cell parameters] with the crystal
A = R(t) U0 B(cell). Modes (``-r``): ``none``; ``orientation`` (t only); ``beam_and_lattice`` (beam centre,
orientation and cell; for rotation sweeps also the distance). Stills refine per image; rotation data
refine the whole sweep once (:func:`refine_sweep`), then each image's orientation about the beam axis
(:func:`refine_rotation_image`). Units: pixels, mm, Å, degrees at the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from . import _core
from .errors import InputError
from .experiment import Experiment, cell_from_lattice

__all__ = [
    "CELL_SYSTEMS",
    "RefineResult",
    "RefineSettings",
    "cell_system",
    "refine",
    "refine_rotation_image",
    "refine_still",
    "refine_sweep",
]

CELL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
"""Metric systems in the order of the C++ ``CellSystem`` enum (trigonal and rhombohedral: hexagonal axes)."""
_BRAVAIS_SYSTEM = {"a": "triclinic", "m": "monoclinic", "o": "orthorhombic", "t": "tetragonal", "h": "hexagonal",
                   "c": "cubic"}  # fmt: skip
_N_CELL = {"triclinic": 6, "monoclinic": 4, "orthorhombic": 3, "tetragonal": 2, "hexagonal": 2, "cubic": 1}
MODES = ("none", "orientation", "beam_and_lattice")


def cell_system(space_group: int | None = None, bravais: str | None = None, lattice: np.ndarray | None = None) -> str:
    """Metric system whose constraints the refined cell keeps: from the space group when known (gemmi),
    else from the Bravais symbol ('tP', 'mC', ...), else from the lattice's own symmetry."""
    if space_group is not None:
        sg = gemmi.find_spacegroup_by_number(int(space_group))
        system = sg.crystal_system_str()
        return "hexagonal" if system == "trigonal" else system
    if bravais:
        return _BRAVAIS_SYSTEM.get(bravais[0], "triclinic")
    if lattice is not None:
        from .lattice import lattice_system

        s = lattice_system(lattice)
        return "hexagonal" if s == "trigonal" else s
    return "triclinic"


def _free_cell(system: str, cell) -> np.ndarray:
    a, b, c, al, be, ga = (float(v) for v in cell)
    if system == "cubic":
        return np.array([(a + b + c) / 3])
    if system in ("tetragonal", "hexagonal"):
        return np.array([(a + b) / 2, c])
    if system == "orthorhombic":
        return np.array([a, b, c])
    if system == "monoclinic":
        return np.array([a, b, c, be])
    return np.array([a, b, c, al, be, ga])


def _cell_of(system: str, p: np.ndarray) -> tuple[float, ...]:
    if system == "cubic":
        return (p[0], p[0], p[0], 90.0, 90.0, 90.0)
    if system == "tetragonal":
        return (p[0], p[0], p[1], 90.0, 90.0, 90.0)
    if system == "hexagonal":
        return (p[0], p[0], p[1], 90.0, 90.0, 120.0)
    if system == "orthorhombic":
        return (p[0], p[1], p[2], 90.0, 90.0, 90.0)
    if system == "monoclinic":
        return (p[0], p[1], p[2], 90.0, p[3], 90.0)
    return tuple(float(v) for v in p)


def _basis_from_cell(cell) -> np.ndarray:
    a, b, c, al, be, ga = cell
    al, be, ga = np.radians([al, be, ga])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(max(c * c - cx * cx - cy * cy, 1e-12))
    return np.array([[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, cz]])


@dataclass(frozen=True)
class RefineSettings:
    """Settings of a refinement (plain, picklable)."""

    mode: str = "beam_and_lattice"
    """none | orientation | beam_and_lattice."""
    max_iterations: int = 30
    huber_k: float = 3.0
    """Huber threshold in units of the residual scale (1.4826 x median residual, at least min_scale_px)."""
    min_scale_px: float = 0.25
    tolerance: float = 1e-7
    """Stop when the relative change of the cost is below this."""
    angle_weight: float = 0.5
    """Rotation: pixels per frame of diffraction-angle error."""
    min_spots_per_parameter: float = 4.0
    """Fewer indexed spots than this many per free parameter: beam and cell stay fixed (orientation only)."""
    refine_distance_stills: bool = False
    """Stills: refine the distance too (poorly determined by one still; off by default)."""

    def core(self) -> _core.RefineSettings:
        s = _core.RefineSettings()
        s.max_iterations = int(self.max_iterations)
        s.huber_k = float(self.huber_k)
        s.min_scale_px = float(self.min_scale_px)
        s.tolerance = float(self.tolerance)
        return s


@dataclass(frozen=True)
class RefineResult:
    """A refined experiment and crystal.

    ``A`` has a*, b*, c* as columns (1/Å, lab frame; rotation: at ω = 0); ``lattice`` the real-space rows
    a, b, c (Å); ``experiment`` the experiment with the refined beam centre and distance.
    """

    experiment: Experiment
    A: np.ndarray
    system: str
    cell: tuple[float, ...]
    rms_px: float
    rms_angle_frames: float
    n_used: int
    converged: bool
    mode: str

    @property
    def lattice(self) -> np.ndarray:
        return np.linalg.inv(self.A)

    @property
    def beam(self) -> tuple[float, float, float]:
        """Refined (beam_x px, beam_y px, distance mm)."""
        bx, by, dist = self.experiment.core.beam()
        return float(bx), float(by), float(dist)


class _Problem:
    """Parameter vector and fixed parts of one refinement."""

    def __init__(self, experiment: Experiment, lattice: np.ndarray, system: str, axes: np.ndarray | None = None):
        lattice = np.asarray(lattice, float)
        if lattice.shape != (3, 3) or not np.all(np.isfinite(lattice)) or abs(np.linalg.det(lattice)) < 1e-6:
            raise InputError("refine: the lattice must be a (3, 3) non-singular real-space basis (rows a, b, c, Å)")
        if np.linalg.det(lattice) < 0:
            raise InputError("refine: the lattice must be right-handed")
        self.system = system
        cell0 = cell_from_lattice(lattice)
        self.cell_params = _free_cell(system, cell0)
        M = _basis_from_cell(_cell_of(system, self.cell_params))
        # lattice = M U0^T (no extra rotation) -> U0 = (M^-1 lattice)^T, made orthogonal (polar part)
        Q = (np.linalg.inv(M) @ lattice).T
        u, _, vt = np.linalg.svd(Q)
        self.U0 = u @ vt
        if np.linalg.det(self.U0) < 0:
            raise InputError("refine: the lattice does not match a right-handed setting of its cell")
        self.axes = np.eye(3) if axes is None else np.asarray(axes, float)
        bx, by, dist = experiment.core.beam()
        self.params = np.concatenate([[bx, by, dist, 0.0, 0.0, 0.0], self.cell_params]).astype(float)

    def crystal(self, params: np.ndarray) -> np.ndarray:
        return np.asarray(_core.refine_crystal(CELL_SYSTEMS.index(self.system), self.U0, self.axes, params))

    def run(self, experiment: Experiment, free: np.ndarray, rotation: bool, x, y, hkl, angle, st: RefineSettings,
            angle_weight: float):  # fmt: skip
        x = np.ascontiguousarray(x, float)
        y = np.ascontiguousarray(y, float)
        hkl = np.ascontiguousarray(hkl, np.int32).reshape(-1, 3)
        ang = np.ascontiguousarray(np.zeros(len(x)) if angle is None else angle, float)
        return _core.refine_geometry(experiment.core, CELL_SYSTEMS.index(self.system), self.U0, self.axes,
                                     self.params, np.asarray(free, np.uint8), rotation, float(angle_weight), x, y,
                                     hkl, ang, st.core())  # fmt: skip


def _free_mask(n_cell: int, beam: bool, distance: bool, orientation=(True, True, True), cell: bool = False):
    return np.array([beam, beam, distance, *orientation] + [cell] * n_cell, np.uint8)


def _result(prob: _Problem, experiment: Experiment, out: dict, mode: str, rotation: bool) -> RefineResult:
    p = np.asarray(out["params"], float)
    exp = experiment.with_beam(p[0], p[1], p[2]) if np.any(p[:3] != prob.params[:3]) else experiment
    return RefineResult(
        experiment=exp,
        A=prob.crystal(p),
        system=prob.system,
        cell=_cell_of(prob.system, p[6:]),
        rms_px=float(out["rms_px"]),
        rms_angle_frames=float(out["rms_angle_frames"]),
        n_used=int(out["n_used"]),
        converged=bool(out["converged"]),
        mode=mode,
    )


def refine_still(
    experiment: Experiment,
    lattice: np.ndarray,
    xy: np.ndarray,
    hkl: np.ndarray,
    system: str = "triclinic",
    settings: RefineSettings | None = None,
) -> RefineResult:
    """Refine one still: the crystal (real-space rows ``lattice``, Å, lab frame) and, in beam_and_lattice
    mode, the beam centre and the cell, against indexed spots ``xy`` (n, 2 px) with Miller indices ``hkl``."""
    st = settings or RefineSettings()
    prob = _Problem(experiment, lattice, system)
    n_cell = _N_CELL[system]
    mode = st.mode
    beam = mode == "beam_and_lattice"
    n_free = 3 + (2 + n_cell + int(st.refine_distance_stills) if beam else 0)
    if beam and len(xy) < st.min_spots_per_parameter * n_free:
        mode = "orientation"
        beam = False
    if mode == "none" or len(xy) < 3:
        out = prob.run(experiment, _free_mask(n_cell, False, False, (False,) * 3), False, xy[:, 0], xy[:, 1], hkl,
                       None, st, st.angle_weight)  # fmt: skip
        return _result(prob, experiment, out, "none", False)
    free = _free_mask(n_cell, beam, beam and st.refine_distance_stills, cell=beam)
    out = prob.run(experiment, free, False, xy[:, 0], xy[:, 1], hkl, None, st, st.angle_weight)
    return _result(prob, experiment, out, mode, False)


def refine_sweep(
    experiment: Experiment,
    A0: np.ndarray,
    images: np.ndarray,
    xy: np.ndarray,
    hkl: np.ndarray,
    system: str = "triclinic",
    settings: RefineSettings | None = None,
) -> RefineResult:
    """Refine a rotation sweep at once: beam centre, distance, crystal orientation (at ω = 0) and cell
    (beam_and_lattice), or the orientation only, against indexed spots ``xy`` (n, 2 px) with ``hkl`` seen on
    ``images`` (n,) — positions and diffraction angles (each spot's image mid-angle)."""
    st = settings or RefineSettings()
    gon = experiment.goniometer
    if gon is None:
        raise InputError("refine_sweep: the experiment has no goniometer")
    prob = _Problem(experiment, np.linalg.inv(np.asarray(A0, float)), system)
    n_cell = _N_CELL[system]
    ang = np.radians(gon.angle_mid_deg(np.asarray(images, float)))
    beam = st.mode == "beam_and_lattice"
    if st.mode == "none":
        free = _free_mask(n_cell, False, False, (False,) * 3)
    else:
        free = _free_mask(n_cell, beam, beam, cell=beam)
    out = prob.run(experiment, free, True, xy[:, 0], xy[:, 1], hkl, ang, st, st.angle_weight)
    return _result(prob, experiment, out, st.mode, True)


def _image_axes(axis: np.ndarray) -> np.ndarray:
    """Rotation axes of the per-image refinement: e1 = the beam direction made perpendicular to the spindle
    (the well-determined one), e2 = spindle x e1, e3 = the spindle."""
    ax = np.asarray(axis, float)
    ax = ax / np.linalg.norm(ax)
    z = np.array([0.0, 0.0, 1.0])
    e1 = z - (z @ ax) * ax
    if np.linalg.norm(e1) < 1e-6:  # spindle along the beam: any perpendicular pair
        e1 = np.cross(ax, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    return np.array([e1, np.cross(ax, e1), ax])


def refine_rotation_image(
    experiment: Experiment,
    A0: np.ndarray,
    image: int,
    xy: np.ndarray,
    hkl: np.ndarray,
    system: str = "triclinic",
    settings: RefineSettings | None = None,
) -> np.ndarray:
    """One rotation image: a small rotation of the sweep crystal A0 about the beam direction (made
    perpendicular to the spindle) so that it predicts the image's indexed spots best. Returns A0 for the
    image.

    Only that axis is refined: a rotation about the spindle only moves diffraction angles within the frame,
    and one image hardly determines a rotation about the axis perpendicular to both spindle and beam (on
    hewl_rot1, starting from the true crystal, refining it moved 14 images by a median 0.03 and up to 0.09
    degrees, while the beam-axis rotation alone stayed within 0.015 degrees); both are left to the sweep.
    """
    st = settings or RefineSettings()
    if len(xy) < 4 or st.mode == "none":
        return np.asarray(A0, float)
    gon = experiment.goniometer
    prob = _Problem(experiment, np.linalg.inv(np.asarray(A0, float)), system, axes=_image_axes(gon.axis))
    n_cell = _N_CELL[system]
    free = _free_mask(n_cell, False, False, (True, False, False))
    ang = np.full(len(xy), np.radians(float(gon.angle_mid_deg(image))))
    out = prob.run(experiment, free, True, xy[:, 0], xy[:, 1], hkl, ang, st, 0.0)
    return prob.crystal(np.asarray(out["params"], float))


def refine(
    experiment: Experiment,
    lattice: np.ndarray,
    xy: np.ndarray,
    hkl: np.ndarray,
    *,
    images: np.ndarray | None = None,
    space_group: int | None = None,
    mode: str = "beam_and_lattice",
) -> RefineResult:
    """Refine geometry and crystal against indexed spots (public API, numpy in, dataclasses out).

    experiment: the starting geometry; lattice: real-space rows a, b, c (Å, lab frame; for rotation data
    at ω = 0); xy: (n, 2) spot centroids (px); hkl: (n, 3) their Miller indices; images: for rotation data
    the image number of each spot (then the whole sweep is refined, positions and angles), None for one
    still; space_group: keeps the cell in its metric (tetragonal: a = b, ...); mode: none | orientation |
    beam_and_lattice.
    """
    if mode not in MODES:
        raise InputError(f"refine: mode must be one of {', '.join(MODES)} (got {mode!r})")
    xy = np.asarray(xy, float).reshape(-1, 2)
    hkl = np.asarray(hkl).reshape(-1, 3)
    if len(xy) != len(hkl):
        raise InputError("refine: xy and hkl must have the same number of rows")
    if len(xy) == 0:
        raise InputError("refine: no indexed spots to refine against")
    lat = np.asarray(lattice, float)
    if lat.shape != (3, 3) or not np.all(np.isfinite(lat)) or abs(np.linalg.det(lat)) < 1e-6:
        raise InputError("refine: the lattice must be a (3, 3) non-singular real-space basis (rows a, b, c, Å)")
    system = cell_system(space_group, lattice=np.asarray(lattice, float))
    st = RefineSettings(mode=mode)
    if images is None:
        return refine_still(experiment, lattice, xy, hkl, system, st)
    return refine_sweep(experiment, np.linalg.inv(np.asarray(lattice, float)), np.asarray(images), xy, hkl,
                        system, st)  # fmt: skip
