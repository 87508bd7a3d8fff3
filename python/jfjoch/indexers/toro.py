"""Known-cell fast-feedback indexer (TORO; the algorithm of PSI's ffbidx), CPU and CUDA.

Units: spot vectors ``s`` in 1/Å (no 2π, ``|s| = 1/d``); cells in Å and degrees; lattices as rows
a, b, c (Å) in the frame of ``s``, so that ``hkl = lattice @ s``. The algorithm and every parameter are
described in docs/indexing_toro.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from ..errors import InputError, UsageError

__all__ = ["ToroResult", "ToroSettings", "cell_to_basis", "index_toro"]


@dataclass(frozen=True)
class ToroSettings:
    """Settings of the TORO indexer (mirror of the C++ ``ToroSizes`` + ``ToroThresholds``).

    Sizes (fix the workspace; a change makes a new per-thread indexer):
        max_spots: spots used in the cell refinement, the lowest-resolution ones (all spots are assigned).
        max_search_spots: of those, the lowest-resolution ones that score directions and rotations.
        num_directions: samples of the half-sphere spiral per cell-vector length (spacing ≈ sqrt(2π/N) rad).
        num_candidates: best directions kept and refined per cell vector.
        num_rotations: samples of a full turn about a candidate vector (per sign of the vector).
        num_top_vectors: refined candidate vectors, over all three cell vectors, whose rotations are sampled.
        num_cells: best candidate cells refined by least squares.
    Thresholds (per call; distances are fractional Miller indices):
        vector_trim: per-spot cap of the distance to integer in the direction score.
        cell_trim: per-spot cap of |hkl - round(hkl)| in the cell score.
        direction_refine_iterations: pattern-search steps refining each candidate direction.
        refine_iterations: trimmed least-squares iterations of each candidate cell.
        refine_threshold_start, refine_threshold_end: spot inclusion threshold of the first and last
            least-squares iteration (geometric in between).
        indexed_threshold: a spot is indexed when max |hkl - round(hkl)| < this.
        min_spots_ls: spots a least-squares step needs.
        min_indexed, min_fraction: the result is ``ok`` only with at least this many indexed spots AND
            at least this fraction of all spots indexed.
        max_cell_deviation: ... and the refined cell close to the given one: |a|, |b|, |c| within this
            relative change and the cosines of the angles within this absolute change. Cells beyond it
            rank after all others when the best of the refined candidate cells is chosen.
    """

    max_spots: int = 300
    max_search_spots: int = 128
    num_directions: int = 32768
    num_candidates: int = 32
    num_rotations: int = 720
    num_top_vectors: int = 24
    num_cells: int = 24
    vector_trim: float = 0.25
    cell_trim: float = 0.3
    direction_refine_iterations: int = 12
    refine_iterations: int = 8
    refine_threshold_start: float = 0.3
    refine_threshold_end: float = 0.1
    indexed_threshold: float = 0.1
    min_spots_ls: int = 6
    min_indexed: int = 9
    min_fraction: float = 0.35
    max_cell_deviation: float = 0.02

    _SIZE_FIELDS = (
        "max_spots",
        "num_directions",
        "num_candidates",
        "num_rotations",
        "num_top_vectors",
        "num_cells",
    )

    def sizes_key(self) -> tuple[int, ...]:
        """The allocation-time part, as a hashable key."""
        return tuple(int(getattr(self, f)) for f in self._SIZE_FIELDS)

    def _sizes(self) -> _core.ToroSizes:
        z = _core.ToroSizes()
        for f in self._SIZE_FIELDS:
            setattr(z, f, int(getattr(self, f)))
        return z

    def _thresholds(self) -> _core.ToroThresholds:
        t = _core.ToroThresholds()
        for f in (
            "vector_trim",
            "cell_trim",
            "direction_refine_iterations",
            "refine_iterations",
            "refine_threshold_start",
            "refine_threshold_end",
            "indexed_threshold",
            "min_spots_ls",
            "min_indexed",
            "min_fraction",
            "max_cell_deviation",
        ):
            setattr(t, f, getattr(self, f))
        return t


@dataclass(frozen=True)
class ToroResult:
    """Result of :func:`index_toro`.

    lattice: (3, 3) rows a, b, c in Å, frame of ``s`` (``hkl ≈ lattice @ s``); zeros when no spots.
    indexed: (n,) bool, spot within ``indexed_threshold`` of integer hkl.
    hkl: (n, 3) int, nearest integer Miller indices for every spot.
    fraction: indexed spots / all spots.
    score: mean trimmed squared distance to integer hkl of the best sampled cell before refinement.
    ok: enough spots indexed (``min_indexed`` and ``min_fraction``) and the cell did not drift.
    stage_seconds: wall time of directions, candidate refinement, rotations, cell refinement (s).
    backend: "cpu" or "cuda".
    """

    lattice: np.ndarray
    indexed: np.ndarray
    hkl: np.ndarray
    fraction: float
    score: float
    ok: bool
    stage_seconds: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))
    backend: str = "cpu"

    @property
    def n_indexed(self) -> int:
        """Number of indexed spots."""
        return int(np.count_nonzero(self.indexed))


def cell_to_basis(cell: Sequence[float]) -> np.ndarray:
    """Real-space basis (rows a, b, c in Å) of a cell (a, b, c in Å, α, β, γ in degrees).

    Convention: a along x, b in the xy plane (the orientation does not matter to the indexer).
    """
    a, b, c, al, be, ga = (float(v) for v in cell)
    if min(a, b, c) <= 0:
        raise InputError("cell lengths must be positive")
    ca, cb, cg = np.cos(np.radians([al, be, ga]))
    sg = np.sin(np.radians(ga))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz2 = c * c - cx * cx - cy * cy
    if sg <= 1e-6 or cz2 <= 0:
        raise InputError(f"impossible cell angles: {al}, {be}, {ga}")
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, np.sqrt(cz2)]])


_local = threading.local()


def _indexer(settings: ToroSettings, backend: str) -> _core.ToroIndexer:
    cache = getattr(_local, "indexers", None)
    if cache is None:
        cache = _local.indexers = {}
    key = (settings.sizes_key(), backend)
    ix = cache.get(key)
    if ix is None:
        try:
            ix = _core.ToroIndexer(settings._sizes(), backend)
        except (ValueError, RuntimeError) as e:
            raise UsageError(str(e)) from e
        cache[key] = ix
    return ix


def index_toro(
    s: np.ndarray,
    cell: Sequence[float] | np.ndarray,
    settings: ToroSettings | None = None,
    backend: str = "auto",
) -> ToroResult:
    """Index one spot list with a known cell.

    Args:
        s: (n, 3) reciprocal vectors of the spots, 1/Å (``|s| = 1/d``), any frame.
        cell: 6 numbers (a, b, c in Å; α, β, γ in degrees) or a (3, 3) real-space basis, rows a, b, c (Å).
        settings: :class:`ToroSettings` (defaults when None).
        backend: "auto" (CUDA when a device is present, else CPU), "cpu" or "cuda".

    Returns:
        :class:`ToroResult`; ``lattice`` rows a, b, c (Å) in the frame of ``s``.

    Thread-safe: every calling thread uses its own indexer (workspace); the GIL is released.
    """
    settings = settings or ToroSettings()
    from ..backend import resolve_backend

    backend = resolve_backend("cuda" if backend == "auto" else backend, "fast-feedback indexer (ffbidx)",
                              soft=backend == "auto")
    sv = np.ascontiguousarray(s, dtype=np.float32)
    if sv.ndim != 2 or sv.shape[1] != 3:
        raise InputError(f"s must be (n, 3), got {sv.shape}")
    c = np.asarray(cell, dtype=np.float64)
    if c.shape == (6,):
        basis = cell_to_basis(c)
    elif c.shape == (3, 3):
        basis = c
    else:
        raise InputError("cell must be 6 numbers (Å, degrees) or a (3, 3) basis (rows a, b, c, Å)")
    ix = _indexer(settings, backend)
    try:
        r = ix.index(sv, np.ascontiguousarray(basis), settings._thresholds())
    except ValueError as e:
        raise InputError(str(e)) from e
    return ToroResult(
        lattice=np.asarray(r["lattice"]),
        indexed=np.asarray(r["indexed"]),
        hkl=np.asarray(r["hkl"]),
        fraction=float(r["fraction"]),
        score=float(r["score"]),
        ok=bool(r["ok"]),
        stage_seconds=tuple(r["stage_seconds"]),
        backend=ix.backend,
    )
