"""The per-frame pass at detector scale: simulated JUNGFRAU 4M stills (2068 x 2164, bitshuffle+LZ4 int32).

Prints, all measured in this run (--reps repetitions, median and minimum):
  * this machine: CPUs, load average before/after, memory bandwidth (numpy sum / fill / copy of 512 MB,
    1 and 2 threads);
  * per stage, 1 thread, ms/frame and ns/pixel, BEFORE (the separate kernels: h5py chunk read, decode,
    SpotFinder.find, AzimuthalIntegrator.integrate_with_counts, compute_image_statistics) and AFTER (the
    fused FramePass.run_chunk = decode + spots + azint, StatisticsCalculator), each with the fraction of
    the memory-bandwidth limit it reaches (bytes it must move / bandwidth, over its time);
  * decode + spots + azint + statistics with -N 1 and -N 2 threads (frames/s), before and after;
  * the whole per-image pass with integration (jfjoch.process -X ffbidx -C ... -S 96): -N 1, -N 2 with the
    separate kernels (before) and the fused pass (after), the integration kernel alone in ns/pixel, and
    the command line jfjoch_process -N 1, -N 2 and --dask local:2 (frames/s from its "images" time).

usage: PYTHONPATH=python python3 bench/bench_frame_pass.py [--frames 192] [--reps 3] [--workdir DIR]
       [--no-cli] [--no-dask]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import jfjoch
from jfjoch import _core
from jfjoch.image_stats import compute_image_statistics
from jfjoch.io.nxmx import open_master
from jfjoch.options import ProcessOptions
from jfjoch.results import ImageResult
from jfjoch.tables import SpotTable
from jfjoch.worker import ImageWorker, Plan, StageSettings

CELL = (79.344, 79.344, 37.81, 90.0, 90.0, 90.0)
CELL_ARG = "79.344,79.344,37.81,90,90,90"


def stats(ts: list[float]) -> tuple[float, float]:
    return float(np.median(ts)), float(np.min(ts))


def simulate(workdir: Path, n: int) -> Path:
    master = workdir / f"jf4m_{n}" / "s_master.h5"
    if not master.exists():
        from jfjoch.simulate import simulate_dataset

        simulate_dataset(master.parent / "s", detector="4M", mode="stills", n_images=n, distance_mm=150.0, seed=3)
    return master


# ----------------------------------------------------------------------------------------- bandwidth
def bandwidth(reps: int) -> dict[str, float]:
    """GB/s (best of reps): read = numpy sum of float64, write = fill, copy = copyto (bytes copied; the
    memory moves twice that); '2 threads' = two arrays at once (numpy releases the GIL)."""
    n = 512 << 20
    arrays = [np.ones(n // 8) for _ in range(2)]
    outs = [np.empty(n // 8) for _ in range(2)]

    def best(f, k):
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return k * n / min(ts) / 1e9

    def two(fn):
        with ThreadPoolExecutor(2) as p:
            list(p.map(fn, range(2)))

    return {
        "read": best(lambda: arrays[0].sum(), 1),
        "write": best(lambda: outs[0].fill(1.0), 1),
        "copy": best(lambda: np.copyto(outs[0], arrays[0]), 1),
        "read, 2 threads": best(lambda: two(lambda i: arrays[i].sum()), 2),
        "write, 2 threads": best(lambda: two(lambda i: outs[i].fill(1.0)), 2),
    }


# ----------------------------------------------------------------------------------------- the two passes
class SeparateStages:
    """Before: decode, spot finder, azimuthal integration and statistics as separate calls."""

    def __init__(self, worker: ImageWorker) -> None:
        self.sf, self.az = worker.spot_finder, worker.azint
        self.bufs = threading.local()

    def image(self, chunk) -> np.ndarray:
        buf = getattr(self.bufs, "img", None)
        if buf is None:
            buf = self.bufs.img = np.empty(self.az.shape, np.int32)
        _core.bitshuffle_decompress(chunk.data, buf, chunk.codec)
        return buf

    def __call__(self, chunk):
        img = self.image(chunk)
        sl = self.sf.find(img)
        mean, count = self.az.integrate_with_counts(img)
        return compute_image_statistics(sl, mean, self.az.q, profile_count=count)


class FusedPass:
    """After: FramePass.run_chunk (decode + spots + azint) and StatisticsCalculator."""

    def __init__(self, worker: ImageWorker) -> None:
        self.fp, self.calc = worker.frame_pass, worker.statistics
        self.bufs = threading.local()

    def __call__(self, chunk):
        img, fr = self.fp.run_chunk(chunk, out=getattr(self.bufs, "img", None))
        self.bufs.img = img
        return self.calc.compute(fr.spots, fr.profile, fr.count)


class LegacyWorker(ImageWorker):
    """The per-image worker as it was before the fused pass: read_image, then the separate stages."""

    def run(self, dataset, number):
        try:
            image = dataset.read_image(number)
        except jfjoch.CorruptFrameError as e:
            return ImageResult(number=number, ok=False, error=str(e))
        return self.process(number, image)

    def process(self, number, image):
        sl = self.spot_finder.find(image)
        spots = SpotTable(x=sl.x, y=sl.y, intensity=sl.intensity, d=sl.d, ice_ring=sl.ice_ring)
        profile, counts = self.azint.integrate_with_counts(image)
        st = compute_image_statistics(sl, profile, self.azint.q, profile_count=counts).as_dict()
        r = ImageResult(number=number, spots=spots, profile=np.asarray(profile, np.float32), stats=st)
        if self.plan.stages.indexing.algorithm != "none":
            self._still(r, image)
        return r


def per_frame(fn, items, reps: int) -> tuple[float, float, float]:
    """(median, min) over reps of the mean wall time per item (s), one thread, and the median thread CPU
    time per item (s; what the other users of the cores take away does not count there)."""
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.thread_time()
        for it in items:
            fn(it)
        ts.append((time.perf_counter() - t0) / len(items))
        cs.append((time.thread_time() - c0) / len(items))
    return (*stats(ts), float(np.median(cs)))


def rate(fn, items, threads: int, reps: int) -> tuple[float, float]:
    """(median, best) frames/s over reps with `threads` Python threads."""
    rs = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, items[: 2 * threads]))  # warm the per-thread buffers
        for _ in range(reps):
            t0 = time.perf_counter()
            list(pool.map(fn, items))
            rs.append(len(items) / (time.perf_counter() - t0))
    return float(np.median(rs)), float(np.max(rs))


# ----------------------------------------------------------------------------------------- whole pass
def process_api(master: Path, threads: int, out: str, legacy: bool, integ_times: list | None) -> dict:
    import jfjoch.pipeline as pipeline
    import jfjoch.worker as worker_mod

    orig_worker, orig_integrate = pipeline.ImageWorker, worker_mod.integrate
    if legacy:
        pipeline.ImageWorker = LegacyWorker
    if integ_times is not None:

        def timed(*a, **k):
            t0 = time.perf_counter()
            r = orig_integrate(*a, **k)
            integ_times.append(time.perf_counter() - t0)
            return r

        worker_mod.integrate = timed
    try:
        opts = ProcessOptions(threads=threads, output_prefix=out, indexing_algorithm="ffbidx", unit_cell=CELL,
                              space_group=96)  # fmt: skip
        r = jfjoch.process(master, opts)
    finally:
        pipeline.ImageWorker, worker_mod.integrate = orig_worker, orig_integrate
    return {"images": r.timing["images"], "n": len(r.images), "indexed": sum(im.indexed for im in r.images)}


def process_cli(master: Path, args: list[str], out: str) -> tuple[float, float, int]:
    """(images seconds as printed, wall seconds, return code) of one jfjoch_process run."""
    cmd = [sys.executable, "-c", "import sys; from jfjoch.cli.process import entry; sys.argv[0] = 'jfjoch_process'; "
           "entry()", str(master), "-X", "ffbidx", "-C", CELL_ARG, "-S", "96", "-o", out, *args]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - t0
    m = re.search(r"images ([0-9.]+) s", p.stdout)
    if p.returncode != 0 or m is None:
        print(p.stdout[-2000:], p.stderr[-2000:])
        return float("nan"), wall, p.returncode
    return float(m.group(1)), wall, 0


def breakdown(master: Path, reps: int, npix: int) -> None:
    """Where the whole per-image pass spends its time, 1 thread, before and after (functions wrapped)."""
    import jfjoch.frame_pass as fpm
    import jfjoch.image_stats as ism
    import jfjoch.index as idx
    import jfjoch.worker as wm
    from jfjoch.pipeline import make_stage_settings

    ds = open_master(master)
    exp = ds.experiment
    from dataclasses import replace

    exp = replace(exp, unit_cell=CELL, space_group=96)
    st = make_stage_settings(ProcessOptions(indexing_algorithm="ffbidx", unit_cell=CELL, space_group=96), exp,
                             "ffbidx")  # fmt: skip
    names = {"frame pass (decode+spots+azint)": (fpm.FramePass, "run_chunk"),
             "statistics": (ism.StatisticsCalculator, "compute"),
             "read + decode (h5py, codec)": (type(ds), "read_image"),
             "spot finder": (jfjoch.spots.SpotFinder, "find"),
             "azimuthal integration": (jfjoch.azint.AzimuthalIntegrator, "integrate_with_counts"),
             "statistics (compute_image_statistics)": (None, "compute_image_statistics"),
             "indexing (ffbidx, CPU)": (idx, "index_reciprocal"),
             "refinement": (wm, "refine_still"),
             "prediction": (wm, "predict_still"),
             "integration": (wm, "integrate")}  # fmt: skip
    print(f"\nthe whole per-image pass, 1 thread, where the time goes (ms/frame, median of {reps} passes over "
          f"{ds.n_images} stills):")  # fmt: skip
    for label, cls in (("before", LegacyWorker), ("after", ImageWorker)):
        w = cls(Plan(experiment=exp, stages=st))
        acc: dict[str, list[float]] = {k: [] for k in names}
        saved = []
        for k, (owner, attr) in names.items():
            owner = owner or sys.modules[LegacyWorker.__module__]
            orig = getattr(owner, attr)
            saved.append((owner, attr, orig))

            def wrap(f, times):
                def timed(*a, **kw):
                    t0 = time.perf_counter()
                    r = f(*a, **kw)
                    times[-1] += time.perf_counter() - t0
                    return r

                return timed

            setattr(owner, attr, wrap(orig, acc[k]))
        totals = []
        try:
            for _ in range(reps):
                for v in acc.values():
                    v.append(0.0)
                t0 = time.perf_counter()
                for i in range(ds.n_images):
                    w.run(ds, i)
                totals.append((time.perf_counter() - t0) / ds.n_images)
        finally:
            for owner, attr, orig in saved:
                setattr(owner, attr, orig)
        tot = float(np.median(totals))
        parts = {k: float(np.median(v)) / ds.n_images for k, v in acc.items() if np.median(v) > 0}
        rest = tot - sum(parts.values())
        row = ", ".join(f"{k} {1e3 * v:.2f}" for k, v in parts.items())
        print(f"  {label:6s}: total {1e3 * tot:.1f} ms = {1e9 * tot / npix:.2f} ns/pixel: {row}, the rest (Python, "
              f"lattice, tables) {1e3 * rest:.2f}")  # fmt: skip


# ----------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=192)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "jfjoch_bench_frame_pass"))
    ap.add_argument("--no-cli", action="store_true", help="skip the jfjoch_process and --dask runs")
    ap.add_argument("--no-dask", action="store_true", help="skip the --dask local:2 run")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    master = simulate(work, args.frames)
    load0 = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at start")

    bw = bandwidth(args.reps)
    print("memory bandwidth (GB/s, best of reps): " + ", ".join(f"{k} {v:.1f}" for k, v in bw.items()))
    bw_read, bw_write = bw["read"] * 1e9, bw["write"] * 1e9

    ds = open_master(master)
    npix = ds.nx * ds.ny
    chunks = [ds.read_chunk(i) for i in range(ds.n_images)]
    comp = float(np.mean([len(c.data) for c in chunks]))
    worker = ImageWorker(Plan(experiment=ds.experiment, stages=StageSettings()))
    sep, fused = SeparateStages(worker), FusedPass(worker)
    img = sep.image(chunks[0]).copy()
    images = [sep.image(c).copy() for c in chunks[:8]]
    sl = worker.spot_finder.find(img)
    mean, count = worker.azint.integrate_with_counts(img)
    fr = worker.frame_pass.run(img)
    print(f"data: {ds.n_images} stills {ds.ny} x {ds.nx} = {npix / 1e6:.2f} Mpixel, {comp / 1e6:.2f} MB/frame "
          f"compressed ({4 * npix / comp:.1f}x), {len(sl)} spots/frame; fused map "
          f"{worker.frame_pass.map_nbytes / 1e6:.1f} MB ({worker.azint.n_bins} bins)")  # fmt: skip

    # bytes each stage must move (read, written) per frame: the floor of its time at this bandwidth
    run_bytes = worker.frame_pass.map_nbytes - 4 * npix
    stages = [
        ("read chunk (h5py)", lambda i: ds.read_chunk(i), list(range(ds.n_images)), (comp, comp)),
        ("decode", lambda c: sep.image(c), chunks, (comp, 4 * npix)),
        ("spot finder", lambda i: worker.spot_finder.find(i), images, (5 * npix, 0)),
        ("azimuthal integration", lambda i: worker.azint.integrate_with_counts(i), images, (12 * npix, 0)),
        ("statistics", lambda _: compute_image_statistics(sl, mean, worker.azint.q, profile_count=count), images,
         (0, 0)),
        ("FUSED decode+spots+azint", fused.__call__, chunks, (comp + 4 * npix + run_bytes, 4 * npix)),
        ("  fused pass on a decoded image", lambda i: worker.frame_pass.run(i), images, (8 * npix + run_bytes, 0)),
        ("  statistics (calculator)", lambda _: worker.statistics.compute(fr.spots, fr.profile, fr.count), images,
         (0, 0)),
    ]  # fmt: skip
    print(f"\nper stage, 1 thread ({args.reps} reps; median / min):")
    print(f"{'stage':34s} {'ms/frame':>16s} {'ns/pixel':>14s} {'CPU ns/px':>9s} {'% of bandwidth limit':>21s}")
    res, cpu = {}, {}
    for name, fn, items, (rb, wb) in stages:
        med, best, c = per_frame(fn, items, args.reps)
        res[name], cpu[name] = med, c
        floor = rb / bw_read + wb / bw_write
        frac = f"{100 * floor / med:5.1f} %" if floor else "-"
        print(f"{name:34s} {1e3 * med:7.2f} / {1e3 * best:6.2f} {1e9 * med / npix:6.2f} / {1e9 * best / npix:5.2f}"
              f" {1e9 * c / npix:9.2f} {frac:>21s}")  # fmt: skip
    keys_b = ("decode", "spot finder", "azimuthal integration", "statistics")
    keys_a = ("FUSED decode+spots+azint", "  statistics (calculator)")
    for what, d in (("wall, median", res), ("thread CPU time", cpu)):
        before, after = sum(d[k] for k in keys_b), sum(d[k] for k in keys_a)
        print(f"decode + spots + azint + statistics ({what}): before {1e9 * before / npix:.2f} ns/pixel, after "
              f"{1e9 * after / npix:.2f} ns/pixel ({before / after:.2f}x)")

    print(f"\ndecode + spots + azint + statistics, frames/s ({args.reps} reps; median / best):")
    for n in (1, 2):
        rb, rbb = rate(sep, chunks, n, args.reps)
        ra, rab = rate(fused, chunks, n, args.reps)
        print(f"  -N {n}: before {rb:6.1f} / {rbb:6.1f}   after {ra:6.1f} / {rab:6.1f}   "
              f"after = {1e9 * n / (ra * npix):.2f} ns/pixel per core")

    breakdown(master, args.reps, npix)

    with tempfile.TemporaryDirectory() as tmp:
        print(f"\nwhole per-image pass (jfjoch.process -X ffbidx -C ... -S 96, {ds.n_images} stills; frames/s from "
              f"the 'images' time, which includes building the worker; median / best of {args.reps}):")  # fmt: skip
        integ: dict[bool, list[float]] = {True: [], False: []}
        for label, legacy in (("before (separate kernels)", True), ("after (fused pass)", False)):
            for n in (1, 2):
                rs, ok = [], 0
                for _ in range(args.reps):
                    r = process_api(master, n, f"{tmp}/p", legacy, integ[legacy] if n == 1 else None)
                    rs.append(r["n"] / r["images"])
                    ok = r["indexed"]
                med, best = float(np.median(rs)), float(np.max(rs))
                print(f"  {label:28s} -N {n}: {med:6.1f} / {best:6.1f} frames/s = {1e9 * n / (med * npix):5.2f} "
                      f"ns/pixel per core; indexed {ok}/{ds.n_images}")  # fmt: skip
        for legacy, label in ((True, "before"), (False, "after")):
            im, ib = stats(integ[legacy])
            print(f"  integration (integrate(), summation, per indexed still, -N 1, {label}): {1e3 * im:.2f} ms = "
                  f"{1e9 * im / npix:.2f} ns/pixel (min {1e9 * ib / npix:.2f})")  # fmt: skip
        if not args.no_cli:
            runs = [("-N 1", ["-N", "1"]), ("-N 2", ["-N", "2"])]
            if not args.no_dask:
                runs.append(("--dask local:2", ["--dask", "local:2"]))
            print(f"\njfjoch_process (a fresh process each; frames/s from its 'images' time; median / best of "
                  f"{args.reps}):")  # fmt: skip
            for label, extra in runs:
                rs, walls = [], []
                for _ in range(args.reps):
                    t_img, wall, rc = process_cli(master, extra, f"{tmp}/c")
                    if rc == 0:
                        rs.append(ds.n_images / t_img)
                        walls.append(wall)
                if not rs:
                    print(f"  {label}: failed")
                    continue
                med, best = float(np.median(rs)), float(np.max(rs))
                cores = 2 if label != "-N 1" else 1
                print(f"  {label:16s}: {med:6.1f} / {best:6.1f} frames/s = {1e9 * cores / (med * npix):5.2f} ns/pixel "
                      f"per core; wall incl. start-up {np.median(walls):.1f} s")  # fmt: skip
    load1 = os.getloadavg()
    print(f"\nload average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end")


if __name__ == "__main__":
    main()
