"""Bragg integration kernel (csrc/integrate, jfjoch.integration_kernel): equality with the slow numpy
reference of tests/integrate_data.py, accuracy and honest sigmas on synthetic Gaussian spots, the flags,
thread safety, and the truth of the shared simulated stills."""

from __future__ import annotations

import math
import threading
from dataclasses import fields

import numpy as np
import pytest

from jfjoch import _core
from jfjoch.errors import InputError, UsageError
from jfjoch.integration_kernel import (
    DEFAULT_RADII,
    DROPPED,
    Flag,
    IntegratedImage,
    IntegrationKernelSettings,
    ProfileSource,
    integrate_image,
    radii_from_option,
)

from .conftest import shared, truth_module
from .integrate_data import (
    INT32_MIN,
    gaussian_spot_image,
    random_positions,
    reference_integrate,
    reference_summation,
)


def run(img, mask, sat, x, y, settings=None, **kw) -> IntegratedImage:
    return integrate_image(img, mask, sat, x, y, settings, backend="cpu", **kw)


def annulus_offsets(r2: float, r3: float) -> list[tuple[int, int]]:
    """Integer offsets (dx, dy) with r2 < |d| <= r3, row-major."""
    n = math.ceil(r3)
    return [
        (dx, dy) for dy in range(-n, n + 1) for dx in range(-n, n + 1) if r2 * r2 < dx * dx + dy * dy <= r3 * r3
    ]


# ---------------------------------------------------------------- data builders
def messy_image(seed: int = 0):
    """A 240 x 320 image exercising every path of the summation: Poisson background with a slope and a
    high-background block (clip threshold above the 64-bin histogram), masked and error pixels, negative
    values, saturated spot cores, predictions off and across the detector edge, close pairs, a dense line of
    21 predictions (more than 16 neighbours on one row) and one prediction whose annulus is masked down
    to 5 pixels. Returns (image, mask, saturation, x, y)."""
    rng = np.random.default_rng(seed)
    ny, nx = 240, 320
    bg = 0.5 + np.add.outer(np.linspace(0, 1, ny), np.linspace(0, 2, nx))
    bg[150:200, 250:310] = 80.0  # clip threshold > 63: the second walk over the annulus
    x, y = random_positions(90, ny, nx, rng, min_dist=4.0, margin=-3.0)
    special_x = np.r_[100.0, 108.3, 40.0, 40.0 + 1e-9, 280.3, np.full(21, 200.25), 60.0]
    special_y = np.r_[30.0, 31.2, 200.0, 200.0, 174.6, 80.0 + 0.45 * np.arange(21), 120.0]
    far = np.hypot(x[:, None] - special_x, y[:, None] - special_y).min(axis=1) > 20
    x = np.r_[x[far], special_x, 1e9, np.nan]
    y = np.r_[y[far], special_y, 10.0, 10.0]
    photons = np.exp(rng.uniform(np.log(20), np.log(20000), x.size))
    finite = np.isfinite(x) & (np.abs(x) < 1e6)
    img = gaussian_spot_image(ny, nx, x[finite], y[finite], photons[finite], 1.1, bg, rng)
    mask = rng.random((ny, nx)) < 0.005
    mask[100:104, 0:40] = True
    for dx, dy in annulus_offsets(7.5, 9.5)[5:]:  # prediction (60, 120): 5 background pixels left
        mask[120 + dy, 60 + dx] = True
    img = np.minimum(img, 1200)  # saturation: a detector reads at most its saturation value
    img[rng.random((ny, nx)) < 0.002] = INT32_MIN
    img[rng.random((ny, nx)) < 0.002] = -1
    return img, mask.astype(np.uint8), 1200, x, y


def spot_field(seed: int, n: int = 1000, shape=(1000, 1000), background=1.0, sigma_px=1.0, photons=(20, 5000)):
    """Isolated Gaussian spots (at least 20 px apart) with known photons on a Poisson background."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    x, y = random_positions(n, ny, nx, rng, min_dist=20.0, margin=12.0)
    ph = np.exp(rng.uniform(np.log(photons[0]), np.log(photons[1]), n))
    img = gaussian_spot_image(ny, nx, x, y, ph, sigma_px, background, rng)
    return img, x, y, ph


def assert_same(a: IntegratedImage, ref: dict, keys, rtol: float) -> None:
    for k in keys:
        got, want = getattr(a, k), ref[k]
        assert got.shape == want.shape, k
        if got.dtype.kind in "iu":
            np.testing.assert_array_equal(got, want, err_msg=k)
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0, equal_nan=True, err_msg=k)


# ---------------------------------------------------------------- 1. equality with the numpy reference
@pytest.mark.parametrize("seed", [0, 1])
def test_summation_equals_numpy_reference(seed):
    img, mask, sat, x, y = messy_image(seed)
    s = IntegrationKernelSettings()
    ref = reference_summation(img, mask, sat, x, y, s.r1, s.r2, s.r3, s.bg_clip_sigma, s.min_background_pixels)
    for xs, ys in ((x, y), (x.astype(np.float32), y.astype(np.float32))):
        if xs.dtype == np.float32:  # the kernel reads float32 positions as their float64 values
            ref = reference_summation(img, mask, sat, xs.astype(np.float64), ys.astype(np.float64), s.r1, s.r2, s.r3)
        r = run(img, mask, sat, xs, ys, s, profile=False)
        np.testing.assert_array_equal(r.flags, ref["flags"])
        assert_same(r, ref, ["n_disc", "n_background", "I_sum", "sigma_sum", "background"], rtol=1e-12)
        assert np.isnan(r.I_prf).all() and np.isnan(r.sigma_prf).all()
    # the image exercises what it claims to
    f = r.flags
    for bit in (Flag.SUMMED, Flag.SATURATED, Flag.OVERLAP, Flag.MASKED, Flag.FEW_BACKGROUND, Flag.EDGE):
        assert ((f & bit) != 0).any(), bit.name
    assert (r.background > 63).any()  # the second walk over the annulus ran
    assert r.n_disc.max() > 0 and (r.flags[-23:-3] & Flag.OVERLAP).all()  # the dense line
    assert f[-3] == Flag.FEW_BACKGROUND and r.n_background[-3] == 5
    assert f[-2] == Flag.EDGE and f[-1] == Flag.EDGE and r.n_disc[-1] == 0
    dropped = (f & DROPPED) != 0
    assert np.isnan(r.I_sum[dropped]).all() and np.isfinite(r.I_sum[~dropped]).all()
    assert ((f & Flag.SUMMED) != 0).sum() == (~dropped).sum()


def grouped_spots(seed: int):
    """Spots in three groups: left and right halves (own profiles), and 3 spots in group 2 (global)."""
    img, x, y, ph = spot_field(seed, n=150, shape=(300, 600), background=1.5, sigma_px=1.0, photons=(30, 8000))
    group = (x > 300).astype(np.int32)
    group[:3] = 2
    rng = np.random.default_rng(seed)
    mask = (rng.random(img.shape) < 0.001).astype(np.uint8)
    return img, mask, x, y, ph, group


@pytest.mark.parametrize(
    "settings",
    [
        IntegrationKernelSettings(),
        # fit aperture = the whole r1 = 8 disc (201 pixels > the kernel's 160-pixel fit buffer)
        IntegrationKernelSettings(r1=8.0, r2=10.0, r3=12.0, profile_multiplier=100.0, oversampling=3),
    ],
)
def test_profile_equals_numpy_reference(settings):
    img, mask, x, y, _, group = grouped_spots(3)
    s = settings
    ref = reference_integrate(
        img,
        mask,
        60000,
        x,
        y,
        s.r1,
        s.r2,
        s.r3,
        s.bg_clip_sigma,
        s.min_background_pixels,
        group=group,
        n_groups=3,
        min_isigma=s.profile_min_isigma,
        min_refs=s.profile_min_reflections,
        multiplier=s.profile_multiplier,
        oversampling=s.oversampling,
    )
    r = run(img, mask, 60000, x, y, s, group=group, n_groups=3)
    np.testing.assert_array_equal(r.flags, ref["flags"])
    assert_same(r, ref, ["I_sum", "sigma_sum", "background"], rtol=1e-12)
    assert_same(r, ref, ["I_prf", "sigma_prf", "profile_width"], rtol=1e-9)
    np.testing.assert_allclose(r.profiles, ref["profiles"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.profile_source, [ProfileSource.OWN, ProfileSource.OWN, ProfileSource.GLOBAL])
    np.testing.assert_array_equal(r.profile_source, ref["profile_source"])
    np.testing.assert_array_equal(r.profile_n_reference, ref["profile_n_reference"])
    assert r.profile_n_reference[2] < s.profile_min_reflections <= r.profile_n_reference[:2].min()
    assert r.profiles.shape == (3, s.profile_size, s.profile_size)
    fitted = (r.flags & Flag.PROFILE_FITTED) != 0
    assert fitted.sum() > 0.9 * ((r.flags & Flag.SUMMED) != 0).sum()
    assert ((r.flags & Flag.PROFILE_REFERENCE) != 0).sum() == r.profile_n_reference.sum()
    if s.profile_multiplier == 100.0:
        assert (r.profile_width * 50 > s.r1).all()  # the aperture is the whole disc: the unbuffered fit ran
        assert math.pi * s.r1**2 > 160


# ---------------------------------------------------------------- 2. accuracy on synthetic spots
@pytest.mark.parametrize("slope", [False, True])
def test_accuracy_and_honest_sigmas_on_gaussian_spots(slope):
    """1000 Gaussian spots (sigma 1 px, 20..5000 photons, sub-pixel positions), Poisson noise on a flat or
    sloped background, 300 masked pixels: median I/true within 2 %, SD of (I - true)/sigma in 0.9..1.1,
    for summation and profile fitting; profile fitting is more precise on weak spots."""
    ny = nx = 1000
    bg = 1.0 if not slope else 0.3 + np.add.outer(np.linspace(0, 1, ny), np.linspace(0, 2, nx))
    img, x, y, ph = spot_field(11 + slope, background=bg)
    rng = np.random.default_rng(5)
    mask = np.zeros(img.shape, bool)
    mask[rng.integers(0, ny, 300), rng.integers(0, nx, 300)] = True
    r = run(img, mask, None, x, y)
    summed = (r.flags & Flag.SUMMED) != 0
    assert summed.sum() > 900
    assert (((r.flags & Flag.MASKED) != 0) | summed).all()
    assert (r.flags[summed] & Flag.PROFILE_FITTED).all()
    # pixel-integrated Gaussian: sqrt(1 + 1/12) = 1.04 px, plus the smoothing of the profile
    assert 1.0 < r.profile_width[0] < 1.12
    weak = summed & (ph <= 100)
    assert weak.sum() > 150
    rms = {}
    for name, I, sig in (("sum", r.I_sum, r.sigma_sum), ("prf", r.I_prf, r.sigma_prf)):
        ratio = np.median(I[summed] / ph[summed])
        z = (I[summed] - ph[summed]) / sig[summed]
        assert abs(ratio - 1) < 0.02, (name, ratio)
        assert 0.9 <= z.std() <= 1.1, (name, z.std())
        rms[name] = np.sqrt(np.mean((I[weak] - ph[weak]) ** 2))
    assert rms["prf"] < 0.8 * rms["sum"], rms


def test_strong_isolated_spot_profile_equals_summation():
    """The profile is normalised over the whole disc: on strong isolated spots I_prf estimates the same
    photons as I_sum (within 1 %)."""
    img, x, y, ph = spot_field(4, n=300, shape=(600, 600), background=0.5, photons=(3000, 20000))
    r = run(img, None, None, x, y)
    ok = (r.flags & Flag.PROFILE_FITTED) != 0
    assert ok.sum() > 250
    q = r.I_prf[ok] / r.I_sum[ok]
    assert abs(np.median(q) - 1) < 0.01


# ---------------------------------------------------------------- 3. flags
def flat(value=2, shape=(80, 80)):
    return np.full(shape, value, np.int32)


def test_masked_pixel_in_disc_drops_in_annulus_does_not():
    img = flat()
    mask = np.zeros(img.shape, np.uint8)
    mask[40, 42] = 1  # 2 px from (40, 40): in the disc
    mask[20, 28] = 1  # 8 px from (20, 20): in the annulus
    r = run(img, mask, None, [40.0, 20.0, 60.0], [40.0, 20.0, 60.0], profile=False)
    assert r.flags[0] == Flag.MASKED and np.isnan(r.I_sum[0]) and np.isnan(r.sigma_sum[0])
    assert r.flags[1] == Flag.SUMMED and r.flags[2] == Flag.SUMMED
    assert r.n_background[1] == r.n_background[2] - 1
    assert r.I_sum[1] == 0.0 and r.background[1] == 2.0
    img[10, 10] = INT32_MIN  # an error value counts as masked
    assert run(img, None, None, [11.0], [11.0], profile=False).flags[0] == Flag.MASKED


def test_saturated_spot_flagged_and_fitted_from_its_wings():
    """Saturated core: SATURATED, I_sum kept (an underestimate); the profile fit leaves the saturated
    pixels out and recovers the photons from the wings."""
    rng = np.random.default_rng(8)
    x, y = random_positions(41, 300, 300, rng, min_dist=25.0, margin=15.0)
    ph = np.full(41, 3000.0)
    ph[0] = 60000.0  # peak ~ 60000 * 0.145 = 8700 photons
    sat = 2000
    img = np.minimum(gaussian_spot_image(300, 300, x, y, ph, 1.0, 1.0, rng), sat)  # the detector saturates
    r = run(img, None, sat, x, y)
    assert r.flags[0] & Flag.SATURATED and r.flags[0] & Flag.SUMMED and r.flags[0] & Flag.PROFILE_FITTED
    assert not r.flags[0] & Flag.PROFILE_REFERENCE
    assert not (r.flags[1:] & Flag.SATURATED).any()
    assert r.I_sum[0] / ph[0] < 0.85  # the saturated pixels read the saturation value, not their photons
    assert abs(r.I_prf[0] / ph[0] - 1) < 0.05
    # saturated pixels never enter a background
    img2 = flat(2)
    img2[20, 28] = 5000
    r2 = run(img2, None, 5000, [20.0, 50.0], [20.0, 50.0], profile=False)
    assert r2.n_background[0] == r2.n_background[1] - 1 and r2.background[0] == 2.0


def test_close_spots_overlap_and_exclude_each_other_from_the_background():
    rng = np.random.default_rng(2)
    x = np.array([40.0, 48.6])  # 8.6 px apart: < 2 r1 (overlap), the partner's core in the annulus
    y = np.array([40.3, 40.0])
    lam = gaussian_spot_image(80, 90, x, y, np.array([6000.0, 6000.0]), 1.0, 1.0, None)
    img = rng.poisson(lam).astype(np.int32)
    pair = run(img, None, None, x, y, profile=False)
    assert (pair.flags == Flag.SUMMED | Flag.OVERLAP).all()
    alone = run(img, None, None, x[:1], y[:1], profile=False)  # the partner is not predicted
    assert alone.flags[0] == Flag.SUMMED
    assert pair.n_background[0] < alone.n_background[0]
    assert abs(pair.background[0] - 1.0) < 0.25  # flat background 1 photon/pixel
    assert alone.background[0] > pair.background[0] + 0.5  # the partner's wings survive the clip
    assert abs(pair.I_sum[0] / 6000 - 1) < 0.05
    # far apart: no overlap flag
    far = run(img, None, None, np.array([20.0, 70.0]), np.array([20.0, 60.0]), profile=False)
    assert not (far.flags & Flag.OVERLAP).any()


@pytest.mark.parametrize("left", [5, 6])
def test_few_background_pixels(left):
    img = flat(2)
    mask = np.zeros(img.shape, np.uint8)
    for dx, dy in annulus_offsets(7.5, 9.5)[left:]:
        mask[40 + dy, 40 + dx] = 1
    r = run(img, mask, None, [40.0], [40.0], profile=False)
    assert r.n_background[0] == left
    if left < 6:
        assert r.flags[0] == Flag.FEW_BACKGROUND and np.isnan(r.I_sum[0])
    else:
        assert r.flags[0] == Flag.SUMMED and r.I_sum[0] == 0.0
    assert r.background[0] == 2.0


def test_edge():
    img = flat(1, (60, 70))
    s = IntegrationKernelSettings()
    # column -1 lies within r1 = 5.5 of x when x <= 4.5; column 70 when x >= 64.5
    xs = [4.5 + 1e-9, 4.5, 30.0, 30.0, np.nan, -1e30, 64.5 - 1e-9, 64.5]
    ys = [15.0, 45.0, 59.0, 0.0, 30.0, 30.0, 15.0, 45.0]
    r = run(img, None, None, xs, ys, s, profile=False)
    assert list(r.flags == Flag.EDGE) == [False, True, True, True, True, True, False, True]
    assert r.flags[0] == r.flags[6] == Flag.SUMMED
    # x = 4.5 gains column 10 (at exactly r1) and column -1 (off the detector, not counted)
    assert r.n_disc[1] == r.n_disc[0] == 95
    assert np.isnan(r.I_sum[1]) and r.background[1] == 1.0


def test_bad_inputs():
    img = flat()
    x = np.array([40.0])
    good = IntegrationKernelSettings().to_core()
    for r1, r2, r3 in ((3, 3, 5), (4, 6, 5), (0, 1, 2), (-1, 2, 3), (4, 6, 40), (np.nan, 6, 8)):
        s = _core.IntegrationSettings()
        s.r1, s.r2, s.r3 = r1, r2, r3
        with pytest.raises(ValueError, match="integration"):
            _core.integrate_image(img, None, 0.0, x, x, None, 1, s, True, "cpu")
        with pytest.raises(ValueError):
            _core.integration_validate(s)
        with pytest.raises(UsageError):
            IntegrationKernelSettings(r1=r1, r2=r2, r3=r3)
    with pytest.raises(ValueError, match="int32"):
        _core.integrate_image(img.astype(np.float32), None, 0.0, x, x, None, 1, good, True, "cpu")
    with pytest.raises(ValueError, match="mask"):
        _core.integrate_image(img, np.zeros((3, 3), np.uint8), 0.0, x, x, None, 1, good, True, "cpu")
    with pytest.raises(ValueError, match="group"):
        _core.integrate_image(img, None, 0.0, x, x, np.array([3], np.int32), 2, good, True, "cpu")
    with pytest.raises(ValueError, match="same length"):
        _core.integrate_image(img, None, 0.0, x, np.r_[x, x], None, 1, good, True, "cpu")
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.integrate_image(img, None, 0.0, x.astype(np.int64), x, None, 1, good, True, "cpu")
    with pytest.raises(InputError):
        run(img, None, None, x, x, group=[2], n_groups=2)
    with pytest.raises(InputError):
        run(img, np.zeros((3, 3)), None, x, x)
    with pytest.raises(InputError):
        run(img.astype(np.float32), None, None, x, x)
    with pytest.raises(UsageError):
        integrate_image(img, None, None, x, x, backend="gpu")
    if _core.cuda_device_count() == 0:
        with pytest.raises(UsageError):
            integrate_image(img, None, None, x, x, backend="cuda")
        with pytest.raises(RuntimeError):
            _core.integrate_image(img, None, 0.0, x, x, None, 1, good, True, "cuda")


def test_radii_option_and_defaults():
    assert radii_from_option("4") == (4.0, 6.0, 8.0)
    assert radii_from_option("3, 5 ,8.5") == (3.0, 5.0, 8.5)
    assert radii_from_option([2.5]) == (2.5, 4.5, 6.5)
    assert radii_from_option((1, 2, 3)) == (1.0, 2.0, 3.0)
    for bad in ("3,3,5", "4,6,5", "0", "-1", "a", "1,2", "1,2,3,4", "", [], "nan"):
        with pytest.raises(UsageError):
            radii_from_option(bad)
    assert IntegrationKernelSettings.from_radii("4") == IntegrationKernelSettings(r1=4.0, r2=6.0, r3=8.0)
    # the wrapper's defaults are the kernel's, the flags the same bits
    core = _core.IntegrationSettings()
    for f in fields(IntegrationKernelSettings):
        assert getattr(IntegrationKernelSettings(), f.name) == getattr(core, f.name), f.name
    assert (core.r1, core.r2, core.r3) == DEFAULT_RADII == radii_from_option(str(DEFAULT_RADII[0]))
    assert dict(_core.INTEGRATION_FLAGS) == {f.name: int(f) for f in Flag}
    assert max(int(f) for f in Flag) < 1 << 16  # bits 16..31 belong to the pipeline


def test_profile_sources_and_switch():
    img, x, y, _ = spot_field(6, n=40, shape=(300, 300), photons=(2000, 5000))
    r = run(img, None, None, x, y)
    assert r.profile_source[0] == ProfileSource.OWN and r.profile_n_reference[0] >= 30
    # too few references anywhere: no profile, PROFILE_FAILED, summation kept
    few = run(img, None, None, x[:5], y[:5])
    assert few.profile_source[0] == ProfileSource.NONE and np.isnan(few.profile_width[0])
    assert (few.flags == Flag.SUMMED | Flag.PROFILE_FAILED).all()
    assert np.isnan(few.I_prf).all() and not few.profiles.any()
    np.testing.assert_array_equal(few.I_sum, r.I_sum[:5])  # background excludes only predicted discs
    # summation only
    off = run(img, None, None, x, y, profile=False)
    assert (off.flags == Flag.SUMMED).all() and np.isnan(off.I_prf).all()
    np.testing.assert_array_equal(off.I_sum, r.I_sum)
    # a group without references uses the global profile
    g = np.zeros(x.size, np.int32)
    g[:3] = 1
    two = run(img, None, None, x, y, group=g, n_groups=2)
    assert list(two.profile_source) == [ProfileSource.OWN, ProfileSource.GLOBAL]
    assert (two.flags[:3] & Flag.PROFILE_FITTED).all()
    # the profile sums to ~1 over any disc of pixels (cells 1/5 px: sum * (1/5)^2 = integral over the disc)
    s = IntegrationKernelSettings()
    h = (s.profile_size - 1) // 2
    off_px = (np.arange(s.profile_size) - h) / s.oversampling
    inside = np.add.outer(off_px**2, off_px**2) <= s.r1**2
    assert abs(r.profiles[0][inside].sum() / s.oversampling**2 - 1) < 0.01


# ---------------------------------------------------------------- 4. threads
def test_four_threads_give_identical_bytes():
    img, mask, x, y, _, group = grouped_spots(9)

    def call():
        r = run(img, mask, 60000, x, y, group=group, n_groups=3)
        return [getattr(r, f.name).tobytes() for f in fields(IntegratedImage) if f.name != "oversampling"]

    serial = call()
    barrier = threading.Barrier(4)
    results: list = [None] * 4

    def worker(k):
        barrier.wait()
        for _ in range(3):
            results[k] = call()
            assert results[k] == serial

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == serial for r in results)


# ---------------------------------------------------------------- 5. real geometry: shared simulated stills
def test_hewl_stills_truth():
    """Integrate every truth reflection of images 0..9 of hewl_stills1 at its true predicted position and
    compare with the truth photons (noiseless, whole spot), judged where no masked pixel lies within 4 px.

    Summation meets the acceptance bars (median I/true in 0.93..1.07 for >= 100 photons, CC >= 0.99 and SD of
    (I - true)/sigma in 0.8..1.3 for >= 20 photons). Profile fitting meets the ratio and CC bars, but its
    (I - true)/sigma has SD ~3.3: in this simulation weak (partial) reflections are wider than the strong
    ones the profile is learned from (stacked second moments 1.5-1.7 px against 1.0 px within 300 px of the
    beam), and near the beam spots are rings; profile fitting then underestimates them (median I/true 0.6 at
    20..50 photons there). Where the shapes agree (>= 400 px from the beam) the profile sigma is honest and
    weak spots are measured more precisely than by summation; both are asserted."""
    from jfjoch.pipeline import open_dataset

    T = truth_module()
    d = shared("hewl_stills1")
    t = T.load(d)
    P = t["partials"]
    bx, by = t["beam_center_px"]
    rows = []
    with open_dataset(d / "hewl_stills1_master.h5") as ds:
        det = ds.experiment.detector
        for im in range(10):
            m = P[:, 0] == im
            x, y = T.predict(t, im, P[m, 1:4])
            r = integrate_image(ds.read_image(im), det.mask, det.saturation, x, y, backend="cpu")
            vis = T.visible(str(d), x, y, margin=4)
            radius = np.hypot(x - bx, y - by)
            rows.append(np.c_[r.I_sum, r.sigma_sum, r.I_prf, r.sigma_prf, P[m, 4], radius][vis])
    I_sum, s_sum, I_prf, s_prf, true, radius = np.concatenate(rows).T
    assert (true >= 20).sum() > 4000
    for name, I, sig in (("sum", I_sum, s_sum), ("prf", I_prf, s_prf)):
        ok = np.isfinite(I)
        assert ((true >= 20) & ~ok).sum() < 0.02 * (true >= 20).sum(), name  # almost all measured
        m20, m100 = ok & (true >= 20), ok & (true >= 100)
        ratio = np.median(I[m100] / true[m100])
        cc = np.corrcoef(I[m20], true[m20])[0, 1]
        assert 0.93 <= ratio <= 1.07, (name, ratio)
        assert cc >= 0.99, (name, cc)
        far = ok & (radius >= 400) & (true >= 50)
        z_far = (I[far] - true[far]) / sig[far]
        assert 0.8 <= z_far.std() <= 1.3, (name, z_far.std())
    ok = np.isfinite(I_sum) & (true >= 20)
    z_sum = (I_sum[ok] - true[ok]) / s_sum[ok]
    assert 0.8 <= z_sum.std() <= 1.3, z_sum.std()
    weak_far = np.isfinite(I_prf) & (true >= 20) & (true < 100) & (radius >= 400)
    rms_sum = np.sqrt(np.mean((I_sum[weak_far] - true[weak_far]) ** 2))
    rms_prf = np.sqrt(np.mean((I_prf[weak_far] - true[weak_far]) ** 2))
    assert rms_prf < 0.95 * rms_sum, (rms_prf, rms_sum)


# ---------------------------------------------------------------- 6. CUDA against the CPU
@pytest.mark.skipif(_core.cuda_device_count() == 0, reason="no CUDA device")
def test_cuda_equals_cpu():
    img, mask, sat, x, y = messy_image(4)
    a = integrate_image(img, mask, sat, x, y, backend="cpu")
    b = integrate_image(img, mask, sat, x, y, backend="cuda")
    np.testing.assert_array_equal(a.flags, b.flags)
    for k in ("n_disc", "n_background", "profile_n_reference", "profile_source"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    for k in ("I_sum", "sigma_sum", "background", "I_prf", "sigma_prf", "profile_width", "profiles"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-9, atol=1e-12, equal_nan=True)
    img2, mask2, x2, y2, _, group = grouped_spots(5)
    a = integrate_image(img2, mask2, 60000, x2, y2, group=group, n_groups=3, backend="cpu")
    b = integrate_image(img2, mask2, 60000, x2, y2, group=group, n_groups=3, backend="cuda")
    np.testing.assert_array_equal(a.flags, b.flags)
    np.testing.assert_allclose(a.I_prf, b.I_prf, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(a.profiles, b.profiles, rtol=1e-9, atol=1e-12)
