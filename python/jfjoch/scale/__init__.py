"""Scaling and merging of integrated reflections (docs/scaling.md).

``jfjoch.scale(paths, **options) -> ScaleResult`` calls :func:`jfjoch.scale.api.scale`: this subpackage is
callable (its module class defines ``__call__``), so ``jfjoch.scale.stats`` etc. stay importable.

* :func:`scale_and_merge` (in memory; the pipeline's `-M`), :class:`ScaleInput`, :class:`ScaleResult`;
* :func:`write_scale_outputs`: merged MTZ/mmCIF/SHELX, unmerged MTZ, statistics JSON, report, scale.dat;
* :func:`scale`: files in, files out (`jfjoch_scale`; exported as ``jfjoch.scale``).

Modules: symmetry (gemmi), model (partiality, fulls), solve (per-image G/B), merge (error model,
rejection), stats (merging statistics), ambiguity, engine (the order of work), report, outputs, api.
"""

from __future__ import annotations

import sys
import types

from .api import read_inputs, scale
from .data import (
    ErrorModel,
    ImageScales,
    ImageStats,
    MergedReflections,
    ScaledObservations,
    ScaleInput,
    ScaleResult,
    ShellStatistics,
)
from .engine import ReferenceData, scale_and_merge
from .outputs import write_scale_outputs

__all__ = [
    "ErrorModel",
    "ImageScales",
    "ImageStats",
    "MergedReflections",
    "ReferenceData",
    "ScaleInput",
    "ScaleResult",
    "ScaledObservations",
    "ShellStatistics",
    "read_inputs",
    "scale",
    "scale_and_merge",
    "write_scale_outputs",
]


class _CallableModule(types.ModuleType):
    """The jfjoch.scale package; calling it runs :func:`jfjoch.scale.api.scale`."""

    def __call__(self, paths, options=None, **kwargs) -> ScaleResult:
        return scale(paths, options, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
