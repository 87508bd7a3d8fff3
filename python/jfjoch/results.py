"""Per-image and per-run results of `jfjoch.process` (plain data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .experiment import Experiment

__all__ = ["ImageResult", "IndexingSummary", "ProcessResult"]


@dataclass
class ImageResult:
    """What processing found on one image. Pixel coordinates have the pixel centre at integers."""

    number: int
    """Image number in the input file (0-based)."""
    ok: bool = True
    """False when the image could not be read/decoded (then everything else is empty)."""
    error: str | None = None
    x: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    intensity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Spot intensity, photons."""
    d: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Spot resolution, Å."""
    ice_ring: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    spot_indexed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    profile: np.ndarray | None = None
    """Azimuthal profile (photons/pixel, corrected) on the run's q bins."""
    stats: dict = field(default_factory=dict)
    """Per-image statistics (see jfjoch.image_stats)."""
    indexed: bool = False
    lattice: np.ndarray | None = None
    """Real-space basis, rows a, b, c in Å, lab frame, at this image (rotation: its mid-angle)."""
    cell: tuple[float, ...] | None = None

    @property
    def n_spots(self) -> int:
        return len(self.x)

    @property
    def n_indexed(self) -> int:
        return int(np.count_nonzero(self.spot_indexed))


@dataclass
class IndexingSummary:
    """Run-level indexing outcome."""

    algorithm: str = "none"
    """Algorithm asked for (after `auto` was resolved)."""
    backend: str = "cpu"
    mode: str = "stills"
    """stills | two_pass_rotation | single_pass_rotation | forced_rotation_lattice."""
    rotation_lattice: np.ndarray | None = None
    """Rotation modes: the lattice in the crystal (omega = 0) frame, rows a, b, c in Å."""
    bravais: str | None = None
    space_group: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ProcessResult:
    """Everything `jfjoch.process` produced; `images` are ordered by image number."""

    experiment: Experiment
    images: list[ImageResult]
    q: np.ndarray | None = None
    """Azimuthal-integration bin centres, 1/Å with 2π (q = 2π/d)."""
    indexing: IndexingSummary = field(default_factory=IndexingSummary)
    timing: dict = field(default_factory=dict)
    """Wall time per stage, seconds."""
    output_path: str | None = None

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def indexing_rate(self) -> float:
        ok = [im for im in self.images if im.ok]
        return sum(im.indexed for im in ok) / len(ok) if ok else 0.0

    def mean_cell(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and standard deviation of the cells of indexed images."""
        cells = np.array([im.cell for im in self.images if im.indexed and im.cell is not None], float)
        if not len(cells):
            return None
        return cells.mean(0), cells.std(0)
