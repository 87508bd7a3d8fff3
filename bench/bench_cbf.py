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
    """One thread, one frame at a time: the parts of ours, and fabio's whole read."""
    parts: dict[str, list[float]] = {k: [] for k in ("file read", "bz2 (libbz2)", "header parse",
                                                     "byte offset (C++)", "Content-MD5", "read_image, all",
                                                     "fabio.open, all")}  # fmt: skip
    try:
        import indexed_bzip2
    except ImportError:
        indexed_bzip2 = None
    else:
        parts["bz2 (indexed_bzip2, 1 thread)"] = []
    ds = open_cbf(paths)
    out = np.empty((ds.ny, ds.nx), np.int32)
    import fabio

    for _ in range(repeat):
        for i, p in enumerate(paths):
            t0 = time.perf_counter()
            raw = p.read_bytes()
            t1 = time.perf_counter()
            data = bz2.decompress(raw)
            t2 = time.perf_counter()
            text, b = _parse_binary(data)
            parse_minicbf_header(text)
            t3 = time.perf_counter()
            stream = memoryview(data)[b.start : b.start + b.size]
            _core.cbf_byte_offset_decode(stream, out, **ds._decode_args)
            t4 = time.perf_counter()
            __import__("hashlib").md5(stream).digest()
            t5 = time.perf_counter()
            ds.read_image(i)
            t6 = time.perf_counter()
            fabio.open(str(p))
            t7 = time.perf_counter()
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
                parts[k].append(dt)
            if indexed_bzip2 is not None:
                t0 = time.perf_counter()
                with indexed_bzip2.open(io.BytesIO(raw), parallelization=1) as f:
                    f.read()
                parts["bz2 (indexed_bzip2, 1 thread)"].append(time.perf_counter() - t0)
    print(f"\nTime per PILATUS3 6M frame (.cbf.bz2, {len(data) / 1e6:.1f} MB decompressed), one thread, median "
          f"of {repeat} x {len(paths)} frames, ms:")  # fmt: skip
    for k, ts in parts.items():
        print(f"  {k:32s} {_median_ms(ts)}")
    if indexed_bzip2 is None:
        print("  (indexed_bzip2 not installed: its single-thread bz2 time not measured)")


def read_rate(ds: CbfDataset, threads: int) -> float:
    """Images/s of read_image over the whole series in `threads` threads."""
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(ds.read_image, range(ds.n_images)):
            pass
    return ds.n_images / (time.perf_counter() - t)


def interleaved(fns: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    vals: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            vals[k].append(fn())
    return {k: statistics.median(v) for k, v in vals.items()}


def whole_run(series, threads: int, old: bool, prefix: str) -> float:
    """Seconds of one jfjoch_process run (in this process, its output to /dev/null)."""
    import jfjoch.pipeline as pipeline
    from jfjoch.cli.process import main

    saved = pipeline.open_dataset
    if old:
        pipeline.open_dataset = lambda p: FabioCbfDataset(p)
    args = [*(series if isinstance(series, list) else [series]), *PROCESS_ARGS, "-N", str(threads), "-o", prefix]
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            t = time.perf_counter()
            code = main([str(a) for a in args])
            dt = time.perf_counter() - t
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
        print(f"\nReading alone (read_image over {len(paths)} frames), images/s, median of {args.repeat}:")
        print(f"  {'input':10s} {'-N':>3s} {'fabio':>8s} {'ours':>8s} {'ratio':>6s}")
        for suffix, ps in series.items():
            for n in args.threads:
                r = interleaved({"fabio": lambda ps=ps, n=n: read_rate(FabioCbfDataset(ps), n),
                                 "ours": lambda ps=ps, n=n: read_rate(open_cbf(ps), n)}, args.repeat)  # fmt: skip
                print(f"  {suffix:10s} {n:3d} {r['fabio']:8.2f} {r['ours']:8.2f} {r['ours'] / r['fabio']:6.2f}")
        if args.no_process:
            return
        print(f"\nWhole run: jfjoch_process SERIES {' '.join(PROCESS_ARGS)} -N n, seconds, median of {args.repeat}:")
        print(f"  {'input':10s} {'-N':>3s} {'before':>8s} {'after':>8s} {'speed-up':>8s}")
        for suffix, ps in series.items():
            template = str(ps[0].parent / (ps[0].name.replace(ps[0].name[-len(suffix) - 4 : -len(suffix)], "####")))
            for n in args.threads:
                r = interleaved({"before": lambda ps=ps, n=n: whole_run(ps, n, True, str(tmp / "old")),
                                 "after": lambda t=template, n=n: whole_run(t, n, False, str(tmp / "new"))},
                                args.repeat)  # fmt: skip
                print(f"  {suffix:10s} {n:3d} {r['before']:8.2f} {r['after']:8.2f} {r['before'] / r['after']:8.2f}")
        print("  (after: the series given as its template, thau_3_2_####" + "<suffix>)")


if __name__ == "__main__":
    main()
