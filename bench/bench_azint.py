"""Azimuthal integration throughput on a 4M-sized frame (2068 x 2164 pixels) vs pyFAI's integrate1d on
the same frame, geometry, mask, corrections and bin edges (no pixel splitting), timed in the same run.

    PYTHONPATH=python python3 bench/bench_azint.py [--repeat 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from timing import timed

from jfjoch.azint import AzimuthalIntegrator
from jfjoch.experiment import Beam, Detector, Experiment

NX, NY = 2068, 2164


def jungfrau_4m(seed: int = 0) -> tuple[np.ndarray, Experiment]:
    """A 4M-sized int32 frame (Poisson background ~2 photons, module-gap rows masked) and its geometry."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((NY, NX), bool)
    for r in range(514, NY, 550):  # JUNGFRAU-like horizontal gaps
        mask[r : r + 36, :] = True
    det = Detector.from_beam_center(NX, NY, 0.075, 120.0, 1090.0, 1030.0, mask=mask, saturation=32766)
    img = rng.poisson(2.0, size=(NY, NX)).astype(np.int32)
    return img, Experiment(beam=Beam(wavelength_A=1.0, polarization_fraction=0.99), detector=det)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    img, exp = jungfrau_4m()
    npix = img.size
    t0 = time.perf_counter()
    ai = AzimuthalIntegrator(exp, backend="cpu")
    t_map = time.perf_counter() - t0
    s = ai.settings
    t_ours = timed(lambda: ai.integrate(img), args.repeat)[1]

    imgs = [img] * (4 * args.threads)
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(ai.integrate, imgs))
        t0 = time.perf_counter()
        list(pool.map(ai.integrate, imgs))
        t_thr = (time.perf_counter() - t0) / len(imgs)

    print(f"frame {NX} x {NY} = {npix / 1e6:.2f} Mpixel, {s.n_bins} bins, q {s.q_min:.2f}..{s.q_max:.3f} 1/A")
    print(f"jfjoch map (once per geometry): {t_map * 1e3:8.1f} ms")
    print(f"jfjoch integrate, 1 thread   : {t_ours * 1e3:8.2f} ms  {t_ours / npix * 1e9:6.2f} ns/pixel")
    print(
        f"jfjoch integrate, {args.threads} threads  : {t_thr * 1e3:8.2f} ms/frame  "
        f"{t_thr / npix * 1e9:6.2f} ns/pixel (throughput)"
    )

    try:
        from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAIIntegrator
    except ImportError:
        print("pyFAI not installed: no baseline")
        return
    bx, by = exp.detector.beam_center_px
    p = exp.detector.pixel_mm * 1e-3
    pai = PyFAIIntegrator(
        dist=exp.detector.distance_mm * 1e-3,
        poni1=(by + 0.5) * p,
        poni2=(bx + 0.5) * p,
        pixel1=p,
        pixel2=p,
        wavelength=exp.beam.wavelength_A * 1e-10,
    )
    invalid = exp.detector.mask | (img >= 32766)
    for method in (("no", "histogram", "cython"), ("no", "csr", "cython")):

        def run(method=method):
            return pai.integrate1d(
                img,
                s.n_bins,
                unit="q_A^-1",
                radial_range=(s.q_min, s.q_max),
                mask=invalid,
                correctSolidAngle=True,
                polarization_factor=2 * s.polarization_fraction - 1,
                method=method,
            )

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_ref = timed(run, max(3, args.repeat // 4))[1]
            r = run()
        ours = ai.integrate(img)
        ok = ai.pixel_count > 200
        dev = np.nanmax(np.abs(r.intensity[ok][1:] / ours[ok][1:] - 1))
        name = "/".join(method)
        print(
            f"pyFAI integrate1d {name:18s}: {t_ref * 1e3:8.2f} ms  {t_ref / npix * 1e9:6.2f} ns/pixel  "
            f"-> jfjoch (1 thread) is {t_ref / t_ours:5.1f}x faster  (max profile deviation {dev:.2%})"
        )


if __name__ == "__main__":
    main()
