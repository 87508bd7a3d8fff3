"""FFT indexer (unknown cell): thin typed wrapper over the C++/CUDA kernel ``_core.fft_index``.

Spot vectors ``s`` are reciprocal-space vectors in 1/Å (no 2π); the lattice is returned as rows a, b, c in Å
in the frame of ``s``. The algorithm and its parameters are described in docs/indexing_fft.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _core


@dataclass(frozen=True)
class FftIndexerSettings:
    """Parameters of the FFT indexer (lengths in Å, angles in degrees)."""

    n_directions: int = 16384
    """Projection directions on the half sphere (Fibonacci spiral)."""
    min_cell_A: float = 10.0
    """Shortest real-space vector searched (Å)."""
    max_cell_A: float = 250.0
    """Longest real-space vector searched (Å); sets the histogram bin width 1/(2·max_cell·oversampling)."""
    oversampling: float = 1.5
    """Histogram bins per Nyquist bin of max_cell_A (>= 1)."""
    n_candidates: int = 30
    """Candidate vectors kept after non-maximum suppression."""
    min_candidate_angle_deg: float = 5.0
    """Directions closer than this to a stronger candidate are ignored (degrees)."""
    index_tolerance: float = 0.1
    """A spot is indexed when every |h - round(h)| < this (fractional Miller index units)."""
    count_fraction: float = 0.95
    """Basis choice: smallest cell among triples indexing >= this fraction of the best triple's spots."""
    refine_cycles: int = 4
    """Least-squares refine / re-index cycles of the final basis."""
    min_indexed: int = 6
    """A result needs at least this many indexed spots ..."""
    min_indexed_fraction: float = 0.2
    """... and at least this fraction of all spots."""


@dataclass(frozen=True)
class FftIndexResult:
    """Raw FFT indexer output: reduced (primitive, Buerger) basis, no symmetry applied."""

    ok: bool
    lattice: np.ndarray
    """(3, 3) rows a, b, c (Å), right-handed, reduced."""
    hkl: np.ndarray
    """(n, 3) int32 rounded indices in ``lattice``."""
    indexed: np.ndarray
    """(n,) bool."""
    n_indexed: int
    backend: str
    """'cpu' or 'cuda': where the per-direction stage ran."""
    times: dict[str, float] = field(default_factory=dict)
    """Stage times (s): histogram_s, fft_s, candidates_s, refine_s."""


def gpu_available() -> bool:
    """True when the CUDA backend is compiled in and a device is present."""
    from ..backend import gpu_available as _gpu

    return _gpu()


def resolve_backend(backend: str) -> str:
    """Map 'gpu'/'cuda'/'cpu'/'auto' to the backend that will run (jfjoch.backend.resolve_backend): 'gpu' or
    'cuda' without a device falls back to the CPU with one note per process."""
    from ..backend import resolve_backend as _resolve

    b = backend.lower()
    if b not in ("gpu", "cuda", "cpu", "auto"):
        raise ValueError(f"unknown backend {backend!r}")
    return _resolve("cuda" if b in ("gpu", "cuda") else b, "FFT indexer", soft=True)


def index_fft(
    s: np.ndarray, settings: FftIndexerSettings | None = None, backend: str = "cpu"
) -> FftIndexResult:
    """Index reciprocal vectors ``s`` (n, 3) in 1/Å without a known cell.

    ``backend``: 'cpu' (FFTW), 'cuda'/'gpu' (cuFFT; falls back to the CPU with one warning when no device),
    or 'auto'. Thread-safe; the GIL is released while the kernel runs.
    """
    st = settings or FftIndexerSettings()
    s32 = np.ascontiguousarray(np.asarray(s, dtype=np.float32).reshape(-1, 3))
    r = _core.fft_index(
        s32,
        st.n_directions,
        st.min_cell_A,
        st.max_cell_A,
        st.oversampling,
        st.n_candidates,
        st.min_candidate_angle_deg,
        st.index_tolerance,
        st.count_fraction,
        st.refine_cycles,
        st.min_indexed,
        st.min_indexed_fraction,
        resolve_backend(backend),
    )
    return FftIndexResult(
        ok=bool(r["ok"]),
        lattice=np.asarray(r["lattice"]),
        hkl=np.asarray(r["hkl"]),
        indexed=np.asarray(r["indexed"], bool),
        n_indexed=int(r["n_indexed"]),
        backend=str(r["backend"]),
        times=dict(r["times"]),
    )
