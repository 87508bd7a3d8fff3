"""Bitshuffle + LZ4/Zstd chunk codec against hdf5plugin (an independent implementation of filter 32008)."""

from __future__ import annotations

import contextlib

import h5py
import hdf5plugin
import numpy as np
import pytest

from jfjoch import _core

from .conftest import shared

DTYPES = [np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
# sizes: below one 8-element group, leftovers, not multiples of the block size, several blocks
SIZES = [1, 7, 8, 9, 127, 1000, 2048, 2055, 4099, 8197, 70001]


def _frame(n: int, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.poisson(0.3, n).astype(np.int64)
    spots = rng.integers(0, n, max(1, n // 500))
    a[spots] = rng.integers(100, 30000, spots.size)
    if np.dtype(dtype).kind == "i":
        a[rng.integers(0, n, max(1, n // 1000))] = np.iinfo(dtype).min
    return a.astype(dtype)


def _hdf5plugin_chunk(tmp_path, a: np.ndarray, cname: str, nelems: int = 0) -> bytes:
    """Encode a with hdf5plugin's Bitshuffle filter; return the raw chunk."""
    with h5py.File(tmp_path / "enc.h5", "w") as f:
        d = f.create_dataset("d", data=a, chunks=a.shape, **hdf5plugin.Bitshuffle(nelems=nelems, cname=cname))
        return d.id.read_direct_chunk((0,) * a.ndim)[1]


def _hdf5plugin_decode(tmp_path, chunk: bytes, shape, dtype, cname: str) -> np.ndarray:
    """Write our chunk with write_direct_chunk into a Bitshuffle dataset and read it back through h5py."""
    with h5py.File(tmp_path / "dec.h5", "w") as f:
        filt = hdf5plugin.Bitshuffle(cname=cname)
        d = f.create_dataset("d", shape=shape, dtype=dtype, chunks=shape, **filt)
        d.id.write_direct_chunk((0,) * len(shape), chunk)
        return d[()]


@pytest.mark.parametrize("cname", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_hdf5plugin_chunks(tmp_path, cname, dtype):
    for n in SIZES:
        a = _frame(n, dtype, n)
        chunk = _hdf5plugin_chunk(tmp_path, a, cname)
        out = np.empty_like(a)
        _core.bitshuffle_decompress(chunk, out, cname)
        assert out.tobytes() == a.tobytes(), (n, dtype, cname)


@pytest.mark.parametrize("cname", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64])
def test_non_default_block_size(tmp_path, cname, dtype):
    # 128-element blocks take the SSE2 path, multiples of 256 the AVX2 one (when the CPU has it)
    a = _frame(10_000 + 5, dtype, 3)
    for nelems in (128, 256, 384, 1024, 4096):
        chunk = _hdf5plugin_chunk(tmp_path, a, cname, nelems)
        out = np.empty_like(a)
        _core.bitshuffle_decompress(chunk, out, cname)
        assert out.tobytes() == a.tobytes()
        ours = _core.bitshuffle_compress(a, cname, block_size=nelems)
        assert _hdf5plugin_decode(tmp_path, ours, a.shape, a.dtype, cname).tobytes() == a.tobytes()


@pytest.mark.parametrize("cname", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_encode_read_by_hdf5plugin(tmp_path, cname, dtype):
    for n in SIZES:
        a = _frame(n, dtype, 1000 + n)
        ours = _core.bitshuffle_compress(a, cname)
        assert _core.bitshuffle_chunk_size(ours) == a.nbytes
        back = _hdf5plugin_decode(tmp_path, ours, a.shape, a.dtype, cname)
        assert back.tobytes() == a.tobytes(), (n, dtype, cname)
        if cname == "lz4":  # same LZ4 block compressor: byte-identical chunks
            assert ours == _hdf5plugin_chunk(tmp_path, a, cname)


def test_2d_frame_and_modes(tmp_path):
    a = _frame(300 * 257, np.int32, 7).reshape(300, 257)
    for mode in (2, 3):
        chunk = _core.bitshuffle_compress(a, mode, level=5)
        out = np.empty_like(a)
        _core.bitshuffle_decompress(chunk, out, mode)
        np.testing.assert_array_equal(out, a)


def test_real_chunks_hewl_rot1(tmp_path):
    path = shared("hewl_rot1", "hewl_rot1_data_000001.h5")
    with h5py.File(path, "r") as f:
        d = f["/entry/data/data"]
        for i in (0, 13, d.shape[0] - 1):
            mask, chunk = d.id.read_direct_chunk((i, 0, 0))
            assert mask == 0
            out = np.empty(d.shape[1:], d.dtype)
            _core.bitshuffle_decompress(chunk, out)
            ref = d[i]
            assert out.tobytes() == ref.tobytes()
            # re-encoding the real frame gives the very same bytes
            assert _core.bitshuffle_compress(ref, "lz4") == bytes(chunk)


def test_corrupt_chunks_raise():
    a = _frame(50_000, np.int32, 11)
    out = np.empty_like(a)
    for cname in ("lz4", "zstd"):
        good = _core.bitshuffle_compress(a, cname)
        bad_cases = [
            b"",
            good[:5],
            good[:12],
            good[: len(good) // 2],
            good[:-1] if cname == "zstd" else good[: len(good) - 3],
            b"\x00" * 8 + good[8:],  # wrong total size
            good[:8] + b"\x00\x00\x00\x07" + good[12:],  # block size not a multiple of 8 elements
            good[:12] + b"\xff\xff\xff\xff" + good[16:],  # block size beyond the chunk
            good[:8] + b"\xff\xff\xff\xe0" + good[12:],  # absurd block size (4 GB)
            good[:16] + bytes(64) + good[80:],  # garbage compressed data
        ]
        for bad in bad_cases:
            with pytest.raises(_core.CorruptChunkError):
                _core.bitshuffle_decompress(bad, out, cname)
        assert issubclass(_core.CorruptChunkError, ValueError)
        # random byte flips: either a clean error or a decoded frame, never a crash
        rng = np.random.default_rng(5)
        for _ in range(200):
            b = bytearray(good)
            for p in rng.integers(0, len(b), 4):
                b[p] = rng.integers(0, 256)
            with contextlib.suppress(_core.CorruptChunkError):
                _core.bitshuffle_decompress(bytes(b), out, cname)


def test_bad_arguments():
    a = np.zeros(100, np.int32)
    chunk = _core.bitshuffle_compress(a)
    with pytest.raises(ValueError):
        _core.bitshuffle_decompress(chunk, np.empty(100, np.int32), "gzip")
    with pytest.raises(ValueError):
        _core.bitshuffle_decompress(chunk, np.empty(100, np.int32), 4)
    with pytest.raises(ValueError):  # wrong output size
        _core.bitshuffle_decompress(chunk, np.empty(99, np.int32))
    with pytest.raises(ValueError):  # not contiguous
        _core.bitshuffle_decompress(chunk, np.empty(200, np.int32)[::2])


def test_narrow_unshuffle_matches_hdf5plugin(tmp_path):
    """The decoder's path for blocks of small values (upper byte planes empty), against hdf5plugin."""
    rng = np.random.default_rng(2)
    for hi in (2, 255, 256, 65535, 65536):
        a = rng.integers(0, hi, 3 * 2048 + 517).astype(np.int32)
        a[:2048] = rng.integers(0, 4, 2048)  # one block with values < 256 even when hi is large
        with h5py.File(tmp_path / "n.h5", "w") as f:
            d = f.create_dataset("d", data=a, chunks=a.shape, **hdf5plugin.Bitshuffle(cname="lz4"))
            chunk = d.id.read_direct_chunk((0,))[1]
        out = np.empty_like(a)
        _core.bitshuffle_decompress(chunk, out, "lz4")
        np.testing.assert_array_equal(out, a)
