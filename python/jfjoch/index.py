"""Indexing stage (public API): ``index_reciprocal`` on reciprocal-space spot vectors.

Units: ``s`` in 1/Å (no 2π), lattices as rows a, b, c in Å in the frame of ``s``, cells as
(a, b, c in Å, α, β, γ in degrees). See docs/indexing_fft.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .indexers.fft import FftIndexerSettings, index_fft
from .lattice import _sg, bravais_lattice, constrained_refine, space_group_setting

__all__ = ["METHODS", "IndexResult", "index_reciprocal"]

METHODS = ("auto", "fft", "fftw", "ffbidx", "none")


@dataclass(frozen=True)
class IndexResult:
    """Result of ``index_reciprocal``."""

    lattice: np.ndarray
    """(3, 3) real-space basis, rows a, b, c (Å), conventional setting, right-handed; zeros when not ok."""
    indexed: np.ndarray
    """(n,) bool: every |h - round(h)| < the indexer's tolerance (0.1 by default)."""
    hkl: np.ndarray
    """(n, 3) int Miller indices in ``lattice`` (meaningful where ``indexed``)."""
    cell: tuple[float, float, float, float, float, float]
    """a, b, c (Å), α, β, γ (degrees) of ``lattice``."""
    ok: bool
    bravais: str | None
    """Bravais lattice symbol, e.g. 'tP', 'mC', 'aP'."""
    space_group: int | None
    """Space-group number when one was given (and accepted)."""
    method: str
    """Indexer that ran: 'fft', 'fftw', 'ffbidx' or 'none'."""
    n_indexed: int = 0
    times: dict[str, float] = field(default_factory=dict)
    backend: str = "cpu"
    """Where the indexer ran: 'cpu' or 'cuda' (as the indexer itself reports it)."""
    """Stage times in seconds (FFT indexer: histogram_s, fft_s, candidates_s, refine_s)."""


MIN_SPOT_VECTOR = 1e-6
"""Spot vectors shorter than this (1/Å; d > 10⁶ Å) are the direct beam, not spots: never indexed."""
MIN_DISTINCT_REFLECTIONS = 6
"""A lattice is reported only when its indexed spots have at least this many distinct, non-zero Miller
indices spanning three dimensions: copies of one vector, or vectors in a plane, determine no lattice."""

# primitive basis vectors (rows) of a centred lattice, in units of its conventional basis vectors
_CENTRED_TO_PRIMITIVE = {
    "P": np.eye(3),
    "A": np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, -0.5, 0.5]]),
    "B": np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [-0.5, 0.0, 0.5]]),
    "C": np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
    "F": np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]),
    "R": np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]),
}


def _primitive_of_centred(conv: np.ndarray, centring: str, hkl_indexed: np.ndarray,
                          min_fraction: float = 0.9) -> np.ndarray:  # fmt: skip
    """The primitive basis of the lattice whose conventional basis (rows, Å) is ``conv`` with ``centring``,
    when the indexed spots (their ``hkl`` in ``conv``) obey its reflection condition (at least ``min_fraction``
    of them); otherwise ``conv`` itself (the spots say the lattice is not centred that way)."""
    T = _CENTRED_TO_PRIMITIVE.get(centring, np.eye(3))
    if centring == "P" or len(hkl_indexed) == 0:
        return conv
    # R: the basis may be the reverse setting; rotating it by 180° about c makes it the obverse one
    flips = (np.eye(3), np.diag([-1.0, -1.0, 1.0])) if centring == "R" else (np.eye(3),)
    for F in flips:
        h = np.asarray(hkl_indexed, float) @ F @ T.T  # indices in the primitive basis: integers when allowed
        if np.mean(np.all(np.abs(h - np.round(h)) < 1e-6, axis=1)) >= min_fraction:
            return T @ F @ conv
    return conv


def _credible(hkl_indexed: np.ndarray) -> bool:
    """Enough distinct non-zero reflections, not all in one plane (see MIN_DISTINCT_REFLECTIONS)."""
    h = np.unique(np.asarray(hkl_indexed, np.int64).reshape(-1, 3), axis=0)
    h = h[np.any(h != 0, axis=1)]
    return len(h) >= MIN_DISTINCT_REFLECTIONS and np.linalg.matrix_rank(h.astype(float)) == 3


def _failed(n: int, method: str, space_group: int | None = None, backend: str = "cpu") -> IndexResult:
    return IndexResult(
        lattice=np.zeros((3, 3)),
        indexed=np.zeros(n, bool),
        hkl=np.zeros((n, 3), np.int32),
        cell=(0.0,) * 6,
        ok=False,
        bravais=None,
        space_group=space_group,
        method=method,
        backend=backend,
    )


def index_reciprocal(
    s: np.ndarray,
    cell: Sequence[float] | None = None,
    space_group: int | str | None = None,
    method: str = "auto",
    *,
    fft_settings: FftIndexerSettings | None = None,
    constrain_cell: bool = True,
) -> IndexResult:
    """Index a spot list given as reciprocal vectors ``s`` (n, 3) in 1/Å.

    ``method``: 'auto' (ffbidx when ``cell`` is given, else fft), 'fft' (CUDA when a device is present,
    otherwise the CPU implementation with one warning), 'fftw' (CPU), 'ffbidx' (known cell, needs ``cell``)
    or 'none'. ``cell`` is used by 'ffbidx' and, with ``space_group``, to choose and check the setting; the
    FFT indexer itself ignores it. With ``space_group`` (number or symbol) the lattice is put in the
    conventional setting of that group and, when ``cell`` is given, checked against it (> 5 % / 3° off:
    ``ok=False``); without,
    the highest-symmetry Bravais lattice consistent with the refined cell is reported in its conventional
    basis. With ``constrain_cell`` (default) the conventional lattice is then refined with the cell
    constraints of its crystal system (e.g. tP: a = b, right angles) by least squares on the indexed spots.
    ``fft_settings`` tunes the FFT indexer. Thread-safe; the kernels release the GIL.

    Any valid setting of ``cell`` for ``space_group`` is accepted and reported as given (P1 with a = b > c,
    P2 with beta < 90°, ...; docs/indexing_fft.md). Non-finite vectors (NaN, inf) are left out with one
    RuntimeWarning and zero vectors silently, for every method; both come back not indexed. Degenerate input
    (fewer than ``MIN_DISTINCT_REFLECTIONS`` distinct indexed reflections, or all in one plane) gives
    ``ok=False``.
    """
    try:
        s = np.asarray(s, dtype=float)
    except (TypeError, ValueError):
        raise InputError("s must be an (n, 3) array of reciprocal vectors (1/Å)") from None
    if s.ndim != 2 or s.shape[1] != 3:
        raise InputError("s must be an (n, 3) array of reciprocal vectors (1/Å)")
    if not isinstance(method, str):
        raise InputError(f"unknown indexing method {method!r}; choose from {', '.join(METHODS)}")
    m = method.lower()
    if m not in METHODS:
        raise InputError(f"unknown indexing method {method!r}; choose from {', '.join(METHODS)}")
    if cell is not None:
        try:
            cell = tuple(float(x) for x in cell)
        except (TypeError, ValueError):
            raise InputError("cell must be six numbers a, b, c (Å), alpha, beta, gamma (degrees)") from None
        if len(cell) != 6 or not all(np.isfinite(cell)):
            raise InputError("cell must be six finite numbers a, b, c (Å), alpha, beta, gamma (degrees)")
    if m == "auto":
        m = "ffbidx" if cell is not None else "fft"
    n = len(s)
    sg_number = None
    if space_group is not None:
        try:
            sg_number = _sg(space_group).number
        except ValueError as e:
            raise InputError(str(e)) from e
    if m == "none":
        return _failed(n, "none", sg_number)
    if m == "ffbidx" and cell is None:
        raise InputError("method 'ffbidx' needs a unit cell")

    # One rule for every indexer: vectors that are not finite (NaN, inf) are left out with a warning, and so
    # are zero vectors (a spot at the direct beam has no lattice information); they are never indexed.
    finite = np.all(np.isfinite(s), axis=1)
    if not finite.all():
        warnings.warn(f"index_reciprocal: {int(np.count_nonzero(~finite))} of {n} spot vectors are not finite "
                      "(NaN or inf); they are left out and not indexed", RuntimeWarning, stacklevel=2)  # fmt: skip
    use = finite & (np.linalg.norm(np.where(finite[:, None], s, 0.0), axis=1) > MIN_SPOT_VECTOR)
    s_use = np.ascontiguousarray(s[use])
    if len(s_use) < MIN_DISTINCT_REFLECTIONS:
        return _failed(n, m, sg_number)

    times: dict[str, float] = {}
    if m == "ffbidx":
        from .indexers import toro  # known-cell indexer (lazy: its own module)

        r = toro.index_toro(s_use, cell)
        backend = r.backend
        if not r.ok:
            return _failed(n, m, sg_number, backend)
        primitive = np.asarray(r.lattice, float)
        prim_indexed = np.asarray(r.indexed, bool)
        if sg_number is not None:
            # the known-cell indexer returns a basis of the given (conventional, maybe centred) cell
            hkl_conv = np.round(primitive @ s_use[prim_indexed].T).T
            primitive = _primitive_of_centred(primitive, _sg(sg_number).centring_type(), hkl_conv)
            # a spot off the centred lattice (a systematic absence) is not indexed
            h = primitive @ s_use.T
            tol = FftIndexerSettings().index_tolerance  # 0.1, as the known-cell indexer's indexed_threshold
            prim_indexed = prim_indexed & np.all(np.abs(h - np.round(h)) < tol, axis=0)
    else:
        r = index_fft(s_use, fft_settings, backend="gpu" if m == "fft" else "cpu")
        times = r.times
        backend = r.backend
        if not r.ok:
            return _failed(n, m, sg_number, backend)
        primitive = r.lattice
        prim_indexed = r.indexed

    if space_group is not None:
        conv, _ = space_group_setting(primitive, space_group, cell)
        if conv is None:
            return _failed(n, m, sg_number, backend)
    else:
        conv = bravais_lattice(primitive)
    # hkl in the conventional basis: integer transform of the primitive indices (h_conv = M h_prim)
    M = np.round(conv.lattice @ np.linalg.inv(primitive))
    h_prim = np.round(primitive @ s_use.T).T
    hkl_use = (h_prim @ M.T).astype(np.int32)
    if not _credible(hkl_use[prim_indexed]):
        return _failed(n, m, sg_number, backend)
    if constrain_cell:
        conv = constrained_refine(s_use, hkl_use, prim_indexed, conv)
    indexed = np.zeros(n, bool)
    indexed[use] = prim_indexed
    hkl = np.zeros((n, 3), np.int32)
    hkl[use] = hkl_use
    return IndexResult(
        lattice=conv.lattice,
        indexed=indexed,
        hkl=hkl,
        cell=conv.cell,
        ok=True,
        bravais=conv.bravais,
        space_group=sg_number,
        method=m,
        n_indexed=int(indexed.sum()),
        times=times,
        backend=backend,
    )
