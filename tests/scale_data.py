"""Synthetic reflection tables for the scaling tests and benchmarks (bench/bench_scale.py reuses them).

* :func:`synthetic_stills`: random stills (random reflections per image, known partiality and lp, per-image
  G and B, Poisson noise with background, optional random indexing-ambiguity operators), fast enough for
  10,000 images x 300 observations.
* :func:`truth_tables`: tables built from a shared dataset's truth_partials.npy (noiseless photons per
  reflection per image) with Poisson noise and a background term; partiality and lp from the truth
  geometry (truth.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from jfjoch.experiment import Goniometer
from jfjoch.scale.data import ScaleInput
from jfjoch.scale.symmetry import Symmetry, ambiguity_operators, space_group
from jfjoch.simulate import p1_indices, wilson_intensities
from jfjoch.tables import ReflectionTable

HEWL_CELL = (79.344, 79.344, 37.81, 90.0, 90.0, 90.0)
SPOT_WIDTH = 7e-4
"""Reciprocal-space width (σ of the excitation error, 1/Å) of the nanoBragg spots in shared/data: one
global value, fitted once to the truth photons of hewl_stills1 (their profile in the excitation error),
as an integration program would refine it; with the 0.05° mosaicity of the simulation."""


@dataclass
class SyntheticStills:
    inputs: list[ScaleInput]
    truth_keys: np.ndarray
    """Sorted orbit keys (merging space group) of the true intensities."""
    truth_I: np.ndarray
    G: np.ndarray
    B: np.ndarray
    op: np.ndarray
    """Ambiguity operator index applied to each image (0 = none)."""
    ops: list[np.ndarray]


def synthetic_stills(
    n_images: int = 500,
    obs_per_image: int = 300,
    *,
    cell=HEWL_CELL,
    sg: int | str = 96,
    d_min: float = 2.0,
    seed: int = 0,
    G: np.ndarray | None = None,
    B: np.ndarray | None = None,
    photons: float = 2000.0,
    background: float = 20.0,
    ambiguity: bool = False,
    wavelength: float = 1.0,
) -> SyntheticStills:
    rng = np.random.default_rng(seed)
    group = space_group(sg)
    hkl_all = p1_indices(cell, group, d_min, 50.0)
    I_true = wilson_intensities(hkl_all, cell, group, 20.0, rng)
    sym = Symmetry(group)
    uc = gemmi.UnitCell(*cell)
    d_all = uc.calculate_d_array(hkl_all.astype(np.int32))
    s2_all = 1.0 / (4 * d_all**2)
    n = n_images * obs_per_image
    pick = rng.integers(0, len(hkl_all), n)
    image = np.repeat(np.arange(n_images, dtype=np.int64), obs_per_image)
    G = np.exp(rng.normal(0, 0.2, n_images)) if G is None else np.asarray(G, float)
    B = np.zeros(n_images) if B is None else np.asarray(B, float)
    t = rng.uniform(-2.2, 2.2, n)
    part = np.exp(-0.5 * t * t)
    lp = rng.uniform(0.7, 1.3, n)
    mean = photons * G[image] * part * lp * np.exp(-2 * B[image] * s2_all[pick]) * I_true[pick]
    bkg = background
    counts = rng.poisson(mean + bkg).astype(float) - bkg
    sigma = np.sqrt(np.maximum(mean + 2 * bkg, 1.0))
    hkl = hkl_all[pick].astype(np.int64)
    ops = ambiguity_operators(cell, group) if ambiguity else [np.eye(3, dtype=np.int64)]
    op = rng.integers(0, len(ops), n_images) if ambiguity else np.zeros(n_images, np.int64)
    for k in range(1, len(ops)):
        m = op[image] == k
        Rinv = np.rint(np.linalg.inv(ops[k])).astype(np.int64)
        hkl[m] = hkl[m] @ Rinv
    table = ReflectionTable(
        image=image, h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2], I=counts, sigma=sigma,
        x=rng.uniform(0, 1000, n), y=rng.uniform(0, 1000, n), d=d_all[pick], phi=np.full(n, np.nan),
        partiality=part, lp=lp, background=np.full(n, bkg / 20.0), flags=np.zeros(n, np.uint32),
    )  # fmt: skip
    keys = sym.orbit_keys(hkl_all)
    uk, first = np.unique(keys, return_index=True)
    inp = ScaleInput(reflections=table.sorted(), cell=tuple(cell), space_group=int(group.number),
                     wavelength=wavelength, name="synthetic stills")
    return SyntheticStills(inputs=[inp], truth_keys=uk, truth_I=I_true[first], G=G, B=B, op=op, ops=ops)


# -------------------------------------------------------------------------------------------------------
def _rot(axis, deg):
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    w = np.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(w) * K + (1 - np.cos(w)) * K @ K


def _pol_solid(truth: dict, s: np.ndarray) -> np.ndarray:
    """Polarisation (fraction 0.99 along x) times solid angle (1 at the beam centre) of reflections s."""
    lam = truth["wavelength_A"]
    k = s + np.array([0, 0, 1.0 / lam])
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    f = 0.99
    pol = f * (1 - k[:, 0] ** 2) + (1 - f) * (1 - k[:, 1] ** 2)
    return pol * k[:, 2] ** 3


def truth_intensities(dataset: Path, sg: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(sorted orbit keys, I) of the dataset's truth.mtz (column I, P 43 21 2 ASU)."""
    mtz = gemmi.read_mtz_file(str(Path(dataset) / "truth.mtz"))
    a = np.array(mtz, copy=False)
    labels = [c.label for c in mtz.columns]
    keys = Symmetry(sg).orbit_keys(np.rint(a[:, :3]).astype(np.int64))
    order = np.argsort(keys)
    return keys[order], a[order, labels.index("I")].astype(float)


def truth_tables(dataset: Path, *, seed: int = 0, partiality: str = "model", min_photons: float = 5.0,
                 min_partiality: float = 1e-3, background: float = 30.0, scale_every: int | None = None,
                 factor: float = 3.0) -> tuple[ScaleInput, dict]:
    """A ScaleInput from truth_partials.npy: I = Poisson(photons + bkg) - bkg, σ = sqrt(photons + 2 bkg).

    lp: Lorentz (rotation: 1/(λ |(e × s)·z|)) × polarisation × solid angle from the truth geometry.
    partiality "model": stills, the Gaussian of the excitation error (σ :data:`SPOT_WIDTH` and the 0.05°
    mosaicity); rotation, that Gaussian rocking curve integrated over each image (phi from the geometry).
    partiality "truth" (rotation): photons / (k · I_true · lp), with k the global photons per unit I_true,
    i.e. what a perfect partiality model would give (nanoBragg's rocking profiles are not Gaussian, and
    reflections near the blind region stay in diffraction for many degrees).
    Rows kept: rotation, model partiality >= ``min_partiality`` (what integration would predict);
    stills, >= ``min_photons`` noiseless photons. ``scale_every``: every n-th image's I (and σ) times
    ``factor``.
    """
    from scipy.special import ndtr

    truth = json.loads((Path(dataset) / "truth.json").read_text())
    parts = np.load(Path(dataset) / "truth_partials.npy").astype(np.float64)
    rng = np.random.default_rng(seed)
    image = parts[:, 0].astype(np.int64)
    hkl = np.rint(parts[:, 1:4]).astype(np.int64)
    ph = parts[:, 4]
    lam = truth["wavelength_A"]
    s0 = np.array([0, 0, 1.0 / lam])
    uc = gemmi.UnitCell(*truth["unit_cell"])
    d = uc.calculate_d_array(hkl.astype(np.int32))
    n = len(ph)
    phi = np.full(n, np.nan)
    mosaic = np.radians(0.05)
    if truth["mode"] == "rotation":
        ax = np.asarray(truth["conventions"]["rotation_axis"], float)
        e = ax / np.linalg.norm(ax)
        A0 = np.array(truth["images"][0]["A_star_at_omega0"])
        sc = hkl @ A0.T
        s_par = np.outer(sc @ e, e)
        s_perp = sc - s_par
        exs = np.cross(e, sc)
        target = -lam * np.einsum("ni,ni->n", sc, sc) / 2.0
        cosv = np.clip((target - s_par[:, 2]) / np.hypot(s_perp[:, 2], exs[:, 2]), -1, 1)
        base = np.arctan2(exs[:, 2], s_perp[:, 2])
        w0 = truth["images"][0]["omega_start_deg"]
        width = truth["images"][0]["omega_width_deg"]
        mid = w0 + (image + 0.5) * width
        cands = np.stack([mid + ((np.degrees(base + sg * np.arccos(cosv)) - mid + 180) % 360) - 180
                          for sg in (1, -1)])
        phi = cands[np.argmin(np.abs(cands - mid), axis=0), np.arange(n)]
        cp, sp_ = np.cos(np.radians(phi))[:, None], np.sin(np.radians(phi))[:, None]
        sv = s_par + cp * s_perp + sp_ * exs
        rate = np.maximum(np.abs(np.cross(e, sv)[:, 2]), 1e-6)
        lp = np.minimum(1.0 / (lam * rate), 50.0) * _pol_solid(truth, sv)
        sig_phi = np.degrees(np.sqrt(SPOT_WIDTH**2 + (np.linalg.norm(sv, axis=1) * mosaic) ** 2) / rate)
        lo = w0 + image * width
        part = ndtr((lo + width - phi) / sig_phi) - ndtr((lo - phi) / sig_phi)
        window = part >= min_partiality
        gon = Goniometer(axis=ax, start_deg=w0, increment_deg=width)
    else:
        A = {im["image"]: np.array(im["A_star_mid"]) for im in truth["images"]}
        sv = np.einsum("nij,nj->ni", np.stack([A[i] for i in image]), hkl.astype(float))
        eps = np.linalg.norm(sv + s0, axis=1) - 1.0 / lam
        lp = _pol_solid(truth, sv)
        sig_eps = np.sqrt(SPOT_WIDTH**2 + (np.linalg.norm(sv, axis=1) * mosaic) ** 2)
        part = np.exp(-0.5 * (eps / sig_eps) ** 2)
        window = ph >= min_photons
        gon = None
    if partiality == "truth":
        keys, vals = truth_intensities(dataset, int(truth["space_group_number"]))
        k = Symmetry(int(truth["space_group_number"])).orbit_keys(hkl)
        pos = np.clip(np.searchsorted(keys, k), 0, len(keys) - 1)
        It = np.where(keys[pos] == k, vals[pos], np.nan)
        strong = np.isfinite(It) & (It > np.nanpercentile(It, 50)) & (part > 0.5)
        kscale = np.median(ph[strong] / (It[strong] * lp[strong] * part[strong]))
        part = ph / (kscale * It * lp)
        window &= np.isfinite(part) & (part > 0)
    keep = window & np.isfinite(d)
    image, hkl, ph, phi, part, lp, d = (v[keep] for v in (image, hkl, ph, phi, part, lp, d))
    n = len(ph)
    mean = ph.copy()
    if scale_every:
        mean = np.where(image % scale_every == 0, mean * factor, mean)
    counts = rng.poisson(mean + background).astype(float) - background
    sigma = np.sqrt(mean + 2 * background)
    table = ReflectionTable(
        image=image, h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2], I=counts, sigma=sigma,
        x=np.zeros(n), y=np.zeros(n), d=d, phi=phi, partiality=part, lp=lp,
        background=np.full(n, background / 20.0), flags=np.zeros(n, np.uint32),
    )  # fmt: skip
    inp = ScaleInput(reflections=table.sorted(), cell=tuple(truth["unit_cell"]),
                     space_group=int(truth["space_group_number"]), wavelength=lam, goniometer=gon,
                     name=Path(dataset).name)
    return inp, truth
