"""Lattice helpers shared by the indexers: least-squares refinement, reduction, lattice symmetry.

Bases are (3, 3) arrays with rows a, b, c in Å; spot vectors s are (n, 3) in 1/Å (no 2π); h = basis @ s.
Symmetry decisions use gemmi (``find_lattice_symmetry`` for the lattice point group, ``SpaceGroup`` for
the target setting); the conventional basis is then found by a search over short lattice vectors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import gemmi
import numpy as np

from . import _core
from .experiment import cell_from_lattice

__all__ = [
    "ConventionalCell",
    "basis_matching_cell",
    "bravais_lattice",
    "conventional_candidates",
    "index_spots",
    "reduce_lattice",
    "refine_lattice",
    "space_group_setting",
]

# Crystal system from the order of the lattice's rotation group (gemmi.find_lattice_symmetry).
_SYSTEM_BY_ORDER = {
    24: "cubic",
    12: "hexagonal",
    8: "tetragonal",
    6: "trigonal",
    4: "orthorhombic",
    2: "monoclinic",
    1: "triclinic",
}
_LETTER = {
    "cubic": "c",
    "hexagonal": "h",
    "trigonal": "h",
    "tetragonal": "t",
    "orthorhombic": "o",
    "monoclinic": "m",
    "triclinic": "a",
}
_ALLOWED = {
    "cubic": "PIF",
    "hexagonal": "P",
    "trigonal": "R",
    "tetragonal": "PI",
    "orthorhombic": "PCIF",
    "monoclinic": "PC",
    "triclinic": "P",
}
# systems to try, from the group gemmi finds, down to lower symmetry when the setting search fails
_FALLBACK = {
    "cubic": ["cubic", "tetragonal", "trigonal", "orthorhombic", "monoclinic", "triclinic"],
    "hexagonal": ["hexagonal", "orthorhombic", "monoclinic", "triclinic"],
    "trigonal": ["trigonal", "monoclinic", "triclinic"],
    "tetragonal": ["tetragonal", "orthorhombic", "monoclinic", "triclinic"],
    "orthorhombic": ["orthorhombic", "monoclinic", "triclinic"],
    "monoclinic": ["monoclinic", "triclinic"],
    "triclinic": ["triclinic"],
}


def refine_lattice(
    s: np.ndarray, hkl: np.ndarray, lattice: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares fit of the reciprocal basis to s ≈ A* h (residuals in 1/Å) over the spots in ``mask``.

    Returns the real-space basis inv(A*) (rows a, b, c, Å); ``lattice`` unchanged when the indices do not
    determine a basis (fewer than three independent hkl).
    """
    s32 = np.ascontiguousarray(np.asarray(s, np.float32).reshape(-1, 3))
    h32 = np.ascontiguousarray(np.asarray(hkl, np.int32).reshape(-1, 3))
    m = None if mask is None else np.ascontiguousarray(np.asarray(mask, np.uint8))
    out, _ok = _core.refine_lattice(s32, h32, np.asarray(lattice, float), m)
    return np.asarray(out)


def index_spots(s: np.ndarray, lattice: np.ndarray, tolerance: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(hkl (n, 3) int32, indexed (n,) bool): indexed when every |h - round(h)| < tolerance."""
    s32 = np.ascontiguousarray(np.asarray(s, np.float32).reshape(-1, 3))
    hkl, ind = _core.index_spots(s32, np.asarray(lattice, float), float(tolerance))
    return np.asarray(hkl), np.asarray(ind, bool)


def reduce_lattice(lattice: np.ndarray) -> np.ndarray:
    """The three shortest non-coplanar vectors forming a basis of the same lattice (right-handed)."""
    return np.asarray(_core.reduce_basis(np.asarray(lattice, float)))


@dataclass(frozen=True)
class ConventionalCell:
    """A conventional basis of a lattice: rows a, b, c (Å), right-handed."""

    lattice: np.ndarray
    system: str
    centring: str
    """P, C, I, F or R (hexagonal axes, obverse)."""
    ratio: int
    """Conventional cell volume / primitive cell volume."""

    @property
    def bravais(self) -> str:
        return _LETTER[self.system] + self.centring

    @property
    def cell(self) -> tuple[float, float, float, float, float, float]:
        return cell_from_lattice(self.lattice)


def _short_vectors(P: np.ndarray, n_keep: int = 40) -> np.ndarray:
    U = np.array([u for u in itertools.product(range(-2, 3), repeat=3) if any(u)])
    first = U[np.arange(len(U)), np.argmax(U != 0, axis=1)]
    U = U[first > 0]  # one of +-u
    V = U @ P
    order = np.argsort(np.linalg.norm(V, axis=1), kind="stable")
    return V[order[:n_keep]]


def _centring(P: np.ndarray, C: np.ndarray, ratio: int) -> str | None:
    """Centring letter of conventional basis C over primitive basis P, None when not a standard one."""
    if ratio == 1:
        return "P"
    # lattice points in the conventional cell, in sixths: closure of the primitive vectors modulo 1
    F = np.round(P @ np.linalg.inv(C) * 6).astype(int) % 6
    gens = [tuple(int(x) for x in f) for f in F]
    pts = {(0, 0, 0)}
    frontier = [(0, 0, 0)]
    while frontier and len(pts) <= 4:
        t0 = frontier.pop()
        for g in gens:
            q = ((t0[0] + g[0]) % 6, (t0[1] + g[1]) % 6, (t0[2] + g[2]) % 6)
            if q not in pts:
                pts.add(q)
                frontier.append(q)
    ts = pts - {(0, 0, 0)}
    if len(pts) != ratio:
        return None
    if ratio == 2:
        return {(3, 3, 0): "C", (3, 3, 3): "I", (0, 3, 3): "A", (3, 0, 3): "B"}.get(next(iter(ts)))
    if ratio == 4 and ts == {(0, 3, 3), (3, 0, 3), (3, 3, 0)}:
        return "F"
    if ratio == 3 and ts == {(4, 2, 2), (2, 4, 4)}:
        return "R"  # obverse
    if ratio == 3 and ts == {(2, 4, 2), (4, 2, 4)}:
        return "R_reverse"
    return None


def conventional_candidates(
    lattice: np.ndarray, system: str, length_tol: float = 0.05, angle_tol_deg: float = 4.0,
    centrings: str | None = None,
) -> list[ConventionalCell]:
    """All conventional bases of ``system`` (cubic ... monoclinic; trigonal = hR on hexagonal axes) whose
    metric matches the system within the tolerances, smallest volume first. ``centrings``: the centring
    letters accepted (default: the standard ones of the system, e.g. P, C, I, F for orthorhombic; a space
    group's own letter, e.g. A for A m m 2, can be asked for)."""
    allowed = _ALLOWED[system] if centrings is None else centrings
    P = reduce_lattice(lattice)
    if system == "triclinic":
        return [ConventionalCell(P, "triclinic", "P", 1)]
    Vp = abs(np.linalg.det(P))
    V = _short_vectors(P)
    n = len(V)
    Ii, Jj, Kk = (g.ravel() for g in np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij"))
    L = np.linalg.norm(V, axis=1)
    G = (V @ V.T) / np.outer(L, L)  # cosines
    ca, cb, cg = G[Jj, Kk], G[Ii, Kk], G[Ii, Jj]
    la, lb, lc = L[Ii], L[Jj], L[Kk]
    eps = np.sin(np.radians(angle_tol_deg))
    right = (np.abs(ca) < eps) & (np.abs(cg) < eps)
    eq_ab = np.abs(la - lb) < length_tol * 0.5 * (la + lb)
    if system == "cubic":
        ok = right & (np.abs(cb) < eps) & eq_ab & (np.abs(la - lc) < length_tol * 0.5 * (la + lc))
    elif system == "tetragonal":
        ok = right & (np.abs(cb) < eps) & eq_ab
    elif system == "orthorhombic":
        ok = right & (np.abs(cb) < eps)
    elif system in ("hexagonal", "trigonal"):
        ok = (np.abs(ca) < eps) & (np.abs(cb) < eps) & eq_ab & (np.abs(np.abs(cg) - 0.5) < eps)
    elif system == "monoclinic":
        ok = right & (np.abs(cb) < np.cos(np.radians(45)))
    else:
        raise ValueError(f"unknown crystal system {system!r}")
    ok &= (Ii != Jj) & (Jj != Kk) & (Ii != Kk)
    out: list[ConventionalCell] = []
    seen = set()
    for i, j, k in zip(Ii[ok], Jj[ok], Kk[ok], strict=True):
        a, b, c = V[i].copy(), V[j].copy(), V[k].copy()
        if system in ("hexagonal", "trigonal") and a @ b > 0:
            b = -b  # gamma = 120
        if system == "monoclinic" and a @ c > 0:
            c = -c  # beta >= 90
        C = np.array([a, b, c])
        if np.linalg.det(C) < 0:
            C = -C
        r = abs(np.linalg.det(C)) / Vp
        ratio = round(r)
        if abs(r - ratio) > 1e-3 or ratio < 1 or ratio > 4:
            continue
        cen = _centring(P, C, ratio)
        if cen == "R_reverse" and system == "trigonal":
            C = np.array([-C[0], -C[1], C[2]])
            cen = "R"
        if cen is None or cen not in allowed:
            continue
        key = tuple(np.round(C, 3).ravel())
        if key in seen:
            continue
        seen.add(key)
        out.append(ConventionalCell(C, system, cen, ratio))
    out.sort(key=lambda x: (x.ratio, float(np.sum(np.linalg.norm(x.lattice, axis=1)))))
    return out


def _standard_order_key(c: ConventionalCell) -> tuple:
    la, lb, lc, _, be, _ = c.cell
    if c.system == "orthorhombic":
        return (c.ratio, 0 if la <= lb <= lc or (c.centring == "C" and la <= lb) else 1, la + lb + lc)
    if c.system == "monoclinic":
        return (c.ratio, round(abs(be - 90.0), 3), la + lc, 0 if la <= lc else 1)
    return (c.ratio, la + lb + lc)


def lattice_system(lattice: np.ndarray, max_obliq_deg: float = 3.0) -> str:
    """Crystal system of the lattice's point group (gemmi.find_lattice_symmetry on the reduced cell)."""
    P = reduce_lattice(lattice)
    uc = gemmi.UnitCell(*cell_from_lattice(P))
    ops = gemmi.find_lattice_symmetry(uc, "P", max_obliq_deg)
    return _SYSTEM_BY_ORDER.get(len(ops.sym_ops), "triclinic")


def bravais_lattice(lattice: np.ndarray, max_obliq_deg: float = 3.0) -> ConventionalCell:
    """Highest-symmetry Bravais lattice consistent with ``lattice`` and its conventional basis."""
    for system in _FALLBACK[lattice_system(lattice, max_obliq_deg)]:
        cands = conventional_candidates(lattice, system)
        if cands:
            return min(cands, key=_standard_order_key)
    raise AssertionError("unreachable: triclinic always succeeds")


def _cell_mismatch(c: tuple, ref: tuple) -> tuple[float, float]:
    rel = max(abs(c[i] - ref[i]) / ref[i] for i in range(3))
    ang = max(abs(c[i] - ref[i]) for i in range(3, 6))
    return rel, ang


def _sg(space_group: int | str) -> gemmi.SpaceGroup:
    """gemmi space group from a number or a Hermann-Mauguin symbol (ValueError when unknown)."""
    try:
        if isinstance(space_group, int | np.integer) or str(space_group).strip().isdigit():
            sg = gemmi.find_spacegroup_by_number(int(space_group))
        else:
            sg = gemmi.SpaceGroup(str(space_group))
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"unknown space group {space_group!r}") from e
    if sg is None:
        raise ValueError(f"unknown space group {space_group!r}")
    return sg


def space_group_setting(
    lattice: np.ndarray,
    space_group: int | str,
    cell: tuple | None = None,
    length_tol: float = 0.05,
    angle_tol_deg: float = 3.0,
) -> tuple[ConventionalCell | None, gemmi.SpaceGroup]:
    """Conventional basis of ``lattice`` in the setting of ``space_group`` (number or H-M symbol; reference
    settings, hexagonal axes for R groups). With ``cell`` (a, b, c, α, β, γ), the basis closest to it is
    chosen and rejected (None) when it differs by more than length_tol (relative) or angle_tol_deg."""
    sg = _sg(space_group)
    system = sg.crystal_system_str()
    cen = sg.centring_type()
    if system == "trigonal" and cen != "R":
        system = "hexagonal"
    cands = [c for c in conventional_candidates(lattice, system, centrings=cen) if c.centring == cen]
    if cell is None:
        return (min(cands, key=_standard_order_key) if cands else None), sg
    ref = tuple(float(x) for x in cell)
    if cands:
        best = min(cands, key=lambda c: _cell_score(c.cell, ref))
        rel, ang = _cell_mismatch(best.cell, ref)
        if rel <= length_tol and ang <= angle_tol_deg:
            return best, sg
    # The given cell may be another valid setting of the group than the conventional (reduced-order) one, e.g.
    # P1 with a = b > c, or P2 with beta < 90: look for a basis of the lattice with the given metric directly.
    if not _cell_fits_group(ref, sg):
        return None, sg
    C = basis_matching_cell(lattice, ref, cen, length_tol, angle_tol_deg)
    if C is None:
        return None, sg
    ratio = round(abs(np.linalg.det(C)) / abs(np.linalg.det(reduce_lattice(lattice))))
    return ConventionalCell(C, system, cen, ratio), sg


def _cell_score(c: tuple, ref: tuple) -> float:
    return sum(abs(c[i] - ref[i]) / ref[i] for i in range(3)) + sum(abs(c[i] - ref[i]) for i in range(3, 6)) / 90.0


def _cell_fits_group(cell: tuple, sg: gemmi.SpaceGroup, tol: float = 0.02) -> bool:
    """Whether the metric of ``cell`` (Å, degrees) is invariant, within ``tol`` (relative), under the rotations
    of ``sg`` in its setting: the cell is a valid setting of the group (P1: any cell; P 1 2 1: alpha = gamma =
    90; P 43 21 2: a = b, right angles ...)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        B = _basis_from_cell(*cell)
    if not np.all(np.isfinite(B)):
        return False
    G = B @ B.T
    for op in sg.operations().sym_ops:
        R = np.array(op.rot, float) / op.DEN
        if np.max(np.abs(R.T @ G @ R - G)) > tol * np.max(np.abs(G)):
            return False
    return True


def basis_matching_cell(
    lattice: np.ndarray,
    cell: tuple,
    centring: str = "P",
    length_tol: float = 0.05,
    angle_tol_deg: float = 3.0,
    max_coef: int = 3,
) -> np.ndarray | None:
    """A right-handed basis (rows a, b, c, Å) of ``lattice`` (or of a centred superlattice with the
    ``centring`` letter P, A, B, C, I, F or R) whose cell matches ``cell`` (a, b, c in Å, α, β, γ in degrees)
    within ``length_tol`` (relative) and ``angle_tol_deg``; the closest one, None when there is none.

    Any setting of the cell is found, not only the reduced or conventional one: the candidates are the lattice
    vectors with coefficients up to ``max_coef`` in the reduced basis."""
    P = reduce_lattice(lattice)
    Vp = abs(np.linalg.det(P))
    ref = tuple(float(x) for x in cell)
    U = np.array([u for u in itertools.product(range(-max_coef, max_coef + 1), repeat=3) if any(u)])
    V = U @ P
    L = np.linalg.norm(V, axis=1)
    first = U[np.arange(len(U)), np.argmax(U != 0, axis=1)] > 0  # one of +-v for the first vector

    def near(length: float, mask=None) -> np.ndarray:
        ok = np.abs(L - length) <= length_tol * length
        return np.flatnonzero(ok if mask is None else ok & mask)

    ia, ib, ic = near(ref[0], first), near(ref[1]), near(ref[2])
    if not (len(ia) and len(ib) and len(ic)):
        return None
    cos_ab = (V[ia] @ V[ib].T) / np.outer(L[ia], L[ib])
    cos_ac = (V[ia] @ V[ic].T) / np.outer(L[ia], L[ic])
    cos_bc = (V[ib] @ V[ic].T) / np.outer(L[ib], L[ic])
    ang_ab, ang_ac, ang_bc = (np.degrees(np.arccos(np.clip(x, -1, 1))) for x in (cos_ab, cos_ac, cos_bc))
    best, best_score = None, np.inf
    for i, j in zip(*np.nonzero(np.abs(ang_ab - ref[5]) <= angle_tol_deg), strict=True):
        ks = np.flatnonzero((np.abs(ang_ac[i] - ref[4]) <= angle_tol_deg)
                            & (np.abs(ang_bc[j] - ref[3]) <= angle_tol_deg))  # fmt: skip
        for k in ks:
            C = np.array([V[ia[i]], V[ib[j]], V[ic[k]]])
            det = np.linalg.det(C)
            if det < 0:
                C = -C  # the same angles, right-handed
            r = abs(det) / Vp
            ratio = round(r)
            if ratio < 1 or ratio > 4 or abs(r - ratio) > 1e-3:
                continue
            cen = _centring(P, C, ratio)
            if cen == "R_reverse" and centring == "R":
                C, cen = np.array([-C[0], -C[1], C[2]]), "R"
            if cen != centring:
                continue
            score = _cell_score(cell_from_lattice(C), ref)
            if score < best_score:
                best, best_score = C, score
    return best


def _basis_from_cell(a, b, c, al, be, ga) -> np.ndarray:
    """Rows a, b, c (Å) of a cell: a along x, b in the xy plane (angles in degrees)."""
    al, be, ga = np.radians([al, be, ga])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(c * c - cx * cx - cy * cy)
    return np.array([[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, cz]])


def _constrained_cell(system: str, p: np.ndarray) -> tuple[float, ...]:
    if system == "cubic":
        return (p[0], p[0], p[0], 90.0, 90.0, 90.0)
    if system == "tetragonal":
        return (p[0], p[0], p[1], 90.0, 90.0, 90.0)
    if system in ("hexagonal", "trigonal"):
        return (p[0], p[0], p[1], 90.0, 90.0, 120.0)
    if system == "orthorhombic":
        return (p[0], p[1], p[2], 90.0, 90.0, 90.0)
    return (p[0], p[1], p[2], 90.0, p[3], 90.0)  # monoclinic, b unique


def _free_params(system: str, cell: tuple) -> np.ndarray:
    a, b, c, _, be, _ = cell
    if system == "cubic":
        return np.array([(a + b + c) / 3])
    if system in ("tetragonal", "hexagonal", "trigonal"):
        return np.array([(a + b) / 2, c])
    if system == "orthorhombic":
        return np.array([a, b, c])
    return np.array([a, b, c, be])


def _rotvec_matrix(w: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(w))
    if th < 1e-15:
        return np.eye(3)
    k = w / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


def constrained_refine(
    s: np.ndarray, hkl: np.ndarray, mask: np.ndarray, conv: ConventionalCell
) -> ConventionalCell:
    """Least-squares fit of orientation + the free cell parameters of ``conv.system`` (tetragonal: a = b,
    right angles; hexagonal: a = b, γ = 120°; ...) to s ≈ A* h over the ``mask`` spots (residuals in 1/Å).
    ``hkl`` are indices in ``conv.lattice``. Triclinic, or fewer than 6 spots: returned unchanged."""
    from scipy.optimize import least_squares  # slow import: only when needed

    if conv.system == "triclinic" or int(np.sum(mask)) < 6:
        return conv
    s_m = np.asarray(s, float)[mask]
    h_m = np.asarray(hkl, float)[mask]
    p0 = _free_params(conv.system, conv.cell)
    B0 = _basis_from_cell(*_constrained_cell(conv.system, p0))
    u, _, vt = np.linalg.svd(B0.T @ conv.lattice)  # Procrustes: conv ≈ B0 @ R0.T
    R0t = u @ vt
    if np.linalg.det(R0t) < 0:
        return conv

    def lattice(x: np.ndarray) -> np.ndarray:
        B = _basis_from_cell(*_constrained_cell(conv.system, x[3:]))
        return B @ R0t @ _rotvec_matrix(x[:3]).T

    def resid(x: np.ndarray) -> np.ndarray:
        return (h_m @ np.linalg.inv(lattice(x)).T - s_m).ravel()

    x0 = np.concatenate([np.zeros(3), p0])
    fit = least_squares(resid, x0, x_scale=np.concatenate([np.full(3, 1e-3), 0.01 * np.abs(p0)]))
    if not fit.success:
        return conv
    return ConventionalCell(lattice(fit.x), conv.system, conv.centring, conv.ratio)
