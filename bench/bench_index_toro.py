"""Benchmark of the TORO known-cell indexer: stills per second with 1 and 2 Python threads.

Stills: hewl_stills1 truth (reflections predicted from truth.json + truth_partials.npy, 0.3 px noise,
10% junk), 250 spots per still. Prints throughput, the 2-thread / 1-thread ratio, per-stage times and the
fraction of stills indexed on the right lattice.

    PYTHONPATH=python python3 bench/bench_index_toro.py [--stills 40] [--backend cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.toro_data import load_truth_module, stills_spots

from jfjoch.indexers.toro import index_toro

SPOTS = 250


def build_stills(n: int) -> tuple[dict, list[np.ndarray]]:
    """n stills of SPOTS spots each (the strongest reflections of each image plus 10% junk)."""
    from tests.conftest import SHARED_DATA

    truth = load_truth_module()
    t = truth.load(str(SHARED_DATA / "hewl_stills1"))
    out = []
    for i in range(n):
        img = i % len(t["images"])
        rng = np.random.default_rng(i)
        p = t["partials"]
        ph = np.sort(p[p[:, 0] == img, 4])[::-1]
        thr = float(ph[min(len(ph) - 1, int(SPOTS / 1.1))])  # enough reflections for SPOTS spots with junk
        s = stills_spots(t, img, rng, photons=thr)
        out.append(s[:SPOTS])
    return t, out


def run(stills: list[np.ndarray], cell, threads: int, backend: str) -> tuple[float, float, list]:
    """(wall s, process CPU s, results) of indexing all stills on `threads` Python threads."""
    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as ex:
        results = list(ex.map(lambda s: index_toro(s, cell, backend=backend), stills))
    return time.perf_counter() - t0, time.process_time() - c0, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stills", type=int, default=40)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()
    t, stills = build_stills(args.stills)
    cell = t["unit_cell"]
    truth = load_truth_module()
    run(stills[:2], cell, 1, args.backend)  # warm-up: workspaces
    run(stills[:2], cell, 2, args.backend)
    dt1, cpu1, _ = run(stills, cell, 1, args.backend)
    dt2, cpu2, res = run(stills, cell, 2, args.backend)
    right = sum(
        r.ok and truth.misorientation(np.array(t["images"][i % len(t["images"])]["A_star_mid"]), r.lattice)[0]
        for i, r in enumerate(res)
    )
    stages = np.mean([r.stage_seconds for r in res], axis=0) * 1e3
    print(f"TORO indexer, backend {res[0].backend}, {len(stills)} stills x {SPOTS} spots")
    n = len(stills)
    print(f"  1 thread : {n / dt1:7.1f} stills/s wall   CPU {1e3 * cpu1 / n:.1f} ms/still")
    print(
        f"  2 threads: {n / dt2:7.1f} stills/s wall   CPU {1e3 * cpu2 / n:.1f} ms/still"
        f"   (ratio vs 1 thread {dt1 / dt2:.2f})"
    )
    print(f"  CPU-time bound on 2 free cores: {2 * n / cpu2:7.1f} stills/s (wall figures depend on load)")
    print(
        "  per still (ms, 2 threads): directions {:.1f}, candidates {:.1f}, rotations {:.1f}, "
        "cell refinement {:.1f}".format(*stages)
    )
    print(f"  right lattice and ok: {right}/{len(stills)}")


if __name__ == "__main__":
    main()
