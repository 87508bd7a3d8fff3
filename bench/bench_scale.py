"""Scaling + merging speed and peak memory: 1,000 and 10,000 simulated stills (~300 observations each), and
`jfjoch_scale` on the shared real sweep (HEWL, 1,440 batches) and on hewl_rot1 truth tables.

usage: PYTHONPATH=python python3 bench/bench_scale.py [--sizes 1000,10000] [--threads 2] [--data ../shared/data]

Each case runs in a fresh subprocess: the tables are generated first (tests/scale_data.py, the tests'
builders), then the peak resident memory is reset (/proc/self/clear_refs) and scale_and_merge runs
(-P fixed, defaults otherwise); printed: seconds for scaling + merging (statistics included), seconds to write
the files (merged MTZ, unmerged MTZ with one batch per image, JSON, report, scale.dat), and the peak RSS
during scaling + merging and its growth over the tables' own memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, {root!r})
from tests.scale_data import synthetic_stills
from jfjoch.scale import scale_and_merge, write_scale_outputs

def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
syn = synthetic_stills({n}, 300, seed=1)
base = rss("VmRSS:")
try:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
except OSError:
    pass
t = time.perf_counter()
c = time.process_time()
r = scale_and_merge(syn.inputs, partiality="fixed", threads={threads})
t_scale = time.perf_counter() - t
cpu = time.process_time() - c
peak = rss("VmHWM:")
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    write_scale_outputs(r, os.path.join(d, "bench"))
    t_write = time.perf_counter() - t
print(json.dumps({{"n_images": {n}, "n_obs": int(len(syn.inputs[0].reflections)), "scale_s": t_scale, "cpu_s": cpu,
                  "write_s": t_write, "peak_mb": peak, "tables_mb": base, "timing": r.timing,
                  "cc_half": r.overall.cc_half}}))
"""


def run_child(n: int, threads: int) -> dict:
    code = CHILD.format(root=str(ROOT), n=n, threads=threads)
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    a = ap.parse_args()
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'stills':>8} {'observations':>13} {'scale+merge s':>14} {'(CPU s)':>8} {'write s':>8} "
          f"{'peak RSS MB':>12} {'growth MB':>10}  stages")
    for n in (int(v) for v in a.sizes.split(",")):
        r = run_child(n, a.threads)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["timing"].items() if k != "total")
        print(f"{n:>8} {r['n_obs']:>13} {r['scale_s']:>14.2f} {r['cpu_s']:>8.2f} {r['write_s']:>8.2f} "
              f"{r['peak_mb']:>12.0f} "
              f"{r['peak_mb'] - r['tables_mb']:>10.0f}  {stages}")
    data = Path(a.data)
    mtz = data / "hewl_model" / "HEWL_unmerged_subset_2020.mtz"
    if mtz.exists():
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            rc = subprocess.run([sys.executable, "-m", "jfjoch.cli.scale", str(mtz), "-S", "96", "-P", "unity", "-o",
                                 f"{d}/hewl", "-N", str(a.threads)], capture_output=True, text=True,
                                env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "python")})
            wall = time.perf_counter() - t
        line = next((ln for ln in rc.stdout.splitlines() if ln.startswith("time:")), "")
        print(f"jfjoch_scale HEWL_unmerged_subset_2020.mtz -S 96 -P unity: {wall:.2f} s wall incl. Python start "
              f"(rc {rc.returncode}); {line}")


if __name__ == "__main__":
    main()
