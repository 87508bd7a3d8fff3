"""Indexing stage (public API): ``index_reciprocal`` on reciprocal-space spot vectors.

Units: ``s`` in 1/Å (no 2π), lattices as rows a, b, c in Å in the frame of ``s``, cells as
(a, b, c in Å, α, β, γ in degrees). See docs/indexing_fft.md.
"""

from __future__ import annotations

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
    """
    s = np.asarray(s, dtype=float)
    if s.ndim != 2 or s.shape[1] != 3:
        raise InputError("s must be an (n, 3) array of reciprocal vectors (1/Å)")
    m = method.lower()
    if m not in METHODS:
        raise InputError(f"unknown indexing method {method!r}; choose from {', '.join(METHODS)}")
    if cell is not None and len(cell) != 6:
        raise InputError("cell must be six numbers a, b, c (Å), alpha, beta, gamma (degrees)")
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

    times: dict[str, float] = {}
    if m == "ffbidx":
        if cell is None:
            raise InputError("method 'ffbidx' needs a unit cell")
        from .indexers import toro  # known-cell indexer (lazy: its own module)

        r = toro.index_toro(s, tuple(float(x) for x in cell))
        backend = r.backend
        if not r.ok:
            return _failed(n, m, sg_number, backend)
        primitive = np.asarray(r.lattice, float)
        prim_indexed = np.asarray(r.indexed, bool)
    else:
        r = index_fft(s, fft_settings, backend="gpu" if m == "fft" else "cpu")
        times = r.times
        backend = r.backend
        if not r.ok:
            return _failed(n, m, sg_number, backend)
        primitive = r.lattice
        prim_indexed = r.indexed

    if space_group is not None:
        conv, _ = space_group_setting(primitive, space_group, None if cell is None else tuple(cell))
        if conv is None:
            return _failed(n, m, sg_number, backend)
    else:
        conv = bravais_lattice(primitive)
    # hkl in the conventional basis: integer transform of the primitive indices (h_conv = M h_prim)
    M = np.round(conv.lattice @ np.linalg.inv(primitive))
    h_prim = np.round(primitive @ s.T).T
    hkl = (h_prim @ M.T).astype(np.int32)
    if constrain_cell:
        conv = constrained_refine(s, hkl, prim_indexed, conv)
    return IndexResult(
        lattice=conv.lattice,
        indexed=prim_indexed,
        hkl=hkl,
        cell=conv.cell,
        ok=True,
        bravais=conv.bravais,
        space_group=sg_number,
        method=m,
        n_indexed=int(prim_indexed.sum()),
        times=times,
        backend=backend,
    )
