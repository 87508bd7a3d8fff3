"""The numpy Nelder–Mead of jfjoch.scale.simplex against scipy.optimize (the independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit, minimize

from jfjoch.scale.data import ShellStatistics
from jfjoch.scale.simplex import nelder_mead
from jfjoch.scale.stats import _tanh_model, resolution_estimate


def rosenbrock(p: np.ndarray) -> float:
    return float((1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2)


@pytest.mark.parametrize("start", [(-1.2, 1.0), (0.0, 0.0), (2.0, -1.5)])
def test_same_steps_as_scipy(start):
    """Same simplex, tolerances and iteration limit: the same vertex as scipy's Nelder–Mead, to rounding."""
    x0 = np.array(start)
    simplex = np.array([x0, x0 + np.array([0.2, 0.0]), x0 + np.array([0.0, 0.05])])
    for xatol, fatol, maxiter in ((1e-3, 1e-6, 300), (1e-10, 1e-14, 5000), (1e-8, 1e-12, 25)):
        ours = nelder_mead(rosenbrock, simplex, xatol=xatol, fatol=fatol, maxiter=maxiter)
        ref = minimize(rosenbrock, x0, method="Nelder-Mead",
                       options={"xatol": xatol, "fatol": fatol, "maxiter": maxiter, "initial_simplex": simplex})
        np.testing.assert_allclose(ours, ref.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nelder_mead(rosenbrock, simplex, xatol=1e-10, fatol=1e-14, maxiter=5000),
                               [1.0, 1.0], atol=1e-6)  # and the true minimum


def test_non_finite_values_are_worse_than_any_finite():
    def f(p: np.ndarray) -> float:
        return float("nan") if p[0] < 0 else float((p[0] - 2) ** 2 + (p[1] + 1) ** 2)

    best = nelder_mead(f, np.array([[0.5, 0.5], [1.0, 0.5], [0.5, 1.0]]), xatol=1e-9, fatol=1e-14, maxiter=2000)
    np.testing.assert_allclose(best, [2.0, -1.0], atol=1e-6)


def test_bad_simplex_is_refused():
    with pytest.raises(ValueError, match="n \\+ 1 vertices"):
        nelder_mead(rosenbrock, np.zeros((2, 2)), xatol=1e-3, fatol=1e-6, maxiter=10)


def _shells(d_edges: np.ndarray, cc: np.ndarray, n_unique: np.ndarray) -> list[ShellStatistics]:
    nan = float("nan")
    return [ShellStatistics(d_max=float(d_edges[i]), d_min=float(d_edges[i + 1]), n_obs=int(2 * n_unique[i]),
                            n_unique=int(n_unique[i]), n_possible=int(n_unique[i]), multiplicity=2.0,
                            completeness=100.0, i_over_sigma=nan, cc_half=float(cc[i]), r_meas=nan, r_pim=nan,
                            mean_i=nan) for i in range(len(cc))]


def test_resolution_estimate_equals_scipy_least_squares():
    """The CC1/2 tanh fit (simplex) gives the d of scipy's curve_fit (Levenberg–Marquardt) on noisy shells."""
    rng = np.random.default_rng(5)
    d_edges = np.linspace(1 / 20**2, 1 / 1.5**2, 11) ** -0.5
    d_edges[0] = np.inf
    s_mid = 0.5 * (np.r_[0.0, 1 / d_edges[1:-1] ** 2] + 1 / d_edges[1:] ** 2)
    n_unique = rng.integers(300, 900, len(s_mid))
    for s_half, width in ((0.30, 0.05), (0.36, 0.08), (0.25, 0.03)):
        cc = _tanh_model(s_mid, s_half, width) + rng.normal(0, 0.02, len(s_mid))
        ours = resolution_estimate(_shells(d_edges, cc, n_unique))
        p, _ = curve_fit(_tanh_model, s_mid, np.clip(cc, -0.5, 1.0), p0=(np.median(s_mid), np.ptp(s_mid) / 4 + 1e-6),
                         sigma=1 / np.sqrt(n_unique.astype(float)), maxfev=5000)
        s_cross = p[0] + p[1] * np.arctanh(1 - 2 * 0.3)
        assert 0 < s_cross < 1 / d_edges[-1] ** 2  # the curve crosses 0.3 inside the data
        assert ours == pytest.approx(1 / np.sqrt(s_cross), rel=1e-5)
