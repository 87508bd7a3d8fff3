"""Read PILATUS miniCBF image series (``.cbf``, ``.cbf.bz2``, ``.cbf.gz``) with the dataset interface of
:mod:`jfjoch.io.nxmx`. Rules and errors: docs/io.md.

A series is a list of files (one image each, in the given order) or a template whose single run of ``#``
stands for the zero-padded image number (``th_####.cbf`` matches ``th_0001.cbf`` ... ``th_0010.cbf``; the
numbers found must be consecutive).

Reading one image (:meth:`CbfDataset.read_image`, thread-safe, everything outside the GIL but the header
parse): read the file, decompress bz2/gzip (chosen by the file's first bytes; Python's bz2/zlib release the
GIL), parse the CIF/MIME header in Python, check the ``Content-MD5`` when present, and decode the
``x-CBF_BYTE_OFFSET`` stream with ``jfjoch._core.cbf_byte_offset_decode`` (C++, GIL released) straight
into the int32 image. A damaged file raises :class:`~jfjoch.errors.CorruptFrameError` (the image is counted
as failed); a file whose image size or geometry differs from the first file's raises
:class:`~jfjoch.errors.InputError` naming the file and the field.

Geometry comes from the miniCBF header of the first file: ``Pixel_size`` (m), ``Detector_distance`` (m),
``Beam_xy`` (pixels, measured from the outer corner of the first pixel, as DIALS reads it: we subtract 0.5 to
put pixel centres at integers), ``Wavelength`` (Å), ``Count_cutoff`` (saturation), ``Polarization``, sensor
thickness. Fast axis = +x, slow = +y, beam +z. Negative pixels (module gaps -1, bad pixels -2) of signed
element types, and the all-ones value of unsigned ones, become INT32_MIN (invalid).
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import math
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.experiment import Beam, Detector, Experiment, Goniometer
from jfjoch.io.nxmx import ImageIndexError, MissingFieldError

__all__ = [
    "CBF_SUFFIXES",
    "CbfDataset",
    "expand_template",
    "is_cbf_name",
    "is_template",
    "open_cbf",
    "parse_minicbf_header",
]

CBF_SUFFIXES = (".cbf", ".cbf.bz2", ".cbf.gz")
"""File names the reader accepts (case-insensitive); the compression itself is told by the first bytes."""

BINARY_START = b"\x0c\x1a\x04\xd5"
"""The four bytes that open a CIF binary section's data (after its MIME header and a blank line)."""

ELEMENT_TYPES: dict[str, tuple[int, int, bool]] = {
    "signed 8-bit integer": (-(2**7), 2**7 - 1, True),
    "unsigned 8-bit integer": (0, 2**8 - 1, False),
    "signed 16-bit integer": (-(2**15), 2**15 - 1, True),
    "unsigned 16-bit integer": (0, 2**16 - 1, False),
    "signed 32-bit integer": (-(2**31), 2**31 - 1, True),
    "unsigned 32-bit integer": (0, 2**32 - 1, False),
}
"""X-Binary-Element-Type -> (min, max, signed). Signed: values < 0 are invalid; unsigned: max is invalid."""

_NUM = r"([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|nan|inf(?:inity)?))"
"""A header number: also nan / inf, so that such a value is reported as bad rather than as missing."""
_HEADER_PATTERNS = {
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
_HEADER_RES = {k: re.compile(p, re.IGNORECASE) for k, p in _HEADER_PATTERNS.items()}
_NAMES = {"pixel_size_m": "Pixel_size", "distance_m": "Detector_distance", "beam_xy_px": "Beam_xy",
          "wavelength_A": "Wavelength", "count_cutoff": "Count_cutoff", "polarization": "Polarization",
          "thickness_m": "thickness", "start_angle_deg": "Start_angle",
          "angle_increment_deg": "Angle_increment"}  # fmt: skip
"""Header key -> the header's own name, for messages."""

GEOMETRY_FIELDS = {
    "pixel_size_m": "Pixel_size",
    "distance_m": "Detector_distance",
    "beam_xy_px": "Beam_xy",
    "wavelength_A": "Wavelength",
    "count_cutoff": "Count_cutoff",
    "polarization": "Polarization",
    "thickness_m": "sensor thickness",
    "angle_increment_deg": "Angle_increment",
}
"""miniCBF header fields that must be the same in every file of a series (they make the Experiment)."""


def parse_minicbf_header(text: str) -> dict[str, object]:
    """Parse the PILATUS '# Key value' header lines into SI-ish values (m, Å, pixels, degrees)."""
    h: dict[str, object] = {}
    for key, rx in _HEADER_RES.items():
        m = rx.search(text)
        if m:
            try:
                vals = tuple(float(g) for g in m.groups())
            except ValueError:
                raise InputError(f"miniCBF header: {_NAMES[key]} is not a number ({m.group(0)!r})") from None
            h[key] = vals if len(vals) > 1 else vals[0]
    return h


# ------------------------------------------------------------------------------------------- file names
def is_cbf_name(path: str | Path) -> bool:
    """True if the file name ends with .cbf, .cbf.bz2 or .cbf.gz (any case)."""
    return Path(path).name.lower().endswith(CBF_SUFFIXES)


def is_template(path: str | Path) -> bool:
    """True if ``path`` is a series template: a CBF name with '#' in its file name that is not a file."""
    return "#" in Path(path).name and is_cbf_name(path) and not Path(path).is_file()


def _ranges(numbers: Sequence[int]) -> str:
    """'3, 5-7' for [3, 5, 6, 7]."""
    out: list[str] = []
    start = prev = None
    for n in [*numbers, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(out)


def expand_template(template: str | Path) -> tuple[list[Path], list[int]]:
    """The files of a template ``name_####.cbf[.bz2|.gz]`` in number order, and their numbers.

    The single run of '#' stands for the image number, zero-padded to the run's width (exactly that many
    digits). Raises InputError for a template without '#' or with several runs, one matching no file, and
    a gap in the numbers found (naming the missing numbers).
    """
    template = Path(template)
    name = template.name
    runs = re.findall(r"#+", name)
    if len(runs) != 1:
        what = "no '#'" if not runs else f"{len(runs)} runs of '#'"
        raise InputError(f"template {template}: {what}; write the image number as one run of '#' (e.g. th_####.cbf)")
    if not is_cbf_name(name):
        raise InputError(f"template {template}: not a miniCBF name ({', '.join(CBF_SUFFIXES)})")
    head, tail = name.split(runs[0])
    rx = re.compile(re.escape(head) + rf"(\d{{{len(runs[0])}}})" + re.escape(tail) + r"\Z")
    folder = template.parent
    try:
        entries = os.listdir(folder if str(folder) else ".")
    except OSError as e:
        raise InputError(f"template {template}: cannot list {folder} ({e.strerror})") from None
    found = sorted((int(m.group(1)), e) for e in entries if (m := rx.match(e)))
    if not found:
        raise InputError(f"template {template} matches no file")
    numbers = [n for n, _ in found]
    if numbers[-1] - numbers[0] + 1 != len(numbers):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        raise InputError(f"template {template}: images {numbers[0]}-{numbers[-1]} have a gap: "
                         f"{_ranges(missing)[:200]} missing")  # fmt: skip
    return [folder / e for _, e in found], numbers


# ------------------------------------------------------------------------------------------- one file
def _decompress(raw: bytes) -> bytes:
    """The file's bytes, bz2/gzip-decompressed when its first bytes say so (GIL released inside)."""
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return raw


def _head(raw: bytes, limit: int = 1 << 20) -> bytes:
    """The first bytes of the decompressed file, enough to hold its header (at most ``limit``)."""
    if raw[:3] == b"BZh":
        d = bz2.BZ2Decompressor()
        out = d.decompress(raw, max_length=1 << 16)
        while BINARY_START not in out and len(out) < limit and not d.eof and not d.needs_input:
            out += d.decompress(b"", max_length=1 << 16)
        return out
    if raw[:2] == b"\x1f\x8b":
        return zlib.decompressobj(wbits=31).decompress(raw, limit)
    return raw[:limit]


@dataclass(frozen=True)
class _Binary:
    """The MIME header of a CBF binary section (the fields the reader uses)."""

    start: int  # offset of the stream in the decompressed file
    size: int  # X-Binary-Size (bytes)
    nx: int  # X-Binary-Size-Fastest-Dimension
    ny: int  # X-Binary-Size-Second-Dimension
    element_type: str
    md5: str | None


_MIME_FIELD = re.compile(rb"^\s*([A-Za-z][A-Za-z0-9-]*)\s*[:=]\s*(.*?)\s*;?\s*$", re.M)


def _parse_binary(data: bytes) -> tuple[str, _Binary]:
    """(header text, binary-section fields) of a decompressed miniCBF file. Raises ValueError naming what is
    missing or unsupported."""
    sec = data.find(b"--CIF-BINARY-FORMAT-SECTION--")
    if sec < 0:
        raise ValueError("no CIF binary section (--CIF-BINARY-FORMAT-SECTION--)")
    start = data.find(BINARY_START, sec)
    if start < 0:
        raise ValueError("the binary section has no data (no start bytes 0C 1A 04 D5)")
    fields = {k.decode().lower(): v.decode("latin-1").strip('"') for k, v in _MIME_FIELD.findall(data[sec:start])}
    conv = fields.get("conversions", "")
    if conv.lower() != "x-cbf_byte_offset":
        raise ValueError(f"compression {conv or '(none)'} is not supported (only x-CBF_BYTE_OFFSET)")
    enc = fields.get("content-transfer-encoding", "BINARY")
    if enc.upper() != "BINARY":
        raise ValueError(f"Content-Transfer-Encoding {enc} is not supported (only BINARY)")
    order = fields.get("x-binary-element-byte-order", "LITTLE_ENDIAN")
    if order.upper() != "LITTLE_ENDIAN":
        raise ValueError(f"X-Binary-Element-Byte-Order {order} is not supported (only LITTLE_ENDIAN)")
    vals = {}
    for key in ("X-Binary-Size", "X-Binary-Size-Fastest-Dimension", "X-Binary-Size-Second-Dimension"):
        try:
            vals[key] = int(fields[key.lower()])
        except KeyError:
            raise ValueError(f"the binary section lacks {key}") from None
        except ValueError:
            raise ValueError(f"{key} is not a number: {fields[key.lower()]!r}") from None
        if vals[key] <= 0:
            raise ValueError(f"{key} is {vals[key]}")
    nx, ny = vals["X-Binary-Size-Fastest-Dimension"], vals["X-Binary-Size-Second-Dimension"]
    n_el = fields.get("x-binary-number-of-elements")
    if n_el is not None and n_el.isdigit() and int(n_el) != nx * ny:
        raise ValueError(f"X-Binary-Number-of-Elements {n_el} is not {nx} x {ny}")
    et = " ".join(fields.get("x-binary-element-type", "signed 32-bit integer").split())
    if et not in ELEMENT_TYPES:
        raise ValueError(f"X-Binary-Element-Type {et!r} is not supported (integers of up to 32 bits)")
    text = data[:sec].decode("latin-1")
    return text, _Binary(start + len(BINARY_START), vals["X-Binary-Size"], nx, ny, et, fields.get("content-md5"))


# ------------------------------------------------------------------------------------------- series
class CbfDataset:
    """A series of miniCBF files, one image each. ``read_image`` is thread-safe (no shared mutable state) and
    decodes in the calling thread, so threads read images in parallel."""

    def __init__(self, paths: str | Path | Sequence[str | Path], *, check_md5: bool = True) -> None:
        self.check_md5 = check_md5
        self.template: str | None = None
        self.file_numbers: list[int] | None = None
        if isinstance(paths, (str, Path)):
            if is_template(paths):
                self.template = str(paths)
                self.paths, self.file_numbers = expand_template(paths)
            else:
                self.paths = [Path(paths)]
        else:
            self.paths = [Path(p) for p in paths]
            if any(is_template(p) for p in self.paths):
                raise InputError("a template (name_####.cbf) must be the only input")
        if not self.paths:
            raise InputError("no CBF files given")
        seen: dict[Path, int] = {}
        for k, p in enumerate(self.paths):
            if not p.is_file():
                raise InputError(f"file not found: {p}" if not p.exists() else f"not a file: {p}")
            if p in seen:
                raise InputError(f"{p} is given twice (as files {seen[p] + 1} and {k + 1} of the series)")
            seen[p] = k
        self.path = self.paths[0]
        text, binary = self._read_header(self.path)
        self.binary = binary
        self.ny, self.nx = binary.ny, binary.nx
        lo, hi, signed = ELEMENT_TYPES[binary.element_type]
        self._decode_args = {"min_value": lo, "max_value": hi, "negative_invalid": signed, "max_invalid": not signed}
        try:
            self.header = parse_minicbf_header(text)
        except InputError as e:
            raise InputError(f"{self.path}: {e}") from None
        self.experiment = self._experiment(self.header)
        self.n_images = len(self.paths)
        self.image_numbers = np.arange(self.n_images, dtype=np.int64)

    @property
    def source(self) -> str:
        """What the series was opened from, for the output's ``source_file``: the template, the file, or the
        first and last of a list."""
        if self.template is not None:
            return self.template
        if len(self.paths) == 1:
            return str(self.path)
        return f"{self.paths[0]} ... {self.paths[-1].name} ({len(self.paths)} files)"

    def _read_header(self, path: Path) -> tuple[str, _Binary]:
        try:
            head = _head(path.read_bytes())
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
        except (EOFError, ValueError, zlib.error) as e:
            raise InputError(f"{path}: cannot decompress ({e})") from None
        try:
            return _parse_binary(head)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None

    def _experiment(self, h: dict[str, object]) -> Experiment:
        for key in ("pixel_size_m", "distance_m", "beam_xy_px", "wavelength_A"):
            if key not in h:
                raise MissingFieldError(f"{self.path}: miniCBF header lacks {GEOMETRY_FIELDS[key]}")
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

    def _check_same(self, path: Path, text: str, b: _Binary) -> None:
        """InputError naming the file and the field if its image or geometry differs from the first file's."""
        first = self.binary
        for field, mine, ref in (("X-Binary-Size-Fastest-Dimension", b.nx, first.nx),
                                 ("X-Binary-Size-Second-Dimension", b.ny, first.ny),
                                 ("X-Binary-Element-Type", b.element_type, first.element_type)):  # fmt: skip
            if mine != ref:
                raise InputError(f"{path}: {field} is {mine}, the first file's ({self.path.name}) is {ref}: "
                                 "all images of a series must have the same size")  # fmt: skip
        h = parse_minicbf_header(text)
        for key, field in GEOMETRY_FIELDS.items():
            if h.get(key) != self.header.get(key):
                mine, ref = h.get(key, "missing"), self.header.get(key, "missing")
                raise InputError(f"{path}: header {field} is {mine}, the first file's ({self.path.name}) is {ref}: "
                                 "all images of a series must share the geometry")  # fmt: skip

    def read_image(self, i: int) -> np.ndarray:
        """Image i as int32 (ny, nx); invalid pixels (gaps, bad pixels) -> INT32_MIN.

        Raises CorruptFrameError for an unreadable or damaged file, InputError for a file whose image size or
        geometry differs from the first file's, ImageIndexError for i out of range.
        """
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_images):
            raise ImageIndexError(f"image index {i} out of range [0, {self.n_images})")
        from jfjoch import _core

        path = self.paths[int(i)]
        try:
            data = _decompress(path.read_bytes())
        except OSError as e:  # also bz2's "Invalid data stream"
            raise CorruptFrameError(f"image {i}: cannot read {path} ({e.strerror or e})") from None
        except (EOFError, ValueError, zlib.error) as e:  # truncated bz2: ValueError, gzip: EOFError
            raise CorruptFrameError(f"image {i}: cannot decompress {path} ({e})") from None
        try:
            text, b = _parse_binary(data)
        except ValueError as e:
            raise CorruptFrameError(f"image {i}: {path}: {e}") from None
        if i != 0:
            self._check_same(path, text, b)
        end = b.start + b.size
        if end > len(data):
            raise CorruptFrameError(f"image {i}: {path}: truncated: the binary section holds {len(data) - b.start} "
                                    f"of its X-Binary-Size {b.size} bytes")  # fmt: skip
        stream = memoryview(data)[b.start : end]
        out = np.empty((b.ny, b.nx), np.int32)
        try:
            used = _core.cbf_byte_offset_decode(stream, out, **self._decode_args)
        except _core.CorruptStreamError as e:
            raise CorruptFrameError(f"image {i}: {path}: corrupt: {e}") from None
        if used != b.size:
            raise CorruptFrameError(f"image {i}: {path}: corrupt: the {b.nx * b.ny} pixels end at byte {used} of "
                                    f"the stream's X-Binary-Size {b.size}")  # fmt: skip
        if b.md5 is not None and self.check_md5:  # 8.5 ms per PILATUS 6M frame (docs/performance.md)
            try:
                expected = base64.b64decode(b.md5, validate=True)
            except ValueError:
                expected = None
            if expected != hashlib.md5(stream).digest():
                raise CorruptFrameError(f"image {i}: {path}: corrupt: the binary data do not match their Content-MD5")
        return out

    def stored_spots(self, i: int) -> None:
        """CBF files hold no spot lists."""
        return None


def open_cbf(paths: str | Path | Sequence[str | Path], *, check_md5: bool = True) -> CbfDataset:
    """Open a miniCBF series: one file, a list of files (one image each, in the given order), or a template
    ``name_####.cbf[.bz2|.gz]`` (see :func:`expand_template`). ``check_md5``: compare each image's binary data
    with its ``Content-MD5`` (when the file has one); a mismatch makes the image a failed one."""
    return CbfDataset(paths, check_md5=check_md5)
