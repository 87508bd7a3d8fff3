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


# ------------------------------------------------------------------------------- the byte-offset decoder
def _decode64(stream: bytes, n: int) -> tuple[np.ndarray, int]:
    from jfjoch import _core

    out = np.empty(n, np.int64)
    used = _core.cbf_byte_offset_decode(stream, out)
    return out, used


# (stream bytes, the delta they hold): every escape, positive and negative
_ESCAPES = [
    (b"\x05", 5),
    (b"\xfb", -5),
    (b"\x7f", 127),
    (b"\x81", -127),
    (b"\x80\x80\xff", -128),  # 0x80 itself is the escape: -128 needs 2 bytes
    (b"\x80\x80\x00", 128),
    (b"\x80\xff\x7f", 32767),
    (b"\x80\x01\x80", -32767),
    (b"\x80\x00\x80\x00\x80\xff\xff", -32768),  # 0x8000 is the next escape
    (b"\x80\x00\x80\x00\x00\x01\x00", 65536),
    (b"\x80\x00\x80" + (-40000).to_bytes(4, "little", signed=True), -40000),
    (b"\x80\x00\x80" + (2**31 - 1).to_bytes(4, "little", signed=True), 2**31 - 1),
    (b"\x80\x00\x80\x00\x00\x00\x80" + (-(2**31)).to_bytes(8, "little", signed=True), -(2**31)),
    (b"\x80\x00\x80\x00\x00\x00\x80" + (2**32).to_bytes(8, "little", signed=True), 2**32),
    (b"\x80\x00\x80\x00\x00\x00\x80" + (-(2**40)).to_bytes(8, "little", signed=True), -(2**40)),
]


@pytest.mark.parametrize("first", range(len(_ESCAPES)))
def test_every_escape_by_hand(first):
    """Hand-written streams: each escape as the first pixel, then all of them in a row after it."""
    order = [first] + [k for k in range(len(_ESCAPES)) if k != first]
    stream = b"".join(_ESCAPES[k][0] for k in order)
    want = np.cumsum([_ESCAPES[k][1] for k in order])
    got, used = _decode64(stream + b"\x00\x07", len(order))  # bytes after the n-th value are not read
    np.testing.assert_array_equal(got, want)
    assert used == len(stream)


def test_random_streams_equal_fabio_and_cumsum():
    """Deltas of every width (int8 .. int64, both signs) encoded by fabio and by the tests' own encoder."""
    from fabio.compression import compByteOffset, decByteOffset

    from jfjoch import _core

    from .cbf_data import encode_byte_offset

    rng = np.random.default_rng(5)
    n = 20000
    scale = rng.choice([100, 3e4, 2e9, 4e12], n, p=[0.7, 0.15, 0.1, 0.05])
    values = np.cumsum(np.rint(rng.standard_normal(n) * scale).astype(np.int64))
    for stream in (encode_byte_offset(values), bytes(compByteOffset(values))):
        got, used = _decode64(stream, n)
        np.testing.assert_array_equal(got, values)
        np.testing.assert_array_equal(got, decByteOffset(stream, n, np.int64))
        assert used == len(stream)
    # values that fit int32 through int64 deltas (a jump of 4e9)
    v32 = np.array([-2_000_000_000, 2_000_000_000, -5, 2**31 - 1, -(2**31)], np.int64)
    out = np.empty(5, np.int32)
    _core.cbf_byte_offset_decode(encode_byte_offset(v32), out)
    np.testing.assert_array_equal(out, v32)


def test_int32_mapping():
    from jfjoch import _core

    from .cbf_data import encode_byte_offset

    signed = np.array([0, 5, -1, -2, 1000, 2**31 - 1, 7], np.int64)
    out = np.empty(signed.size, np.int32)
    _core.cbf_byte_offset_decode(encode_byte_offset(signed), out, negative_invalid=True)
    np.testing.assert_array_equal(out, np.where(signed < 0, INT32_MIN, signed))
    # unsigned 32-bit: all-ones invalid, above INT32_MAX clipped
    uns = np.array([3, 2**32 - 1, 3_000_000_000, 2**31 - 1, 0], np.int64)
    _core.cbf_byte_offset_decode(encode_byte_offset(uns), out[:5], min_value=0, max_value=2**32 - 1,
                                 max_invalid=True)  # fmt: skip
    np.testing.assert_array_equal(out[:5], [3, INT32_MIN, 2**31 - 1, 2**31 - 1, 0])
    # unsigned 16-bit: 0xFFFF invalid
    u16 = np.array([1, 65535, 65534], np.int64)
    _core.cbf_byte_offset_decode(encode_byte_offset(u16), out[:3], min_value=0, max_value=65535, max_invalid=True)
    np.testing.assert_array_equal(out[:3], [1, INT32_MIN, 65534])


def test_int32_blocks_of_int8_deltas():
    """The 16-delta SIMD path of the signed 32-bit type: runs of small deltas around zero (negatives
    invalid), escapes at every offset inside a block, and values near the int32 limits (where it must
    hand over to the scalar path), against numpy."""
    from jfjoch import _core

    from .cbf_data import encode_byte_offset

    rng = np.random.default_rng(11)
    n = 50_000
    d = rng.integers(-127, 128, n)
    d[rng.random(n) < 0.3] = 0  # flat stretches, as in a PILATUS background
    esc = rng.random(n) < 0.02
    d[esc] = rng.choice([-128, 128, 300, -5000, 70_000], esc.sum())
    for start in (0, -3, 2**31 - 1 - 3000, -(2**31) + 3000):
        v = start + np.cumsum(d) - d[0]
        v = np.clip(v, -(2**31), 2**31 - 1)
        stream = encode_byte_offset(v)
        for neg in (True, False):
            out = np.empty(n, np.int32)
            assert _core.cbf_byte_offset_decode(stream, out, negative_invalid=neg) == len(stream)
            np.testing.assert_array_equal(out, np.where(v < 0, INT32_MIN, v) if neg else v)
    # a block whose last value is exactly the limit
    v = np.concatenate([[2**31 - 1 - 16 * 127], 2**31 - 1 - 16 * 127 + np.cumsum(np.full(16, 127))])
    out = np.empty(v.size, np.int32)
    _core.cbf_byte_offset_decode(encode_byte_offset(v), out)
    np.testing.assert_array_equal(out, v)


def test_values_out_of_range_are_corrupt():
    from jfjoch import _core

    from .cbf_data import encode_byte_offset

    out = np.empty(4, np.int32)
    with pytest.raises(_core.CorruptStreamError, match=r"value 2147483648 of pixel 2 .*\[-2147483648, 2147483647\]"):
        _core.cbf_byte_offset_decode(encode_byte_offset([1, 2**31 - 1, 2**31, 0]), out)
    with pytest.raises(_core.CorruptStreamError, match="value -1 of pixel 1"):
        _core.cbf_byte_offset_decode(encode_byte_offset([1, -1, 0, 0]), out, min_value=0, max_value=65535)


def test_truncated_streams_raise():
    """Every prefix of a stream with all escapes: the decoder never reads past its end and says where it
    stopped."""
    from jfjoch import _core

    stream = b"".join(s for s, _ in _ESCAPES)
    n = len(_ESCAPES)
    for cut in range(len(stream)):
        with pytest.raises(_core.CorruptStreamError, match=r"^byte-offset stream of \d+ bytes ends .*of 15 values"):
            _decode64(stream[:cut], n)
    with pytest.raises(_core.CorruptStreamError, match="ends inside a 2-byte delta after 0 of 1 values"):
        _decode64(b"\x80\x01", 1)
    with pytest.raises(_core.CorruptStreamError, match="ends inside an 8-byte delta"):
        _decode64(b"\x80\x00\x80\x00\x00\x00\x80\x01", 1)
    with pytest.raises(_core.CorruptStreamError, match="ends after 3 of 4 values"):
        _core.cbf_byte_offset_decode(b"\x01\x01\x01", np.empty(4, np.int32))
    assert issubclass(_core.CorruptStreamError, ValueError)
    with pytest.raises(ValueError, match="int32 or int64"):
        _core.cbf_byte_offset_decode(b"\x01", np.empty(1, np.float32))


def test_decoder_releases_the_gil_and_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    from jfjoch import _core

    from .cbf_data import encode_byte_offset

    rng = np.random.default_rng(3)
    arrays = [np.cumsum(rng.integers(-300, 300, 200_000)) for _ in range(8)]
    streams = [encode_byte_offset(a) for a in arrays]

    def one(k):
        out = np.empty(arrays[k].size, np.int64)
        _core.cbf_byte_offset_decode(streams[k], out)
        return np.array_equal(out, arrays[k])

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(one, list(range(8)) * 4))


# ------------------------------------------------------------------------------- files and series
def _expected(frame: np.ndarray) -> np.ndarray:
    return np.where(frame < 0, INT32_MIN, frame).astype(np.int32)


@pytest.mark.parametrize("suffix", [".cbf", ".cbf.bz2", ".cbf.gz"])
def test_series_reads_every_compression(tmp_path, suffix):
    import fabio

    from .cbf_data import still_frames, write_cbf

    frames = still_frames(3)
    paths = [write_cbf(tmp_path / f"s_{k + 1:03d}{suffix}", f) for k, f in enumerate(frames)]
    np.testing.assert_array_equal(fabio.open(str(paths[1])).data, frames[1])  # the test writer is sound
    with open_cbf(paths) as ds:
        assert (ds.n_images, ds.ny, ds.nx) == (3, 32, 40)
        assert ds.experiment.detector.beam_center_px == pytest.approx((20.0, 15.5))
        for k in range(3):
            np.testing.assert_array_equal(ds.read_image(k), _expected(frames[k]))
        assert ds.source.endswith("(3 files)") and ds.file_numbers is None
    with open_cbf(str(tmp_path / f"s_###{suffix}")) as ds:
        assert ds.n_images == 3 and ds.file_numbers == [1, 2, 3] and ds.source.endswith(f"s_###{suffix}")
        np.testing.assert_array_equal(ds.read_image(2), _expected(frames[2]))


def test_unsigned_elements(tmp_path):
    from .cbf_data import write_cbf

    data = np.array([[0, 5, 65535], [7, 65534, 1]], np.int64)
    p = write_cbf(tmp_path / "u.cbf", data, element_type="unsigned 16-bit integer")
    with open_cbf(p) as ds:
        np.testing.assert_array_equal(ds.read_image(0), [[0, 5, INT32_MIN], [7, 65534, 1]])


def test_template_rules(tmp_path):
    from jfjoch.io.cbf import expand_template, is_template

    from .cbf_data import still_frames, write_cbf

    f = still_frames(1)[0]
    for n in (7, 8, 9, 10):
        write_cbf(tmp_path / f"th_{n:04d}.cbf", f)
    write_cbf(tmp_path / "th_00011.cbf", f)  # five digits: not this template's
    write_cbf(tmp_path / "th_0012.cbf.bz2", f)  # another suffix
    write_cbf(tmp_path / "xth_0013.cbf", f)
    paths, numbers = expand_template(tmp_path / "th_####.cbf")
    assert numbers == [7, 8, 9, 10] and [p.name for p in paths] == [f"th_{n:04d}.cbf" for n in (7, 8, 9, 10)]
    assert is_template(tmp_path / "th_####.cbf") and not is_template(tmp_path / "th_0007.cbf")
    with open_cbf(str(tmp_path / "th_####.cbf")) as ds:
        np.testing.assert_array_equal(ds.image_numbers, np.arange(4))  # 0-based: image i is the i-th file
        assert ds.paths[0].name == "th_0007.cbf"


@pytest.mark.parametrize(
    ("names", "template", "words"),
    [
        ([], "th_####.cbf", "template {dir}/th_####.cbf matches no file"),
        (["th_0001.cbf", "th_0002.cbf", "th_0004.cbf", "th_0007.cbf"], "th_####.cbf",
         "images 1-7 have a gap: 3, 5-6 missing"),
        ([], "th_##_##.cbf", "2 runs of '#'"),
        (["th_0001.cbf"], "th_####.h5", "not a miniCBF name"),
    ],
)  # fmt: skip
def test_template_errors(tmp_path, names, template, words):
    from jfjoch.io.cbf import expand_template

    from .cbf_data import still_frames, write_cbf

    for name in names:
        write_cbf(tmp_path / name, still_frames(1)[0])
    with pytest.raises(InputError) as e:
        expand_template(tmp_path / template)
    assert words.format(dir=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_list_errors(tmp_path):
    from jfjoch.pipeline import open_dataset

    from .cbf_data import still_frames, write_cbf

    a = write_cbf(tmp_path / "a_0001.cbf", still_frames(1)[0])
    with pytest.raises(InputError, match="given twice"):
        open_cbf([a, tmp_path / "a_0001.cbf"])
    with pytest.raises(InputError, match="must be the only input"):
        open_cbf([a, tmp_path / "a_####.cbf"])
    with pytest.raises(InputError, match=r"cannot mix CBF images and other files: .*x_master.h5 is not a miniCBF"):
        open_dataset([a, tmp_path / "x_master.h5"])
    with pytest.raises(InputError, match="give one NXmx master file"):
        open_dataset([tmp_path / "x_master.h5", tmp_path / "y_master.h5"])
    with pytest.raises(InputError, match="file not found"):
        open_dataset([a, tmp_path / "a_0002.cbf"])
    with pytest.raises(InputError, match="the input must be"):
        open_dataset([])
    with open_dataset(str(tmp_path / "a_####.cbf")) as ds:
        assert ds.n_images == 1


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"shape": (32, 41)}, "X-Binary-Size-Fastest-Dimension is 41, the first file's (s_1.cbf) is 40"),
        ({"shape": (31, 40)}, "X-Binary-Size-Second-Dimension is 31"),
        ({"header": {"Beam_xy": "(20.00, 16.00) pixels"}}, "header Beam_xy is (20.0, 16.0), the first file's"),
        ({"header": {"Detector_distance": "0.35000 m"}}, "header Detector_distance is 0.35"),
        ({"header": {"Wavelength": None}}, "header Wavelength is missing"),
        ({"element_type": "signed 16-bit integer"}, "X-Binary-Element-Type is signed 16-bit integer"),
    ],
)
def test_series_files_must_match(tmp_path, kw, field):
    from .cbf_data import still_frames, write_cbf

    frames = still_frames(3)
    odd = np.zeros(kw.pop("shape", frames[0].shape), np.int32)
    paths = [write_cbf(tmp_path / "s_1.cbf", frames[0]), write_cbf(tmp_path / "s_2.cbf", frames[1]),
             write_cbf(tmp_path / "s_3.cbf", odd, **kw)]  # fmt: skip
    with open_cbf(paths) as ds:
        ds.read_image(1)
        with pytest.raises(InputError) as e:
            ds.read_image(2)
    assert str(e.value).startswith(f"{paths[2]}: {field}")


def test_corrupt_files_are_failed_images(tmp_path):
    from jfjoch.errors import CorruptFrameError
    from jfjoch.io.cbf import _decompress

    from .cbf_data import cbf_bytes, encode_byte_offset, still_frames, write_cbf

    frames = still_frames(7)
    paths = [write_cbf(tmp_path / f"c_{k}.cbf{'.bz2' if k in (1, 2) else ''}", f) for k, f in enumerate(frames)]
    paths[1].write_bytes(paths[1].read_bytes()[:-200])  # truncated bz2
    paths[2].write_bytes(b"BZh9 this is not bzip2")
    raw = paths[3].read_bytes()
    paths[3].write_bytes(raw[: raw.index(b"\x0c\x1a\x04\xd5") + 50])  # binary section cut
    flipped = bytearray(raw)
    flipped[raw.index(b"\x0c\x1a\x04\xd5") + 100] ^= 0x01  # one pixel's delta changed: the MD5 tells
    paths[4].write_bytes(bytes(flipped))
    s = encode_byte_offset(frames[5])
    paths[5].write_bytes(cbf_bytes(frames[5], stream=s[:-3] + b"\x80\x00\x01", md5=False))  # ends in a delta
    paths[6].write_bytes(cbf_bytes(frames[6], stream=s + b"\x01\x02", md5=False))  # bytes past the pixels
    expect = {1: "cannot decompress", 2: "cannot read", 3: "truncated: the binary section holds",
              4: "do not match their Content-MD5", 5: "corrupt: byte-offset stream of",
              6: "pixels end at byte"}  # fmt: skip
    with open_cbf(paths) as ds:
        np.testing.assert_array_equal(ds.read_image(0), _expected(frames[0]))
        for k, words in expect.items():
            with pytest.raises(CorruptFrameError) as e:
                ds.read_image(k)
            msg = str(e.value)
            assert msg.startswith(f"image {k}: ") and words in msg and "\n" not in msg, msg
    assert _decompress(b"plain") == b"plain"
    with open_cbf(paths[4], check_md5=False) as ds:  # the flipped delta reads when the MD5 is not checked
        assert np.count_nonzero(ds.read_image(0) != _expected(frames[4])) > 0


def test_unsupported_files_at_open(tmp_path):
    from .cbf_data import cbf_bytes, still_frames

    f = still_frames(1)[0]
    p = tmp_path / "x.cbf"
    p.write_bytes(cbf_bytes(f).replace(b"x-CBF_BYTE_OFFSET", b"x-CBF_PACKED"))
    with pytest.raises(InputError, match="compression x-CBF_PACKED is not supported"):
        open_cbf(p)
    p.write_bytes(cbf_bytes(f, element_type="signed 64-bit integer"))
    with pytest.raises(InputError, match="X-Binary-Element-Type 'signed 64-bit integer' is not supported"):
        open_cbf(p)
    p.write_bytes(b"###CBF: VERSION 1.5\r\nno binary here\r\n")
    with pytest.raises(InputError, match="no CIF binary section"):
        open_cbf(p)


# ------------------------------------------------------------------------------- command line and API
def _cli(args, capsys):
    from jfjoch.cli.process import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_runs_a_template_and_a_list(tmp_path, capsys):
    import h5py

    from jfjoch.pipeline import process

    from .cbf_data import still_frames, write_cbf

    frames = still_frames(4)
    paths = [write_cbf(tmp_path / f"th_{k + 1:04d}.cbf.gz", f) for k, f in enumerate(frames)]
    paths[2].write_bytes(paths[2].read_bytes()[:100])  # one damaged file: counted, the run goes on
    code, out, err = _cli([tmp_path / "th_####.cbf.gz", "-X", "none", "-N", "2", "-o", tmp_path / "t"], capsys)
    assert code == 0, err
    assert "1 image(s) could not be read" in out and "th_####.cbf.gz" in out
    code, out, err = _cli([*paths, "-X", "none", "-o", tmp_path / "l"], capsys)
    assert code == 0, err
    with h5py.File(tmp_path / "t_process.h5") as a, h5py.File(tmp_path / "l_process.h5") as b:
        assert list(a["entry/image/decoded"][()]) == [1, 1, 0, 1]
        np.testing.assert_array_equal(a["entry/MX/nPeaks"][()], b["entry/MX/nPeaks"][()])
        assert a["entry/MX/nPeaks"][0] >= 1
        assert a["entry"].attrs["source_file"].endswith("th_####.cbf.gz")
    r = process([str(p) for p in paths], write=False, indexing_algorithm="none")
    r2 = process(str(tmp_path / "th_####.cbf.gz"), write=False, indexing_algorithm="none")
    assert [im.n_spots for im in r.images] == [im.n_spots for im in r2.images]


@pytest.mark.parametrize("case", ["no match", "gap", "mix", "size", "geometry", "two h5"])
def test_cli_series_errors_one_line_exit_2(tmp_path, capsys, case):
    from .cbf_data import still_frames, write_cbf

    frames = still_frames(3)
    for k in (1, 2, 4) if case == "gap" else (1, 2, 3):
        write_cbf(tmp_path / f"th_{k:04d}.cbf", frames[0])
    args, words = [tmp_path / "th_####.cbf"], ""
    if case == "no match":
        args, words = [tmp_path / "xx_####.cbf"], "matches no file"
    elif case == "gap":
        words = "images 1-4 have a gap: 3 missing"
    elif case == "mix":
        args, words = [tmp_path / "th_0001.cbf", tmp_path / "x_master.h5"], "cannot mix CBF images and other files"
    elif case == "two h5":
        args, words = [tmp_path / "x_master.h5", tmp_path / "y_master.h5"], "give one NXmx master file"
    elif case == "size":
        write_cbf(tmp_path / "th_0003.cbf", np.zeros((32, 50), np.int32))
        words = "th_0003.cbf: X-Binary-Size-Fastest-Dimension is 50"
    elif case == "geometry":
        write_cbf(tmp_path / "th_0003.cbf", frames[2], {"Wavelength": "1.00000 A"})
        words = "th_0003.cbf: header Wavelength is 1.0, the first file's (th_0001.cbf) is 0.96859"
    code, out, err = _cli([*args, "-X", "none", "-o", tmp_path / "o"], capsys)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code == 2 and len(lines) == 1, err
    assert words in lines[0] and lines[0].startswith("jfjoch_process: error: ")
    assert not list(tmp_path.glob("o_process*"))
