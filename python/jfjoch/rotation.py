"""Rotation-data geometry: exact diffraction angles, spot assignment and orientation refinement.

A reflection h with crystal-frame (omega = 0) reciprocal vector p = A0 @ h diffracts at the angles omega
where R(axis, omega) @ p lies on the Ewald sphere, |R p + s0| = 1/lambda with s0 = (0, 0, 1/lambda), i.e.
s0 . R p = -|p|^2 / 2. With Rodrigues' formula this is  u cos(omega) + v sin(omega) = w, solved in closed
form. Spots are then compared with the predicted pixel positions of their nearest integer hkl.
Angles in degrees at the interface, radians inside; lengths in Å and 1/Å; pixels as in docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .experiment import Experiment

__all__ = [
    "RotationAssignment",
    "SweepIndexing",
    "assign_rotation_image",
    "diffraction_angles",
    "estimate_mosaicity",
    "index_sweep",
    "predict_rotation_pixels",
    "to_crystal_frame",
]


def to_crystal_frame(s: np.ndarray, angle_deg: np.ndarray | float, axis: np.ndarray) -> np.ndarray:
    """Rotate lab-frame vectors s (n, 3) measured at angle_deg back to the omega = 0 frame."""
    from . import _core

    s = np.asarray(s, float).reshape(-1, 3)
    ang = np.broadcast_to(-np.radians(np.asarray(angle_deg, float)), (len(s),)).copy()
    return _core.rotate_vectors(s, ang, np.asarray(axis, float))


def diffraction_angles(p: np.ndarray, axis: np.ndarray, wavelength_A: float) -> np.ndarray:
    """The two angles (n, 2) in degrees where crystal-frame vectors p (n, 3) diffract; NaN if never."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    s0 = np.array([0.0, 0.0, 1.0 / wavelength_A])
    p = np.asarray(p, float).reshape(-1, 3)
    par = (p @ a)[:, None] * a
    perp = p - par
    u = perp @ s0
    v = np.cross(a, p) @ s0
    w = -np.einsum("ij,ij->i", p, p) / 2 - par @ s0
    r = np.hypot(u, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = w / r
        phi = np.arctan2(v, u)
        delta = np.arccos(np.where(np.abs(c) <= 1, c, np.nan))
    return np.degrees(np.stack([phi - delta, phi + delta], 1))


def _wrap(d: np.ndarray) -> np.ndarray:
    return (d + 180.0) % 360.0 - 180.0


def predict_rotation_pixels(
    A0: np.ndarray, hkl: np.ndarray, near_deg: np.ndarray, experiment: Experiment
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (n, 2) and angles (n,) of reflections hkl diffracting nearest to near_deg (n,): the
    position is the one at the angle of the frame around near_deg (one oscillation wide) closest to the
    diffraction angle, where the spot is recorded."""
    gon = experiment.goniometer
    p = np.asarray(hkl, float) @ np.asarray(A0, float).T
    ang = diffraction_angles(p, gon.axis, experiment.beam.wavelength_A)
    near = np.broadcast_to(np.asarray(near_deg, float), (len(p),))
    d = np.abs(_wrap(ang - near[:, None]))
    pick = np.where(np.nan_to_num(d[:, 0], nan=1e9) <= np.nan_to_num(d[:, 1], nan=1e9), 0, 1)
    omega = near + _wrap(ang[np.arange(len(p)), pick] - near)
    from . import _core

    # recorded at the angle of the frame around near_deg closest to the diffraction angle
    half = 0.5 * abs(gon.increment_deg)
    at = np.clip(np.nan_to_num(omega), near - half, near + half)
    s = _core.rotate_vectors(p, np.radians(at), np.asarray(gon.axis, float))
    xy = experiment.recip_to_pixels(s)
    xy[~np.isfinite(omega)] = np.nan
    return xy, omega


@dataclass
class RotationAssignment:
    """Spots of one rotation image assigned to a lattice."""

    hkl: np.ndarray
    """(n, 3) integer indices (meaningful where indexed)."""
    indexed: np.ndarray
    """(n,) bool."""
    predicted_xy: np.ndarray
    """(n, 2) predicted pixel positions of the assigned reflections."""


def assign_rotation_image(
    A0: np.ndarray,
    xy: np.ndarray,
    image: int,
    experiment: Experiment,
    max_px: float = 2.5,
) -> RotationAssignment:
    """Assign spots (n, 2 pixels) of `image` to the lattice A0 (crystal frame, columns a*, b*, c*).

    A spot is indexed when the nearest integer hkl (from its vector rotated back by the image's mid-angle),
    predicted at its diffraction angle nearest to the mid-angle, lands within max_px pixels of the spot.
    No limit is put on that angle: reflections close to the rotation axis stay in diffraction over many
    degrees (their Lorentz factor is large) while their position hardly moves.
    """
    gon = experiment.goniometer
    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    if n == 0:
        z = np.zeros((0, 3), int)
        return RotationAssignment(z, np.zeros(0, bool), np.zeros((0, 2)))
    mid = float(gon.angle_mid_deg(image))
    s = to_crystal_frame(experiment.pixels_to_recip(xy), mid, gon.axis)
    hkl = np.rint(s @ np.linalg.inv(A0).T).astype(int)
    pred, _omega = predict_rotation_pixels(A0, hkl, np.full(n, mid), experiment)
    dist = np.linalg.norm(pred - xy, axis=1)
    ok = np.isfinite(dist) & (dist < max_px) & np.any(hkl != 0, axis=1)
    return RotationAssignment(hkl, ok, pred)


ROTATION_FFBIDX_SPOTS = 300
"""Pooled first-pass spots handed to the known-cell indexer (an even subsample over the whole pool)."""
SINGLE_IMAGE_ATTEMPTS = 5
"""When the pooled spots do not index: first-pass images (most spots first) tried one at a time."""
ASSIGN_ROUNDS_PX = (8.0, 4.0, 2.5)
"""Spot-to-prediction distances (px) of the successive assignment + sweep-refinement rounds."""


@dataclass
class SweepIndexing:
    """Outcome of the first rotation pass: the refined sweep crystal and geometry."""

    experiment: Experiment
    """The experiment with the sweep-refined beam centre and distance."""
    A0: np.ndarray
    """Crystal at omega = 0, columns a*, b*, c* (1/Å)."""
    system: str
    bravais: str | None
    space_group: int | None
    backend: str
    refinement: dict
    """rms_px, rms_angle_frames, n_used, mode of the sweep refinement."""


def index_sweep(
    experiment: Experiment,
    first: list[tuple[int, np.ndarray]],
    algorithm: str,
    cell,
    space_group: int | None,
    refine_settings,
    notes: list[str] | None = None,
) -> SweepIndexing | None:
    """Index the pooled spots of the first-pass images (``first``: (image number, xy (n, 2 px)) each),
    mapped to the crystal frame, then refine the sweep (beam centre, distance, orientation, cell with the
    lattice symmetry kept) against them: positions and diffraction angles (two rounds, assigning spots
    within 4 and then 2.5 px). None when no lattice is found."""
    from .index import index_reciprocal
    from .refine import cell_system, refine_sweep

    notes = notes if notes is not None else []
    gon = experiment.goniometer
    pooled = [to_crystal_frame(experiment.pixels_to_recip(xy), gon.angle_mid_deg(num), gon.axis)
              for num, xy in first if len(xy)]  # fmt: skip
    if not pooled:
        return None
    s_all = np.concatenate(pooled)
    if algorithm == "ffbidx" and len(s_all) > ROTATION_FFBIDX_SPOTS:
        # the known-cell indexer works on a few hundred spots: an even subsample over the whole pool
        s_all = s_all[np.linspace(0, len(s_all) - 1, ROTATION_FFBIDX_SPOTS).astype(int)]
    res = index_reciprocal(s_all, cell=cell, space_group=space_group, method=algorithm)
    if not res.ok:
        # A wrong beam centre maps the spots of different images to inconsistent crystal-frame vectors,
        # which can defeat the pooled search; one image alone is self-consistent (like a still). Index the
        # images with the most spots one by one; the sweep refinement below then fixes the geometry.
        # The known-cell indexer insists on the cell within 2 %, which a wrong distance can exceed; the FFT
        # indexer then gets a chance (its cell is still checked against the given one, within 5 %).
        methods = [algorithm] + (["fftw"] if algorithm == "ffbidx" else [])
        for method in methods:
            for num, xy in sorted(first, key=lambda f: -len(f[1]))[:SINGLE_IMAGE_ATTEMPTS]:
                s1 = to_crystal_frame(experiment.pixels_to_recip(xy), gon.angle_mid_deg(num), gon.axis)
                res = index_reciprocal(s1, cell=cell, space_group=space_group, method=method)
                if res.ok:
                    notes.append(f"rotation indexing: the pooled first-pass spots did not index; image {num} "
                                 f"alone did ({method}), and the sweep refinement fixed the geometry")
                    break
            if res.ok:
                break
    if not res.ok:
        return None
    system = cell_system(space_group, res.bravais)
    A0 = np.linalg.inv(np.asarray(res.lattice, float))
    exp = experiment
    info: dict = {}
    for max_px in ASSIGN_ROUNDS_PX:
        imgs, xys, hkls = [], [], []
        for num, xy in first:
            if not len(xy):
                continue
            a = assign_rotation_image(A0, xy, num, exp, max_px=max_px)
            imgs.append(np.full(int(a.indexed.sum()), num))
            xys.append(xy[a.indexed])
            hkls.append(a.hkl[a.indexed])
        n_obs = sum(len(x) for x in xys)
        if n_obs < 10:
            break
        ref = refine_sweep(exp, A0, np.concatenate(imgs), np.concatenate(xys), np.concatenate(hkls), system,
                           refine_settings)  # fmt: skip
        exp, A0 = ref.experiment, ref.A
        info = {"rms_px": ref.rms_px, "rms_angle_frames": ref.rms_angle_frames, "n_used": ref.n_used,
                "n_observations": n_obs, "mode": ref.mode}  # fmt: skip
    return SweepIndexing(experiment=exp, A0=A0, system=system, bravais=res.bravais, space_group=res.space_group,
                         backend=res.backend, refinement=info)  # fmt: skip


MOSAICITY_GRID_DEG = np.geomspace(0.002, 2.0, 61)
"""Mosaicity values (Gaussian sigma, degrees) the first-pass fit compares."""


def estimate_mosaicity(
    experiment: Experiment,
    A0: np.ndarray,
    numbers: list[int],
    read_image,
    integration_settings,
    prediction_settings,
    min_isigma: float = 8.0,
    pool=None,
) -> float | None:
    """Mosaicity (Gaussian sigma, degrees) of a sweep from consecutive images ``numbers`` (read one at a time
    with ``read_image(number)``): predict with a generous mosaicity, integrate each image by summation, and
    for every strong reflection whose diffraction angle lies inside the images' range (at least one image
    from either end), compare the fractions I_i / sum(I) it left on the images with the Gaussian rocking
    model Phi((hi - w)/(m L)) - Phi((lo - w)/(m L)) normalised over the same images. The m that fits best
    (least squares over a log grid, refined by a parabola through the best three) is returned; None with
    fewer than 20 usable reflections. ``pool``: an executor to integrate the images in parallel (the result
    does not depend on it)."""
    from dataclasses import replace

    from scipy.special import ndtr

    from .errors import CorruptFrameError
    from .integration_kernel import Flag as KernelFlag
    from .integration_kernel import integrate_image
    from .predict import RotationPredictor

    gon = experiment.goniometer
    numbers = sorted(numbers)
    if len(numbers) < 3:
        return None
    inc = abs(gon.increment_deg)
    probe = max(0.3, inc)
    pset = replace(prediction_settings, min_fraction=1e-4, ewald_cutoff=0.0)
    pred = RotationPredictor(experiment, A0, probe, numbers[0], numbers[-1], pset)
    det = experiment.detector
    mask = None if det.mask is None else np.ascontiguousarray(det.mask, np.uint8)
    sat = int(det.saturation) if det.saturation is not None else np.iinfo(np.int32).max
    kset = integration_settings.kernel()
    def one(num: int):
        """(event, image, I, sigma, phi (deg), Lorentz factor) of the summed predictions of one image."""
        try:
            img = read_image(num)
        except CorruptFrameError:
            return None
        p = pred.predict(num)
        if not len(p):
            return None
        out = integrate_image(np.ascontiguousarray(img, np.int32), mask, sat, p.x, p.y, kset, profile=False)
        ok = ((np.asarray(out.flags) & KernelFlag.SUMMED) != 0) & np.isfinite(out.I_sum)
        return np.stack([p.event[ok], np.full(ok.sum(), num), out.I_sum[ok], out.sigma_sum[ok], p.phi[ok],
                         1.0 / np.maximum(p.zeta[ok], 1e-9)], 1)  # fmt: skip

    mapped = pool.map(one, numbers) if pool is not None else map(one, numbers)
    cols = [c for c in mapped if c is not None]
    if not cols:
        return None
    arr = np.concatenate(cols)
    lo_all = gon.start_deg + numbers[0] * gon.increment_deg
    hi_all = gon.start_deg + (numbers[-1] + 1) * gon.increment_deg
    lo_all, hi_all = min(lo_all, hi_all), max(lo_all, hi_all)
    # per event: total intensity and its error; keep strong events well inside the images' range
    ev, inv = np.unique(arr[:, 0], return_inverse=True)
    total = np.bincount(inv, arr[:, 2])
    err = np.sqrt(np.bincount(inv, arr[:, 3] ** 2))
    phi_ev = np.zeros(len(ev))
    phi_ev[inv] = arr[:, 4]
    good = (total > 0) & (total >= min_isigma * err) & (phi_ev >= lo_all + inc) & (phi_ev <= hi_all - inc)
    if good.sum() < 20:
        return None
    keep = good[inv]
    arr, inv = arr[keep], np.unique(inv[keep], return_inverse=True)[1]
    frac_obs = arr[:, 2] / np.bincount(inv, arr[:, 2])[inv]
    lo = gon.start_deg + arr[:, 1] * gon.increment_deg
    hi = lo + gon.increment_deg
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)

    def cost(m_deg: float) -> float:
        sig = m_deg * arr[:, 5]
        f = ndtr((hi - arr[:, 4]) / sig) - ndtr((lo - arr[:, 4]) / sig)
        norm = np.bincount(inv, f)[inv]
        frac = np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)
        return float(np.sum((frac_obs - frac) ** 2))

    costs = np.array([cost(m) for m in MOSAICITY_GRID_DEG])
    k = int(np.argmin(costs))
    if 0 < k < len(costs) - 1:
        x = np.log(MOSAICITY_GRID_DEG[k - 1 : k + 2])
        y = costs[k - 1 : k + 2]
        den = y[0] - 2 * y[1] + y[2]
        if den > 0:
            shift = 0.5 * (y[0] - y[2]) / den * (x[1] - x[0])
            return float(np.exp(x[1] + shift))
    return float(MOSAICITY_GRID_DEG[k])
