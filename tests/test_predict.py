"""Prediction (csrc/integrate/predict*): against brute-force numpy enumeration, the truth and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from jfjoch import Beam, Detector, Experiment, Goniometer, _core
from jfjoch.experiment import rotation_matrix
from jfjoch.predict import PredictionSettings, RotationPredictor, predict_still

from .conftest import shared, truth_module


def _still_experiment(t: dict) -> Experiment:
    bx, by = t["beam_center_px"]
    nx, ny = t["image_size_px"]
    det = Detector.from_beam_center(nx, ny, t["pixel_size_mm"], t["distance_mm"], bx, by)
    return Experiment(beam=Beam(t["wavelength_A"]), detector=det)


def _brute_force(exp: Experiment, A: np.ndarray, d_min: float, R0: float, bandwidth: float = 0.0):
    """Every hkl with d >= d_min and |eps| <= R_eff on the detector, by looping over a box (slow, obvious)."""
    real = np.linalg.inv(A)
    n = np.floor(np.linalg.norm(real, axis=1) / d_min).astype(int)
    h, k, l = np.meshgrid(*(np.arange(-m, m + 1) for m in n), indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], 1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    s = hkl @ A.T
    s2 = np.einsum("ij,ij->i", s, s)
    lam = exp.beam.wavelength_A
    eps = np.linalg.norm(s + np.array([0, 0, 1 / lam]), axis=1) - 1 / lam
    reff2 = R0 * R0 + 0.5 * (bandwidth * lam) ** 2 * s2 * s2
    keep = (s2 <= 1 / d_min**2) & (eps * eps <= reff2)
    hkl, s = hkl[keep], s[keep]
    xy = exp.recip_to_pixels(s)
    on = np.isfinite(xy).all(1) & (xy[:, 0] >= 0) & (xy[:, 1] >= 0)
    on &= (xy[:, 0] <= exp.detector.nx - 1) & (xy[:, 1] <= exp.detector.ny - 1)
    return {tuple(h): p for h, p in zip(hkl[on], xy[on])}


@pytest.mark.parametrize("bandwidth", [0.0, 0.02])
def test_stills_equal_brute_force(bandwidth):
    T = truth_module()
    t = T.load(shared("hewl_stills1"))
    exp = _still_experiment(t)
    A = np.array(t["images"][7]["A_star_mid"])
    R0 = 0.003
    p = predict_still(exp, A, R0, PredictionSettings(d_min=1.6, bandwidth=bandwidth))
    ref = _brute_force(exp, A, 1.6, R0, bandwidth)
    got = {tuple(h): (x, y) for h, x, y in zip(p.hkl, p.x, p.y)}
    assert set(got) == set(ref) and len(got) > 500
    for h, (x, y) in got.items():
        assert abs(x - ref[h][0]) < 1e-9 and abs(y - ref[h][1]) < 1e-9
    # positions equal the independent truth helper's, partiality follows the Ewald offset
    xt, yt = T.s_to_xy(t, p.hkl @ A.T)
    np.testing.assert_allclose(p.x, xt, atol=1e-8)
    np.testing.assert_allclose(p.y, yt, atol=1e-8)
    rho2 = (R0**2 + 0.5 * (bandwidth * exp.beam.wavelength_A) ** 2 / p.d**4) / 5.0**2
    np.testing.assert_allclose(p.partiality, np.exp(-0.5 * p.eps**2 / rho2), rtol=1e-9)
    assert np.all(np.isnan(p.phi)) and np.all(p.event == -1)


def test_bandwidth_widens_at_high_resolution():
    T = truth_module()
    t = T.load(shared("hewl_stills1"))
    exp = _still_experiment(t)
    A = np.array(t["images"][3]["A_star_mid"])
    mono = predict_still(exp, A, 0.002)
    pink = predict_still(exp, A, 0.002, PredictionSettings(bandwidth=0.02))
    assert len(pink) > len(mono)
    extra = ~np.isin(pink.hkl @ [1 << 20, 1 << 10, 1], mono.hkl @ [1 << 20, 1 << 10, 1])
    assert np.median(pink.d[extra]) < np.median(mono.d)  # the widening grows as 1/d^2


def test_polarisation_factor_in_lp():
    T = truth_module()
    t = T.load(shared("hewl_stills1"))
    exp = _still_experiment(t)
    A = np.array(t["images"][0]["A_star_mid"])
    p = predict_still(exp, A, 0.003)
    k = p.hkl @ A.T + [0, 0, 1 / exp.beam.wavelength_A]
    u = k / np.linalg.norm(k, axis=1, keepdims=True)
    f = exp.beam.polarization_fraction
    np.testing.assert_allclose(p.lp, f * (1 - u[:, 0] ** 2) + (1 - f) * (1 - u[:, 1] ** 2), rtol=1e-12)


@pytest.fixture(scope="module")
def rot1():
    T = truth_module()
    t = T.load(shared("hewl_rot1"))
    exp = _still_experiment(t)
    im0 = t["images"][0]
    gon = Goniometer(axis=np.array(t["conventions"]["rotation_axis"], float), start_deg=im0["omega_start_deg"],
                     increment_deg=im0["omega_width_deg"])
    from dataclasses import replace

    return T, t, replace(exp, goniometer=gon)


def test_rotation_events_on_ewald_sphere_and_fractions_sum_to_one(rot1):
    _T, t, exp = rot1
    A0 = np.array(t["images"][0]["A_star_at_omega0"])
    pred = RotationPredictor(exp, A0, 0.05, 0, 39, PredictionSettings(min_fraction=1e-6, ewald_cutoff=0.0))
    # every event lies on the Ewald sphere at its angle
    lam = exp.beam.wavelength_A
    sel = np.arange(0, len(pred.phi), 97)
    for i in sel:
        s = rotation_matrix(exp.goniometer.axis, np.degrees(pred.phi[i])) @ A0 @ pred.hkl[i]
        assert abs(np.linalg.norm(s + np.array([0, 0, 1 / lam])) - 1 / lam) < 1e-10
    # a reflection well inside the sweep: its fractions over all images add up to 1
    totals: dict[int, float] = {}
    inner: set[int] = set()  # events predicted well inside the detector (10 px from the edges)
    for im in range(40):
        p = pred.predict(im)
        for e, f, x, y in zip(p.event, p.partiality, p.x, p.y):
            totals[int(e)] = totals.get(int(e), 0.0) + float(f)
            if 10 < x < exp.detector.nx - 11 and 10 < y < exp.detector.ny - 11:
                inner.add(int(e))
    inside = [e for e in inner if np.radians(3) < pred.phi[e] < np.radians(17) and pred.sigma[e] < np.radians(0.5)]
    assert len(inside) > 1000
    np.testing.assert_allclose([totals[e] for e in inside], 1.0, atol=1e-4)


def test_rotation_recall_of_truth_partials(rot1):
    """With the true crystal, >= 98 % of the visible truth partials with >= 100 photons are predicted on
    their image (the Ewald cutoff catches reflections near the spindle that stay in diffraction)."""
    T, t, exp = rot1
    A0 = np.array(t["images"][0]["A_star_at_omega0"])
    pred = RotationPredictor(exp, A0, 0.05, 0, 39)
    P = t["partials"]
    found = total = 0
    for im in range(0, 40, 3):
        p = pred.predict(im)
        rows = P[(P[:, 0] == im) & (P[:, 4] >= 100)]
        x, y = T.predict(t, im, rows[:, 1:4])
        rows = rows[T.visible(shared("hewl_rot1"), x, y, margin=4)]
        keys = {tuple(h) for h in p.hkl}
        found += sum(tuple(np.rint(r[1:4]).astype(int)) in keys for r in rows)
        total += len(rows)
    assert found / total >= 0.98


@pytest.mark.skipif(_core.cuda_device_count() == 0, reason="needs a CUDA device")
def test_cuda_equals_cpu():
    T = truth_module()
    t = T.load(shared("hewl_stills1"))
    exp = _still_experiment(t)
    A = np.array(t["images"][5]["A_star_mid"])
    a = predict_still(exp, A, 0.003, backend="cpu")
    b = predict_still(exp, A, 0.003, backend="cuda")
    np.testing.assert_array_equal(a.hkl, b.hkl)
    np.testing.assert_allclose(a.x, b.x, atol=1e-9)
