"""Benchmark of jfjoch.simulate: frames/s for a JUNGFRAU 4M rotation dataset.

Prints, per configuration: setup time (reflections, background, mask), the rendering rate of the C++ kernel
(prediction + spots + Poisson noise + saturation/mask, frames/s), the rate of the same frames with the
numpy reference path (numpy spots + numpy Poisson, the baseline timed in the same run), and the end-to-end
rate including bitshuffle/LZ4 compression and HDF5 writing.

    PYTHONPATH=python python3 bench/bench_simulate.py [--frames 20] [--threads 1 2] [--detector 4M]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np

from jfjoch.simulate import SimulationSettings, Simulator, render_spots, simulate_dataset


def numpy_frame(sim: Simulator, i: int) -> np.ndarray:
    """Baseline: the same frame with numpy spots and numpy's Poisson generator."""
    _, xy, ph = sim.reflections_on(i)
    exp = sim.background_map.astype(np.float64)
    render_spots(exp, xy, ph, sim.s.psf_sigma_px)
    counts = np.random.default_rng([sim.s.seed, i]).poisson(exp)
    img = np.minimum(counts, sim.s.saturation).astype(np.int32)
    img[sim.pixel_class == 1] = 0
    img[sim.pixel_class == 2] = sim.s.saturation
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="4M")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--distance", type=float, default=150.0)
    args = ap.parse_args()
    kw = {"detector": args.detector, "n_images": args.frames, "distance_mm": args.distance, "seed": 1}
    t0, c0 = time.perf_counter(), time.process_time()
    sim = Simulator(SimulationSettings(**kw))
    t_setup, t_setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    nrefl = [len(sim.reflections_on(i)[2]) for i in range(args.frames)]
    strong = [int((sim.reflections_on(i)[2] > 200).sum()) for i in range(args.frames)]
    print(
        f"detector {args.detector} {sim.nx}x{sim.ny}, {args.frames} rotation frames of 0.5 deg, "
        f"d_min {sim.d_min:.2f} A, {np.mean(nrefl):.0f} reflections/frame "
        f"({np.mean(strong):.0f} > 200 photons)"
    )
    print(f"setup (reflections, background map, mask): {t_setup:.2f} s")
    print("frames/s = wall clock (depends on machine load); ms CPU/frame = process CPU time per frame")

    n_base = min(5, args.frames)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_base):
        numpy_frame(sim, i)
    base = n_base / (time.perf_counter() - t0)
    base_cpu = (time.process_time() - c0) / n_base
    print(f"numpy reference (baseline):         {base:6.2f} frames/s  [{1e3 * base_cpu:.0f} ms CPU/frame]")
    for nt in args.threads:
        sim.s = replace(sim.s, threads=nt)  # threads do not change the bytes; reuse the setup
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in sim.frames():
            pass
        rate = args.frames / (time.perf_counter() - t0)
        cpu = (time.process_time() - c0) / args.frames
        print(
            f"C++ kernel, {nt} thread(s):           {rate:6.2f} frames/s  ({rate / base:.1f}x baseline) "
            f"[{1e3 * cpu:.0f} ms CPU/frame, {base_cpu / cpu:.1f}x less CPU than baseline]"
        )
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        simulate_dataset(f"{d}/bench", threads=args.threads[-1], **kw)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"end to end incl. setup + bslz4 + HDF5 ({args.threads[-1]} thread(s)): "
        f"{args.frames / dt:6.2f} frames/s ({dt:.1f} s; {dc:.1f} s CPU, "
        f"{1e3 * (dc - t_setup_cpu) / args.frames:.0f} ms CPU/frame after setup)"
    )


if __name__ == "__main__":
    main()
