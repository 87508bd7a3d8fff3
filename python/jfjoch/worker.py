"""The per-image worker: read -> decode -> spots -> index -> refine -> predict -> integrate -> azint for one
image, against a :class:`Plan` (everything fixed before the image loop: geometry, stage settings and, for
rotation data, the sweep lattice). The plan is plain picklable data, so the worker can run in another
thread, process or cluster node; :class:`ImageWorker` builds its stage objects (spot-finder flags,
azimuthal map, sweep predictions) once from the plan and is thread-safe afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .azint import AzimuthalIntegrator
from .errors import CorruptFrameError
from .experiment import Experiment, cell_from_lattice, rotation_matrix
from .frame_pass import FramePass, FrameResult
from .image_stats import StatisticsCalculator
from .integrate import IntegrationSettings, integrate
from .predict import PredictionSettings, RotationPredictor, predict_still, profile_radius_from_spots
from .refine import RefineSettings, cell_system, refine_rotation_image, refine_still
from .results import ImageResult
from .spots import SpotFinder, SpotFinderSettings
from .tables import SpotTable

__all__ = ["MIN_INDEXED_FRACTION", "MIN_INDEXED_SPOTS", "ImageWorker", "IndexingSettings", "Plan", "RotationModel",
           "StageSettings", "accept_indexing"]  # fmt: skip

MIN_INDEXED_SPOTS = 5
"""An image counts as indexed when at least this many spots ..."""
MIN_INDEXED_FRACTION = 0.2
"""... and at least this fraction of its spots are indexed."""
INDEX_TOLERANCE = 0.1
"""A spot is indexed when every |h - round(h)| is below this (fractional Miller index units)."""


def accept_indexing(n_indexed: int, n_spots: int) -> bool:
    return n_indexed >= MIN_INDEXED_SPOTS and n_indexed >= MIN_INDEXED_FRACTION * max(n_spots, 1)


@dataclass(frozen=True)
class IndexingSettings:
    """Indexing of stills (plain, picklable)."""

    algorithm: str = "none"
    """ffbidx | fft | fftw | none (auto already resolved)."""
    cell: tuple[float, ...] | None = None
    space_group: int | None = None


@dataclass(frozen=True)
class StageSettings:
    """Settings of every stage of the per-image pass."""

    spots: SpotFinderSettings = field(default_factory=SpotFinderSettings)
    indexing: IndexingSettings = field(default_factory=IndexingSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    prediction: PredictionSettings = field(default_factory=PredictionSettings)
    integration: IntegrationSettings = field(default_factory=IntegrationSettings)
    pixelrefine: object | None = None
    """``-r pixelrefine``: :class:`jfjoch.pixelrefine.PixelRefineSettings` (stills), else None."""


@dataclass(frozen=True)
class RotationModel:
    """The sweep lattice the rotation pass processes every image against."""

    A0: np.ndarray
    """Crystal at ω = 0: columns a*, b*, c* (1/Å), lab frame (refined)."""
    system: str
    """Metric system the per-image refinement keeps."""
    mosaicity_deg: float
    """Gaussian sigma of the mosaic spread used for the partialities (degrees)."""
    first_image: int
    last_image: int
    start_number: int | None = None
    """Single-pass mode: images before this one are not indexed (the lattice was not known yet)."""


@dataclass(frozen=True)
class Plan:
    """Everything the per-image worker needs (picklable)."""

    experiment: Experiment
    """The geometry the images are processed with (rotation: refined on the sweep)."""
    stages: StageSettings
    rotation: RotationModel | None = None


class ImageWorker:
    """Processes single images against a plan. Thread-safe after construction; picklable (as its plan)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        exp = plan.experiment
        self.spot_finder = SpotFinder(exp, plan.stages.spots)
        self.azint = AzimuthalIntegrator(exp)
        # spots + azimuthal integration + pixel statistics in one pass over the frame (decode included
        # when the dataset hands out raw chunks); the same results as the two stages above
        self.frame_pass = FramePass(self.spot_finder, self.azint)
        self.statistics = StatisticsCalculator(self.azint.q)
        self._buffers = threading.local()  # each thread decodes into its own image (no page faults per frame)
        self.predictor: RotationPredictor | None = None
        if plan.rotation is not None:
            r = plan.rotation
            self.predictor = RotationPredictor(exp, r.A0, r.mosaicity_deg, r.first_image, r.last_image,
                                               plan.stages.prediction)  # fmt: skip

    def __reduce__(self):
        return (ImageWorker, (self.plan,))

    # ------------------------------------------------------------------------------------ entry points
    def run(self, dataset, number: int) -> ImageResult:
        """Read image ``number`` from an open dataset and process it; a corrupt frame becomes a failed
        result carrying the decoder's message."""
        try:
            raw = dataset.read_chunk(number) if hasattr(dataset, "read_chunk") else None
            if raw is None:
                image = dataset.read_image(number)
                frame = self.frame_pass.run(image)
            else:  # decoded by the frame pass while it runs
                try:
                    image, frame = self.frame_pass.run_chunk(raw, out=getattr(self._buffers, "image", None))
                    self._buffers.image = image  # the result keeps nothing of the image
                except CorruptFrameError as e:
                    raise CorruptFrameError(f"image {number}: {e}") from e
        except CorruptFrameError as e:
            return ImageResult(number=number, ok=False, error=str(e))
        return self._process(number, image, frame)

    def process(self, number: int, image: np.ndarray) -> ImageResult:
        """All stages for one image (ny, nx) int32."""
        return self._process(number, image, self.frame_pass.run(image))

    def _process(self, number: int, image: np.ndarray, frame: FrameResult) -> ImageResult:
        sl = frame.spots
        spots = SpotTable(x=sl.x, y=sl.y, intensity=sl.intensity, d=sl.d, ice_ring=sl.ice_ring)
        stats = self.statistics.compute(sl, frame.profile, frame.count).as_dict()
        r = ImageResult(number=number, spots=spots, profile=np.asarray(frame.profile, np.float32), stats=stats)
        if self.plan.rotation is not None:
            self._rotation_image(r, image)
        elif self.plan.stages.indexing.algorithm != "none":
            self._still(r, image)
        return r

    # ------------------------------------------------------------------------------------ stills
    def _still(self, r: ImageResult, image: np.ndarray) -> None:
        from .index import index_reciprocal

        st = self.plan.stages
        exp = self.plan.experiment
        if r.n_spots < MIN_INDEXED_SPOTS:
            return
        xy = r.spots.xy
        s = exp.pixels_to_recip(xy)
        ix = st.indexing
        # the C++ refinement below keeps the cell in its lattice metric; without it, index_reciprocal does
        res = index_reciprocal(s, cell=ix.cell, space_group=ix.space_group, method=ix.algorithm,
                               constrain_cell=st.refine.mode == "none")
        if not res.ok or not accept_indexing(int(res.indexed.sum()), r.n_spots):
            return
        system = cell_system(ix.space_group, res.bravais)
        ind = np.asarray(res.indexed, bool)
        ref = refine_still(exp, res.lattice, xy[ind], res.hkl[ind], system, st.refine)
        exp_i, A = ref.experiment, ref.A
        # re-index every spot with the refined geometry and crystal
        s_i = exp_i.pixels_to_recip(xy)
        h = s_i @ np.linalg.inv(A).T
        hkl = np.rint(h).astype(np.int32)
        indexed = np.all(np.abs(h - hkl) < INDEX_TOLERANCE, axis=1) & np.any(hkl != 0, axis=1)
        if not accept_indexing(int(indexed.sum()), r.n_spots):
            return
        r.spots = r.spots.with_indexed(indexed)
        r.indexed = True
        r.lattice = np.linalg.inv(A)
        r.cell = cell_from_lattice(r.lattice)
        r.bravais = res.bravais
        r.refine_rms_px = ref.rms_px
        if ref.mode == "beam_and_lattice":
            r.refined_beam = ref.beam
        _rms, R0 = profile_radius_from_spots(exp_i, A, hkl[indexed], st.prediction)
        r.profile_radius = R0
        pred = predict_still(exp_i, A, R0, st.prediction)
        r.reflections, r.counts, r.profile_width = integrate(
            image, exp_i, pred, st.integration, image_number=r.number, indexed_hkl=hkl[indexed],
            pixelrefine=st.pixelrefine,
        )
        pr = r.counts.pixelrefine
        if pr is not None and pr.ok:
            r.pixelrefine = (pr.scale, pr.b_factor, pr.width_px, pr.partiality_width)

    # ------------------------------------------------------------------------------------ rotation
    def _rotation_image(self, r: ImageResult, image: np.ndarray) -> None:
        from .rotation import assign_rotation_image

        rot = self.plan.rotation
        st = self.plan.stages
        exp = self.plan.experiment
        if rot.start_number is not None and r.number < rot.start_number:
            return
        A0_i = rot.A0
        if r.n_spots:
            xy = r.spots.xy
            a = assign_rotation_image(rot.A0, xy, r.number, exp)
            if a.indexed.sum() >= MIN_INDEXED_SPOTS:
                A0_i = refine_rotation_image(exp, rot.A0, r.number, xy[a.indexed], a.hkl[a.indexed], rot.system,
                                             st.refine)  # fmt: skip
                a = assign_rotation_image(A0_i, xy, r.number, exp)
            r.spots = r.spots.with_indexed(a.indexed)
            indexed_hkl = a.hkl[a.indexed]
        else:
            indexed_hkl = np.zeros((0, 3), np.int32)
        if accept_indexing(r.n_indexed, r.n_spots):
            r.indexed = True
        gon = exp.goniometer
        A_mid = rotation_matrix(gon.axis, float(gon.angle_mid_deg(r.number))) @ A0_i
        r.lattice = np.linalg.inv(A_mid)
        r.cell = cell_from_lattice(r.lattice)
        if not r.indexed:
            r.lattice, r.cell = None, None
        r.mosaicity = rot.mosaicity_deg
        pred = self.predictor.predict(r.number, A0_i)
        r.reflections, r.counts, r.profile_width = integrate(
            image, exp, pred, st.integration, image_number=r.number, indexed_hkl=indexed_hkl
        )
