"""Per-image statistics: synthetic spot sets and profiles with known answers, and the hewl frame (truth
reflections as the spot list; background against a direct masked mean of the image)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from jfjoch.azint import AzimuthalIntegrator
from jfjoch.errors import InputError
from jfjoch.image_stats import (
    ICE_RING_D_A,
    ImageStatistics,
    ImageStatisticsSettings,
    SpotArrays,
    compute_image_statistics,
    ice_ring_score,
    profile_background,
    resolution_estimate,
)

from .conftest import SHARED_CHECKS, shared
from .test_azint import hewl_frame, small_experiment

TWO_PI = 2 * np.pi


def spots_from_d(d, ice=None, **kw) -> SpotArrays:
    d = np.asarray(d, float)
    n = d.size
    ice = np.zeros(n, bool) if ice is None else np.asarray(ice, bool)
    return SpotArrays(x=np.zeros(n), y=np.zeros(n), intensity=np.ones(n), d=d, ice_ring=ice, **kw)


# ---------------------------------------------------------------- spot counts and resolution
def test_counts_known_answer():
    d = np.array([10.0, 6.0, 5.0, 4.9, 3.0, 2.5, 2.0, 1.9, 3.67])
    ice = np.zeros(d.size, bool)
    ice[-1] = True
    st = compute_image_statistics(
        spots_from_d(d, ice, max_value=1234, n_saturated=3, n_error=2), profile=None, q=None
    )
    assert st.n_spots == 9
    assert st.n_spots_low_resolution == 2  # 10 and 6 Å; d = 5.0 exactly is not > 5
    assert st.n_spots_ice_ring == 1
    assert (st.max_value, st.n_saturated, st.n_error) == (1234, 3, 2)
    assert math.isnan(st.background_estimate) and math.isnan(st.ice_ring_score)
    # 8 non-ice spots (<= 21): second-largest 1/d -> 2.0 Å
    assert st.resolution_estimate == pytest.approx(2.0)
    keys = set(st.as_dict())
    assert {"resolution_estimate", "background_estimate", "ice_ring_score", "n_spots_low_resolution"} <= keys
    assert {"n_spots_ice_ring", "max_value", "n_saturated", "n_error", "n_spots"} <= keys


def test_resolution_few_spots_is_nan_and_stable():
    for n in range(5):
        assert math.isnan(resolution_estimate(np.linspace(4, 2, n)))
    assert math.isnan(resolution_estimate(np.array([])))
    # ice-ring spots and invalid d do not count towards the minimum
    d = np.array([3.0, 2.8, 2.6, 2.4, 3.897, np.nan, 0.0])
    ice = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    assert math.isnan(resolution_estimate(d, ice))
    assert resolution_estimate(np.array([3.0, 2.8, 2.6, 2.4, 2.2])) == pytest.approx(2.4)
    st = compute_image_statistics(spots_from_d([]), profile=None, q=None)
    assert st.n_spots == 0 and math.isnan(st.resolution_estimate)


def test_resolution_uniform_reciprocal_volume_known_answer():
    """Spots uniform in reciprocal volume up to 1/d = 1/2.0 Å: the 95th percentile of 1/d is
    0.95^(1/3) / 2.0, i.e. d = 2.034 Å; one stray spot at 1.0 Å does not move it."""
    rng = np.random.default_rng(1)
    s = 0.5 * rng.random(4000) ** (1 / 3)
    s = s[s > 1 / 40]
    d = 1 / s
    expected = 2.0 / 0.95 ** (1 / 3)
    assert resolution_estimate(d) == pytest.approx(expected, rel=0.01)
    assert resolution_estimate(np.append(d, 1.0)) == pytest.approx(expected, rel=0.01)
    # small sets: one outlier cannot set it either
    few = np.array([4.0, 3.5, 3.2, 3.0, 2.8, 2.7, 1.0])
    assert resolution_estimate(few) == pytest.approx(2.7)
    # ice spots are ignored
    ice = np.zeros(few.size, bool)
    ice[[5, 6]] = True
    assert resolution_estimate(few, ice) == pytest.approx(3.0)


# ---------------------------------------------------------------- profile statistics
def synthetic_profile(ring_d: float | None = None, amplitude: float = 0.0):
    q = 0.11 + 0.02 * np.arange(180)
    background = 5.0 + 3.0 * np.exp(-(((q - 1.95) / 0.4) ** 2))  # water-ring-like hump
    if ring_d is not None:
        background = background * (1 + amplitude * (np.abs(q - TWO_PI / ring_d) <= 0.02))
    return q, background


def test_ice_ring_score_known_answer():
    q, flat = synthetic_profile()
    assert abs(ice_ring_score(flat, q)) < 0.02  # smooth hump: no ring
    for d_ring in (3.669, 2.249):
        q, prof = synthetic_profile(d_ring, 0.5)
        assert ice_ring_score(prof, q) == pytest.approx(0.5, abs=0.03)
    # a ring at a non-ice position is not scored
    q, prof = synthetic_profile(3.0, 0.5)
    assert abs(ice_ring_score(prof, q)) < 0.02
    # no ring inside the profile -> NaN
    assert math.isnan(ice_ring_score(np.ones(10), 0.1 + 0.02 * np.arange(10)))


def test_background_known_answer():
    q, prof = synthetic_profile()
    q_lo, q_hi = TWO_PI / 5.0, TWO_PI / 3.0
    ice_q = TWO_PI / np.array(ICE_RING_D_A)
    sel = (q >= q_lo) & (q <= q_hi) & ~(np.abs(q[:, None] - ice_q) < 0.04).any(1)
    assert profile_background(prof, q) == pytest.approx(prof[sel].mean(), rel=1e-12)
    # an ice ring inside the range does not change it (its bins are excluded)
    q, ring = synthetic_profile(3.441, 3.0)
    assert profile_background(ring, q) == pytest.approx(prof[sel].mean(), rel=1e-12)
    # pixel-count weighting
    w = np.arange(q.size, dtype=float)
    assert profile_background(prof, q, w) == pytest.approx(np.sum(prof[sel] * w[sel]) / w[sel].sum())
    assert math.isnan(profile_background(np.full(q.size, np.nan), q))
    custom = ImageStatisticsSettings(background_d_A=(2.0, 1.5))
    sel2 = (q >= TWO_PI / 2.0) & (q <= TWO_PI / 1.5) & ~(np.abs(q[:, None] - ice_q) < 0.04).any(1)
    assert profile_background(prof, q, settings=custom) == pytest.approx(prof[sel2].mean())


def test_ice_ring_on_image_end_to_end():
    """An image with a ring at the 3.669 Å ice position scores, the same image without it does not."""
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp, q_max=3.0)
    q_pix = TWO_PI / exp.resolution_map()
    base = 200.0 * ai.correction
    ring = np.where(np.abs(q_pix - TWO_PI / 3.669) < 0.015, 1.6, 1.0)
    clean = ai.integrate_with_counts(base.astype(np.float32))
    iced = ai.integrate_with_counts((base * ring).astype(np.float32))
    assert abs(ice_ring_score(clean[0], ai.q, clean[1])) < 0.01
    assert ice_ring_score(iced[0], ai.q, iced[1]) > 0.2


def test_input_checks():
    bad = SpotArrays(x=np.zeros(2), y=np.zeros(3), intensity=np.zeros(3), d=np.ones(3), ice_ring=np.zeros(3))
    with pytest.raises(InputError):
        compute_image_statistics(bad, None, None)
    with pytest.raises(InputError):
        compute_image_statistics(spots_from_d([2.0]), np.ones(3), np.ones(4))


# ---------------------------------------------------------------- hewl frame
def _truth_module():
    spec = importlib.util.spec_from_file_location("jfjoch_truth", SHARED_CHECKS / "truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hewl_stats_inputs():
    img, exp = hewl_frame(0)
    data = shared("hewl_rot1")
    truth = _truth_module()
    t = json.loads((data / "truth.json").read_text())
    partials = np.load(data / "truth_partials.npy")
    rows = partials[(partials[:, 0] == 0) & (partials[:, 4] > 20)]
    hkl = rows[:, 1:4].astype(float)
    A = np.array(t["images"][0]["A_star_mid"])
    d = 1 / np.linalg.norm(hkl @ A.T, axis=1)
    x, y = truth.predict(t, 0, hkl)
    on = (x >= 0) & (x < exp.detector.nx) & (y >= 0) & (y < exp.detector.ny)
    ice_q = TWO_PI / np.array(ICE_RING_D_A)
    ice = (np.abs(TWO_PI / d[:, None] - ice_q) < 0.02).any(1)
    spots = SpotArrays(
        x=x[on], y=y[on], intensity=rows[on, 4], d=d[on], ice_ring=ice[on], max_value=int(img.max())
    )
    return img, exp, spots


def test_hewl_statistics(hewl_stats_inputs):
    img, exp, spots = hewl_stats_inputs
    ai = AzimuthalIntegrator(exp)
    prof, count = ai.integrate_with_counts(img)
    st = compute_image_statistics(spots, prof, ai.q, profile_count=count)
    assert isinstance(st, ImageStatistics)
    assert st.n_spots > 200
    # strong truth reflections reach ~2.0 Å on this frame (detector edge ~1.9 Å): estimate in 2.0-3.0 Å
    assert 2.0 <= st.resolution_estimate <= 3.0
    assert st.resolution_estimate >= np.min(spots.d)
    assert 0 < st.n_spots_low_resolution < st.n_spots
    # no ice in the simulation (water ring only); Bragg spots falling into ring bins make the mean profile
    # noisy at this low background (~0.7 photons/pixel), so 'no ice' reads as a small score, not 0
    assert abs(st.ice_ring_score) < 0.2

    # background = direct masked mean of the corrected image over the same bins
    settings = ImageStatisticsSettings()
    q_lo, q_hi = TWO_PI / 5.0, TWO_PI / 3.0
    ice_q = TWO_PI / np.array(ICE_RING_D_A)
    bins = np.nonzero((ai.q >= q_lo) & (ai.q <= q_hi) & ~(np.abs(ai.q[:, None] - ice_q) < 0.04).any(1))[0]
    q_pix = TWO_PI / exp.resolution_map()
    b_pix = np.floor((q_pix - ai.settings.q_min) / ai.settings.bin_width).astype(int)
    valid = ~exp.detector.mask & (img < exp.detector.saturation) & np.isin(b_pix, bins)
    direct = np.mean(img[valid] / ai.correction[valid])
    assert st.background_estimate == pytest.approx(direct, rel=1e-4)
    assert st.background_estimate > 0
    # without pixel counts (bins weighted equally) it stays close
    st2 = compute_image_statistics(spots, prof, ai.q, settings=settings)
    assert st2.background_estimate == pytest.approx(direct, rel=0.05)
    # without corrections the same definition gives the plain masked mean of the raw image
    raw_ai = AzimuthalIntegrator(exp, solid_angle=False, polarization=False)
    raw_prof, raw_count = raw_ai.integrate_with_counts(img)
    st3 = compute_image_statistics(spots, raw_prof, raw_ai.q, profile_count=raw_count)
    assert st3.background_estimate == pytest.approx(np.mean(img[valid]), rel=1e-4)
