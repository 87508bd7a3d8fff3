"""Read PILATUS miniCBF images (optionally .bz2/.gz) with the dataset interface of :mod:`jfjoch.io.nxmx`.

Byte-offset decoding is done by fabio. Geometry comes from the miniCBF header of the first file:
``Pixel_size`` (m), ``Detector_distance`` (m), ``Beam_xy`` (pixels, measured from the outer corner of the
first pixel, as DIALS reads it: we subtract 0.5 to put pixel centres at integers), ``Wavelength`` (Å),
``Count_cutoff`` (saturation), ``Polarization``, sensor thickness. Fast axis = +x, slow = +y, beam +z.
Negative pixels (module gaps -1, bad pixels -2) become INT32_MIN (invalid).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.experiment import Beam, Detector, Experiment, Goniometer
from jfjoch.io.nxmx import INT32_MIN, ImageIndexError, MissingFieldError

__all__ = ["CbfDataset", "open_cbf", "parse_minicbf_header"]

_NUM = r"([-+0-9.eE]+)"


def parse_minicbf_header(text: str) -> dict[str, object]:
    """Parse the PILATUS '# Key value' header lines into SI-ish values (m, Å, pixels, degrees)."""
    h: dict[str, object] = {}
    pats = {
        "pixel_size_m": rf"Pixel_size\s+{_NUM}\s*m\s*x\s*{_NUM}\s*m",
        "distance_m": rf"Detector_distance\s+{_NUM}\s*m",
        "beam_xy_px": rf"Beam_xy\s*\(\s*{_NUM}\s*,\s*{_NUM}\s*\)\s*pixels",
        "wavelength_A": rf"Wavelength\s+{_NUM}\s*A",
        "count_cutoff": rf"Count_cutoff\s+{_NUM}",
        "polarization": rf"Polarization\s+{_NUM}",
        "thickness_m": rf"thickness\s+{_NUM}\s*m",
        "start_angle_deg": rf"Start_angle\s+{_NUM}\s*deg",
        "angle_increment_deg": rf"Angle_increment\s+{_NUM}\s*deg",
    }
    for key, pat in pats.items():
        m = re.search(pat, text)
        if m:
            vals = tuple(float(g) for g in m.groups())
            h[key] = vals if len(vals) > 1 else vals[0]
    return h


class CbfDataset:
    """A list of miniCBF files, one image each. ``read_image`` is thread-safe (no shared state)."""

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        import fabio

        self._fabio = fabio
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no CBF files given")
        for p in self.paths:
            if not p.exists():
                raise InputError(f"file not found: {p}")
        self.path = self.paths[0]
        first = self._open(0)
        self.ny, self.nx = (int(x) for x in first.data.shape)
        header = parse_minicbf_header(str(first.header.get("_array_data.header_contents", "")))
        self.header = header
        self.experiment = self._experiment(header)
        self.n_images = len(self.paths)
        self.image_numbers = np.arange(self.n_images, dtype=np.int64)

    def _open(self, i: int):
        try:
            return self._fabio.open(str(self.paths[i]))
        except Exception as e:  # fabio raises many types for damaged files
            raise CorruptFrameError(f"image {i}: cannot read {self.paths[i]} ({e})") from e

    def _experiment(self, h: dict[str, object]) -> Experiment:
        for key, name in (("pixel_size_m", "Pixel_size"), ("distance_m", "Detector_distance"),
                          ("beam_xy_px", "Beam_xy"), ("wavelength_A", "Wavelength")):  # fmt: skip
            if key not in h:
                raise MissingFieldError(f"{self.path}: miniCBF header lacks {name}")
        psx, psy = h["pixel_size_m"]
        if not np.isclose(psx, psy):
            raise InputError(f"{self.path}: non-square pixels are not supported")
        pixel_mm = psx * 1e3
        bx, by = (v - 0.5 for v in h["beam_xy_px"])  # corner origin -> pixel-centre origin
        extra = {}
        if "thickness_m" in h:
            extra["sensor_thickness_mm"] = float(h["thickness_m"]) * 1e3
        det = Detector.from_beam_center(
            self.nx, self.ny, pixel_mm, float(h["distance_m"]) * 1e3, bx, by,
            saturation=int(h["count_cutoff"]) if "count_cutoff" in h else None, **extra,
        )  # fmt: skip
        pol = float(h.get("polarization", 0.99))
        beam = Beam(wavelength_A=float(h["wavelength_A"]), polarization_fraction=pol)
        gonio = None
        if float(h.get("angle_increment_deg", 0.0)) != 0.0:
            gonio = Goniometer(axis=np.array([1.0, 0.0, 0.0]), start_deg=float(h["start_angle_deg"]),
                               increment_deg=float(h["angle_increment_deg"]))  # fmt: skip
        return Experiment(beam=beam, detector=det, goniometer=gonio)

    def __enter__(self) -> CbfDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between reads; kept for the dataset interface."""

    def __len__(self) -> int:
        return self.n_images

    def read_image(self, i: int) -> np.ndarray:
        """Image i as int32 (ny, nx); negative pixels (gaps, bad pixels) -> INT32_MIN."""
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_images):
            raise ImageIndexError(f"image index {i} out of range [0, {self.n_images})")
        data = np.asarray(self._open(int(i)).data)
        if data.shape != (self.ny, self.nx):
            raise CorruptFrameError(f"image {i}: shape {data.shape}, expected {(self.ny, self.nx)}")
        out = data.astype(np.int32, copy=True)
        out[data < 0] = INT32_MIN
        return out

    def stored_spots(self, i: int) -> None:
        """CBF files hold no spot lists."""
        return None


def open_cbf(paths: str | Path | Sequence[str | Path]) -> CbfDataset:
    """Open one or more miniCBF files (one image each, in the given order)."""
    return CbfDataset(paths)
