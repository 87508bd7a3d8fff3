"""Bitshuffle+LZ4 decompression throughput: jfjoch._core vs h5py+hdf5plugin, and 2-thread scaling.

Frames: 2068 x 2164 int32 (a JUNGFRAU 4M with gaps), mostly zeros/small counts with spots, one chunk per
image, written with write_direct_chunk (our LZ4 chunks are byte-identical to hdf5plugin's).

    PYTHONPATH=python python3 bench/bench_decompress.py [--frames 8] [--repeat 3]

Throughput is uncompressed GB/s (1e9 bytes/s). The machine is shared: run it a few times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from jfjoch import _core
from jfjoch.io.nxmx import open_master

NY, NX = 2164, 2068


def make_frame(seed: int) -> np.ndarray:
    """A realistic 4M frame: low Poisson background rising to the centre, ~500 Gaussian spots, gap rows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:NY, 0:NX]
    r2 = ((xx - NX / 2) ** 2 + (yy - NY / 2) ** 2) / (NX / 2) ** 2
    frame = rng.poisson(0.4 * np.exp(-2 * r2)).astype(np.int32)
    for _ in range(500):
        x, y = rng.integers(5, NX - 5), rng.integers(5, NY - 5)
        peak = rng.exponential(200)
        sl = np.s_[y - 3 : y + 4, x - 3 : x + 4]
        g = np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / 2.0)
        frame[sl] += rng.poisson(peak * g).astype(np.int32)
    frame[514 * np.arange(1, 4)[:, None] + np.arange(2)[None, :]] = 0  # gap rows (JUNGFRAU module borders)
    return frame


def write_master(path: Path, frames: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["/entry/instrument/beam/incident_wavelength"] = 1.0
        det = f.create_group("/entry/instrument/detector")
        det["x_pixel_size"] = det["y_pixel_size"] = 75e-6
        det["detector_distance"] = 0.1
        det["beam_center_x"], det["beam_center_y"] = NX / 2, NY / 2
        d = f.create_dataset("/entry/data/data", shape=frames.shape, dtype=np.int32, chunks=(1, NY, NX),
                             **hdf5plugin.Bitshuffle(cname="lz4"))  # fmt: skip
        for i, fr in enumerate(frames):
            d.id.write_direct_chunk((i, 0, 0), _core.bitshuffle_compress(fr, "lz4"))


def rate(fn, n_frames: int, repeat: int) -> float:
    fn()  # warm up
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = max(best, n_frames * NY * NX * 4 / (time.perf_counter() - t) / 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.frames
    frames = np.stack([make_frame(s) for s in range(n)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_master.h5"
        write_master(path, frames)
        with h5py.File(path, "r") as f:
            d = f["/entry/data/data"]
            chunks = [bytes(d.id.read_direct_chunk((i, 0, 0))[1]) for i in range(n)]
            ratio = frames.nbytes / sum(map(len, chunks))
            out = np.empty((NY, NX), np.int32)

            def h5py_read():
                for i in range(n):
                    d.read_direct(out, np.s_[i])

            r_h5 = rate(h5py_read, n, args.repeat)
            with ThreadPoolExecutor(2) as pool:
                r_h5_2 = rate(lambda: list(pool.map(lambda i: d[i], range(n))), n, args.repeat)

        outs = [np.empty((NY, NX), np.int32) for _ in range(2)]

        def ours_decode(k=0, idx=range(n)):
            for i in idx:
                _core.bitshuffle_decompress(chunks[i], outs[k])

        r_dec = rate(ours_decode, n, args.repeat)
        with ThreadPoolExecutor(2) as pool:
            halves = [range(0, n, 2), range(1, n, 2)]
            r_dec_2 = rate(lambda: list(pool.map(ours_decode, (0, 1), halves)), n, args.repeat)

        with open_master(path) as ds:
            assert np.array_equal(ds.read_image(n - 1), frames[n - 1])
            r_rd = rate(lambda: [ds.read_image(i) for i in range(n)], n, args.repeat)
            with ThreadPoolExecutor(2) as pool:
                r_rd_2 = rate(lambda: list(pool.map(ds.read_image, range(n))), n, args.repeat)
            bufs = [np.empty((NY, NX), np.int32) for _ in range(2)]

            def read_into(k=0, idx=range(n)):
                for i in idx:
                    ds.read_image(i, out=bufs[k])

            r_ro = rate(read_into, n, args.repeat)
            with ThreadPoolExecutor(2) as pool:
                r_ro_2 = rate(lambda: list(pool.map(read_into, (0, 1), halves)), n, args.repeat)

    print(f"{n} frames {NX} x {NY} int32 ({frames.nbytes / n / 1e6:.1f} MB each), LZ4 ratio {ratio:.1f}")
    print(f"{'path':52s} {'GB/s':>7s} {'vs h5py':>8s}")
    rows = [
        ("h5py + hdf5plugin, dset.read_direct, 1 thread", r_h5),
        ("h5py + hdf5plugin, dset[i], 2 threads", r_h5_2),
        ("jfjoch _core.bitshuffle_decompress, 1 thread", r_dec),
        ("jfjoch _core.bitshuffle_decompress, 2 threads", r_dec_2),
        ("jfjoch NXmxDataset.read_image (new array), 1 thr", r_rd),
        ("jfjoch NXmxDataset.read_image (new array), 2 thr", r_rd_2),
        ("jfjoch NXmxDataset.read_image(out=buf), 1 thr", r_ro),
        ("jfjoch NXmxDataset.read_image(out=buf), 2 thr", r_ro_2),
    ]
    for name, r in rows:
        print(f"{name:52s} {r:7.2f} {r / r_h5:7.2f}x")
    print(
        f"2-thread scaling: decode {r_dec_2 / r_dec:.2f}x, read_image {r_rd_2 / r_rd:.2f}x, "
        f"read_image(out) {r_ro_2 / r_ro:.2f}x, "
        f"h5py {r_h5_2 / r_h5:.2f}x"
    )


if __name__ == "__main__":
    main()
