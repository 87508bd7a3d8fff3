"""jfjoch: offline processing of macromolecular X-ray diffraction data.

Spot finding, indexing, geometry refinement, integration and merging, with C++/CUDA kernels in
``jfjoch._core``. See README.md and docs/ for the command-line tools and the conventions.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

# first, as the io modules that read and write scaling results import jfjoch.scale.data
from . import scale  # a callable subpackage: jfjoch.scale(paths, **options) and jfjoch.scale.<module>
from .errors import CorruptFrameError, InputError, JfjochError, ProcessingError, UsageError

# `integrate` and `refine` name both a function and its module: bound here, before anything imports the
# module (which would set the package attribute to the module), so that jfjoch.integrate(...) stays the function.
from .integrate import integrate
from .refine import refine
from .scale import ScaleInput, ScaleResult, scale_and_merge, write_scale_outputs

# Everything else is imported on first use (PEP 562), so that `jfjoch_scale` does not load the image
# pipeline (hdf5plugin, the frame pass, the indexers): name -> module that defines it.
_LAZY_EXPORTS = {
    "AzimuthalIntegrator": "azint",
    "AzimuthalProfile": "azint",
    "azimuthal_integration": "azint",
    "Beam": "experiment",
    "Crystal": "experiment",
    "Detector": "experiment",
    "Experiment": "experiment",
    "Goniometer": "experiment",
    "ImageStatistics": "image_stats",
    "SpotArrays": "image_stats",
    "compute_image_statistics": "image_stats",
    "IndexResult": "index",
    "index_reciprocal": "index",
    "IntegrationSettings": "integrate",
    "ProcessOptions": "options",
    "ScaleOptions": "options",
    "process": "pipeline",
    "Predicted": "predict",
    "PredictionSettings": "predict",
    "RotationPredictor": "predict",
    "predict_still": "predict",
    "RefineResult": "refine",
    "RefineSettings": "refine",
    "ImageResult": "results",
    "ImageSummary": "results",
    "IndexingSummary": "results",
    "IntegrationCounts": "results",
    "ProcessResult": "results",
    "SpotFinder": "spots",
    "SpotFinderSettings": "spots",
    "SpotList": "spots",
    "find_spots": "spots",
    "ReflectionFlag": "tables",
    "ReflectionTable": "tables",
    "SpotTable": "tables",
}


def __getattr__(name: str) -> object:
    """Import a lazily exported name, or a submodule (``jfjoch.scale``, ``jfjoch.pipeline``), on first use."""
    module = _LAZY_EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(f".{module}", __name__), name)
    elif name.isidentifier() and not name.startswith("__") and find_spec(f"{__name__}.{name}") is not None:
        value = import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_EXPORTS})


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
