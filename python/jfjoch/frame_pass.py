"""The per-frame pass: decode + spot finder + azimuthal integration + pixel statistics of one frame in one
sweep over its rows (``jfjoch._core``, csrc/frame; docs/frame_pass.md).

The results are those of the separate stages for the same experiment and settings:

* the spots and the image statistics of :meth:`jfjoch.spots.SpotFinder.find`, bit for bit;
* the profile and pixel counts of :meth:`jfjoch.azint.AzimuthalIntegrator.integrate_with_counts`: the
  same counts, the same means up to the rounding of double sums (the pass adds the corrected values in
  another, fixed order).

:meth:`FramePass.run_chunk` also decodes a raw bitshuffle+LZ4/Zstd chunk (a :class:`~jfjoch.io.nxmx.RawChunk`,
as :meth:`jfjoch.io.nxmx.NXmxDataset.read_chunk` returns it) into the int32 image, block by block, while
the rows are consumed: each row is decoded into cache, used there, and written to the image once.

Thread safety: a :class:`FramePass` holds only read-only data; several threads may call it at once (the
kernel releases the GIL). It pickles as its stages (the map is rebuilt where it is unpickled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from .azint import AzimuthalIntegrator
from .backend import resolve_backend
from .errors import CorruptFrameError, UsageError
from .io.nxmx import RawChunk, to_int32
from .spots import SpotFinder, SpotList

__all__ = ["FramePass", "FrameResult", "RawChunk"]


@dataclass(frozen=True)
class FrameResult:
    """Spots, azimuthal profile and pixel statistics of one frame."""

    spots: SpotList
    """As :meth:`jfjoch.spots.SpotFinder.find` (``max_value``, ``n_saturated``, ``n_error`` included)."""
    profile: np.ndarray
    """Mean corrected intensity per bin, photons/pixel, NaN in empty bins (float64, (B,))."""
    count: np.ndarray
    """Valid pixels per bin (int64, (B,))."""


class FramePass:
    """The per-frame pass of one spot finder and one azimuthal integrator (same experiment)."""

    def __init__(self, spot_finder: SpotFinder, integrator: AzimuthalIntegrator, backend: str = "auto") -> None:
        det = spot_finder.experiment.detector
        if integrator.shape != (det.ny, det.nx):
            raise UsageError(f"frame pass: the integrator's detector {integrator.shape} differs from the spot "
                             f"finder's {(det.ny, det.nx)}")  # fmt: skip
        self.spot_finder = spot_finder
        self.integrator = integrator
        self.backend = resolve_backend(backend, "frame pass")
        self.shape = (det.ny, det.nx)
        self._settings = spot_finder.settings.to_core()
        self._map = _core.FrameMap(spot_finder.flags, integrator.bin_map, integrator.weight, integrator.n_bins,
                                   spot_finder.experiment.core)  # fmt: skip

    def __reduce__(self):
        return (FramePass, (self.spot_finder, self.integrator, self.backend))

    @property
    def map_nbytes(self) -> int:
        """Bytes of the per-experiment map (runs of bins and flags, float32 weights)."""
        return int(self._map.nbytes)

    def _result(self, t: tuple) -> FrameResult:
        x, y, inten, npx, d, ice, st, mean, count = t
        spots = SpotList(x=x, y=y, intensity=inten, n_pixels=npx, d=d, ice_ring=ice,
                         max_value=int(st["max_value"]), n_saturated=int(st["n_saturated"]),
                         n_error=int(st["n_error"]), n_strong_pixels=int(st["n_strong_pixels"]))  # fmt: skip
        return FrameResult(spots=spots, profile=mean, count=count)

    def _args(self) -> tuple:
        return (self._map, self._settings, self.spot_finder.saturation, self.integrator.saturation, self.backend)

    def run(self, image: np.ndarray) -> FrameResult:
        """The pass over one (ny, nx) image. int32 is used as is (INT32_MIN = error value); other integer
        types are converted by the reader's rule (:func:`jfjoch.io.nxmx.to_int32`)."""
        img = np.asarray(image)
        if img.shape != self.shape:
            raise UsageError(f"frame pass: image has shape {img.shape}, expected {self.shape}")
        if img.dtype != np.int32:
            if not np.issubdtype(img.dtype, np.integer):
                raise UsageError(f"frame pass: the image must hold integers (photon counts), not {img.dtype}")
            img = to_int32(img)
        return self._result(_core.frame_pass(np.ascontiguousarray(img), *self._args()))

    def run_chunk(self, chunk: RawChunk, out: np.ndarray | None = None) -> tuple[np.ndarray, FrameResult]:
        """Decode one raw chunk into an int32 image (``out`` when given) and run the pass on it while
        decoding. Returns (image, result). A malformed chunk raises :class:`CorruptFrameError`."""
        if out is None:
            out = np.empty(self.shape, np.int32)
        elif out.shape != self.shape or out.dtype != np.int32 or not out.flags.c_contiguous:
            raise UsageError(f"frame pass: out must be a C-contiguous int32 array of shape {self.shape}")
        try:
            t = _core.frame_pass_chunk(chunk.data, int(chunk.codec), str(chunk.dtype), out, *self._args())
        except _core.CorruptChunkError as e:
            raise CorruptFrameError(f"corrupt chunk: {e}") from e
        return out, self._result(t)
