"""Test helpers: an independent byte-offset encoder and a miniCBF writer (PILATUS layout) for synthetic files."""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
from pathlib import Path

import numpy as np

GEOMETRY = {
    "Pixel_size": "172e-6 m x 172e-6 m",
    "Silicon sensor, thickness": "0.000450 m",
    "Count_cutoff": "1048575 counts",
    "Wavelength": "0.96859 A",
    "Detector_distance": "0.05000 m",
    "Beam_xy": "(20.50, 16.00) pixels",
    "Start_angle": "0.0000 deg.",
    "Angle_increment": "0.0000 deg.",
    "Polarization": "0.990",
}


def encode_byte_offset(values) -> bytes:
    """x-CBF_BYTE_OFFSET stream of the values (shortest escape per delta, as CBFlib writes it)."""
    v = np.asarray(values, np.int64).ravel()
    d = np.diff(v, prepend=np.int64(0))
    small = np.abs(d) <= 127
    out = bytearray()
    start = 0
    for j in np.flatnonzero(~small):
        out += d[start:j].astype(np.int8).tobytes()
        x = int(d[j])
        out += b"\x80"
        if abs(x) <= 0x7FFF:
            out += x.to_bytes(2, "little", signed=True)
        else:
            out += b"\x00\x80"
            if abs(x) <= 0x7FFFFFFF:
                out += x.to_bytes(4, "little", signed=True)
            else:
                out += b"\x00\x00\x00\x80" + x.to_bytes(8, "little", signed=True)
        start = j + 1
    out += d[start:].astype(np.int8).tobytes()
    return bytes(out)


def cbf_bytes(data: np.ndarray, header: dict[str, str] | None = None, *, element_type="signed 32-bit integer",
              stream: bytes | None = None, md5: bool = True, padding: int = 4095) -> bytes:  # fmt: skip
    """A miniCBF file (CRLF lines, as PILATUS writes them) holding ``data`` (ny, nx)."""
    ny, nx = data.shape
    stream = encode_byte_offset(data) if stream is None else stream
    h = {**GEOMETRY, **(header or {})}
    lines = [f"# {k} {v}" for k, v in h.items() if v is not None]
    mime = [
        "--CIF-BINARY-FORMAT-SECTION--",
        "Content-Type: application/octet-stream;",
        '     conversions="x-CBF_BYTE_OFFSET"',
        "Content-Transfer-Encoding: BINARY",
        f"X-Binary-Size: {len(stream)}",
        "X-Binary-ID: 1",
        f'X-Binary-Element-Type: "{element_type}"',
        "X-Binary-Element-Byte-Order: LITTLE_ENDIAN",
        *([f"Content-MD5: {base64.b64encode(hashlib.md5(stream).digest()).decode()}"] if md5 else []),
        f"X-Binary-Number-of-Elements: {nx * ny}",
        f"X-Binary-Size-Fastest-Dimension: {nx}",
        f"X-Binary-Size-Second-Dimension: {ny}",
        f"X-Binary-Size-Padding: {padding}",
        "",
    ]
    text = ["###CBF: VERSION 1.5, CBFlib v0.7.8 - PILATUS detectors", "", "data_test", "",
            '_array_data.header_convention "PILATUS_1.2"', "_array_data.header_contents", ";", *lines, ";", "",
            "_array_data.data", ";", *mime, ""]  # fmt: skip
    return ("\r\n".join(text)).encode() + b"\x0c\x1a\x04\xd5" + stream + b"\x00" * padding + (
        b"\r\n--CIF-BINARY-FORMAT-SECTION----\r\n;\r\n"
    )


def write_cbf(path: Path, data: np.ndarray, header: dict[str, str] | None = None, **kw) -> Path:
    """Write ``data`` as a miniCBF file; .bz2 / .gz names are compressed."""
    raw = cbf_bytes(data, header, **kw)
    name = Path(path).name
    if name.endswith(".bz2"):
        raw = bz2.compress(raw)
    elif name.endswith(".gz"):
        raw = gzip.compress(raw)
    Path(path).write_bytes(raw)
    return Path(path)


def still_frames(n: int, ny: int = 32, nx: int = 40, seed: int = 1) -> np.ndarray:
    """n small frames: Poisson background, one bright spot each, a gap row of -1 and one bad pixel (-2)."""
    rng = np.random.default_rng(seed)
    frames = rng.poisson(0.5, (n, ny, nx)).astype(np.int32)
    frames[:, 8:11, 25:28] = 300
    frames[:, 20, :] = -1
    frames[:, 3, 4] = -2
    return frames
