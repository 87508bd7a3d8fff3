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
        A0 = np.array(truth["images"][0]["A_star_at_omega0"])
        w0 = truth["images"][0]["omega_start_deg"]
        width = truth["images"][0]["omega_width_deg"]
        phi, sv, rate = _rotation_phi_lorentz(hkl, image, A0, ax, lam, w0, width)
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


# -------------------------------------------------------------------------------------------------------
def _rotation_phi_lorentz(hkl, image, A0, axis, lam, w0, width):
    """Diffraction angle nearest each image's mid-angle, s at that angle, and rate |(e × s)·z| (1/Å/rad)."""
    e = np.asarray(axis, float) / np.linalg.norm(axis)
    sc = hkl @ np.asarray(A0).T
    s_par = np.outer(sc @ e, e)
    s_perp = sc - s_par
    exs = np.cross(e, sc)
    target = -lam * np.einsum("ni,ni->n", sc, sc) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        cosv = np.clip((target - s_par[:, 2]) / np.hypot(s_perp[:, 2], exs[:, 2]), -1, 1)
    base = np.arctan2(exs[:, 2], s_perp[:, 2])
    mid = w0 + (image + 0.5) * width
    cands = np.stack([mid + ((np.degrees(base + sg * np.arccos(cosv)) - mid + 180) % 360) - 180 for sg in (1, -1)])
    phi = cands[np.argmin(np.abs(cands - mid), axis=0), np.arange(len(hkl))]
    cp, sp_ = np.cos(np.radians(phi))[:, None], np.sin(np.radians(phi))[:, None]
    sv = s_par + cp * s_perp + sp_ * exs
    rate = np.maximum(np.abs(np.cross(e, sv)[:, 2]), 1e-6)
    return phi, sv, rate


@dataclass
class SimulatedTables:
    input: ScaleInput
    truth_keys: np.ndarray
    truth_I: np.ndarray
    """Full photons per unit (Lorentz, polarisation = 1) of each ASU orbit (the simulator's |F|² scale)."""
    op: np.ndarray
    ops: list[np.ndarray]
    sim: object


def simulated_tables(mode: str = "stills", n_images: int = 200, *, sg="P 4", cell=HEWL_CELL, seed: int = 0,
                     d_min: float = 2.0, ambiguity: bool = False, mosaicity_deg: float = 0.05,
                     omega_width_deg: float = 0.5, background: float = 10.0, min_photons: float = 2.0,
                     spot_width_recip: float = 2e-4) -> SimulatedTables:
    """Integrated-reflection tables from the in-house simulator (``jfjoch.simulate.Simulator``, what
    `jfjoch_simulate` renders), without rendering images: per image the simulator's reflections and noiseless
    photons, Poisson noise with a background term, and the simulator's own partiality and lp
    (stills: Gaussian of the excitation error; rotation: Lorentz × polarisation × solid angle, and phi).
    With ``ambiguity`` every still is re-indexed by a random indexing-ambiguity operator of the lattice."""
    from jfjoch.simulate import SimulationSettings, Simulator

    st = SimulationSettings(mode=mode, n_images=n_images, cell=tuple(cell), space_group=sg, d_min_A=d_min,
                            seed=seed, mosaicity_deg=mosaicity_deg, omega_width_deg=omega_width_deg,
                            spot_width_recip=spot_width_recip)
    sim = Simulator(st)
    rng = np.random.default_rng(seed + 1)
    lam = st.wavelength_A
    rows = {k: [] for k in ("image", "hkl", "ph", "part", "lp", "phi", "xy")}
    for i in range(n_images):
        hkl, xy, ph = sim.reflections_on(i, min_photons=min_photons)
        kdir = sim._pixel_k(xy[:, 0], xy[:, 1])
        pol = sim._pol_solid(kdir)
        if mode == "stills":
            sv = hkl @ sim.A0[i].T
            eps = np.linalg.norm(sv + np.array([0, 0, 1 / lam]), axis=1) - 1 / lam
            part = np.exp(-0.5 * (eps / sim._sigma_eps(sv)) ** 2)
            lp = pol
            phi = np.full(len(ph), np.nan)
        else:
            img = np.full(len(hkl), i)
            phi, sv, rate = _rotation_phi_lorentz(hkl, img, sim.A0[0], sim.axis, lam, st.omega_start_deg,
                                                  st.omega_width_deg)
            lp = np.minimum(1.0 / (lam * rate), 50.0) * pol
            from scipy.special import ndtr

            sig_phi = np.minimum(np.degrees(sim._sigma_eps(sv) / rate), 5.0)
            lo = st.omega_start_deg + i * st.omega_width_deg
            part = ndtr((lo + st.omega_width_deg - phi) / sig_phi) - ndtr((lo - phi) / sig_phi)
        rows["image"].append(np.full(len(ph), i))
        rows["hkl"].append(hkl.astype(np.int64))
        rows["ph"].append(ph)
        rows["part"].append(part)
        rows["lp"].append(lp)
        rows["phi"].append(phi)
        rows["xy"].append(xy)
    image = np.concatenate(rows["image"]).astype(np.int64)
    hkl = np.concatenate(rows["hkl"])
    ph = np.concatenate(rows["ph"])
    xy = np.concatenate(rows["xy"])
    group = space_group(sg)
    ops = ambiguity_operators(cell, group) if ambiguity else [np.eye(3, dtype=np.int64)]
    op = rng.integers(0, len(ops), n_images) if ambiguity else np.zeros(n_images, np.int64)
    for k in range(1, len(ops)):
        m = op[image] == k
        hkl[m] = hkl[m] @ np.rint(np.linalg.inv(ops[k])).astype(np.int64)
    n = len(ph)
    counts = rng.poisson(ph + background).astype(float) - background
    table = ReflectionTable(
        image=image, h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2], I=counts, sigma=np.sqrt(ph + 2 * background),
        x=xy[:, 0], y=xy[:, 1], d=np.zeros(n), phi=np.concatenate(rows["phi"]),
        partiality=np.concatenate(rows["part"]), lp=np.concatenate(rows["lp"]),
        background=np.full(n, background / 20.0), flags=np.zeros(n, np.uint32),
    )  # fmt: skip
    gon = Goniometer(axis=sim.axis, start_deg=st.omega_start_deg, increment_deg=st.omega_width_deg) \
        if mode == "rotation" else None
    inp = ScaleInput(reflections=table.sorted(), cell=tuple(cell), space_group=int(group.number), wavelength=lam,
                     goniometer=gon, name=f"simulated {mode}")
    sym = Symmetry(group)
    keys = sym.orbit_keys(sim.reflections.hkl)
    uk, first = np.unique(keys, return_index=True)
    return SimulatedTables(input=inp, truth_keys=uk, truth_I=sim.reflections.photons[first], op=op, ops=ops,
                           sim=sim)


def cc_to_truth(merged_hkl, merged_I, truth_keys, truth_I, sg, ops=None) -> float:
    """Pearson CC of merged intensities with the truth (max over the global indexing alternatives)."""
    sym = Symmetry(sg)
    best = -1.0
    for R in ops or [np.eye(3, dtype=np.int64)]:
        k = sym.orbit_keys(np.asarray(merged_hkl, np.int64) @ R)
        pos = np.clip(np.searchsorted(truth_keys, k), 0, len(truth_keys) - 1)
        hit = truth_keys[pos] == k
        if hit.sum() > 10:
            best = max(best, float(np.corrcoef(np.asarray(merged_I)[hit], truth_I[pos[hit]])[0, 1]))
    return best


def setting_agreement(op_truth, op_chosen, ops, sg) -> float:
    """Fraction of units whose chosen operator undoes their true one, up to one global operator."""
    from collections import Counter

    sym = Symmetry(sg)
    probe = np.array([[1, 2, 5], [3, 7, 11], [13, 17, 19]], np.int64)
    keys = []
    for t, c in zip(op_truth, op_chosen):
        M = np.rint(np.linalg.inv(ops[t])).astype(np.int64) @ ops[c]
        keys.append(tuple(sym.orbit_keys(probe @ M)))
    return Counter(keys).most_common(1)[0][1] / len(keys)
