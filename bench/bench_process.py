"""End-to-end throughput of jfjoch.process on the shared datasets, 1 thread vs 2 threads.

usage: python bench/bench_process.py [--data ../shared/data] [--repeat 2] [--sim-4m-stills 40]
Prints images/s for spot finding + azimuthal integration + statistics (-X none), for indexing without
integration (--integration none: what main did before integration existed) and for the whole per-image pass
with refinement, prediction and integration (summation, profile fitting), with the 2-thread / 1-thread
ratio and the indexing rate, all measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jfjoch
from jfjoch.options import ProcessOptions

_CELL = {"unit_cell": (79.3, 79.3, 37.8, 90.0, 90.0, 90.0), "space_group": 96}
CASES = [
    ("hewl_rot1", "spots only (-X none)", {"indexing_algorithm": "none"}),
    ("hewl_stills1", "spots only (-X none)", {"indexing_algorithm": "none"}),
    ("hewl_stills1", "ffbidx, no integration", {"indexing_algorithm": "ffbidx", "integration": "none", **_CELL}),
    ("hewl_stills1", "ffbidx + integrate (sum)", {"indexing_algorithm": "ffbidx", "integration": "sum", **_CELL}),
    ("hewl_stills1", "ffbidx + integrate (profile)", {"indexing_algorithm": "ffbidx", "integration": "profile",
                                                      **_CELL}),
    ("hewl_stills1", "fftw + integrate (sum)", {"indexing_algorithm": "fftw"}),
    ("hewl_rot1", "-R -S 96, no integration", {"two_pass_rotation": 30, "space_group": 96, "integration": "none"}),
    ("hewl_rot1", "-R -S 96 + integrate (sum)", {"two_pass_rotation": 30, "space_group": 96}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sim-4m-stills", type=int, default=40,
                    help="also simulate this many JUNGFRAU 4M stills (jfjoch.simulate) and index them (0: skip)")
    args = ap.parse_args()
    print(f"{'dataset':14s} {'mode':30s} {'N':>2s} {'images/s':>9s} {'ratio':>6s} {'indexed':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(Path(args.data) / ds / f"{ds}_master.h5", ds, label, kw) for ds, label, kw in CASES]
        if args.sim_4m_stills:
            from jfjoch.simulate import simulate_dataset

            sim = simulate_dataset(f"{tmp}/sim4m/s", detector="4M", mode="stills", n_images=args.sim_4m_stills,
                                   distance_mm=150.0, seed=3)
            cell = {"unit_cell": (79.344, 79.344, 37.81, 90.0, 90.0, 90.0), "space_group": 96}
            cases += [(Path(sim.master), "sim 4M stills", "ffbidx + integrate (sum)",
                       {"indexing_algorithm": "ffbidx", **cell}),
                      (Path(sim.master), "sim 4M stills", "fftw + integrate (sum)", {"indexing_algorithm": "fftw"})]
        for master, ds, label, kw in cases:
            rates = {}
            for n in (1, 2):
                best = float("inf")
                for _ in range(args.repeat):
                    opts = ProcessOptions(threads=n, output_prefix=f"{tmp}/b", **kw)
                    t0 = time.perf_counter()
                    r = jfjoch.process(master, opts)
                    best = min(best, time.perf_counter() - t0)
                rates[n] = r.n_images / best
                ratio = f"{rates[n] / rates[1]:.2f}" if n > 1 else ""
                print(f"{ds:14s} {label:30s} {n:2d} {rates[n]:9.1f} {ratio:>6s} {100 * r.indexing_rate:7.1f}%",
                      flush=True)


if __name__ == "__main__":
    main()
