"""Symmetry for scaling and merging, vectorised over observations; gemmi is the authority.

* :class:`Symmetry`: ASU mapping (gemmi's reciprocal ASU and its ISYM numbering, as CCP4 writes M/ISYM),
  systematic absences, centric flags, for arrays of Miller indices.
* :func:`ambiguity_operators`: the reindexing operators that relate indexing alternatives (the lattice has
  more symmetry than the point group: gemmi's twin laws), as integer matrices acting on row vectors hkl.
* :func:`check_lattice`: the cell agrees with the space group's metric (one-line error otherwise).
* :func:`setting_operators`: proper integer axis permutations/sign changes that map one cell onto another,
  for putting several inputs into one setting.

Indices transform as row vectors: ``hkl' = hkl @ R`` with ``R = op.rot // Op.DEN`` (gemmi's
``Op.apply_to_hkl``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import gemmi
import numpy as np

from ..errors import UsageError

__all__ = [
    "Symmetry",
    "ambiguity_operators",
    "cell_difference",
    "check_lattice",
    "op_matrix",
    "pack",
    "reindex_cell",
    "setting_operators",
    "space_group",
    "symmetrise_cell",
    "unpack",
]

_OFF = 1 << 20
_BITS = 21


def space_group(sg: int | str | gemmi.SpaceGroup) -> gemmi.SpaceGroup:
    """gemmi space group from a number, a symbol or a SpaceGroup (UsageError when unknown)."""
    if isinstance(sg, gemmi.SpaceGroup):
        return sg
    try:
        g = gemmi.find_spacegroup_by_number(int(sg)) if str(sg).strip().isdigit() else None
        if g is None:
            g = gemmi.find_spacegroup_by_name(str(sg))
    except (ValueError, RuntimeError):
        g = None
    if g is None:
        raise UsageError(f"unknown space group {sg!r}")
    return g


def op_matrix(op: gemmi.Op) -> np.ndarray:
    """(3, 3) int64 matrix R of a gemmi operator acting on row vectors: hkl' = hkl @ R."""
    return np.array(op.rot, np.int64) // gemmi.Op.DEN


def pack(hkl: np.ndarray) -> np.ndarray:
    """One int64 per (h, k, l) (|index| < 2^20), order-preserving in (h, k, l)."""
    h = np.asarray(hkl, np.int64) + _OFF
    return (h[:, 0] << (2 * _BITS)) | (h[:, 1] << _BITS) | h[:, 2]


def unpack(keys: np.ndarray) -> np.ndarray:
    k = np.asarray(keys, np.int64)
    m = (1 << _BITS) - 1
    return np.stack([(k >> (2 * _BITS)) & m, (k >> _BITS) & m, k & m], 1) - _OFF


class Symmetry:
    """Point-group bookkeeping of one space group for arrays of Miller indices (n, 3)."""

    def __init__(self, sg: int | str | gemmi.SpaceGroup) -> None:
        self.sg = space_group(sg)
        self.ops = self.sg.operations()
        self.asu = gemmi.ReciprocalAsu(self.sg)
        self.rots = [op_matrix(op) for op in self.ops.sym_ops]
        """Rotation parts in gemmi's order (the order of the MTZ SYMM records; ISYM numbering)."""

    @property
    def number(self) -> int:
        return int(self.sg.number)

    @property
    def name(self) -> str:
        return self.sg.hm

    def orbit_keys(self, hkl: np.ndarray) -> np.ndarray:
        """int64 key equal for all symmetry and Friedel mates (the largest packed index of the orbit)."""
        hkl = np.asarray(hkl, np.int64)
        best = None
        for R in self.rots:
            m = hkl @ R
            for sign in (1, -1):
                k = pack(sign * m)
                best = k if best is None else np.maximum(best, k)
        return best if best is not None else pack(hkl)

    def to_asu(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(asu hkl (n, 3) int32, isym (n,) int32) exactly as gemmi's ``ReciprocalAsu.to_asu``.

        ISYM: 2i+1 when the ASU index is hkl @ R_i, 2i+2 when it is its Friedel mate -hkl @ R_i.
        Computed once per distinct index; the ASU representative once per orbit with gemmi.
        """
        hkl = np.asarray(hkl, np.int64).reshape(-1, 3)
        if len(hkl) == 0:
            return np.zeros((0, 3), np.int32), np.zeros(0, np.int32)
        uh, inv = np.unique(pack(hkl), return_inverse=True)
        asu, isym = self._to_asu_unique(unpack(uh))
        return asu[inv], isym[inv]

    def _to_asu_unique(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(hkl)
        keys = self.orbit_keys(hkl)
        uk, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        reps = hkl[first]
        asu_u = np.empty((len(uk), 3), np.int64)
        to_asu, ops = self.asu.to_asu, self.ops
        for i, h in enumerate(reps.tolist()):
            asu_u[i] = to_asu(h, ops)[0]
        asu = asu_u[inv]
        target = pack(asu)
        isym = np.zeros(n, np.int32)
        left = np.ones(n, bool)
        for i, R in enumerate(self.rots):
            m = hkl @ R
            plus = left & (pack(m) == target)
            isym[plus] = 2 * i + 1
            left &= ~plus
            minus = left & (pack(-m) == target)
            isym[minus] = 2 * i + 2
            left &= ~minus
            if not left.any():
                break
        if left.any():  # cannot happen for a consistent gemmi ASU; keep the message precise if it does
            raise RuntimeError(f"ASU mapping failed for {int(left.sum())} reflections in {self.name}")
        return asu.astype(np.int32), isym

    def from_asu(self, asu: np.ndarray, isym: np.ndarray) -> np.ndarray:
        """Original indices from ASU indices and ISYM (the inverse of :meth:`to_asu`)."""
        asu = np.asarray(asu, np.int64).reshape(-1, 3)
        isym = np.asarray(isym, np.int64)
        out = np.zeros_like(asu)
        for i, R in enumerate(self.rots):
            Rinv = np.rint(np.linalg.inv(R)).astype(np.int64)
            for sign, code in ((1, 2 * i + 1), (-1, 2 * i + 2)):
                m = isym == code
                if m.any():
                    out[m] = (sign * asu[m]) @ Rinv
        return out.astype(np.int32)

    def absent(self, hkl: np.ndarray) -> np.ndarray:
        """bool (n,): systematically absent in this space group."""
        hkl = np.asarray(hkl, np.int64).reshape(-1, 3)
        if not len(hkl):
            return np.zeros(0, bool)
        uh, inv = np.unique(pack(hkl), return_inverse=True)
        u = np.ascontiguousarray(unpack(uh), np.int32)
        return np.asarray(self.ops.systematic_absences(u), bool)[inv]

    def centric(self, hkl: np.ndarray) -> np.ndarray:
        """bool (n,): centric reflections (I(+) = I(-) by symmetry)."""
        hkl = np.ascontiguousarray(hkl, np.int32).reshape(-1, 3)
        if not len(hkl):
            return np.zeros(0, bool)
        return np.asarray(self.ops.centric_flag_array(hkl), bool)

    def possible(self, cell: gemmi.UnitCell, d_min: float, d_max: float = 0.0) -> np.ndarray:
        """All ASU reflections (Friedel-merged, no systematic absences) with d_min <= d (<= d_max)."""
        return np.asarray(gemmi.make_miller_array(cell, self.sg, d_min, d_max, True), np.int32).reshape(-1, 3)


def ambiguity_operators(cell: Sequence[float], sg: gemmi.SpaceGroup, max_obliquity: float = 3.0) -> list[np.ndarray]:
    """Reindexing matrices (row-vector convention) of the indexing alternatives, identity first.

    Non-empty beyond the identity when the lattice has more symmetry than the point group (merohedry:
    P4 with a = b, P3, P6, P23, ...): gemmi's twin laws, one per coset.
    """
    uc = gemmi.UnitCell(*cell)
    ops = [np.eye(3, dtype=np.int64)]
    for op in gemmi.find_twin_laws(uc, sg, max_obliquity, False):
        ops.append(op_matrix(op))
    return ops


def reindex_cell(cell: Sequence[float], R: np.ndarray) -> tuple[float, ...]:
    """The cell after reindexing hkl' = hkl @ R (real-space basis a' = R^T-transformed rows)."""
    uc = gemmi.UnitCell(*cell)
    A = np.array(uc.orth.mat)  # columns a, b, c
    # hkl' = hkl @ R  <=>  reciprocal basis B' = B @ inv(R)^T ... equivalently real basis columns A' = A @ R
    Ap = A @ np.asarray(R, float)
    a, b, c = (np.linalg.norm(Ap[:, i]) for i in range(3))

    def ang(u, v):
        return math.degrees(math.acos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))

    return (a, b, c, ang(Ap[:, 1], Ap[:, 2]), ang(Ap[:, 0], Ap[:, 2]), ang(Ap[:, 0], Ap[:, 1]))


def cell_difference(c1: Sequence[float], c2: Sequence[float]) -> float:
    """Largest relative difference of the cell edges, and of the angles expressed as 1 - cos-like fraction
    (degrees / 90), between two cells."""
    d = [abs(c1[i] - c2[i]) / max(c2[i], 1e-6) for i in range(3)]
    d += [abs(c1[i] - c2[i]) / 90.0 for i in range(3, 6)]
    return float(max(d))


def setting_operators(cell: Sequence[float], target: Sequence[float], tol: float = 0.02) -> list[np.ndarray]:
    """Proper integer matrices with entries 0/±1 (axis permutations and sign changes) that map ``cell``
    onto ``target`` within ``tol`` (relative), best match first; empty when none does."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            R = np.zeros((3, 3), np.int64)
            for i, (p, s) in enumerate(zip(perm, signs)):
                R[p, i] = s
            if round(np.linalg.det(R)) != 1:
                continue
            diff = cell_difference(reindex_cell(cell, R), target)
            if diff <= tol:
                found.append((diff, R))
    found.sort(key=lambda t: (round(t[0], 6), not np.array_equal(t[1], np.eye(3, dtype=np.int64))))
    return [R for _, R in found]


_SYSTEM_RULES = {
    # crystal system -> (equal edges, fixed angles)
    "triclinic": ((), {}),
    "monoclinic": ((), {3: 90.0, 5: 90.0}),
    "orthorhombic": ((), {3: 90.0, 4: 90.0, 5: 90.0}),
    "tetragonal": (((0, 1),), {3: 90.0, 4: 90.0, 5: 90.0}),
    "trigonal": (((0, 1),), {3: 90.0, 4: 90.0, 5: 120.0}),
    "hexagonal": (((0, 1),), {3: 90.0, 4: 90.0, 5: 120.0}),
    "cubic": (((0, 1), (0, 2)), {3: 90.0, 4: 90.0, 5: 90.0}),
}


def check_lattice(cell: Sequence[float], sg: gemmi.SpaceGroup, tol: float = 0.02, angle_tol: float = 2.0) -> None:
    """UsageError (one line) when ``cell`` does not have the metric the space group needs.

    Edges that must be equal may differ by ``tol`` (relative), fixed angles by ``angle_tol`` degrees.
    Rhombohedral space groups in the rhombohedral setting (a = b = c, α = β = γ) are accepted as such.
    """
    system = sg.crystal_system_str()
    a = list(cell)
    name = f"space group {sg.hm} ({sg.number})"
    cstr = ", ".join(f"{v:.2f}" for v in a)
    if system == "trigonal" and sg.hm.startswith("R") and sg.ext == "R":
        ok = max(a[:3]) - min(a[:3]) <= tol * max(a[:3]) and max(a[3:]) - min(a[3:]) <= angle_tol
        if not ok:
            raise UsageError(f"{name} is incompatible with the lattice (cell {cstr})")
        return
    equal, fixed = _SYSTEM_RULES[system]
    for i, j in equal:
        if abs(a[i] - a[j]) > tol * max(a[i], a[j]):
            raise UsageError(f"{name} is incompatible with the lattice (cell {cstr}: edges must be equal)")
    for i, v in fixed.items():
        if abs(a[i] - v) > angle_tol:
            raise UsageError(f"{name} is incompatible with the lattice (cell {cstr}: angles must be "
                             f"{', '.join(f'{x:g}' for x in fixed.values())})")


def symmetrise_cell(cell: Sequence[float], sg: gemmi.SpaceGroup) -> tuple[float, ...]:
    """The cell with the space group's constraints imposed (equal edges averaged, fixed angles set)."""
    a = list(map(float, cell))
    system = sg.crystal_system_str()
    if system == "trigonal" and sg.ext == "R":
        m, al = sum(a[:3]) / 3, sum(a[3:]) / 3
        return (m, m, m, al, al, al)
    equal, fixed = _SYSTEM_RULES[system]
    if equal:
        idx = sorted({i for pair in equal for i in pair})
        m = sum(a[i] for i in idx) / len(idx)
        for i in idx:
            a[i] = m
    for i, v in fixed.items():
        a[i] = v
    return tuple(a)
