"""Spot finder throughput on a JUNGFRAU 4M-sized frame (2068 x 2164 int32).

Frame: Poisson background of 0.5 photons/pixel, a few hundred Gaussian spots, module-gap mask (8 modules of
1030 x 514 with 8/36-pixel gaps). Times, in one run:
  * the kernel single-threaded (ns/pixel) and with 2 Python threads (frames/s);
  * a straightforward numpy/scipy implementation of the same test (uniform_filter local statistics,
    ndimage.label, center_of_mass) -> ratio;
  * decode + find: with jfjoch._core.bitshuffle_decompress when the build has it, otherwise with h5py +
    hdf5plugin (bitshuffle/LZ4 chunk in an in-memory HDF5 file); the output says which.

usage: PYTHONPATH=python python3 bench/bench_spots.py [--frames N] [--threads T]
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ builders
from tests.spot_data import experiment, gaussian_spots, module_gap_mask
from timing import timed

from jfjoch import _core
from jfjoch.spots import SpotFinder, SpotFinderSettings

NX, NY = 2068, 2164


def make_frames(n: int, seed: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = module_gap_mask(NY, NX)
    frames = []
    for _ in range(n):
        img, _ = gaussian_spots(NY, NX, int(rng.integers(200, 400)), rng, background=0.5, photons=(50, 5000))
        img[mask] = 0
        frames.append(img)
    return frames, mask


def numpy_reference(img: np.ndarray, mask: np.ndarray, st: SpotFinderSettings):
    """The same strong-pixel test and spot list with numpy/scipy (float64 local sums)."""
    valid = ~mask
    v = img.astype(np.float64)
    vv = np.where(valid, v, 0.0)
    k = 2 * st.window_half + 1
    s = ndimage.uniform_filter(vv, k, mode="constant") * (k * k) - vv
    s2 = ndimage.uniform_filter(vv * vv, k, mode="constant") * (k * k) - vv * vv
    n = ndimage.uniform_filter(valid.astype(np.float64), k, mode="constant") * (k * k) - valid
    n = np.rint(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = s2 / n - mean * mean
        strong = (
            valid & (v >= st.photon_threshold) & (n >= 2) & (v > mean) & ((v - mean) ** 2 > st.sigma**2 * var)
        )
    labels, nl = ndimage.label(strong, structure=np.ones((3, 3)))
    idx = np.arange(1, nl + 1)
    npx = ndimage.sum_labels(strong, labels, idx)
    inten = ndimage.sum_labels(v, labels, idx)
    com = np.array(ndimage.center_of_mass(v, labels, idx)).reshape(-1, 2)
    keep = npx >= st.min_pixels
    order = np.argsort(-inten[keep], kind="stable")[: st.max_spots]
    return com[keep][order], inten[keep][order]


def threaded_fps(fn, frames: list[np.ndarray], n_threads: int, rounds: int) -> float:
    work = [frames[i::n_threads] for i in range(n_threads)]

    def run(items):
        for _ in range(rounds):
            for f in items:
                fn(f)

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(frames) * rounds / (time.perf_counter() - t0)


def compressed_chunks(frames: list[np.ndarray]):
    """(chunks, decode, label): bitshuffle/LZ4 chunks of the frames and a decode function."""
    import h5py
    import hdf5plugin

    if hasattr(_core, "bitshuffle_decompress") and hasattr(_core, "bitshuffle_compress"):
        try:
            chunks = [bytes(_core.bitshuffle_compress(f, codec="lz4")) for f in frames]
            out = np.empty((NY, NX), np.int32)
            _core.bitshuffle_decompress(chunks[0], out)
            if np.array_equal(out, frames[0]):

                def decode(c):
                    o = np.empty((NY, NX), np.int32)
                    _core.bitshuffle_decompress(c, o)
                    return o

                return chunks, decode, "jfjoch._core.bitshuffle_decompress"
        except Exception as e:  # signature differs from the one expected: fall back, and say so
            print(f"  (jfjoch._core bitshuffle codec present but not usable here: {e}; using hdf5plugin)")
    bio = io.BytesIO()
    f = h5py.File(bio, "w")
    ds = f.create_dataset(
        "data",
        shape=(len(frames), NY, NX),
        dtype=np.int32,
        chunks=(1, NY, NX),
        **hdf5plugin.Bitshuffle(cname="lz4"),
    )
    for i, fr in enumerate(frames):
        ds[i] = fr
    lock = threading.Lock()

    def decode(i):
        with lock:  # h5py serialises anyway; the lock makes that explicit
            return ds[i]

    return list(range(len(frames))), decode, "h5py + hdf5plugin (bitshuffle/LZ4 filter)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()

    frames, mask = make_frames(args.frames)
    exp = experiment(NX, NY, mask=mask, saturation=2**31 - 1, distance_mm=120.0)
    st = SpotFinderSettings()
    t0 = time.perf_counter()
    sf = SpotFinder(exp, st, backend="cpu")
    t_setup = time.perf_counter() - t0
    npix = NX * NY
    print(f"frame {NX} x {NY} int32 ({npix / 1e6:.2f} Mpixel), {args.frames} frames, background 0.5 photons")
    print(f"settings: {st}")
    print(f"SpotFinder setup (pixel flags, once per experiment): {t_setup * 1e3:.1f} ms")

    res = [sf.find(f) for f in frames]
    print(
        f"spots per frame: {np.mean([len(r) for r in res]):.0f}, strong pixels per frame: "
        f"{np.mean([r.n_strong_pixels for r in res]):.0f}"
    )

    i = iter(range(10**9))
    t_k = timed(lambda: sf.find(frames[next(i) % len(frames)]), args.reps, warmup=False)[0]
    print(
        f"kernel, 1 thread : {t_k * 1e3:7.2f} ms/frame  {t_k / npix * 1e9:5.2f} ns/pixel  "
        f"{1 / t_k:6.1f} frames/s"
    )
    fps = threaded_fps(sf.find, frames, args.threads, rounds=2)
    print(f"kernel, {args.threads} threads: {fps:6.1f} frames/s ({fps * t_k:.2f}x one thread)")

    t_ref = timed(lambda: numpy_reference(frames[0], mask, st), 2, warmup=False)[0]
    ref_xy, _ = numpy_reference(frames[0], mask, st)
    same = len(ref_xy) == len(res[0])
    print(
        f"numpy/scipy      : {t_ref * 1e3:7.1f} ms/frame  {t_ref / npix * 1e9:5.1f} ns/pixel  "
        f"-> kernel is {t_ref / t_k:.0f}x faster (same spot count: {same})"
    )

    chunks, decode, label = compressed_chunks(frames)
    t_dec = timed(lambda: decode(chunks[0]), args.reps, warmup=False)[0]
    t_both = timed(lambda: sf.find(decode(chunks[1 % len(chunks)])), args.reps, warmup=False)[0]
    fps_both = threaded_fps(lambda c: sf.find(decode(c)), chunks, args.threads, rounds=2)
    print(f"decode via {label}")
    print(f"decode           : {t_dec * 1e3:7.2f} ms/frame")
    print(
        f"decode + find    : {t_both * 1e3:7.2f} ms/frame (1 thread), "
        f"{fps_both:.1f} frames/s ({args.threads} threads)"
    )


if __name__ == "__main__":
    main()
