"""``-r pixelrefine``: still integration driven by reference intensities (experimental, as in the reference).

For one still, every predicted reflection j with a reference intensity R_j is modelled on the pixels of its
signal disc (radius r1) as

    c_i ≈ b_j + G · exp(−2 B s_j²) · lp_j · p_j(ρ) · R_j · S_i(w),     s = sin θ / λ = 1 / (2 d)

with b_j the background from the annulus (the summation kernel's), p_j(ρ) = exp(−ε_j² / (2 ρ²)) the
partiality from the Ewald offset ε_j, and S_i(w) a Gaussian spot of width w (px) sampled at the pixel centres
and normalised over the disc. The four per-image parameters G, B, w and ρ are fitted to all those pixels at
once (Poisson-weighted least squares, scipy's trust-region solver on log G, B, log w, log ρ). Then every
predicted reflection, with or without a reference, gets its photons by fitting the amplitude of the fitted
spot shape (weighted least squares, v_i = b + A S_i; σ² = max(1, χ²/(n − 1)) / Σ S_i²/v_i + the background
term): that is the observation's I. Its partiality is the fitted p_j(ρ), so I / (G e^{−2Bs²} lp p) is the
reflection's intensity already on the reference's scale; G, B, w, ρ are stored per image
(`/entry/integration/pixelrefine*`). Units: photons, Å², pixels, 1/Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .experiment import Experiment
from .predict import Predicted

__all__ = ["PixelRefineResult", "PixelRefineSettings", "ReferenceIntensities", "pixelrefine_image"]


@dataclass(frozen=True)
class ReferenceIntensities:
    """Reference intensities keyed by symmetry orbit in the merging space group (picklable)."""

    space_group: int
    keys: np.ndarray
    """Sorted orbit keys (jfjoch.scale.symmetry.Symmetry.orbit_keys)."""
    values: np.ndarray

    @classmethod
    def from_mtz(cls, path: str, space_group: int) -> ReferenceIntensities:
        from .io.reflections import read_reference_mtz
        from .scale.symmetry import Symmetry

        ref = read_reference_mtz(path)
        keys, values = ref.values_for(Symmetry(int(space_group)))
        return cls(space_group=int(space_group), keys=np.asarray(keys), values=np.asarray(values, float))

    def lookup(self, hkl: np.ndarray) -> np.ndarray:
        """Reference intensity of each hkl (NaN where the reference has none)."""
        from .scale.symmetry import Symmetry

        k = Symmetry(self.space_group).orbit_keys(np.asarray(hkl, np.int64).reshape(-1, 3))
        if not len(self.keys):
            return np.full(len(k), np.nan)
        pos = np.clip(np.searchsorted(self.keys, k), 0, len(self.keys) - 1)
        return np.where(self.keys[pos] == k, self.values[pos], np.nan)


@dataclass(frozen=True)
class PixelRefineSettings:
    reference: ReferenceIntensities
    max_reflections: int = 200
    """Reflections (those with the largest expected signal) whose pixels fit G, B, w, ρ."""
    min_reflections: int = 20
    """Fewer reflections with a reference: no fit (the image keeps its summation intensities)."""


@dataclass(frozen=True)
class PixelRefineResult:
    ok: bool
    scale: float = float("nan")
    """G (photons per unit reference intensity)."""
    b_factor: float = float("nan")
    """B (Å²) of exp(−2 B s²)."""
    width_px: float = float("nan")
    """Gaussian spot width w (px)."""
    partiality_width: float = float("nan")
    """ρ (1/Å) of the partiality exp(−ε²/(2ρ²))."""
    I: np.ndarray | None = None
    sigma: np.ndarray | None = None
    partiality: np.ndarray | None = None
    fitted: np.ndarray | None = None
    """Reflections whose amplitude fit succeeded."""


def _stencil(r1: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(np.ceil(r1)) + 1
    dy, dx = np.mgrid[-n : n + 1, -n : n + 1]
    return dx.ravel(), dy.ravel()


def _pixels(image: np.ndarray, invalid: np.ndarray, x: np.ndarray, y: np.ndarray, r1: float):
    """Disc pixels of every reflection: counts (n, K), offsets dx, dy (n, K), and a use mask (n, K)."""
    ny, nx = image.shape
    sx, sy = _stencil(r1)
    xc, yc = np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)
    col = xc[:, None] + sx[None, :]
    row = yc[:, None] + sy[None, :]
    dx, dy = col - x[:, None], row - y[:, None]
    inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    disc = (dx * dx + dy * dy <= r1 * r1) & inside
    colc, rowc = np.clip(col, 0, nx - 1), np.clip(row, 0, ny - 1)
    c = image[rowc, colc].astype(float)
    use = disc & ~invalid[rowc, colc]
    return c, dx, dy, disc, use


def _shape(dx: np.ndarray, dy: np.ndarray, disc: np.ndarray, w: float) -> np.ndarray:
    s = np.exp(-(dx * dx + dy * dy) / (2.0 * w * w)) * disc
    return s / np.maximum(s.sum(axis=1, keepdims=True), 1e-300)


def pixelrefine_image(
    image: np.ndarray,
    experiment: Experiment,
    predicted: Predicted,
    background: np.ndarray,
    n_background: np.ndarray,
    usable: np.ndarray,
    r1: float,
    settings: PixelRefineSettings,
    start_width_px: float = 1.0,
) -> PixelRefineResult:
    """Fit G, B, w, ρ of one still to the pixels of its reflections with a reference, then the amplitude of
    every usable reflection (``usable``: the summation kept it). ``background``, ``n_background``: the
    summation kernel's per-reflection background (photons/pixel) and its pixel count."""
    from scipy.optimize import least_squares

    det = experiment.detector
    img = np.asarray(image)
    invalid = img == np.iinfo(np.int32).min
    if det.mask is not None:
        invalid = invalid | np.asarray(det.mask, bool)
    if det.saturation is not None:
        invalid = invalid | (img >= det.saturation)
    ref = settings.reference.lookup(predicted.hkl)
    s2 = 1.0 / (4.0 * np.asarray(predicted.d, float) ** 2)
    lp = np.asarray(predicted.lp, float)
    eps = np.asarray(predicted.eps, float)
    bg = np.asarray(background, float)
    fit_set = np.flatnonzero(usable & np.isfinite(ref) & (ref > 0) & np.isfinite(bg))
    if len(fit_set) < settings.min_reflections:
        return PixelRefineResult(ok=False)
    x, y = np.asarray(predicted.x, float), np.asarray(predicted.y, float)
    # the reflections expected to be strongest carry the fit
    rho0 = max(float(np.sqrt(np.mean(eps[usable] ** 2))) if usable.any() else 1e-3, 1e-5)
    expect = ref[fit_set] * lp[fit_set] * np.exp(-0.5 * (eps[fit_set] / rho0) ** 2)
    fit_set = fit_set[np.argsort(-expect, kind="stable")[: settings.max_reflections]]
    c, dx, dy, disc, use = _pixels(img, invalid, x[fit_set], y[fit_set], r1)
    b = bg[fit_set][:, None]
    R = (ref[fit_set] * lp[fit_set])[:, None]
    e2 = (eps[fit_set] ** 2)[:, None]
    ss = s2[fit_set][:, None]
    w_use = use.astype(float)
    # start: G from the summed photons of the fit set against the reference at ρ0, B = 0
    p0 = np.exp(-0.5 * e2 / rho0**2)
    signal = np.sum((c - b) * w_use, axis=1)
    G0 = max(float(np.sum(signal) / np.sum(R[:, 0] * p0[:, 0])), 1e-12)

    def model(q):
        G, B, w, rho = np.exp(q[0]), q[1], np.exp(q[2]), np.exp(q[3])
        amp = G * np.exp(-2.0 * B * ss) * R * np.exp(-0.5 * e2 / (rho * rho))
        return b + amp * _shape(dx, dy, disc, w)

    def resid(q):
        m = model(q)
        return ((c - m) / np.sqrt(np.maximum(m, 1.0)) * w_use)[use]

    q0 = np.array([np.log(G0), 0.0, np.log(max(start_width_px, 0.3)), np.log(rho0)])
    try:
        fit = least_squares(resid, q0, method="lm", x_scale=np.array([1.0, 5.0, 0.3, 0.5]), max_nfev=200)
    except (ValueError, np.linalg.LinAlgError):
        return PixelRefineResult(ok=False)
    if not fit.success or not np.all(np.isfinite(fit.x)):
        return PixelRefineResult(ok=False)
    G, B, w, rho = float(np.exp(fit.x[0])), float(fit.x[1]), float(np.exp(fit.x[2])), float(np.exp(fit.x[3]))
    # amplitude of every usable reflection with the fitted shape
    idx = np.flatnonzero(usable)
    I = np.full(len(predicted), np.nan)
    sig = np.full(len(predicted), np.nan)
    fitted = np.zeros(len(predicted), bool)
    if len(idx):
        c, dx, dy, disc, use = _pixels(img, invalid, x[idx], y[idx], r1)
        S = _shape(dx, dy, disc, w)
        bb = bg[idx][:, None]
        A = np.sum((c - bb) * use, axis=1)  # start: the summed photons
        for _ in range(6):
            v = np.maximum(bb + np.maximum(A, 0.0)[:, None] * S, 1e-6)
            den = np.sum(S * S / v * use, axis=1)
            A_new = np.sum(S * (c - bb) / v * use, axis=1) / np.maximum(den, 1e-300)
            done = np.abs(A_new - A) < 1e-3 * np.sqrt(1.0 / np.maximum(den, 1e-300))
            A = A_new
            if done.all():
                break
        v = np.maximum(bb + np.maximum(A, 0.0)[:, None] * S, 1e-6)
        den = np.sum(S * S / v * use, axis=1)
        n_use = use.sum(axis=1)
        chi2 = np.sum((c - bb - A[:, None] * S) ** 2 / v * use, axis=1) / np.maximum(n_use - 1, 1)
        n_eff = np.sum(S / v * use, axis=1) / np.maximum(den, 1e-300)
        var = np.maximum(chi2, 1.0) / np.maximum(den, 1e-300)
        var += n_eff**2 * np.maximum(bg[idx], 0.0) / np.maximum(n_background[idx], 1)
        ok = (den > 0) & (n_use > 2) & np.isfinite(A)
        I[idx[ok]] = A[ok]
        sig[idx[ok]] = np.sqrt(var[ok])
        fitted[idx[ok]] = True
    part = np.exp(-0.5 * (eps / rho) ** 2)
    return PixelRefineResult(ok=True, scale=G, b_factor=B, width_px=w, partiality_width=rho, I=I, sigma=sig,
                             partiality=part, fitted=fitted)  # fmt: skip
