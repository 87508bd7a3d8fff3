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

from .experiment import Experiment, rotation_matrix

__all__ = [
    "RotationAssignment",
    "assign_rotation_image",
    "diffraction_angles",
    "predict_rotation_pixels",
    "refine_orientation_image",
    "refine_rotation_lattice",
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
    """Pixel positions (n, 2) and angles (n,) of reflections hkl diffracting nearest to near_deg (n,)."""
    gon = experiment.goniometer
    p = np.asarray(hkl, float) @ np.asarray(A0, float).T
    ang = diffraction_angles(p, gon.axis, experiment.beam.wavelength_A)
    near = np.broadcast_to(np.asarray(near_deg, float), (len(p),))
    d = np.abs(_wrap(ang - near[:, None]))
    pick = np.where(np.nan_to_num(d[:, 0], nan=1e9) <= np.nan_to_num(d[:, 1], nan=1e9), 0, 1)
    omega = near + _wrap(ang[np.arange(len(p)), pick] - near)
    from . import _core

    s = _core.rotate_vectors(p, np.radians(np.nan_to_num(omega)), np.asarray(gon.axis, float))
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


def _small_rotation(d: np.ndarray) -> np.ndarray:
    ang = np.linalg.norm(d)
    if ang == 0:
        return np.eye(3)
    return rotation_matrix(d / ang, np.degrees(ang))


ANGLE_WEIGHT_PX_PER_FRAME = 0.5
"""Weight of the diffraction-angle residual: 1 frame of angle error counts as this many pixels.

Spot positions alone cannot fix a rotation about the goniometer axis (it only shifts every diffraction
angle); the image on which a spot was seen does. A spot may be recorded up to about half a frame from its
exact angle, so the angle residual is weighted weakly."""


def _residuals(pred, xy, omega, near, experiment: Experiment) -> np.ndarray:
    d_frames = (omega - near) / abs(experiment.goniometer.increment_deg)
    return np.concatenate([(pred - xy).ravel(), ANGLE_WEIGHT_PX_PER_FRAME * d_frames])


def _gauss_newton(resid, params0: np.ndarray, apply, steps: np.ndarray, iterations: int) -> np.ndarray:
    """Damped Gauss-Newton on pixel residuals with a truncated (robust) cost.

    resid(params) -> residual vector; apply(params0, delta) -> new params; steps: finite-difference step
    per parameter. Rows whose Jacobian is extreme (reflections grazing the Ewald sphere near the rotation
    axis, where the predicted position jumps) and residuals beyond 5x the median are left out.
    """
    p = params0
    npar = len(steps)

    def cost(r, clip):
        r = np.nan_to_num(r, nan=clip)
        return float(np.sum(np.minimum(r * r, clip * clip)))

    for _ in range(iterations):
        r0 = resid(p)
        good = np.isfinite(r0)
        if good.sum() < 2 * npar:
            break
        J = np.stack([(resid(apply(p, steps[k] * np.eye(npar)[k])) - r0) / steps[k] for k in range(npar)], 1)
        good &= np.all(np.isfinite(J), axis=1)
        jn = np.linalg.norm(J, axis=1)
        med_j = np.median(jn[good]) if good.any() else 0.0
        med_r = np.median(np.abs(r0[good])) if good.any() else 0.0
        good &= (jn < 10 * med_j) & (np.abs(np.nan_to_num(r0)) < max(5 * med_r, 0.5))
        if good.sum() < 2 * npar:
            break
        clip = max(5 * med_r, 0.5)
        c0 = cost(r0[good], clip)
        delta, *_ = np.linalg.lstsq(J[good], -r0[good], rcond=None)
        accepted = False
        for _ in range(6):
            trial = apply(p, delta)
            if cost(resid(trial)[good], clip) < c0:
                p, accepted = trial, True
                break
            delta = delta / 2
        if not accepted or np.abs(delta / steps).max() < 1e-3:
            break
    return p


def refine_orientation_image(
    A0: np.ndarray, xy: np.ndarray, hkl: np.ndarray, image: int, experiment: Experiment, iterations: int = 6
) -> np.ndarray:
    """Refine the crystal orientation for one image: a small rotation R about the two lab axes
    perpendicular to the goniometer axis, so that R @ A0 predicts the indexed spots (n, 2 pixels) with
    their hkl best on `image`. Returns the refined A0 (crystal frame).

    A rotation about the goniometer axis itself is left to the whole-sweep refinement
    (refine_rotation_lattice): within one image it only shifts diffraction angles inside the frame's
    oscillation and is not determined by the spot positions.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    if len(xy) < 4:
        return np.asarray(A0, float)
    mid = float(experiment.goniometer.angle_mid_deg(image))
    near = np.full(len(xy), mid)
    A_start = np.asarray(A0, float)
    ax = np.asarray(experiment.goniometer.axis, float)
    ax = ax / np.linalg.norm(ax)
    e1 = np.cross(ax, [0.0, 0.0, 1.0] if abs(ax[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(ax, e1)
    basis = np.stack([e1, e2], 1)  # (3, 2): rotation vector = basis @ d

    def resid(d):
        pred, _ = predict_rotation_pixels(_small_rotation(basis @ d) @ A_start, hkl, near, experiment)
        return (pred - xy).ravel()

    d = _gauss_newton(resid, np.zeros(2), lambda p, dp: p + dp, np.full(2, 1e-6), iterations)
    return _small_rotation(basis @ d) @ A_start


def refine_rotation_lattice(
    A0: np.ndarray,
    spots: list[tuple[int, np.ndarray, np.ndarray]],
    experiment: Experiment,
    iterations: int = 8,
) -> np.ndarray:
    """Refine all nine elements of A0 (crystal frame) against indexed spots of several images.

    spots: (image, xy (n, 2), hkl (n, 3)) per image. Gauss-Newton on pixel residuals with exact
    diffraction angles; returns the refined A0.
    """
    imgs = [(im, np.asarray(xy, float), np.asarray(h)) for im, xy, h in spots if len(xy)]
    if sum(len(x) for _, x, _ in imgs) < 10:
        return np.asarray(A0, float)
    xy_all = np.concatenate([x for _, x, _ in imgs])
    hkl_all = np.concatenate([h for _, _, h in imgs])
    near = np.concatenate([np.full(len(x), float(experiment.goniometer.angle_mid_deg(im))) for im, x, _ in imgs])
    A_start = np.asarray(A0, float)

    def resid(p):
        pred, omega = predict_rotation_pixels(p.reshape(3, 3), hkl_all, near, experiment)
        return _residuals(pred, xy_all, omega, near, experiment)

    step = np.full(9, 1e-6 * np.abs(A_start).max())
    p = _gauss_newton(resid, A_start.ravel(), lambda p, dp: p + dp, step, iterations)
    return p.reshape(3, 3)
