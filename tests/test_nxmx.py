"""NXmx reader: shared datasets against h5py + hdf5plugin and truth.json; synthetic layouts; bad inputs."""

from __future__ import annotations

import json
import threading

import h5py
import hdf5plugin
import numpy as np
import pytest

from jfjoch import _core
from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.io.nxmx import INT32_MIN, ImageIndexError, MissingFieldError, open_master

from .conftest import shared

NY, NX = 40, 48


# ------------------------------------------------------------------------------------ synthetic files
def _frames(n: int, dtype=np.int32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.poisson(1.0, (n, NY, NX)).astype(np.int64)
    a[:, 5, 7] = 1000 + np.arange(n)
    return a.astype(dtype)


def _write_images(grp: h5py.Group, name: str, frames: np.ndarray, codec: str | None) -> h5py.Dataset:
    if codec in ("lz4", "zstd"):
        d = grp.create_dataset(name, shape=frames.shape, dtype=frames.dtype, chunks=(1, NY, NX),
                               **hdf5plugin.Bitshuffle(cname=codec))  # fmt: skip
        for i, fr in enumerate(frames):
            d.id.write_direct_chunk((i, 0, 0), _core.bitshuffle_compress(fr, codec))
        return d
    if codec == "gzip":
        return grp.create_dataset(name, data=frames, chunks=(1, NY, NX), compression="gzip")
    return grp.create_dataset(name, data=frames)


def _write_geometry(f: h5py.File, dectris: bool = False, omit: tuple[str, ...] = (), omega=None) -> None:
    det = f.require_group("/entry/instrument/detector")
    f["/entry"].attrs["NX_class"] = "NXentry"
    f["/entry/definition"] = "NXmx"
    if dectris:
        vals = {
            "wavelength": (0.1, "nm"),  # 1 Å
            "x_pixel_size": (75.0, "um"),
            "y_pixel_size": (0.075, "mm"),
            "detector_distance": (0.12, "m"),
        }
    else:
        vals = {"wavelength": (1.0, "angstrom"), "x_pixel_size": (7.5e-5, "m"), "y_pixel_size": (7.5e-5, "m"),
                "detector_distance": (0.08, "m")}  # fmt: skip
    if "wavelength" not in omit:
        f["/entry/instrument/beam/incident_wavelength"] = vals["wavelength"][0]
        f["/entry/instrument/beam/incident_wavelength"].attrs["units"] = vals["wavelength"][1]
    for k in ("x_pixel_size", "y_pixel_size", "detector_distance"):
        if k not in omit:
            det[k] = vals[k][0]
            det[k].attrs["units"] = vals[k][1]
    for k, v in (("beam_center_x", 20.25), ("beam_center_y", 17.5)):
        if k not in omit:
            det[k] = v
            det[k].attrs["units"] = "pixel"
    mod = det.require_group("detector_module" if not dectris else "module")
    fast = (-1.0, 0.0, 0.0) if dectris else (1.0, 0.0, 0.0)
    slow = (0.0, -1.0, 0.0) if dectris else (0.0, 1.0, 0.0)
    mod["fast_pixel_direction"] = 0.075
    mod["fast_pixel_direction"].attrs["vector"] = fast
    mod["slow_pixel_direction"] = 0.075
    mod["slow_pixel_direction"].attrs["vector"] = slow
    mask = np.zeros((NY, NX), np.uint32)
    mask[3, 4] = 1
    mask[10:12, :] = 2
    det.require_group("detectorSpecific")["pixel_mask"] = mask
    if dectris:
        det["detectorSpecific/countrate_correction_count_cutoff"] = 50000
        det["detectorSpecific/eiger_fw_version"] = "release-2022.1.2"  # what DECTRIS's software writes
        det["description"] = "Dectris EIGER2 Si 1M"
    else:
        det["saturation_value"] = 32766
    if omega is not None:
        path = "/entry/sample/goniometer/omega" if dectris else "/entry/sample/transformations/omega"
        f[path] = np.radians(omega) if dectris else omega
        f[path].attrs["units"] = "rad" if dectris else "deg"
        f[path].attrs["vector"] = (-1.0, 0.0, 0.0) if dectris else (1.0, 0.0, 0.0)
    if not dectris:
        f["/entry/sample/unit_cell"] = [50.0, 60.0, 70.0, 90.0, 95.0, 90.0]
        f["/entry/sample/space_group"] = "P1211"


def make_master(tmp_path, frames: np.ndarray, layout: str = "single", codec: str | None = "lz4",
                dectris: bool = False, omit: tuple[str, ...] = (), omega=None, split: int = 3):  # fmt: skip
    """Write a master (+ data files) in one of the layouts: single, vds, links."""
    master = tmp_path / "test_master.h5"
    with h5py.File(master, "w") as f:
        _write_geometry(f, dectris, omit, omega)
        data = f.require_group("/entry/data")
        if layout == "single":
            _write_images(data, "data", frames, codec)
        elif layout in ("vds", "links"):
            parts = [frames[:split], frames[split:]]
            layout_v = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
            pos = 0
            for k, part in enumerate(parts, start=1):
                name = f"test_data_{k:06d}.h5"
                with h5py.File(tmp_path / name, "w") as g:
                    _write_images(g.require_group("/entry/data"), "data", part, codec)
                if layout == "links":
                    data[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
                else:
                    layout_v[pos : pos + len(part)] = h5py.VirtualSource(name, "/entry/data/data", part.shape)
                pos += len(part)
            if layout == "vds":
                data.create_virtual_dataset("data", layout_v)
        else:
            raise ValueError(layout)
    return master


# ----------------------------------------------------------------------------------- shared datasets
@pytest.mark.parametrize("dataset", ["hewl_rot1", "hewl_stills1"])
def test_shared_frames_equal_h5py(dataset):
    master = shared(dataset, f"{dataset}_master.h5")
    with open_master(master) as ds, h5py.File(master, "r") as f:
        ref = f["/entry/data/data_000001"]
        assert ds.n_images == ref.shape[0]
        np.testing.assert_array_equal(ds.image_numbers, np.arange(ds.n_images))
        for i in (0, 1, ds.n_images // 2, ds.n_images - 1):
            im = ds.read_image(i)
            assert im.dtype == np.int32 and im.shape == ref.shape[1:]
            np.testing.assert_array_equal(im, ref[i])
        pm = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
        np.testing.assert_array_equal(ds.experiment.detector.mask, pm != 0)
        assert ds.experiment.detector.saturation == 32766
        assert ds.stored_spots(0) is None


@pytest.mark.parametrize("dataset", ["hewl_rot1", "hewl_stills1"])
def test_shared_geometry_equals_truth(dataset):
    t = json.loads(shared(dataset, "truth.json").read_text())
    with open_master(shared(dataset, f"{dataset}_master.h5")) as ds:
        e = ds.experiment
    assert e.beam.wavelength_A == pytest.approx(t["wavelength_A"])
    assert e.detector.pixel_mm == pytest.approx(t["pixel_size_mm"])
    assert e.detector.distance_mm == pytest.approx(t["distance_mm"])
    assert e.detector.beam_center_px == pytest.approx(tuple(t["beam_center_px"]), abs=1e-9)
    assert (e.detector.nx, e.detector.ny) == tuple(t["image_size_px"])
    # the truth's pixel -> lab rule
    bx, by = t["beam_center_px"]
    p, D = t["pixel_size_mm"], t["distance_mm"]
    xy = np.array([[0.0, 0.0], [100.0, 700.0], [1023.0, 5.0]])
    r = e.detector.origin_mm + (xy[:, :1] * e.detector.fast + xy[:, 1:] * e.detector.slow) * p
    np.testing.assert_allclose(r, np.c_[(xy[:, 0] - bx) * p, (xy[:, 1] - by) * p, np.full(3, D)], atol=1e-9)
    if dataset == "hewl_rot1":
        g = e.goniometer
        assert g is not None
        np.testing.assert_allclose(g.axis, t["conventions"]["rotation_axis"])
        assert g.start_deg == pytest.approx(t["images"][0]["omega_start_deg"])
        assert g.increment_deg == pytest.approx(t["images"][0]["omega_width_deg"]) == pytest.approx(0.5)
        assert e.unit_cell == pytest.approx(tuple(t["unit_cell"]))
        assert e.space_group == t["space_group_number"] == 96
    else:
        assert e.goniometer is None
        assert e.unit_cell is None and e.space_group is None


def test_threaded_reads_identical():
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    with open_master(master) as ds:
        serial = [ds.read_image(i) for i in range(12)]
        results: dict[int, np.ndarray] = {}

        def work(k):
            for i in range(k, 12, 4):
                results[i] = ds.read_image(i)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert sorted(results) == list(range(12))
    for i in range(12):
        np.testing.assert_array_equal(results[i], serial[i])


# ---------------------------------------------------------------------------------- synthetic layouts
@pytest.mark.parametrize("layout", ["single", "vds", "links"])
@pytest.mark.parametrize("codec", ["lz4", "zstd", "gzip", None])
def test_layouts(tmp_path, layout, codec):
    frames = _frames(7, seed=1)
    master = make_master(tmp_path, frames, layout, codec, omega=np.arange(7) * 0.25 + 10)
    with open_master(master) as ds:
        assert ds.n_images == 7
        for i in range(7):
            np.testing.assert_array_equal(ds.read_image(i), frames[i])
        if codec in ("lz4", "zstd"):  # decoded by the C++ codec, not by h5py
            assert all(s.codec == {"lz4": 2, "zstd": 3}[codec] for s in ds._segments)
        e = ds.experiment
        assert e.goniometer.start_deg == pytest.approx(10.0)
        assert e.goniometer.increment_deg == pytest.approx(0.25)
        assert e.unit_cell == (50.0, 60.0, 70.0, 90.0, 95.0, 90.0)
        assert e.space_group == 4
        assert e.detector.mask.sum() == 1 + 2 * NX
        assert e.detector.beam_center_px == pytest.approx((20.25, 17.5))


@pytest.mark.parametrize("codec", ["lz4", None])
def test_int16_conversion(tmp_path, codec):
    frames = _frames(3, np.int16, seed=2)
    frames[0, 0, 0] = np.iinfo(np.int16).min
    frames[1, 1, 1] = np.iinfo(np.int16).max
    frames[2, 2, 2] = -5
    with open_master(make_master(tmp_path, frames, "single", codec)) as ds:
        sat = ds.experiment.detector.saturation
        assert sat == 32766
        a, b, c = (ds.read_image(i) for i in range(3))
    assert a.dtype == np.int32
    assert a[0, 0] == INT32_MIN
    assert b[1, 1] >= sat
    assert c[2, 2] == -5
    ref = frames.astype(np.int32)
    ref[0, 0, 0] = INT32_MIN
    np.testing.assert_array_equal(np.stack([a, b, c]), ref)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_unsigned_conversion(tmp_path, dtype):
    frames = _frames(2, dtype, seed=3)
    frames[0, 4, 4] = np.iinfo(dtype).max  # error marker
    frames[1, 4, 5] = 60000
    with open_master(make_master(tmp_path, frames, "single", "lz4")) as ds:
        a, b = ds.read_image(0), ds.read_image(1)
        assert ds.experiment.detector.saturation == 32766  # the file's saturation_value
    assert a[4, 4] == INT32_MIN and b[4, 5] == 60000
    ref = frames.astype(np.int64)
    ref[0, 4, 4] = INT32_MIN
    np.testing.assert_array_equal(np.stack([a, b]), ref)


@pytest.mark.parametrize(
    ("marker", "dectris"),
    [("eiger_fw_version", True), ("Dectris EIGER2 Si 9M", True), ("EIGER 9M", False), (None, False)],
)
def test_beam_centre_origin_follows_the_writer(tmp_path, marker, dectris):
    # DECTRIS's software (firmware recorded, or 'Dectris ...' as description) measures the beam centre from
    # the pixel corner; Jungfraujoch (also of an EIGER) from the pixel centre, as we do
    from jfjoch.io.nxmx_geometry import is_dectris_master

    master = make_master(tmp_path, _frames(2), "single", None)
    with h5py.File(master, "a") as f:
        det = f["/entry/instrument/detector"]
        if marker == "eiger_fw_version":
            det["detectorSpecific/eiger_fw_version"] = "release-2020.2.1"
        elif marker is not None:
            det["description"] = marker
    with h5py.File(master) as f:
        assert is_dectris_master(f) == dectris
    with open_master(master) as ds:
        bx, by = ds.experiment.detector.beam_center_px
    shift = 0.5 if dectris else 0.0
    assert (bx, by) == pytest.approx((20.25 - shift, 17.5 - shift), abs=1e-9)


def test_dectris_master(tmp_path):
    frames = _frames(5, np.uint32, seed=4)
    master = make_master(tmp_path, frames, "links", "lz4", dectris=True, omega=np.arange(5) * 0.1, split=2)
    with open_master(master) as ds:
        e = ds.experiment
        np.testing.assert_array_equal(ds.read_image(4), frames[4].astype(np.int32))
    assert e.beam.wavelength_A == pytest.approx(1.0)  # 0.1 nm
    assert e.detector.pixel_mm == pytest.approx(0.075)  # 75 um
    assert e.detector.distance_mm == pytest.approx(120.0)
    np.testing.assert_allclose(e.detector.fast, [-1, 0, 0])
    np.testing.assert_allclose(e.detector.slow, [0, -1, 0])
    # DECTRIS's beam_center_x/y (20.25, 17.5) is measured from the corner of the first pixel: pixel centres
    # at integers put the beam 0.5 px lower (docs/conventions.md)
    assert e.detector.beam_center_px == pytest.approx((19.75, 17.0))
    # a pixel 10 columns right of the beam centre lies at x = -10 pixels (fast = -x)
    r = e.detector.origin_mm + ((19.75 + 10) * e.detector.fast + 17.0 * e.detector.slow) * e.detector.pixel_mm
    np.testing.assert_allclose(r, [-0.75, 0.0, 120.0], atol=1e-12)
    assert e.detector.saturation == 50000
    assert e.goniometer.increment_deg == pytest.approx(0.1)
    np.testing.assert_allclose(e.goniometer.axis, [-1, 0, 0])
    assert e.detector.mask[3, 4] and e.detector.mask[10, 0] and not e.detector.mask[0, 0]


def test_stored_spots(tmp_path):
    master = make_master(tmp_path, _frames(2), "single", "lz4")
    with h5py.File(master, "a") as f:
        f["/entry/MX/nPeaks"] = np.array([2, 1], np.int32)
        f["/entry/MX/peakXPosRaw"] = np.array([[1.5, 2.5, 0], [3.5, 0, 0]], np.float32)
        f["/entry/MX/peakYPosRaw"] = np.array([[4.0, 5.0, 0], [6.0, 0, 0]], np.float32)
        f["/entry/MX/peakTotalIntensity"] = np.array([[10, 20, 0], [30, 0, 0]], np.float32)
    with open_master(master) as ds:
        x, y, inten = ds.stored_spots(0)
        np.testing.assert_array_equal(x, [1.5, 2.5])
        np.testing.assert_array_equal(y, [4.0, 5.0])
        np.testing.assert_array_equal(inten, [10, 20])
        x, y, inten = ds.stored_spots(1)
        np.testing.assert_array_equal(inten, [30])


# ---------------------------------------------------------------------------------------- bad inputs
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_master(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("hello\n")
    with pytest.raises(InputError, match="not a readable HDF5"):
        open_master(p)


def test_hdf5_without_data(tmp_path):
    p = tmp_path / "empty.h5"
    with h5py.File(p, "w") as f:
        f["/entry/instrument/beam/incident_wavelength"] = 1.0
    with pytest.raises(InputError, match="no NXmx image data"):
        open_master(p)
    with h5py.File(p, "a") as f:
        f.create_group("/entry/data")
    with pytest.raises(InputError, match="no NXmx image data"):
        open_master(p)


@pytest.mark.parametrize("field", ["wavelength", "x_pixel_size", "detector_distance", "beam_center_x"])
def test_missing_geometry(tmp_path, field):
    master = make_master(tmp_path, _frames(1), "single", "lz4", omit=(field,))
    with pytest.raises(MissingFieldError) as e:
        open_master(master)
    name = "incident_wavelength" if field == "wavelength" else field
    assert name in str(e.value) and "\n" not in str(e.value)


def test_missing_data_file(tmp_path):
    master = make_master(tmp_path, _frames(5), "links", "lz4")
    (tmp_path / "test_data_000002.h5").unlink()
    with pytest.raises(InputError, match="missing"):
        open_master(master)


def test_index_out_of_range(tmp_path):
    with open_master(make_master(tmp_path, _frames(3), "single", "lz4")) as ds:
        for bad in (-1, 3, 100):
            with pytest.raises(ImageIndexError):
                ds.read_image(bad)
        with pytest.raises(IndexError):
            ds.read_image(3)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_corrupt_chunk_only_that_image(tmp_path, codec):
    frames = _frames(4, seed=6)
    master = make_master(tmp_path, frames, "single", codec)
    with h5py.File(master, "a") as f:
        d = f["/entry/data/data"]
        good = _core.bitshuffle_compress(frames[2], codec)
        d.id.write_direct_chunk((2, 0, 0), good[:16] + bytes(40) + good[56:])
    with open_master(master) as ds:
        with pytest.raises(CorruptFrameError, match="image 2"):
            ds.read_image(2)
        for i in (0, 1, 3):
            np.testing.assert_array_equal(ds.read_image(i), frames[i])


@pytest.mark.parametrize("dtype", [np.int32, np.int16])
@pytest.mark.parametrize("codec", ["lz4", "gzip"])
def test_read_into_buffer(tmp_path, dtype, codec):
    frames = _frames(3, dtype, seed=8)
    with open_master(make_master(tmp_path, frames, "single", codec)) as ds:
        buf = np.full((NY, NX), -7, np.int32)
        got = ds.read_image(2, out=buf)
        assert got is buf
        np.testing.assert_array_equal(buf, frames[2].astype(np.int32))
        with pytest.raises(ValueError):
            ds.read_image(0, out=np.empty((NY, NX), np.int64))


def test_vds_missing_source(tmp_path):
    master = make_master(tmp_path, _frames(5), "vds", "lz4")
    (tmp_path / "test_data_000002.h5").unlink()
    with pytest.raises(InputError, match="missing"):
        open_master(master)


def test_vds_partial_images_falls_back_to_h5py(tmp_path):
    """A VDS assembled from image halves cannot be decoded chunk by chunk: h5py reads it."""
    frames = _frames(3, seed=9)
    half = NX // 2
    master = tmp_path / "halves_master.h5"
    with h5py.File(master, "w") as f:
        _write_geometry(f)
        lay = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
        for k, sl in enumerate((np.s_[:, :, :half], np.s_[:, :, half:])):
            name = f"half_{k}.h5"
            with h5py.File(tmp_path / name, "w") as g:
                part = np.ascontiguousarray(frames[sl])
                g.create_dataset("d", data=part, chunks=(1, NY, half), **hdf5plugin.Bitshuffle(cname="lz4"))
            lay[sl] = h5py.VirtualSource(name, "d", part.shape)
        f.create_virtual_dataset("/entry/data/data", lay)
    with open_master(master) as ds:
        assert ds._segments[0].codec is None
        for i in range(3):
            np.testing.assert_array_equal(ds.read_image(i), frames[i])
