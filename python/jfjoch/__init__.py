"""jfjoch: offline processing of macromolecular X-ray diffraction data.

Spot finding, indexing, geometry refinement, integration and merging, with C++/CUDA kernels in
``jfjoch._core``. See README.md and docs/ for the command-line tools and the conventions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import scale  # a callable subpackage: jfjoch.scale(paths, **options) and jfjoch.scale.<module>
from .azint import AzimuthalIntegrator, AzimuthalProfile, azimuthal_integration
from .errors import CorruptFrameError, InputError, JfjochError, ProcessingError, UsageError
from .experiment import Beam, Crystal, Detector, Experiment, Goniometer
from .image_stats import ImageStatistics, SpotArrays, compute_image_statistics
from .index import IndexResult, index_reciprocal
from .integrate import IntegrationSettings, integrate
from .options import ProcessOptions, ScaleOptions
from .pipeline import process
from .predict import Predicted, PredictionSettings, RotationPredictor, predict_still
from .refine import RefineResult, RefineSettings, refine
from .results import ImageResult, ImageSummary, IndexingSummary, IntegrationCounts, ProcessResult
from .scale import ScaleInput, ScaleResult, scale_and_merge, write_scale_outputs
from .spots import SpotFinder, SpotFinderSettings, SpotList, find_spots
from .tables import ReflectionFlag, ReflectionTable, SpotTable

try:
    __version__ = version("jfjoch")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = [
    "AzimuthalIntegrator",
    "AzimuthalProfile",
    "Beam",
    "CorruptFrameError",
    "Crystal",
    "Detector",
    "Experiment",
    "Goniometer",
    "ImageResult",
    "ImageStatistics",
    "ImageSummary",
    "IndexResult",
    "IndexingSummary",
    "InputError",
    "IntegrationCounts",
    "IntegrationSettings",
    "JfjochError",
    "Predicted",
    "PredictionSettings",
    "ProcessOptions",
    "ProcessResult",
    "ProcessingError",
    "RefineResult",
    "RefineSettings",
    "ReflectionFlag",
    "ReflectionTable",
    "RotationPredictor",
    "ScaleInput",
    "ScaleOptions",
    "ScaleResult",
    "SpotArrays",
    "SpotFinder",
    "SpotFinderSettings",
    "SpotList",
    "SpotTable",
    "UsageError",
    "__version__",
    "azimuthal_integration",
    "compute_image_statistics",
    "find_spots",
    "index_reciprocal",
    "integrate",
    "predict_still",
    "process",
    "refine",
    "scale",
    "scale_and_merge",
    "write_scale_outputs",
]
