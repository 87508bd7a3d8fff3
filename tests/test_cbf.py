"""miniCBF reader on the real PILATUS stills: pixels vs an independent byte-offset decoder; geometry."""

from __future__ import annotations

import bz2

import numpy as np
import pytest

from jfjoch.errors import InputError
from jfjoch.io.cbf import open_cbf, parse_minicbf_header
from jfjoch.io.nxmx import INT32_MIN, ImageIndexError, MissingFieldError

from .conftest import shared


def _paths():
    d = shared("thaumatin_grid_stills")
    return sorted(d.glob("thau_3_2_*.cbf.bz2"))


def _byte_offset_decode(path) -> np.ndarray:
    """Reference CBF 'x-CBF_BYTE_OFFSET' decoder (numpy + a loop over escapes only)."""
    raw = bz2.decompress(path.read_bytes())
    head, _, rest = raw.partition(b"\x0c\x1a\x04\xd5")
    nx = int(head.split(b"X-Binary-Size-Fastest-Dimension:")[1].split()[0])
    ny = int(head.split(b"X-Binary-Size-Second-Dimension:")[1].split()[0])
    size = int(head.split(b"X-Binary-Size:")[1].split()[0])
    buf = rest[:size]
    deltas: list[np.ndarray] = []
    i = 0
    while i < len(buf):
        j = buf.find(b"\x80", i)
        if j < 0:
            j = len(buf)
        deltas.append(np.frombuffer(buf, np.int8, j - i, i).astype(np.int64))
        if j == len(buf):
            break
        v = int.from_bytes(buf[j + 1 : j + 3], "little", signed=True)
        i = j + 3
        if v == -32768:
            v = int.from_bytes(buf[i : i + 4], "little", signed=True)
            i += 4
            if v == -(2**31):
                v = int.from_bytes(buf[i : i + 8], "little", signed=True)
                i += 8
        deltas.append(np.array([v], np.int64))
    vals = np.cumsum(np.concatenate(deltas))
    assert vals.size == nx * ny
    return vals.reshape(ny, nx)


def test_pixels_equal_reference_decoder():
    paths = _paths()
    with open_cbf(paths) as ds:
        assert ds.n_images == 10
        np.testing.assert_array_equal(ds.image_numbers, np.arange(10))
        for i in (0, 9):
            im = ds.read_image(i)
            ref = _byte_offset_decode(paths[i])
            assert im.dtype == np.int32 and im.shape == (2527, 2463)
            neg = ref < 0
            assert neg.sum() > 400_000  # module gaps
            np.testing.assert_array_equal(im == INT32_MIN, neg)
            np.testing.assert_array_equal(im[~neg], ref[~neg])
            assert im[~neg].max() > 100  # it diffracts


def test_geometry_from_header():
    with open_cbf(_paths()) as ds:
        e = ds.experiment
    assert (e.detector.nx, e.detector.ny) == (2463, 2527)
    assert e.detector.pixel_mm == pytest.approx(0.172)
    assert e.detector.distance_mm == pytest.approx(351.0)
    assert e.beam.wavelength_A == pytest.approx(0.96859)
    assert e.beam.polarization_fraction == pytest.approx(0.99)
    # Beam_xy (1261.61, 1306.96) px from the corner of the first pixel -> pixel-centre convention
    assert e.detector.beam_center_px == pytest.approx((1261.11, 1306.46), abs=1e-9)
    assert e.detector.saturation == 115897
    assert e.detector.sensor_thickness_mm == pytest.approx(0.45)
    assert e.goniometer is None
    assert ds.stored_spots(0) is None


def test_header_parser():
    h = parse_minicbf_header(
        "# Pixel_size 75e-6 m x 75e-6 m\n# Detector_distance 0.2 m\n# Beam_xy (10.5, 20.0) pixels\n"
        "# Wavelength 1.2 A\n# Start_angle 5.0 deg.\n# Angle_increment 0.1 deg.\n"
    )
    assert h["pixel_size_m"] == (75e-6, 75e-6)
    assert h["distance_m"] == 0.2 and h["wavelength_A"] == 1.2
    assert h["beam_xy_px"] == (10.5, 20.0) and h["angle_increment_deg"] == 0.1


def test_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_cbf([tmp_path / "x.cbf"])
    with pytest.raises(InputError):
        open_cbf([])
    with open_cbf(_paths()[:2]) as ds, pytest.raises(ImageIndexError):
        ds.read_image(2)


def test_missing_header_field(tmp_path):
    import fabio.cbfimage

    data = np.arange(20 * 30, dtype=np.int32).reshape(20, 30)
    img = fabio.cbfimage.CbfImage(data=data)
    img.header["_array_data.header_convention"] = "PILATUS_1.2"
    img.header["_array_data.header_contents"] = "# Pixel_size 172e-6 m x 172e-6 m\n# Wavelength 1.0 A\n"
    p = tmp_path / "a.cbf"
    img.write(str(p))
    with pytest.raises(MissingFieldError, match="Detector_distance"):
        open_cbf(p)
