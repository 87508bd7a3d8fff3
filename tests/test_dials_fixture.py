"""Self-consistency of the committed DIALS reference fixture (tests/data/thaumatin_dials/integrated.npz).

Needs only numpy: the fixture was made once with DIALS (scripts/make_dials_fixture.sh)."""

from __future__ import annotations

import numpy as np
import pytest

from .dials_fixture import delta_psi, dials_predict_px, load_dials_fixture, reciprocal_vectors

N_IMAGES = 10


@pytest.fixture(scope="module")
def fx():
    return load_dials_fixture()


def test_arrays_have_consistent_shapes(fx):
    n = len(fx["image"])
    assert n > 1000
    for key in (
        "intensity_sum",
        "variance_sum",
        "intensity_prf",
        "variance_prf",
        "x_cal_px",
        "y_cal_px",
        "d",
        "partiality",
        "background_mean",
    ):
        assert fx[key].shape == (n,), key
    assert fx["hkl"].shape == (n, 3)
    assert fx["A"].shape == (N_IMAGES, 3, 3)
    assert fx["image_names"][0] == "thau_3_2_0001.cbf"
    assert str(fx["dials_version"]).startswith("DIALS 3.")


def test_at_least_8_of_10_images_indexed_and_integrated(fx):
    assert fx["indexed"].sum() >= 8
    counts = np.bincount(fx["image"], minlength=N_IMAGES)
    assert fx["image"].max() < N_IMAGES
    assert (counts[fx["indexed"]] > 100).all()
    assert (counts[~fx["indexed"]] == 0).all()
    assert np.isfinite(fx["A"][fx["indexed"]]).all()


def test_hkl_are_integers_unique_per_image_and_allowed_in_p41212(fx):
    hkl = fx["hkl"].astype(np.int64)
    assert np.issubdtype(fx["hkl"].dtype, np.integer)
    assert not (hkl == 0).all(axis=1).any()
    keys = np.column_stack([fx["image"].astype(np.int64), hkl])
    assert len(np.unique(keys, axis=0)) == len(keys)
    h, k, l = hkl.T
    # P 41 21 2 extinctions: h00 h odd, 0k0 k odd, 00l l != 4n (DIALS predicts none of them)
    assert not ((k == 0) & (l == 0) & (h % 2 != 0)).any()
    assert not ((h == 0) & (l == 0) & (k % 2 != 0)).any()
    assert not ((h == 0) & (k == 0) & (l % 4 != 0)).any()


def test_a_matrices_predict_the_stored_d_spacings(fx):
    d = 1.0 / np.linalg.norm(reciprocal_vectors(fx), axis=1)
    np.testing.assert_allclose(d, fx["d"], rtol=5e-3)
    assert fx["d"].min() > 1.3 and fx["d"].max() < 60


def test_cells_near_thaumatin(fx):
    cell = fx["cell"][fx["indexed"]]
    np.testing.assert_allclose(cell[:, 0], 58.0, rtol=0.02)
    np.testing.assert_allclose(cell[:, 1], cell[:, 0], rtol=1e-6)
    np.testing.assert_allclose(cell[:, 2], 151.0, rtol=0.02)
    np.testing.assert_allclose(cell[:, 3:], 90.0, atol=1e-6)
    # A = U·B with U a rotation, and B's cell matches the stored one
    for i in np.flatnonzero(fx["indexed"]):
        U, B, A = fx["U"][i], fx["B"][i], fx["A"][i]
        np.testing.assert_allclose(U @ B, A, atol=1e-9)
        np.testing.assert_allclose(U @ U.T, np.eye(3), atol=1e-6)
        G = np.linalg.inv(A.T @ A)  # direct-space metric
        np.testing.assert_allclose(np.sqrt(np.diag(G)), fx["cell"][i][:3], rtol=1e-6)


def test_refined_geometry_is_near_the_header(fx):
    ok = fx["indexed"]
    # header: Beam_xy (1261.61, 1306.96) px, distance 351 mm, wavelength 0.96859 Å
    np.testing.assert_allclose(fx["beam_centre_px"][ok], [[1261.61, 1306.96]] * int(ok.sum()), atol=3.0)
    np.testing.assert_allclose(fx["distance_mm"][ok], 351.0, rtol=0.03)
    np.testing.assert_allclose(fx["wavelength"][ok], 0.96859, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fx["s0"][ok], axis=1), 1 / 0.96859, rtol=1e-6)
    # beam along -z of DIALS's lab frame (s0 points from the source to the sample)
    assert (fx["s0"][ok][:, 2] < -0.999 * np.linalg.norm(fx["s0"][ok], axis=1)).all()


def test_stored_models_reproduce_dials_predicted_positions(fx):
    """Checks the coordinate conventions: DIALS pixel coordinates, corner of the first pixel at 0."""
    x, y = dials_predict_px(fx)
    np.testing.assert_allclose(x, fx["x_cal_px"], atol=0.01)
    np.testing.assert_allclose(y, fx["y_cal_px"], atol=0.01)
    nx, ny = fx["image_size_px"]
    assert (fx["x_cal_px"] > 0).all() and (fx["x_cal_px"] < nx).all()
    assert (fx["y_cal_px"] > 0).all() and (fx["y_cal_px"] < ny).all()
    # without the parallax correction the positions move by up to about half a pixel
    x0, _ = dials_predict_px(fx, parallax=False)
    assert 0.2 < np.abs(x0 - fx["x_cal_px"]).max() < 1.0
    assert (delta_psi(fx) < 0.0015 + 1e-5).all()


def test_intensities_and_variances(fx):
    has_sum = np.isfinite(fx["intensity_sum"])
    has_prf = np.isfinite(fx["intensity_prf"])
    assert (has_sum | has_prf).all()
    assert (fx["variance_sum"][has_sum] > 0).all()
    assert (fx["variance_prf"][has_prf] > 0).all()
    isig = fx["intensity_sum"][has_sum] / np.sqrt(fx["variance_sum"][has_sum])
    assert (isig > 5).sum() > 1000
    # strong low-resolution reflections are brighter on average than high-resolution ones
    d = fx["d"][has_sum]
    assert np.median(isig[d > 4]) > 3 * np.median(isig[d < 2])


def test_sum_and_profile_intensities_agree(fx):
    both = np.isfinite(fx["intensity_sum"]) & np.isfinite(fx["intensity_prf"])
    if not both.any():
        pytest.skip("no profile-fitted intensities: DIALS 3.12's dials.integrate does no profile fitting on stills")
    isig = fx["intensity_sum"] / np.sqrt(fx["variance_sum"])
    sel = both & (isig > 5)
    cc = np.corrcoef(fx["intensity_sum"][sel], fx["intensity_prf"][sel])[0, 1]
    assert cc > 0.9
