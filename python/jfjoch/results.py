"""Per-image and per-run results of `jfjoch.process` (plain data, no I/O).

:class:`ImageResult` is what the per-image worker returns for one image (spots, indexing, refinement,
integrated reflections, azimuthal profile, statistics); the streaming writer stores it and the run keeps
only its :class:`ImageSummary`, so memory does not grow with the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .experiment import Experiment
from .tables import ReflectionTable, SpotTable

__all__ = ["ImageResult", "ImageSummary", "IndexingSummary", "IntegrationCounts", "ProcessResult"]


@dataclass
class IntegrationCounts:
    """What happened to the predictions of one image."""

    predicted: int = 0
    integrated: int = 0
    """Observations written (summation succeeded)."""
    profile_fitted: int = 0
    dropped_masked: int = 0
    """Invalid (masked/error) pixel in the signal disc."""
    dropped_background: int = 0
    """Too few background pixels."""
    dropped_edge: int = 0
    """Signal disc leaves the detector."""
    overlapped: int = 0
    saturated: int = 0
    pixelrefine: object | None = None
    """``-r pixelrefine``: the image's :class:`jfjoch.pixelrefine.PixelRefineResult` (not counted)."""

    FIELDS = ("predicted", "integrated", "profile_fitted", "dropped_masked", "dropped_background", "dropped_edge",
              "overlapped", "saturated")  # fmt: skip

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(int(getattr(self, f)) for f in self.FIELDS)


@dataclass
class ImageResult:
    """What processing found on one image. Pixel coordinates have the pixel centre at integers."""

    number: int
    """Image number in the input file (0-based)."""
    ok: bool = True
    """False when the image could not be read/decoded (then everything else is empty)."""
    error: str | None = None
    """Why the image failed (the decoder's message), None when ok."""
    spots: SpotTable = field(default_factory=SpotTable.empty)
    profile: np.ndarray | None = None
    """Azimuthal profile (photons/pixel, corrected) on the run's q bins."""
    stats: dict = field(default_factory=dict)
    """Per-image statistics (see jfjoch.image_stats)."""
    indexed: bool = False
    lattice: np.ndarray | None = None
    """Real-space basis, rows a, b, c in Å, lab frame, at this image (rotation: its mid-angle)."""
    cell: tuple[float, ...] | None = None
    bravais: str | None = None
    """Bravais lattice of the indexing solution ('tP', ...)."""
    refined_beam: tuple[float, float, float] | None = None
    """Stills with beam refinement: (beam_x px, beam_y px, distance mm) refined on this image."""
    refine_rms_px: float = float("nan")
    """RMS position residual of the indexed spots after refinement (px)."""
    profile_radius: float = float("nan")
    """Stills: Ewald-offset cutoff R0 of the prediction (1/Å); rotation: NaN."""
    mosaicity: float = float("nan")
    """Rotation: mosaicity used for this image's partialities (degrees); stills: NaN."""
    profile_width: float = float("nan")
    """RMS radius of the learned spot profile (px); NaN when no profile was learned."""
    pixelrefine: tuple[float, float, float, float] | None = None
    """``-r pixelrefine``: the image's fitted (G, B Å², spot width px, partiality width 1/Å)."""
    counts: IntegrationCounts = field(default_factory=IntegrationCounts)
    reflections: ReflectionTable = field(default_factory=ReflectionTable.empty)

    @property
    def n_spots(self) -> int:
        return len(self.spots)

    @property
    def n_indexed(self) -> int:
        return int(np.count_nonzero(self.spots.indexed))

    # compatibility accessors for the spot columns
    @property
    def x(self) -> np.ndarray:
        return self.spots.x

    @property
    def y(self) -> np.ndarray:
        return self.spots.y

    def summary(self) -> ImageSummary:
        return ImageSummary(
            number=self.number, ok=self.ok, error=self.error, n_spots=self.n_spots, n_indexed=self.n_indexed,
            indexed=self.indexed, lattice=None if self.lattice is None else np.asarray(self.lattice, float),
            cell=self.cell, bravais=self.bravais, stats=dict(self.stats),
            n_ice=int(np.count_nonzero(self.spots.ice_ring)),
            refined_beam=self.refined_beam, profile_radius=self.profile_radius, mosaicity=self.mosaicity,
            counts=self.counts,
        )  # fmt: skip


@dataclass
class ImageSummary:
    """The compact part of an :class:`ImageResult` that a run keeps in memory for every image."""

    number: int
    ok: bool = True
    error: str | None = None
    n_spots: int = 0
    n_indexed: int = 0
    indexed: bool = False
    lattice: np.ndarray | None = None
    cell: tuple[float, ...] | None = None
    bravais: str | None = None
    stats: dict = field(default_factory=dict)
    n_ice: int = 0
    refined_beam: tuple[float, float, float] | None = None
    profile_radius: float = float("nan")
    mosaicity: float = float("nan")
    counts: IntegrationCounts = field(default_factory=IntegrationCounts)


@dataclass
class IndexingSummary:
    """Run-level indexing outcome."""

    algorithm: str = "none"
    """Algorithm asked for (after `auto` was resolved)."""
    backend: str = "cpu"
    """Where the indexer ran: cpu or cuda (from the indexer's own report)."""
    mode: str = "stills"
    """stills | two_pass_rotation | single_pass_rotation | forced_rotation_lattice."""
    rotation_lattice: np.ndarray | None = None
    """Rotation modes: the lattice in the crystal (omega = 0) frame, rows a, b, c in Å."""
    bravais: str | None = None
    space_group: int | None = None
    notes: list[str] = field(default_factory=list)
    refinement: dict = field(default_factory=dict)
    """Rotation: the sweep refinement (rms_px, rms_angle_frames, n_used, mode, beam/distance shifts)."""
    mosaicity_deg: float | None = None
    """Rotation: the mosaicity (Gaussian sigma, degrees) used for the partialities."""
    integration: str = "none"
    """Intensity estimate used: sum | profile | none (--integration auto resolved)."""


@dataclass
class ProcessResult:
    """What `jfjoch.process` produced; `images` (summaries) are ordered by image number."""

    experiment: Experiment
    """The experiment with the refined geometry (rotation: the sweep refinement; stills: as read)."""
    images: list
    """:class:`ImageSummary` per image (or :class:`ImageResult` when read back from a file)."""
    q: np.ndarray | None = None
    """Azimuthal-integration bin centres, 1/Å with 2π (q = 2π/d)."""
    indexing: IndexingSummary = field(default_factory=IndexingSummary)
    timing: dict = field(default_factory=dict)
    """Wall time per stage, seconds."""
    output_path: str | None = None
    input_experiment: Experiment | None = None
    """The experiment as read from the input file (before refinement)."""
    reflections: ReflectionTable | None = None
    """Integrated observations (when read back from a file, or with ``keep_reflections``)."""
    scaling: object | None = None
    """Scaling and merging result (:class:`jfjoch.scale.ScaleResult`) when -M was asked for."""
    scaled_paths: list[str] = field(default_factory=list)
    """Files written by the scaling (merged and unmerged reflections, statistics, report)."""

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

    def integration_totals(self) -> IntegrationCounts:
        tot = IntegrationCounts()
        for im in self.images:
            c = getattr(im, "counts", None)
            if c is None:
                continue
            for f in IntegrationCounts.FIELDS:
                setattr(tot, f, getattr(tot, f) + getattr(c, f))
        return tot
