"""Azimuthal integration: against pyFAI (same frame, geometry, mask, polarisation, bin edges), a flat
field, and an independent numpy reference of the binning, corrections and pixel exclusions."""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from jfjoch import _core
from jfjoch.azint import AzimuthalIntegrator, azimuthal_integration, prepare_image
from jfjoch.errors import InputError, UsageError
from jfjoch.experiment import Beam, Detector, Experiment

from .conftest import shared

INT32_MIN = np.iinfo(np.int32).min


# ---------------------------------------------------------------- data builders (shared with the bench)
def hewl_frame(index: int = 0) -> tuple[np.ndarray, Experiment]:
    """Frame `index` of hewl_rot1 and its experiment (geometry from the master file,
    mask = pixel_mask != 0)."""
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    with h5py.File(master, "r") as f:
        img = f["entry/data/data_000001"][index]
        det = f["entry/instrument/detector"]
        mask = det["detectorSpecific/pixel_mask"][()] != 0
        ny, nx = img.shape
        detector = Detector.from_beam_center(
            nx=nx,
            ny=ny,
            pixel_mm=float(det["x_pixel_size"][()]) * 1e3,
            distance_mm=float(det["detector_distance"][()]) * 1e3,
            beam_x_px=float(det["beam_center_x"][()]),
            beam_y_px=float(det["beam_center_y"][()]),
            mask=mask,
            saturation=int(det["saturation_value"][()]),
        )
        wavelength = float(f["entry/instrument/beam/incident_wavelength"][()])
    return img, Experiment(beam=Beam(wavelength_A=wavelength, polarization_fraction=0.99), detector=detector)


def pyfai_integrator(exp: Experiment):
    """pyFAI geometry equal to ours: PONI = beam centre, converted from our pixel-centre convention
    (centre of pixel i at i) to pyFAI's pixel-corner one (centre of pixel i at i + 0.5); rot1-3 = 0."""
    pytest.importorskip("pyFAI")
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAIIntegrator

    det = exp.detector
    bx, by = det.beam_center_px
    p = det.pixel_mm * 1e-3
    return PyFAIIntegrator(
        dist=det.distance_mm * 1e-3,
        poni1=(by + 0.5) * p,  # pyFAI dim1 = slow = our y
        poni2=(bx + 0.5) * p,  # pyFAI dim2 = fast = our x
        pixel1=p,
        pixel2=p,
        wavelength=exp.beam.wavelength_A * 1e-10,
    )


def invalid_pixels(img: np.ndarray, exp: Experiment) -> np.ndarray:
    """Everything our integrator leaves out, as one mask for pyFAI."""
    return exp.detector.mask | (img >= exp.detector.saturation) | (img == INT32_MIN)


def pyfai_polarization_factor(fraction: float) -> float:
    """Our fraction f along lab +x -> pyFAI's factor (-1..1, 0 = unpolarised): 2f - 1 (derivation in
    docs/azint.md)."""
    return 2.0 * fraction - 1.0


def numpy_reference(
    img: np.ndarray, exp: Experiment, q_min: float, q_max: float, n_bins: int, fraction: float
):
    """Independent reference: q, cos^3 and polarisation from the lab vectors, mean of corrected values."""
    det = exp.detector
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx].astype(np.float64)
    r = det.origin_mm[None, None, :] + (xx[..., None] * det.fast + yy[..., None] * det.slow) * det.pixel_mm
    rn = np.linalg.norm(r, axis=-1)
    u = r / rn[..., None]
    two_theta = np.arccos(u[..., 2])
    q = 4 * np.pi * np.sin(two_theta / 2) / exp.beam.wavelength_A
    cos_n = np.abs(u @ det.normal)
    pol = fraction * (1 - u[..., 0] ** 2) + (1 - fraction) * (1 - u[..., 1] ** 2)
    corrected = img.astype(np.float64) / (cos_n**3 * pol)
    valid = ~det.mask & (img != INT32_MIN) & (q >= q_min) & (q < q_max)
    if det.saturation is not None:
        valid &= img < det.saturation
    b = np.floor((q - q_min) / (q_max - q_min) * n_bins).astype(np.int64)
    valid &= (b >= 0) & (b < n_bins)
    s = np.bincount(b[valid], weights=corrected[valid], minlength=n_bins)
    c = np.bincount(b[valid], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / c, c


def small_experiment(mask: np.ndarray | None = None, **det_kwargs) -> Experiment:
    """A 300 x 200 detector, beam off-centre, 40 mm, 0.1 mm pixels, lambda = 1.2 A."""
    if mask is None:
        mask = np.zeros((200, 300), bool)
    det = Detector.from_beam_center(
        300, 200, 0.1, 40.0, 120.3, 80.7, mask=mask, saturation=60000, **det_kwargs
    )
    return Experiment(beam=Beam(wavelength_A=1.2, polarization_fraction=0.95), detector=det)


# ---------------------------------------------------------------- pyFAI on the hewl frame
@pytest.fixture(scope="module")
def hewl():
    img, exp = hewl_frame(0)
    ai = AzimuthalIntegrator(exp)
    mean, count = ai.integrate_with_counts(img)
    return img, exp, ai, mean, count


def test_corrections_equal_pyfai(hewl):
    img, exp, ai, _, _ = hewl
    p = pyfai_integrator(exp)
    shape = img.shape
    expected = p.solidAngleArray(shape=shape) * p.polarization(
        shape=shape, factor=pyfai_polarization_factor(0.99)
    )
    binned = ai.bin_map >= 0
    assert binned.sum() > 0.9 * (~exp.detector.mask).sum()
    np.testing.assert_allclose(ai.correction[binned], expected[binned], rtol=2e-6)
    # and the q of every pixel centre agrees with pyFAI's (bin index from pyFAI's q array)
    q_pyfai = p.array_from_unit(shape=shape, typ="center", unit="q_A^-1")
    s = ai.settings
    b = np.floor((q_pyfai - s.q_min) / s.bin_width).astype(int)
    inside = binned & (
        np.abs((q_pyfai - s.q_min) / s.bin_width - np.round((q_pyfai - s.q_min) / s.bin_width)) > 1e-4
    )
    assert np.array_equal(ai.bin_map[inside], b[inside])


def test_profile_matches_pyfai_histogram_no_split(hewl):
    """pyFAI's legacy no-splitting histogram is the same estimator (mean of corrected pixels): tight."""
    img, exp, ai, mean, count = hewl
    p = pyfai_integrator(exp)
    if not hasattr(p, "integrate1d_legacy"):
        pytest.skip("this pyFAI has no integrate1d_legacy")
    s = ai.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.integrate1d_legacy(
            img,
            s.n_bins,
            unit="q_A^-1",
            radial_range=(s.q_min, s.q_max),
            mask=invalid_pixels(img, exp),
            correctSolidAngle=True,
            polarization_factor=pyfai_polarization_factor(0.99),
            method="numpy",
        )
    np.testing.assert_allclose(r.radial, ai.q, rtol=0, atol=1e-6)
    enough = count >= 100
    assert enough.sum() > 0.9 * s.n_bins
    np.testing.assert_allclose(mean[enough], r.intensity[enough], rtol=1e-4)


def test_profile_matches_pyfai_integrate1d_no_split(hewl):
    """pyFAI's current integrate1d, no pixel splitting, identical bin edges: within 1 % on every bin with
    >= 200 pixels. (It estimates sum(counts) / sum(corrections) rather than the mean of corrected pixels,
    and its first bin also collects the pixels below q_min, so bin 0 is not compared.)"""
    img, exp, ai, mean, count = hewl
    p = pyfai_integrator(exp)
    s = ai.settings
    r = p.integrate1d(
        img,
        s.n_bins,
        unit="q_A^-1",
        radial_range=(s.q_min, s.q_max),
        mask=invalid_pixels(img, exp),
        correctSolidAngle=True,
        polarization_factor=pyfai_polarization_factor(0.99),
        method=("no", "histogram", "cython"),
    )
    np.testing.assert_allclose(r.radial, ai.q, rtol=0, atol=1e-6)
    enough = count >= 200
    enough[0] = False
    assert enough.sum() > 0.9 * s.n_bins
    rel = np.abs(r.intensity[enough] / mean[enough] - 1)
    assert rel.max() < 0.01, rel.max()
    assert np.median(rel) < 0.002


def test_hewl_matches_numpy_reference(hewl):
    img, exp, ai, mean, count = hewl
    s = ai.settings
    ref, ref_count = numpy_reference(img, exp, s.q_min, s.q_max, s.n_bins, 0.99)
    # pixels whose q lies within rounding of a bin edge may land on either side: counts agree to a few
    assert np.abs(count - ref_count).max() <= 3
    ok = count >= 50
    np.testing.assert_allclose(mean[ok], ref[ok], rtol=2e-3)
    # the hot pixels of this frame sit at the saturation value and are masked: they must not count
    assert (img[exp.detector.mask] >= exp.detector.saturation).any()


# ---------------------------------------------------------------- flat field and exclusions
def test_flat_field_gives_flat_profile(hewl):
    """A uniform scatterer seen through the corrections, divided by them again, is flat."""
    img, _, ai, _, _ = hewl
    flat = (1234.5 * ai.correction).astype(np.float32)
    prof, count = ai.integrate_with_counts(flat)
    ok = count > 0
    assert ok.sum() == (ai.pixel_count > 0).sum()
    np.testing.assert_allclose(prof[ok], 1234.5, rtol=1e-5)
    # the raw uniform image is NOT flat after correction: the test can fail
    raw = ai.integrate(np.full(img.shape, 1000, np.int32))
    assert np.nanmax(raw) / np.nanmin(raw) > 1.2


def test_flat_field_integer_image():
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp)
    img = np.rint(10000 * ai.correction).astype(np.int32)
    prof = ai.integrate(img)
    ok = ai.pixel_count > 0
    np.testing.assert_allclose(prof[ok], 10000, rtol=1e-4)


def test_exclusions_and_general_geometry():
    """Masked, error and saturated pixels are left out; fast = -x (DECTRIS-like) and a tilted detector use
    the vectors, not the beam centre alone; compared with the numpy reference."""
    rng = np.random.default_rng(7)
    mask = np.zeros((200, 300), bool)
    mask[50:60, :] = True
    mask[rng.integers(0, 200, 40), rng.integers(0, 300, 40)] = True
    tilt = np.radians(20.0)
    slow = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    for fast, slow_v in (
        (np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
        (np.array([1.0, 0, 0]), slow),
    ):
        det = Detector(
            nx=300,
            ny=200,
            pixel_mm=0.1,
            origin_mm=np.array([12.0, -8.0, 40.0]),
            fast=fast,
            slow=slow_v,
            mask=mask,
            saturation=60000,
        )
        exp = Experiment(beam=Beam(wavelength_A=1.2, polarization_fraction=0.95), detector=det)
        img = rng.poisson(200.0, size=(200, 300)).astype(np.int32)
        img[rng.integers(0, 200, 300), rng.integers(0, 300, 300)] = INT32_MIN
        img[rng.integers(0, 200, 300), rng.integers(0, 300, 300)] = 70000
        img[mask] = 10**6  # would dominate if masked pixels counted
        ai = AzimuthalIntegrator(exp, n_bins=37, q_min=0.3, q_max=2.9)
        mean, count = ai.integrate_with_counts(img)
        ref, ref_count = numpy_reference(img, exp, 0.3, 2.9, 37, 0.95)
        assert np.abs(count - ref_count).max() <= 1
        ok = count >= 20
        assert ok.sum() >= 20
        np.testing.assert_allclose(mean[ok], ref[ok], rtol=1e-3)
        assert np.nanmax(mean) < 1000


def test_defaults():
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp)
    det = exp.detector
    corners = np.array([[0, 0], [det.nx - 1, 0], [0, det.ny - 1], [det.nx - 1, det.ny - 1]], float)
    q_corner = 2 * np.pi * np.linalg.norm(exp.pixels_to_recip(corners), axis=1).max()
    s = ai.settings
    assert s.q_min == pytest.approx(0.1)
    assert s.q_max == pytest.approx(q_corner, rel=1e-12)
    assert s.n_bins == math.ceil((q_corner - 0.1) / 0.02)
    assert s.polarization_fraction == pytest.approx(0.95)
    assert ai.q.shape == (s.n_bins,)
    assert np.allclose(np.diff(ai.q), s.bin_width)
    assert ai.q[0] == pytest.approx(0.1 + s.bin_width / 2)
    np.testing.assert_allclose(ai.d, 2 * np.pi / ai.q)
    # every unmasked pixel is binned with the defaults except those below q_min (and the corner pixel
    # exactly at q_max, which sits on the upper edge)
    q_all = 2 * np.pi / exp.resolution_map()
    expected = int(((q_all >= 0.1) & (q_all < s.q_max)).sum())
    assert abs(int(ai.pixel_count.sum()) - expected) <= 1


def test_no_corrections_is_plain_mean():
    exp = small_experiment()
    rng = np.random.default_rng(3)
    img = rng.integers(0, 500, size=(200, 300)).astype(np.int32)
    ai = AzimuthalIntegrator(exp, n_bins=20, q_min=0.5, q_max=2.5, solid_angle=False, polarization=False)
    mean = ai.integrate(img)
    q = 2 * np.pi / exp.resolution_map()
    b = np.floor((q - 0.5) / 0.1).astype(int)
    ok = (b >= 0) & (b < 20)
    ref = np.bincount(b[ok], weights=img[ok], minlength=20) / np.bincount(b[ok], minlength=20)
    np.testing.assert_allclose(mean, ref, rtol=1e-9)


def test_image_dtypes():
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp, n_bins=30)
    rng = np.random.default_rng(5)
    base = rng.integers(0, 3000, size=(200, 300)).astype(np.int32)
    err = rng.random((200, 300)) < 0.01
    i32 = base.copy()
    i32[err] = INT32_MIN
    i16 = base.astype(np.int16)
    i16[err] = np.iinfo(np.int16).min
    u32 = base.astype(np.uint32)
    u32[err] = np.iinfo(np.uint32).max
    f32 = base.astype(np.float32)
    f32[err] = np.nan
    ref = ai.integrate(i32)
    for img in (i16, u32, f32, f32.astype(np.float64)):
        np.testing.assert_allclose(ai.integrate(img), ref, rtol=1e-6, equal_nan=True)
    # uint16 has no error value: only saturation applies
    np.testing.assert_allclose(ai.integrate(base.astype(np.uint16)), ai.integrate(base), rtol=1e-12)
    assert prepare_image(i16).dtype == np.int32
    assert np.isnan(ai.integrate(np.full((200, 300), INT32_MIN, np.int32))).all()


def test_one_shot_function_and_errors():
    exp = small_experiment()
    img = np.ones((200, 300), np.int32)
    prof = azimuthal_integration(img, exp, n_bins=10, q_min=0.2, q_max=1.2)
    assert prof.q.shape == prof.intensity.shape == prof.count.shape == (10,)
    np.testing.assert_allclose(prof.q, 0.25 + 0.1 * np.arange(10))
    with pytest.raises(InputError):
        AzimuthalIntegrator(exp).integrate(np.ones((10, 10), np.int32))
    with pytest.raises(UsageError):
        AzimuthalIntegrator(exp, q_min=2.0, q_max=1.0)
    with pytest.raises(UsageError):
        AzimuthalIntegrator(exp, n_bins=0)
    with pytest.raises(UsageError):
        AzimuthalIntegrator(exp, polarization_fraction=1.5)
    with pytest.raises(UsageError):
        AzimuthalIntegrator(exp, backend="gpu")
    if _core.cuda_device_count() == 0:
        with pytest.raises(UsageError):
            AzimuthalIntegrator(exp, backend="cuda")
        # the kernel itself refuses too (for callers of _core)
        ai = AzimuthalIntegrator(exp, n_bins=5, backend="cpu")
        with pytest.raises(RuntimeError):
            _core.azint_integrate(img, ai.bin_map, ai._weight, 5, 0.0, "cuda")


def test_thread_safe_and_releases_gil():
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp)
    rng = np.random.default_rng(11)
    imgs = [rng.poisson(50, size=(200, 300)).astype(np.int32) for _ in range(16)]
    serial = [ai.integrate(i) for i in imgs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(ai.integrate, imgs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    # the map is read-only: a caller cannot corrupt a shared integrator
    with pytest.raises(ValueError):
        ai.bin_map[0, 0] = 3


def test_saturation_rules():
    """value >= saturation is left out (int32 and float32 images); saturation None: no test."""
    exp = small_experiment()
    ai = AzimuthalIntegrator(exp, n_bins=25, solid_angle=False, polarization=False)
    img = np.full((200, 300), 100, np.int32)
    img[::7, ::5] = 60000  # == saturation: out
    img[1::7, ::5] = 59999  # just below: in
    for im in (img, img.astype(np.float32)):
        mean, count = ai.integrate_with_counts(im)
        ok = count > 0
        _, ref_count = numpy_reference(im, exp, ai.settings.q_min, ai.settings.q_max, 25, 0.95)
        assert np.array_equal(count, ref_count)
        assert (mean[ok] > 100).all()  # the 59999 pixels count
    det = exp.detector
    unsat = Experiment(
        beam=exp.beam,
        detector=Detector(
            nx=det.nx, ny=det.ny, pixel_mm=det.pixel_mm, origin_mm=det.origin_mm, mask=det.mask
        ),
    )
    ai2 = AzimuthalIntegrator(unsat, n_bins=25, solid_angle=False, polarization=False)
    _, c_all = ai2.integrate_with_counts(img)
    _, c_sat = ai.integrate_with_counts(img)
    assert c_all.sum() - c_sat.sum() == (img == 60000).sum() - (ai.bin_map[img == 60000] < 0).sum()
