"""Merging, the error model and rejection on scaled full observations (vectorised with np.bincount).

Scaled observation f of reflection h: x_f = I_f / K_f, σ_x,f = σ'_f / K_f, where K_f is the scaling model
(G · partiality · lp · exp(-2 B s²)) and σ'_f the error-model σ. Definitions: docs/scaling.md.
"""

from __future__ import annotations

import numpy as np

from .data import ErrorModel
from .simplex import nelder_mead
from .stats import group_mean

__all__ = [
    "delta_cc_half",
    "fit_error_model",
    "group_median",
    "image_cc",
    "leave_one_out_mean",
    "merge_weighted",
    "outliers",
]

_MEDIAN_CHI2_1 = 0.45493642311957283  # median of chi-square with one degree of freedom


def merge_weighted(ref: np.ndarray, x: np.ndarray, sx: np.ndarray, n_ref: int) -> dict:
    """Weighted means (w = 1/σ²) per reflection: 'mean', 'sigma' (sqrt(max(internal variance/n, 1/Σw)),
    as cctbx), 'sigma_ext' (1/sqrt(Σw)), 'n'."""
    w = 1.0 / sx**2
    mean, sw = group_mean(ref, x, w, n_ref)
    n = np.bincount(ref, minlength=n_ref)
    sw2 = np.bincount(ref, w * w, n_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev2 = np.bincount(ref, w * (x - np.nan_to_num(mean[ref])) ** 2, n_ref)
        wvar = np.where(sw * sw - sw2 > 0, sw / (sw * sw - sw2) * dev2, 0.0)
        ext = 1.0 / np.sqrt(sw)
        sig = np.where(n > 1, np.sqrt(np.maximum(wvar / np.maximum(n, 1), 1.0 / sw)), ext)
    return {"mean": mean, "sigma": sig, "sigma_ext": ext, "n": n, "sum_w": sw}


def leave_one_out_mean(ref: np.ndarray, x: np.ndarray, w: np.ndarray, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the other observations of the same reflection, their Σw) per observation (NaN, 0 if none)."""
    sw = np.bincount(ref, w, n_ref)
    swx = np.bincount(ref, w * x, n_ref)
    swo = sw[ref] - w
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(swo > 1e-12 * sw[ref], (swx[ref] - w * x) / swo, np.nan)
    return m, np.where(np.isfinite(m), swo, 0.0)


def fit_error_model(
    ref: np.ndarray, x: np.ndarray, sx: np.ndarray, n_ref: int, *, max_obs: int = 60_000, n_bins: int = 20,
    seed: int = 0, start: ErrorModel | None = None,
) -> ErrorModel:
    """Refine a, b of σ'² = a²(σ² + (b·Ī)²) (scaled units) from normalised deviations.

    δ_f = (x_f - x̄_(-f)) / sqrt(σ'_f² + σ'(x̄_(-f))²) with x̄_(-f) the weighted mean of the reflection's
    other observations: its variance is 1 for a right error model, in every bin of intensity. The bins
    hold equal numbers of observations sorted by Ī/σ; each bin's variance is estimated robustly
    (median δ² / 0.455), and Σ_bins ln²(var) is minimised over a, b (Nelder–Mead, :mod:`.simplex`).
    Returns a = 1, b = 0 when fewer than 100 observations have a partner.
    """
    ref = np.asarray(ref, np.int64)
    n = np.bincount(ref, minlength=n_ref)
    multi = n[ref] >= 2
    if multi.sum() < 100:
        return ErrorModel(1.0, 0.0)
    idx = np.flatnonzero(multi)
    if len(idx) > max_obs:  # whole reflections, so each kept observation keeps its partners
        rng = np.random.default_rng(seed)
        keep_ref = rng.random(n_ref) < max_obs / len(idx)
        idx = idx[keep_ref[ref[idx]]]
    r, xs, ss = ref[idx], x[idx], sx[idx]
    # compact reflection numbering
    _, r = np.unique(r, return_inverse=True)
    nr = int(r.max()) + 1
    mean0, _ = group_mean(r, xs, 1.0 / ss**2, nr)
    ibar = np.abs(mean0[r])
    order = np.argsort(ibar / ss, kind="stable")
    m = len(order) // n_bins
    if m < 5:
        n_bins = max(1, len(order) // 5)
        m = len(order) // n_bins
    order = order[: m * n_bins].reshape(n_bins, m)

    def deltas(a: float, b: float) -> np.ndarray:
        var = a * a * (ss**2 + (b * ibar) ** 2)
        w = 1.0 / var
        mo, swo = leave_one_out_mean(r, xs, w, nr)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (xs - mo) ** 2 / (var + np.where(swo > 0, 1.0 / swo, np.inf))

    def objective(p: np.ndarray) -> float:
        a, b = float(np.exp(p[0])), abs(float(p[1]))
        d2 = np.nan_to_num(deltas(a, b)[order], nan=np.inf)
        med = np.median(d2, axis=1) / _MEDIAN_CHI2_1
        med = np.maximum(med, 1e-12)
        return float(np.sum(np.log(med) ** 2))

    p0 = np.array([np.log(start.a), max(start.b, 0.01)]) if start is not None else np.array([0.0, 0.03])
    best = nelder_mead(objective, np.array([p0, p0 + np.array([0.2, 0.0]), p0 + np.array([0.0, 0.05])]),
                       xatol=1e-3, fatol=1e-6, maxiter=300)
    a, b = float(np.exp(best[0])), abs(float(best[1]))
    return ErrorModel(a, b)


def group_median(ref: np.ndarray, x: np.ndarray, n_ref: int) -> np.ndarray:
    """Median of x per group (NaN for empty groups)."""
    order = np.lexsort((x, ref))
    rs, xs = ref[order], x[order]
    n = np.bincount(ref, minlength=n_ref)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    med = np.full(n_ref, np.nan)
    ok = n > 0
    lo = start[ok] + (n[ok] - 1) // 2
    hi = start[ok] + n[ok] // 2
    med[ok] = 0.5 * (xs[lo] + xs[hi])
    del rs
    return med


def outliers(ref: np.ndarray, x: np.ndarray, sx: np.ndarray, n_ref: int, n_sigma: float) -> np.ndarray:
    """bool per observation: more than n_sigma σ from its reflection's median (reflections with >= 3
    observations; with two the median is their mean and neither can be told from the other)."""
    med = group_median(ref, x, n_ref)
    n = np.bincount(ref, minlength=n_ref)
    return (n[ref] >= 3) & (np.abs(x - med[ref]) > n_sigma * sx)


def image_cc(img: np.ndarray, x: np.ndarray, y: np.ndarray, n_img: int, min_pairs: int = 3) -> np.ndarray:
    """Pearson CC of x against y per image (NaN where fewer than ``min_pairs`` finite pairs)."""
    ok = np.isfinite(x) & np.isfinite(y)
    i, a, b = img[ok], x[ok], y[ok]
    cnt = np.bincount(i, minlength=n_img).astype(float)
    sa, sb = np.bincount(i, a, n_img), np.bincount(i, b, n_img)
    saa, sbb, sab = np.bincount(i, a * a, n_img), np.bincount(i, b * b, n_img), np.bincount(i, a * b, n_img)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / cnt
        va = saa - sa * sa / cnt
        vb = sbb - sb * sb / cnt
        cc = cov / np.sqrt(va * vb)
    cc[(cnt < min_pairs) | ~(va > 0) | ~(vb > 0)] = np.nan
    return cc


def delta_cc_half(
    ref: np.ndarray, img: np.ndarray, x: np.ndarray, w: np.ndarray, n_ref: int, n_img: int, seed: int = 0
) -> tuple[float, np.ndarray]:
    """(CC1/2 with whole images in one half each, ΔCC1/2 per image = CC1/2(all) - CC1/2(without the image)).

    Each image goes to a random half; per reflection the weighted mean of each half; CC over reflections
    with both halves. Removing image i changes only its reflections' half means, so CC1/2 without i
    follows from the global sums and per-image corrections (one pass, no loop over images).
    ΔCC1/2 is NaN for images with no observation in a reflection measured in both halves.
    """
    rng = np.random.default_rng(seed)
    half = rng.random(n_img) < 0.5
    hf = half[img]
    # per (image, reflection) aggregates
    key = img.astype(np.int64) * n_ref + ref
    uk, inv = np.unique(key, return_inverse=True)
    e_img = (uk // n_ref).astype(np.int64)
    e_ref = (uk % n_ref).astype(np.int64)
    e_w = np.bincount(inv, w)
    e_wx = np.bincount(inv, w * x)
    e_half = half[e_img]
    sw = [np.bincount(ref[hf == s], w[hf == s], n_ref) for s in (True, False)]
    swx = [np.bincount(ref[hf == s], (w * x)[hf == s], n_ref) for s in (True, False)]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = swx[0] / sw[0]
        b = swx[1] / sw[1]
    both = (sw[0] > 0) & (sw[1] > 0)
    A, B = a[both], b[both]
    S = np.array([both.sum(), A.sum(), B.sum(), (A * A).sum(), (B * B).sum(), (A * B).sum()], float)

    def cc_from(s):
        n_, sa, sb, saa, sbb, sab = s
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sab - sa * sb / n_
            return cov / np.sqrt((saa - sa * sa / n_) * (sbb - sb * sb / n_))

    cc_all = float(cc_from(S))
    # the change of each entry's reflection when its image is removed
    inb = both[e_ref]
    a_old, b_old = a[e_ref], b[e_ref]
    sw_h = np.where(e_half, sw[0][e_ref], sw[1][e_ref])
    swx_h = np.where(e_half, swx[0][e_ref], swx[1][e_ref])
    rest = sw_h - e_w
    gone = rest <= 1e-12 * sw_h
    with np.errstate(invalid="ignore", divide="ignore"):
        new_mean = (swx_h - e_wx) / rest
    a_new = np.where(e_half, new_mean, a_old)
    b_new = np.where(e_half, b_old, new_mean)
    keep = inb & ~gone
    drop = inb & gone
    terms_old = np.stack([np.ones_like(a_old), a_old, b_old, a_old * a_old, b_old * b_old, a_old * b_old])
    terms_new = np.stack([np.ones_like(a_new), a_new, b_new, a_new * a_new, b_new * b_new, a_new * b_new])
    delta = np.zeros((6, len(uk)))
    delta[:, keep] = np.nan_to_num(terms_new[:, keep]) - terms_old[:, keep]
    delta[:, drop] = -terms_old[:, drop]
    D = np.stack([np.bincount(e_img, delta[k], n_img) for k in range(6)])
    touched = np.bincount(e_img, inb.astype(float), n_img) > 0
    cc_wo = cc_from(S[:, None] + D)
    dcc = np.where(touched, cc_all - cc_wo, np.nan)
    return cc_all, dcc
