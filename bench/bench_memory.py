"""Peak memory of jfjoch_process against the number of images: the streaming pass must not grow with it.

usage: python bench/bench_memory.py [--images 1000 10000] [--threads 2] [--detector 1M|4M]
                                   [--workdir /tmp/jfjoch_mem]
Simulates JUNGFRAU stills (1M by default; 4M for detector scale, ~1.4 MB a frame on disk) with
jfjoch_simulate (cached in --workdir), then runs
`jfjoch_process <master> -X ffbidx -C ... -S 96 -N 2` (the whole per-image pass: spots, indexing,
refinement, prediction, summation integration, streaming writer) once per dataset in a fresh process and
prints its peak RSS (getrusage of the child), the wall time and stills/s, and the growth of the peak RSS
between the smallest and the largest dataset (bar: < 100 MB from 1,000 to 10,000 stills).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CELL = "79.344,79.344,37.81,90,90,90"


def simulate(workdir: Path, n: int, detector: str) -> Path:
    name = f"s{n}" if detector == "1M" else f"s{n}_{detector}"
    master = workdir / name / f"{name}_master.h5"
    if master.exists():
        return master
    master.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "jfjoch.cli.simulate", str(master.parent / name), "--detector", detector,
                    "--mode", "stills", "--images", str(n), "--seed", "7"], check=True)
    return master


def run(master: Path, threads: int, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one jfjoch_process run in a child process."""
    code = ("import resource, sys; from jfjoch.cli.process import main; rc = main(sys.argv[1:]); "
            "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(rc)")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, str(master), "-X", "ffbidx", "-C", CELL, "-S", "96", "-N",
                        str(threads), "-o", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    kb = int(next(line.split()[1] for line in p.stderr.splitlines() if line.startswith("maxrss_kb")))
    return kb / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--detector", choices=["1M", "4M"], default="1M")
    ap.add_argument("--workdir", default="/tmp/jfjoch_mem")
    args = ap.parse_args()
    work = Path(args.workdir)
    rows = []
    for n in args.images:
        t0 = time.perf_counter()
        master = simulate(work, n, args.detector)
        sim_s = time.perf_counter() - t0
        rss, wall = run(master, args.threads, work / f"out{n}_{args.detector}")
        rows.append((n, rss, wall))
        print(f"{n:6d} {args.detector} stills: peak RSS {rss:7.1f} MB, {wall:7.1f} s, {n / wall:6.1f} stills/s "
              f"(simulation {sim_s:.0f} s)", flush=True)
    if len(rows) > 1:
        print(f"peak RSS growth from {rows[0][0]} to {rows[-1][0]} stills: {rows[-1][1] - rows[0][1]:+.1f} MB")


if __name__ == "__main__":
    main()
