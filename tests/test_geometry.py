"""Geometry kernels (csrc/core) against the independent truth helpers of shared/checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jfjoch import Beam, Detector, Experiment
from jfjoch.experiment import rotation_matrix

from .conftest import shared, truth_module


def _experiment_from_truth(t: dict) -> Experiment:
    bx, by = t["beam_center_px"]
    nx, ny = t["image_size_px"]
    det = Detector.from_beam_center(nx, ny, t["pixel_size_mm"], t["distance_mm"], bx, by)
    return Experiment(beam=Beam(t["wavelength_A"]), detector=det)


@pytest.mark.parametrize("dataset", ["hewl_rot1", "hewl_stills1"])
def test_prediction_matches_truth_helper(dataset):
    T = truth_module()
    t = json.loads(shared(dataset, "truth.json").read_text())
    exp = _experiment_from_truth(t)
    A = np.array(t["images"][0]["A_star_mid"])
    hkl = np.array([[h, k, l] for h in range(-8, 9) for k in range(-8, 9) for l in range(-4, 5)], float)
    s = hkl @ A.T
    ours = exp.recip_to_pixels(s)
    tx, ty = T.s_to_xy(t, s)
    ok = np.isfinite(tx)
    assert ok.sum() > 100
    np.testing.assert_allclose(ours[ok, 0], tx[ok], atol=1e-6)
    np.testing.assert_allclose(ours[ok, 1], ty[ok], atol=1e-6)
    # and back: pixel -> s recovers the direction of s + s0
    back = exp.pixels_to_recip(ours[ok])
    k0 = np.array([0, 0, 1 / t["wavelength_A"]])
    u = (s[ok] + k0) / np.linalg.norm(s[ok] + k0, axis=1, keepdims=True)
    v = (back + k0) / np.linalg.norm(back + k0, axis=1, keepdims=True)
    np.testing.assert_allclose(u, v, atol=1e-9)


def test_beam_center_and_distance():
    det = Detector.from_beam_center(1024, 512, 0.075, 120.0, 500.25, 260.5)
    assert det.beam_center_px == pytest.approx((500.25, 260.5))
    assert det.distance_mm == pytest.approx(120.0)
    exp = Experiment(beam=Beam(1.0), detector=det)
    s = exp.pixels_to_recip(np.array([[500.25, 260.5]]))
    np.testing.assert_allclose(s, 0.0, atol=1e-12)


def test_flipped_fast_axis_geometry():
    """DECTRIS files put fast = -x: a pixel right of the beam centre in x maps to negative lab x."""
    det = Detector(
        nx=100, ny=100, pixel_mm=0.1, origin_mm=np.array([5.0, -5.0, 100.0]),
        fast=np.array([-1.0, 0, 0]), slow=np.array([0, 1.0, 0]),
    )
    assert det.beam_center_px == pytest.approx((50.0, 50.0))
    exp = Experiment(beam=Beam(1.0), detector=det)
    s = exp.pixels_to_recip(np.array([[60.0, 50.0]]))
    assert s[0, 0] < 0 and abs(s[0, 1]) < 1e-12


def test_rotate_vectors_matches_rotation_matrix():
    from jfjoch import _core

    rng = np.random.default_rng(1)
    v = rng.normal(size=(20, 3))
    ang = rng.uniform(-3, 3, 20)
    axis = np.array([1.0, 0.2, -0.1])
    out = _core.rotate_vectors(v, ang, axis)
    ref = np.stack([rotation_matrix(axis, np.degrees(a)) @ x for a, x in zip(ang, v, strict=False)])
    np.testing.assert_allclose(out, ref, atol=1e-12)
