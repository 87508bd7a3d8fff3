"""jfjoch against DIALS on the shared sweep, timed in the same script (3 repetitions, median).

usage: python bench/bench_vs_dials.py [--data ../shared/data] [--repeat 3] [--nproc 2]
Needs DIALS on PATH (Debian: apt-get install --no-install-recommends python3-dials) and hdf5plugin (for
HDF5_PLUGIN_PATH, so dxtbx reads the bitshuffle data).

Runs, on hewl_rot1:
  jfjoch_process -R -S 96 -M -P rot -N <nproc>                      (the whole pipeline, merged MTZ)
  dials.import -> find_spots -> index -> refine -> integrate -> scale -> merge   (nproc=<nproc>)
and prints each DIALS step, the totals, their ratio, and both merged CCs to truth.mtz
(shared/checks/check_merging.py's figure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DIALS_STEPS = [
    ("import", ["dials.import", "{master}"]),
    ("find_spots", ["dials.find_spots", "imported.expt", "nproc={nproc}"]),
    ("index", ["dials.index", "imported.expt", "strong.refl", "space_group=P43212"]),
    ("refine", ["dials.refine", "indexed.expt", "indexed.refl"]),
    ("integrate", ["dials.integrate", "refined.expt", "refined.refl", "nproc={nproc}"]),
    ("scale", ["dials.scale", "integrated.expt", "integrated.refl"]),
    ("merge", ["dials.merge", "scaled.expt", "scaled.refl"]),
]


def _env() -> dict:
    import hdf5plugin

    return dict(os.environ, HDF5_PLUGIN_PATH=hdf5plugin.PLUGIN_PATH)


def run_dials(master: Path, nproc: int, work: Path) -> dict[str, float]:
    times = {}
    for name, cmd in DIALS_STEPS:
        args = [c.format(master=master, nproc=nproc) for c in cmd]
        t0 = time.perf_counter()
        p = subprocess.run(args, cwd=work, capture_output=True, text=True, env=_env())
        times[name] = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{name} failed: {p.stderr[-500:]}")
    return times


def run_jfjoch(master: Path, nproc: int, prefix: Path) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "jfjoch.cli.process", str(master), "-R", "-S", "96", "-M", "-P", "rot",
                        "-N", str(nproc), "-o", str(prefix)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return time.perf_counter() - t0


def merged_cc(dataset: Path, mtz: Path) -> str:
    """check_merging.py's figure: CC of the merged intensities to truth.mtz after a per-shell scale."""
    sys.path.insert(0, str(dataset.parent.parent / "checks"))
    import check_merging

    cc, n = check_merging.cc_to_truth(str(mtz), str(dataset / "truth.mtz"))
    return f"{cc:.4f} ({n} reflections)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("dials.import") is None:
        raise SystemExit("DIALS is not on PATH (apt-get install --no-install-recommends python3-dials)")
    dataset = Path(args.data) / "hewl_rot1"
    master = dataset / "hewl_rot1_master.h5"
    ours, dials = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            ours.append(run_jfjoch(master, args.nproc, Path(tmp) / f"j{k}"))
            work = Path(tmp) / f"dials{k}"
            work.mkdir()
            dials.append(run_dials(master, args.nproc, work))
            print(f"repetition {k + 1}: jfjoch {ours[-1]:.1f} s, DIALS {sum(dials[-1].values()):.1f} s", flush=True)
        cc_dials = merged_cc(dataset, Path(tmp) / "dials0" / "merged.mtz")  # IMEAN, like ours
        cc_ours = merged_cc(dataset, Path(tmp) / "j0.mtz")
    print(f"\nhewl_rot1, {args.nproc} processes, median of {args.repeat}:")
    for name, _ in DIALS_STEPS:
        print(f"  dials.{name:11s} {statistics.median(d[name] for d in dials):7.1f} s")
    med_d = statistics.median(sum(d.values()) for d in dials)
    med_j = statistics.median(ours)
    print(f"  DIALS total       {med_d:7.1f} s   merged CC to truth {cc_dials}")
    print(f"  jfjoch_process    {med_j:7.1f} s   merged CC to truth {cc_ours}  (-R -S 96 -M -P rot)")
    print(f"  ratio DIALS / jfjoch: {med_d / med_j:.1f}x")


if __name__ == "__main__":
    main()
