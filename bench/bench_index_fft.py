"""FFT indexer throughput: stills per second at 250 spots per still, 1 vs 2 Python threads, per-stage times.

    PYTHONPATH=python python3 bench/bench_index_fft.py [--stills 40] [--threads 2]

Data: simulated lysozyme stills (tP 79.3/37.8 Å, 250 spots of which 20 % junk; the tests' builder) and, when
../shared/data is present, hewl_stills1 spots predicted from truth (250 strongest per still) and the real
ffbidx lysozyme lists (250 random spots each). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT))

from tests.conftest import SHARED_CHECKS, SHARED_DATA  # noqa: E402
from tests.index_sim import load_ffbidx_list, load_truth_module, simulate_still  # noqa: E402

from jfjoch.index import index_reciprocal  # noqa: E402
from jfjoch.indexers.fft import index_fft  # noqa: E402

STAGES = ("histogram_s", "fft_s", "candidates_s", "refine_s")


def datasets(n: int) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {"simulated tP": [simulate_still((79.3, 79.3, 37.8, 90, 90, 90), rng)[0] for _ in range(n)]}
    if (SHARED_DATA / "hewl_stills1").exists():
        truth = load_truth_module(SHARED_CHECKS)
        t = truth.load(str(SHARED_DATA / "hewl_stills1"))
        P = t["partials"]
        lists = []
        for im in range(min(n, len(t["images"]))):
            r = P[P[:, 0] == im]
            r = r[np.argsort(-r[:, 4])[:250]]
            lists.append(r[:, 1:4].astype(float) @ np.array(t["images"][im]["A_star_mid"]).T)
        out["hewl_stills1 (truth)"] = lists
    d = SHARED_DATA / "ffbidx_spots"
    if d.exists():
        lists = []
        for i in range(n):
            _, s = load_ffbidx_list(d / f"image{i % 10}_local.txt")
            lists.append(s[rng.choice(len(s), min(250, len(s)), replace=False)])
        out["ffbidx real (local)"] = lists
    return out


def run(lists: list[np.ndarray], threads: int, fn=index_fft) -> tuple[float, list]:
    t0 = time.perf_counter()
    if threads == 1:
        res = [fn(s) for s in lists]
    else:
        with ThreadPoolExecutor(threads) as ex:
            res = list(ex.map(fn, lists))
    return len(lists) / (time.perf_counter() - t0), res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stills", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = datasets(args.stills)
    print(f"FFT indexer (CPU/FFTW), 16384 directions, {args.stills} stills per set")
    for name, lists in data.items():
        index_fft(lists[0])  # FFTW planning, once per histogram size (not timed)
        r1, res1 = run(lists, 1)
        rn, _ = run(lists, args.threads)
        nspots = np.mean([len(s) for s in lists])
        ok = np.mean([r.ok for r in res1])
        stage = {k: 1e3 * np.mean([r.times[k] for r in res1]) for k in STAGES}
        print(
            f"{name:22s} spots {nspots:5.0f}  indexed {100 * ok:5.1f} %  1 thread {r1:6.1f} stills/s  "
            f"{args.threads} threads {rn:6.1f} stills/s  (ratio {rn / r1:4.2f})"
        )
        print("    per still (1 thread, ms): " + "  ".join(f"{k[:-2]} {v:6.2f}" for k, v in stage.items()))
    # the full API: FFT indexer + Bravais search (gemmi) + symmetry-constrained refinement (scipy)
    lists = data["simulated tP"]

    def full(s):
        return index_reciprocal(s, method="fftw")

    full(lists[0])
    r1, _ = run(lists, 1, full)
    rn, _ = run(lists, args.threads, full)
    print(
        f"{'index_reciprocal (tP)':22s} 1 thread {r1:6.1f} stills/s  "
        f"{args.threads} threads {rn:6.1f} stills/s"
        f"  (ratio {rn / r1:4.2f})"
    )


if __name__ == "__main__":
    main()
