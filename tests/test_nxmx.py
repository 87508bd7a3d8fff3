"""NXmx reader: layouts, pixel types, geometry and units, bad input."""

from __future__ import annotations

import json
import threading

import h5py
import hdf5plugin
import numpy as np
import pytest

from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.io.nxmx import INT32_ERROR, open_master

from .conftest import shared


def write_master(path, frames, *, layout="single", dtype=np.int32, fast=(1, 0, 0), units_m=True, omega=None,
                 drop=None, compression="bslz4"):
    """A small NXmx master in the Jungfraujoch (or DECTRIS-like) layout."""
    n, ny, nx = frames.shape
    comp = {}
    if compression == "bslz4":
        comp = dict(hdf5plugin.Bitshuffle(cname="lz4"))
    elif compression == "bszstd":
        comp = dict(hdf5plugin.Bitshuffle(cname="zstd"))
    with h5py.File(path, "w") as f:
        e = f.create_group("entry")
        e.create_dataset("definition", data="NXmx")
        data = e.create_group("data")
        frames = frames.astype(dtype)
        if layout == "single":
            data.create_dataset("data", data=frames, chunks=(1, ny, nx), **comp)
        elif layout == "links":
            for k in range(2):
                part = frames[k * (n // 2):(k + 1) * (n // 2)] if k == 0 else frames[n // 2:]
                fn = path.parent / f"{path.stem}_data_{k + 1:06d}.h5"
                with h5py.File(fn, "w") as g:
                    g.create_dataset("entry/data/data", data=part, chunks=(1, ny, nx), **comp)
                data[f"data_{k + 1:06d}"] = h5py.ExternalLink(fn.name, "/entry/data/data")
        elif layout == "vds":
            fn = path.parent / f"{path.stem}_raw.h5"
            with h5py.File(fn, "w") as g:
                g.create_dataset("entry/data/data", data=frames, chunks=(1, ny, nx), **comp)
            lay = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
            lay[:] = h5py.VirtualSource(fn.name, "entry/data/data", shape=frames.shape)
            data.create_virtual_dataset("data", lay)
        det = e.create_group("instrument/detector")
        scale = 1.0 if units_m else 1000.0
        unit = "m" if units_m else "mm"
        geo = {"beam_center_x": (nx / 2 + 0.25, "pixel"), "beam_center_y": (ny / 2 - 0.5, "pixel"),
               "detector_distance": (0.12 * scale, unit), "x_pixel_size": (75e-6 * scale, unit),
               "y_pixel_size": (75e-6 * scale, unit)}
        for k, (v, u) in geo.items():
            if k != drop:
                det.create_dataset(k, data=v).attrs["units"] = u
        fp = det.create_dataset("detector_module/fast_pixel_direction", data=[0.075])
        fp.attrs["vector"] = np.array(fast, float)
        det.create_dataset("detectorSpecific/pixel_mask", data=np.eye(ny, nx, dtype=np.uint32))
        if drop != "incident_wavelength":
            e.create_dataset("instrument/beam/incident_wavelength", data=0.1).attrs["units"] = "nm"
        if omega is not None:
            w = e.create_dataset("sample/transformations/omega", data=np.arange(n) * omega)
            w.attrs["units"] = "deg"
            w.attrs["vector"] = np.array([0, 1.0, 0])
            e.create_dataset("sample/unit_cell", data=[50, 60, 70, 90, 95, 90])
            e.create_dataset("sample/space_group", data="P 1 21 1")


@pytest.fixture
def frames():
    rng = np.random.default_rng(5)
    return rng.poisson(2.0, (6, 32, 48)).astype(np.int32)


@pytest.mark.parametrize("layout", ["single", "links", "vds"])
@pytest.mark.parametrize("compression", ["bslz4", "bszstd", None])
def test_layouts_read_back(tmp_path, frames, layout, compression):
    p = tmp_path / "x_master.h5"
    write_master(p, frames, layout=layout, compression=compression)
    with open_master(p) as ds:
        assert ds.n_images == 6 and ds.image_shape == (32, 48)
        for i in range(6):
            np.testing.assert_array_equal(ds.read_image(i), frames[i])
        d = ds.experiment.detector
        assert d.beam_center_px == pytest.approx((24.25, 15.5))
        assert d.distance_mm == pytest.approx(120.0) and d.pixel_mm == pytest.approx(0.075)
        assert ds.experiment.beam.wavelength_A == pytest.approx(1.0)  # 0.1 nm
        assert d.mask.dtype == bool and d.mask.sum() == 32
        with pytest.raises(InputError):
            ds.read_image(6)


def test_units_in_mm_and_goniometer(tmp_path, frames):
    p = tmp_path / "x_master.h5"
    write_master(p, frames, units_m=False, omega=0.2)
    with open_master(p) as ds:
        e = ds.experiment
        assert e.detector.distance_mm == pytest.approx(120.0)
        assert e.goniometer.increment_deg == pytest.approx(0.2)
        np.testing.assert_allclose(e.goniometer.axis, [0, 1, 0])
        assert e.unit_cell == (50, 60, 70, 90, 95, 90) and e.space_group == 4


def test_dectris_fast_minus_x(tmp_path, frames):
    p = tmp_path / "x_master.h5"
    write_master(p, frames, fast=(-1, 0, 0))
    with open_master(p) as ds:
        exp = ds.experiment
        assert exp.detector.beam_center_px == pytest.approx((24.25, 15.5))
        s = exp.pixels_to_recip(np.array([[34.25, 15.5]]))
        assert s[0, 0] < 0  # +10 columns is -x in the lab


@pytest.mark.parametrize(("dtype", "err", "sat"), [(np.int16, -32768, 32767), (np.uint16, 65535, 65534),
                                                   (np.uint32, 2**32 - 1, None)])
def test_pixel_type_conversion(tmp_path, frames, dtype, err, sat):
    f = frames.astype(np.int64)
    f[0, 0, 0] = err
    if sat is not None:
        f[0, 0, 1] = sat
    p = tmp_path / "x_master.h5"
    write_master(p, f.astype(dtype), dtype=dtype)
    with open_master(p) as ds:
        im = ds.read_image(0)
        assert im.dtype == np.int32
        assert im[0, 0] == INT32_ERROR
        if sat is not None:
            assert im[0, 1] >= ds.experiment.detector.saturation
        np.testing.assert_array_equal(im[1:], frames[0, 1:])


def test_threaded_reads_identical(tmp_path):
    rng = np.random.default_rng(1)
    fr = rng.poisson(1.0, (16, 64, 64)).astype(np.int32)
    p = tmp_path / "x_master.h5"
    write_master(p, fr, layout="links")
    out = {}
    with open_master(p) as ds:
        def work(k):
            for i in range(k, 16, 4):
                out[i] = ds.read_image(i)
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for i in range(16):
        np.testing.assert_array_equal(out[i], fr[i])


def test_shared_datasets_match_truth():
    for name in ("hewl_rot1", "hewl_stills1"):
        d = shared(name)
        t = json.loads((d / "truth.json").read_text())
        with open_master(d / f"{name}_master.h5") as ds:
            e = ds.experiment
            assert e.detector.beam_center_px == pytest.approx(tuple(t["beam_center_px"]))
            assert e.detector.distance_mm == pytest.approx(t["distance_mm"])
            assert e.detector.pixel_mm == pytest.approx(t["pixel_size_mm"])
            assert e.beam.wavelength_A == pytest.approx(t["wavelength_A"])
            assert ds.n_images == len(t["images"])
            with h5py.File(d / f"{name}_master.h5") as f:
                ref = f["entry/data/data_000001"][1]
            np.testing.assert_array_equal(ds.read_image(1), ref)
            if name == "hewl_rot1":
                assert e.goniometer.increment_deg == pytest.approx(0.5) and e.space_group == 96
                assert e.unit_cell == pytest.approx(tuple(t["unit_cell"]))
            else:
                assert e.goniometer is None and e.unit_cell is None and e.space_group is None


@pytest.mark.parametrize("drop", ["beam_center_x", "detector_distance", "x_pixel_size", "incident_wavelength"])
def test_missing_geometry(tmp_path, frames, drop):
    p = tmp_path / "x_master.h5"
    write_master(p, frames, drop=drop)
    with pytest.raises(InputError, match="missing geometry"):
        open_master(p)


def test_bad_files(tmp_path, frames):
    with pytest.raises(InputError, match="no such file"):
        open_master(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("hello")
    with pytest.raises(InputError, match="not an HDF5"):
        open_master(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("entry/data")
    with pytest.raises(InputError, match="no NXmx image data"):
        open_master(tmp_path / "empty.h5")
    p = tmp_path / "x_master.h5"
    write_master(p, frames, layout="links")
    (tmp_path / "x_master_data_000002.h5").unlink()
    with pytest.raises(InputError, match="missing"):
        open_master(p)


def test_corrupt_chunk_is_reported_for_that_image_only(tmp_path, frames):
    p = tmp_path / "x_master.h5"
    write_master(p, frames)
    with h5py.File(p, "a") as f:
        ds = f["entry/data/data"]
        _, raw = ds.id.read_direct_chunk((2, 0, 0))
        bad = bytearray(raw)
        bad[16:] = bytes(len(bad) - 16)  # keep the header, zero the LZ4 blocks
        ds.id.write_direct_chunk((2, 0, 0), bytes(bad[: len(bad) // 2]))
    with open_master(p) as ds:
        with pytest.raises(CorruptFrameError, match="image 2"):
            ds.read_image(2)
        np.testing.assert_array_equal(ds.read_image(3), frames[3])
