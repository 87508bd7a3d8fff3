"""Read PILATUS miniCBF images (optionally .bz2/.gz) with the dataset interface of :mod:`jfjoch.io.nxmx`.

Byte-offset decoding is done by fabio. Geometry comes from the miniCBF header of the first file:
``Pixel_size`` (m), ``Detector_distance`` (m), ``Beam_xy`` (pixels, measured from the outer corner of the
first pixel, as DIALS reads it: we subtract 0.5 to put pixel centres at integers), ``Wavelength`` (Å),
``Count_cutoff`` (saturation), ``Polarization``, sensor thickness. Fast axis = +x, slow = +y, beam +z.
Negative pixels (module gaps -1, bad pixels -2) become INT32_MIN (invalid).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.experiment import Beam, Detector, Experiment, Goniometer
from jfjoch.io.nxmx import INT32_MIN, ImageIndexError, MissingFieldError

__all__ = ["CbfDataset", "open_cbf", "parse_minicbf_header"]

_NUM = r"([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|nan|inf(?:inity)?))"
"""A header number: also nan / inf, so that such a value is reported as bad rather than as missing."""

# header key -> the header's own name, for messages
_NAMES = {"pixel_size_m": "Pixel_size", "distance_m": "Detector_distance", "beam_xy_px": "Beam_xy",
          "wavelength_A": "Wavelength", "count_cutoff": "Count_cutoff", "polarization": "Polarization",
          "thickness_m": "thickness", "start_angle_deg": "Start_angle",
          "angle_increment_deg": "Angle_increment"}  # fmt: skip


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
        m = re.search(pat, text, re.IGNORECASE)
        if m:
            try:
                vals = tuple(float(g) for g in m.groups())
            except ValueError:
                raise InputError(f"miniCBF header: {_NAMES[key]} is not a number ({m.group(0)!r})") from None
            h[key] = vals if len(vals) > 1 else vals[0]
    return h


def _check_raw_header(path: Path) -> None:
    """Parse the header text of a (maybe compressed) CBF file without fabio: an InputError naming the bad
    field when the header is what makes the file unreadable; nothing otherwise."""
    import bz2
    import gzip

    try:
        raw = path.read_bytes()
        if path.name.lower().endswith(".bz2"):
            raw = bz2.BZ2Decompressor().decompress(raw, 65536)
        elif path.name.lower().endswith(".gz"):
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(65536)
    except (OSError, EOFError, ValueError):
        return
    text = raw[:65536].split(b"\x0c\x1a\x04\xd5")[0].decode("latin-1")
    try:
        parse_minicbf_header(text)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


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
        try:
            first = self._open(0)
        except CorruptFrameError as e:
            # the first file carries the geometry: a file that cannot be read is an input error; say which
            # header field is at fault when that is why
            _check_raw_header(self.path)
            raise InputError(f"{self.path}: not a readable miniCBF image ({e.__cause__ or e})") from None
        self.ny, self.nx = (int(x) for x in first.data.shape)
        try:
            header = parse_minicbf_header(str(first.header.get("_array_data.header_contents", "")))
        except InputError as e:
            raise InputError(f"{self.path}: {e}") from None
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
        def check(key: str, value: float, positive: bool = True) -> float:
            if not math.isfinite(value) or (positive and value <= 0):
                need = "a positive finite number" if positive else "a finite number"
                raise InputError(f"{self.path}: miniCBF header {_NAMES[key]} must be {need} (got {value:g})")
            return float(value)

        psx, psy = (check("pixel_size_m", v) for v in h["pixel_size_m"])
        if not np.isclose(psx, psy):
            raise InputError(f"{self.path}: non-square pixels are not supported (Pixel_size {psx:g} m x {psy:g} m)")
        pixel_mm = psx * 1e3
        check("distance_m", h["distance_m"])
        check("wavelength_A", h["wavelength_A"])
        bx, by = (check("beam_xy_px", v, positive=False) - 0.5 for v in h["beam_xy_px"])  # corner -> pixel centre
        for key in ("thickness_m", "polarization", "start_angle_deg", "angle_increment_deg"):
            if key in h:
                check(key, h[key], positive=False)
        if "count_cutoff" in h:
            check("count_cutoff", h["count_cutoff"])
        if not 0.0 <= float(h.get("polarization", 0.99)) <= 1.0:
            raise InputError(f"{self.path}: miniCBF header Polarization must be in [0, 1] (got {h['polarization']:g})")
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
