"""Typed column tables passed between the stages: spots of one image, integrated reflections.

Each table is a dataclass of equal-length numpy columns with fixed dtypes (the dtypes of the `_process.h5`
datasets). Pixel coordinates have the centre of pixel (column i, row j) at (i, j); see docs/conventions.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

import numpy as np

__all__ = ["ReflectionFlag", "ReflectionTable", "SpotTable"]


class _Columns:
    """Shared behaviour of column tables: length, selection, concatenation, column dict."""

    DTYPES: ClassVar[dict[str, np.dtype]] = {}

    def __post_init__(self) -> None:
        n = None
        for name, dt in self.DTYPES.items():
            col = np.asarray(getattr(self, name), dtype=dt)
            if col.ndim != 1:
                col = col.reshape(-1)
            object.__setattr__(self, name, col)
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"{type(self).__name__}: column {name} has {len(col)} rows, expected {n}")

    def __len__(self) -> int:
        first = next(iter(self.DTYPES))
        return len(getattr(self, first))

    def select(self, index):
        """Rows selected by a boolean mask or an index array."""
        return replace(self, **{k: getattr(self, k)[index] for k in self.DTYPES})

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, k).nbytes for k in self.DTYPES))

    def columns(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.DTYPES}

    @classmethod
    def empty(cls):
        return cls(**{k: np.zeros(0, dt) for k, dt in cls.DTYPES.items()})

    @classmethod
    def concat(cls, tables):
        tables = list(tables)
        if not tables:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(t, k) for t in tables]) for k in cls.DTYPES})


@dataclass(frozen=True, eq=False)
class SpotTable(_Columns):
    """Spots of one image (from the spot finder), with the indexing outcome per spot."""

    x: np.ndarray
    """Centroid, fast axis (px)."""
    y: np.ndarray
    """Centroid, slow axis (px)."""
    intensity: np.ndarray
    """Sum of the raw pixel values of the spot (photons, not background-subtracted)."""
    d: np.ndarray
    """Resolution of the centroid (Å)."""
    ice_ring: np.ndarray
    """On a hexagonal-ice ring."""
    indexed: np.ndarray = field(default=None)
    """Indexed by the image's lattice."""

    DTYPES: ClassVar[dict[str, np.dtype]] = {
        "x": np.dtype(np.float32),
        "y": np.dtype(np.float32),
        "intensity": np.dtype(np.float32),
        "d": np.dtype(np.float32),
        "ice_ring": np.dtype(bool),
        "indexed": np.dtype(bool),
    }

    def __post_init__(self) -> None:
        if self.indexed is None:
            object.__setattr__(self, "indexed", np.zeros(len(np.asarray(self.x)), bool))
        super().__post_init__()

    @property
    def xy(self) -> np.ndarray:
        """(n, 2) float64 centroids (x, y), pixels."""
        return np.stack([self.x, self.y], 1).astype(np.float64)

    def with_indexed(self, indexed: np.ndarray) -> SpotTable:
        return replace(self, indexed=np.asarray(indexed, bool))


class ReflectionFlag(enum.IntFlag):
    """Bits of ``/entry/reflections/flags`` (docs/formats.md). Bits 0-15 come from the integration kernel,
    16-31 from the pipeline."""

    SUMMED = 1 << 0
    """Summation integration succeeded."""
    PROFILE_FITTED = 1 << 1
    """2-D profile fitting succeeded; ``I`` is the profile-fitted intensity when profile fitting is chosen."""
    SATURATED = 1 << 2
    """A saturated pixel lies in the signal disc (the intensity is an underestimate)."""
    OVERLAP = 1 << 3
    """The signal disc overlaps another prediction's signal disc."""
    MASKED = 1 << 4
    """Dropped: an invalid pixel in the signal disc (never written)."""
    FEW_BACKGROUND = 1 << 5
    """Dropped: too few background pixels (never written)."""
    EDGE = 1 << 6
    """Dropped: the signal disc leaves the detector (never written)."""
    PROFILE_REFERENCE = 1 << 7
    """Used to learn the image's profiles."""
    PROFILE_FAILED = 1 << 8
    """Profile fitting was asked for but not possible; ``I`` is the summation intensity."""
    PARTIAL = 1 << 16
    """Rotation: the reflection's rocking curve extends beyond this image (partiality < 0.99)."""
    INDEXED_SPOT = 1 << 17
    """A spot found on this image was indexed to this reflection."""
    NEAR_SPINDLE = 1 << 18
    """Rotation: zeta = 1/L below 0.05 (the reflection lies near the rotation axis): its rocking curve spans
    many degrees and neither its partiality nor its Lorentz factor can be trusted; merging leaves it out."""


@dataclass(frozen=True, eq=False)
class ReflectionTable(_Columns):
    """Integrated observations: one row per reflection per image (``/entry/reflections`` of SPEC.md).

    The model is I ≈ G · partiality · lp · exp(−2B s²) · I_true (s = sin θ / λ): ``I`` is NOT divided by
    the partiality or the Lorentz-polarisation factor.
    """

    image: np.ndarray
    """Image number in the input file."""
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray
    I: np.ndarray
    """Background-subtracted photons on this image."""
    sigma: np.ndarray
    """Standard uncertainty of ``I`` (photons)."""
    x: np.ndarray
    """Predicted position, fast axis (px)."""
    y: np.ndarray
    """Predicted position, slow axis (px)."""
    d: np.ndarray
    """Resolution (Å)."""
    phi: np.ndarray
    """Rotation data: angle of diffraction (degrees); NaN for stills."""
    partiality: np.ndarray
    """Fraction of the full reflection recorded on this image (model)."""
    lp: np.ndarray
    """Lorentz × polarisation factor (multiplies I_true)."""
    background: np.ndarray
    """Background under the reflection (photons/pixel)."""
    flags: np.ndarray
    """:class:`ReflectionFlag` bits."""

    DTYPES: ClassVar[dict[str, np.dtype]] = {
        "image": np.dtype(np.int64),
        "h": np.dtype(np.int32),
        "k": np.dtype(np.int32),
        "l": np.dtype(np.int32),
        "I": np.dtype(np.float32),
        "sigma": np.dtype(np.float32),
        "x": np.dtype(np.float32),
        "y": np.dtype(np.float32),
        "d": np.dtype(np.float32),
        "phi": np.dtype(np.float32),
        "partiality": np.dtype(np.float32),
        "lp": np.dtype(np.float32),
        "background": np.dtype(np.float32),
        "flags": np.dtype(np.uint32),
    }
    UNITS: ClassVar[dict[str, str]] = {
        "I": "photons",
        "sigma": "photons",
        "x": "pixel",
        "y": "pixel",
        "d": "angstrom",
        "phi": "degree",
        "background": "photons/pixel",
    }

    @property
    def hkl(self) -> np.ndarray:
        """(n, 3) int32 Miller indices."""
        return np.stack([self.h, self.k, self.l], 1)

    def sorted(self) -> ReflectionTable:
        """Rows sorted by image, then h, k, l (the file's order)."""
        order = np.lexsort((self.l, self.k, self.h, self.image))
        return self.select(order)


def _check_dtypes() -> None:
    for cls in (SpotTable, ReflectionTable):
        names = [f.name for f in fields(cls)]
        assert names == list(cls.DTYPES), cls


_check_dtypes()
