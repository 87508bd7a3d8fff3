"""miniCBF series: where the reading time goes, images/s of reading alone, and the whole jfjoch_process run,
ours (C++ byte offset, bz2/gz in the worker threads) against the fabio reader it replaced.

    PYTHONPATH=python python3 bench/bench_cbf.py [--repeat 3] [--threads 1 2] [--no-process]

Data: the ten PILATUS3 6M stills of ../shared/data/thaumatin_grid_stills (.cbf.bz2), plus uncompressed .cbf
and .cbf.gz (gzip -6) copies of them written to a temporary folder, to show what the input compression costs.
"before" is the reader of commit e0de432 (fabio decodes; copied below as FabioCbfDataset, its first file read
whole at open), put in place of jfjoch.pipeline.open_dataset for the whole run. Every figure is the median
of --repeat runs, old and new interleaved (the machine is shared: the load average is printed).
Whole run: jfjoch_process SERIES -X ffbidx -C 58,58,151,90,90,90 -S 92 -N n -o TMP (in this process).
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import gzip
import io
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from jfjoch import _core
from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.io.cbf import CbfDataset, _parse_binary, open_cbf, parse_minicbf_header
from jfjoch.io.nxmx import INT32_MIN, ImageIndexError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "thaumatin_grid_stills"
PROCESS_ARGS = ["-X", "ffbidx", "-C", "58,58,151,90,90,90", "-S", "92"]


class FabioCbfDataset(CbfDataset):
    """The reader before this change (commit e0de432): fabio decompresses and decodes every image, and the
    first file is read whole at open for its header."""

    def __init__(self, paths) -> None:
        import fabio

        self._fabio = fabio
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise InputError("no CBF files given")
        for p in self.paths:
            if not p.exists():
                raise InputError(f"file not found: {p}")
        self.path = self.paths[0]
        self.template = None
        first = self._open(0)
        self.ny, self.nx = (int(x) for x in first.data.shape)
        self.header = parse_minicbf_header(str(first.header.get("_array_data.header_contents", "")))
        self.experiment = self._experiment(self.header)
        self.n_images = len(self.paths)
        self.image_numbers = np.arange(self.n_images, dtype=np.int64)

    def _open(self, i: int):
        try:
            return self._fabio.open(str(self.paths[i]))
        except Exception as e:
            raise CorruptFrameError(f"image {i}: cannot read {self.paths[i]} ({e})") from e

    def read_image(self, i: int) -> np.ndarray:
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_images):
            raise ImageIndexError(f"image index {i} out of range [0, {self.n_images})")
        data = np.asarray(self._open(int(i)).data)
        out = data.astype(np.int32, copy=True)
        out[data < 0] = INT32_MIN
        return out


def _median_ms(ts: list[float]) -> str:
    return f"{1e3 * statistics.median(ts):7.1f}"


def split(paths: list[Path], repeat: int) -> None:
    """One thread, one frame at a time: the parts of ours, and fabio's whole read (wall and CPU time)."""
    names = ("file read", "bz2 (libbz2)", "header parse", "byte offset (C++)", "Content-MD5", "read_image, all",
             "fabio.open, all")  # fmt: skip
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    try:
        import indexed_bzip2
    except ImportError:
        indexed_bzip2 = None
    ds = open_cbf(paths)
    out = np.empty((ds.ny, ds.nx), np.int32)
    import hashlib

    import fabio

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.thread_time()

    for _ in range(repeat):
        for i, p in enumerate(paths):
            marks = [clock()]
            raw = p.read_bytes()
            marks.append(clock())
            data = bz2.decompress(raw)
            marks.append(clock())
            text, b = _parse_binary(data)
            parse_minicbf_header(text)
            marks.append(clock())
            stream = memoryview(data)[b.start : b.start + b.size]
            _core.cbf_byte_offset_decode(stream, out, **ds._decode_args)
            marks.append(clock())
            hashlib.md5(stream).digest()
            marks.append(clock())
            ds.read_image(i)
            marks.append(clock())
            fabio.open(str(p))
            marks.append(clock())
            del raw, data, stream
            for k, (a, z) in zip(names, itertools.pairwise(marks)):
                wall[k].append(z[0] - a[0])
                cpu[k].append(z[1] - a[1])
            if indexed_bzip2 is not None:
                raw = p.read_bytes()
                a = clock()
                with indexed_bzip2.open(io.BytesIO(raw), parallelization=1) as f:
                    f.read()
                z = clock()
                wall.setdefault("bz2 (indexed_bzip2, 1 thread)", []).append(z[0] - a[0])
                cpu.setdefault("bz2 (indexed_bzip2, 1 thread)", []).append(z[1] - a[1])
    print(f"\nTime per PILATUS3 6M frame (.cbf.bz2, {b.nx * b.ny / 1e6:.1f} Mpixel), one thread, median of {repeat} x "
          f"{len(paths)} frames, ms:")  # fmt: skip
    print(f"  {'':32s} {'wall':>7s} {'CPU':>7s}")
    for k in wall:
        print(f"  {k:32s} {_median_ms(wall[k])} {_median_ms(cpu[k])}")
    if indexed_bzip2 is None:
        print("  (indexed_bzip2 not installed: its single-thread bz2 time not measured)")


def read_rate(ds: CbfDataset, threads: int) -> tuple[float, float]:
    """(images/s, CPU ms per image) of read_image over the whole series in `threads` threads."""
    t, c = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(ds.read_image, range(ds.n_images)):
            pass
    return ds.n_images / (time.perf_counter() - t), 1e3 * (time.process_time() - c) / ds.n_images


def interleaved(fns: dict[str, Callable[[], tuple[float, float]]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median of each of the two figures fn() returns, over `repeat` rounds of every fn in turn."""
    vals: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            vals[k].append(fn())
    return {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in vals.items()}


def whole_run(series, threads: int, old: bool, prefix: str) -> tuple[float, float]:
    """(wall s, CPU s) of one jfjoch_process run (in this process, its output to /dev/null)."""
    import jfjoch.pipeline as pipeline
    from jfjoch.cli.process import main

    saved = pipeline.open_dataset
    if old:
        pipeline.open_dataset = lambda p: FabioCbfDataset(p)
    args = [*(series if isinstance(series, list) else [series]), *PROCESS_ARGS, "-N", str(threads), "-o", prefix]
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            t, c = time.perf_counter(), time.process_time()
            code = main([str(a) for a in args])
            dt = time.perf_counter() - t, time.process_time() - c
    finally:
        pipeline.open_dataset = saved
    if code != 0:
        sys.exit(f"jfjoch_process failed ({code})")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-process", action="store_true", help="reading only, no whole jfjoch_process run")
    args = ap.parse_args()
    paths = sorted(args.data.glob("*.cbf.bz2"))
    if not paths:
        sys.exit(f"no .cbf.bz2 files in {args.data}")
    print(f"{len(paths)} frames from {args.data}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    split(paths, args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        series = {".cbf.bz2": paths}
        for suffix in (".cbf", ".cbf.gz"):
            series[suffix] = []
            for p in paths:
                data = bz2.decompress(p.read_bytes())
                q = tmp / (p.name[: -len(".cbf.bz2")] + suffix)
                q.write_bytes(gzip.compress(data, 6) if suffix == ".cbf.gz" else data)
                series[suffix].append(q)
        print(f"\nReading alone (read_image over {len(paths)} frames), median of {args.repeat}: images/s (wall) and "
              "CPU ms per image (all threads):")  # fmt: skip
        cols = ("fabio", "ours", "ratio")
        print(f"  {'input':10s} {'-N':>3s} " + " ".join(f"{c:>8s}" for c in cols) + "   "
              + " ".join(f"{c:>8s}" for c in cols))  # fmt: skip
        for suffix, ps in series.items():
            for n in args.threads:
                r = interleaved({"fabio": lambda ps=ps, n=n: read_rate(FabioCbfDataset(ps), n),
                                 "ours": lambda ps=ps, n=n: read_rate(open_cbf(ps), n)}, args.repeat)  # fmt: skip
                (fw, fc), (ow, oc) = r["fabio"], r["ours"]
                print(f"  {suffix:10s} {n:3d} {fw:8.2f} {ow:8.2f} {ow / fw:8.2f}   {fc:8.1f} {oc:8.1f} {fc / oc:8.2f}")
        if args.no_process:
            return
        print(f"\nWhole run: jfjoch_process SERIES {' '.join(PROCESS_ARGS)} -N n, median of {args.repeat}: wall s and "
              "CPU s:")  # fmt: skip
        print(f"  {'input':10s} {'-N':>3s} {'before':>8s} {'after':>8s} {'speed-up':>8s}   "
              f"{'before':>8s} {'after':>8s}")  # fmt: skip
        for suffix, ps in series.items():
            template = str(ps[0].parent / (ps[0].name.replace(ps[0].name[-len(suffix) - 4 : -len(suffix)], "####")))
            for n in args.threads:
                r = interleaved({"before": lambda ps=ps, n=n: whole_run(ps, n, True, str(tmp / "old")),
                                 "after": lambda t=template, n=n: whole_run(t, n, False, str(tmp / "new"))},
                                args.repeat)  # fmt: skip
                (bw, bc), (aw, ac) = r["before"], r["after"]
                print(f"  {suffix:10s} {n:3d} {bw:8.2f} {aw:8.2f} {bw / aw:8.2f}   {bc:8.2f} {ac:8.2f}")
        print("  (before: the list of files through the fabio reader; after: the series as its template, "
              "thau_3_2_####<suffix>)")  # fmt: skip
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
