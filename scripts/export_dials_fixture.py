#!/usr/bin/python3
"""Export DIALS's integrated stills (integrated.expt + integrated.refl) to a small numpy fixture.

Runs with the python that has DIALS (Debian's python3-dials: /usr/bin/python3 or dials.python),
NOT with the project's python. The output (.npz, compressed) needs only numpy to read.

Usage:
    /usr/bin/python3 scripts/export_dials_fixture.py WORKDIR OUT.npz [--min-isigma X]

WORKDIR holds integrated.expt and integrated.refl (and indexed.expt, used to list which images
indexed). Image numbers come from the file names (thau_3_2_0001.cbf -> image 0).
See tests/data/thaumatin_dials/README.md for what each array holds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np
from dials.array_family import flex
from dials.util.version import dials_version
from dxtbx.model.experiment_list import ExperimentList


def image_index(path: str) -> int:
    m = re.search(r"_(\d+)\.cbf$", os.path.basename(path))
    if not m:
        raise ValueError(f"cannot read an image number from {path}")
    return int(m.group(1)) - 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("out")
    ap.add_argument("--n-images", type=int, default=10)
    ap.add_argument("--min-isigma", type=float, default=None, help="keep only rows with I/sigma(sum) above this")
    a = ap.parse_args()

    expts = ExperimentList.from_file(os.path.join(a.workdir, "integrated.expt"), check_format=False)
    refl = flex.reflection_table.from_file(os.path.join(a.workdir, "integrated.refl"))
    n_img = a.n_images

    # ---- per-image models (NaN where an image did not index / integrate) ----
    nan3 = np.full(3, np.nan)
    A = np.full((n_img, 3, 3), np.nan)
    U = np.full((n_img, 3, 3), np.nan)
    B = np.full((n_img, 3, 3), np.nan)
    cell = np.full((n_img, 6), np.nan)
    s0 = np.full((n_img, 3), np.nan)
    wavelength = np.full(n_img, np.nan)
    beam_px = np.full((n_img, 2), np.nan)
    beam_mm = np.full((n_img, 2), np.nan)
    distance = np.full(n_img, np.nan)
    origin = np.tile(nan3, (n_img, 1))
    fast = np.tile(nan3, (n_img, 1))
    slow = np.tile(nan3, (n_img, 1))
    indexed = np.zeros(n_img, dtype=bool)
    names = np.array([""] * n_img, dtype="<U32")
    exp_to_img = {}
    pixel_size = image_size = mu = thickness = None
    for i_exp, e in enumerate(expts):
        paths = e.imageset.paths()
        assert len(paths) == 1, paths
        img = image_index(paths[0])
        assert 0 <= img < n_img and not indexed[img], (img, paths)
        exp_to_img[i_exp] = img
        indexed[img] = True
        names[img] = os.path.basename(paths[0])
        c = e.crystal
        A[img] = np.array(c.get_A()).reshape(3, 3)
        U[img] = np.array(c.get_U()).reshape(3, 3)
        B[img] = np.array(c.get_B()).reshape(3, 3)
        cell[img] = c.get_unit_cell().parameters()
        s0[img] = e.beam.get_s0()
        wavelength[img] = e.beam.get_wavelength()
        assert len(e.detector) == 1
        p = e.detector[0]
        beam_px[img] = p.get_beam_centre_px(e.beam.get_s0())
        beam_mm[img] = p.get_beam_centre(e.beam.get_s0())
        distance[img] = p.get_distance()
        origin[img] = p.get_origin()
        fast[img] = p.get_fast_axis()
        slow[img] = p.get_slow_axis()
        pixel_size = p.get_pixel_size()
        image_size = p.get_image_size()
        mu = p.get_mu()
        thickness = p.get_thickness()

    # ---- reflections: integrated by summation and/or profile fitting ----
    sel = refl.get_flags(refl.flags.integrated_sum) | refl.get_flags(refl.flags.integrated_prf)
    refl = refl.select(sel)
    n = len(refl)
    ids = np.array(refl["id"], dtype=np.int64)
    image = np.array([exp_to_img[int(i)] for i in ids], dtype=np.uint8)
    hkl = np.array(refl["miller_index"], dtype=np.int64).reshape(n, 3)
    isum = np.array(refl["intensity.sum.value"])
    vsum = np.array(refl["intensity.sum.variance"])
    has_sum = np.array(refl.get_flags(refl.flags.integrated_sum))
    isum[~has_sum] = np.nan
    vsum[~has_sum] = np.nan
    if "intensity.prf.value" in refl:
        iprf = np.array(refl["intensity.prf.value"])
        vprf = np.array(refl["intensity.prf.variance"])
        has_prf = np.array(refl.get_flags(refl.flags.integrated_prf))
        iprf[~has_prf] = np.nan
        vprf[~has_prf] = np.nan
    else:
        iprf = np.full(n, np.nan)
        vprf = np.full(n, np.nan)
    xcal, ycal, _ = (np.array(v) for v in refl["xyzcal.px"].parts())
    d = np.array(refl["d"])
    part = np.array(refl["partiality"]) if "partiality" in refl else np.full(n, np.nan)
    bg = np.array(refl["background.mean"])

    # drop rows whose variances are not positive (sum where present, prf where present)
    keep = np.ones(n, dtype=bool)
    keep &= ~(has_sum & ~(vsum > 0))
    keep &= ~(np.isfinite(iprf) & ~(vprf > 0))
    n_dropped_var = int((~keep).sum())
    if a.min_isigma is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            keep &= isum / np.sqrt(vsum) > a.min_isigma
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0], image))
    order = order[keep[order]]

    f32 = np.float32
    out = {
        # per reflection
        "image": image[order],
        "hkl": hkl[order].astype(np.int16),
        "intensity_sum": isum[order].astype(f32),
        "variance_sum": vsum[order].astype(f32),
        "intensity_prf": iprf[order].astype(f32),
        "variance_prf": vprf[order].astype(f32),
        "x_cal_px": xcal[order].astype(f32),
        "y_cal_px": ycal[order].astype(f32),
        "d": d[order].astype(f32),
        "partiality": part[order].astype(f32),
        "background_mean": bg[order].astype(np.float16),  # 3 significant digits are enough here
        # per image
        "image_names": names,
        "indexed": indexed,
        "A": A,
        "U": U,
        "B": B,
        "cell": cell,
        "s0": s0,
        "wavelength": wavelength,
        "beam_centre_px": beam_px,
        "beam_centre_mm": beam_mm,
        "distance_mm": distance,
        "detector_origin_mm": origin,
        "detector_fast_axis": fast,
        "detector_slow_axis": slow,
        # constants
        "pixel_size_mm": np.array(pixel_size),
        "image_size_px": np.array(image_size, dtype=np.int32),
        "sensor_mu_per_mm": np.array(mu),
        "sensor_thickness_mm": np.array(thickness),
        "space_group": np.array("P 41 21 2"),
        "dials_version": np.array(dials_version()),
    }
    np.savez_compressed(a.out, **out)

    nimg = np.bincount(out["image"], minlength=n_img)
    with np.errstate(invalid="ignore", divide="ignore"):
        isig = out["intensity_sum"] / np.sqrt(out["variance_sum"])
    nimg5 = np.bincount(out["image"][isig > 5], minlength=n_img)
    print(f"{dials_version()}: {int(indexed.sum())}/{n_img} images indexed")
    print(f"integrated (sum or prf) {n}, dropped for non-positive variance {n_dropped_var}, kept {len(order)}")
    print(f"with profile fitting: {int(np.isfinite(out['intensity_prf']).sum())}")
    print("per image:", nimg.tolist())
    print("I/sigma(sum) > 5 per image:", nimg5.tolist(), "total", int(nimg5.sum()))
    for i in range(n_img):
        if indexed[i]:
            print(
                f"  {names[i]}: cell " + " ".join(f"{v:.3f}" for v in cell[i]) + f"  beam centre px "
                f"({beam_px[i][0]:.2f}, {beam_px[i][1]:.2f})  distance {distance[i]:.2f} mm"
            )
    print(f"wrote {a.out}: {os.path.getsize(a.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
