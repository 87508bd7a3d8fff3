"""Per-image scale factors: damped Gauss-Newton on sparse normal equations, with smoothness restraints.

Given target intensities Ī_h (the current merged set, or a reference), the parameters θ = (g_i [, B_i])
of every image minimise

    Σ_f w_f ρ(I_f - K_f(θ) Ī_h(f))  +  Σ_sweeps Σ_i λ_g (g_i+1 - g_i)²  +  λ_B (B_i+1 - B_i)²  +  ridge,

w_f = 1/σ_f² (counting statistics), G_i = exp(g_i), ρ Huber's loss (quadratic up to 10 σ, then linear:
iteratively reweighted, so a few wild observations cannot pull an image's scale). The normal matrix is
assembled from the row pairs of :class:`~jfjoch.scale.model.Fulls` (block-diagonal for stills, banded
for rotation sums and restraints) and solved with scipy.sparse (SuperLU). λ_g = ρ · median over the
sweep of the per-image information Σ_f w_f (∂K_f/∂g_i Ī)², so the restraint is as strong as one typical
image: images with many reflections are barely restrained, images with few take their scale from their
neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from .model import Fulls, model_factor

__all__ = ["Restraints", "gauss_newton_step", "sweep_neighbours"]


@dataclass(frozen=True)
class Restraints:
    """Smoothness restraints along rotation sweeps (pairs of neighbouring images)."""

    i: np.ndarray
    j: np.ndarray
    gap: np.ndarray
    """Image-number distance of the pair (the restraint weight is divided by it)."""
    sweep: np.ndarray
    """Sweep (run) of the pair, for the per-sweep median information."""
    rho: float = 1.0
    b_ridge: float = 1e-3
    """Weak pull of every B_i towards 0 (stills), relative to the median information."""


def sweep_neighbours(img_run: np.ndarray, img_number: np.ndarray, is_sweep: np.ndarray, max_gap: int = 5,
                     rho: float = 1.0) -> Restraints:
    """Restraint pairs between consecutive images (sorted by run, image) of the same sweep run."""
    same = (img_run[1:] == img_run[:-1]) & is_sweep[1:] & is_sweep[:-1]
    gap = img_number[1:] - img_number[:-1]
    ok = same & (gap >= 1) & (gap <= max_gap)
    i = np.flatnonzero(ok)
    return Restraints(i=i, j=i + 1, gap=gap[ok].astype(float), sweep=img_run[i], rho=rho)


def gauss_newton_step(
    fulls: Fulls,
    q: np.ndarray,
    s2_full: np.ndarray,
    I: np.ndarray,
    w: np.ndarray,
    target: np.ndarray,
    g: np.ndarray,
    B: np.ndarray,
    *,
    refine_b: bool,
    restraints: Restraints | None,
    free: np.ndarray,
    damping: float = 1e-3,
    huber: float | None = 10.0,
    max_dg: float = 1.0,
    max_dB: float = 20.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One damped Gauss-Newton step; returns (g, B, max |Δg|).

    I, w, target per full (target NaN or w 0: the full does not count); free (n_img bool): parameters that
    may change (images without data or rejected ones stay fixed).
    """
    n_img = fulls.n_img
    K, e = model_factor(fulls, q, s2_full, g, B)
    ok = np.isfinite(target) & (w > 0) & np.isfinite(K) & (K > 0)
    wt = np.where(ok, w, 0.0)
    tgt = np.where(ok, target, 0.0)
    res = I - K * tgt
    res = np.where(ok, res, 0.0)
    if huber is not None:  # robust: residuals beyond huber·σ weigh as |r| (Huber), so outliers cannot pull G
        z = np.abs(res) * np.sqrt(wt)
        wt = wt * np.where(z > huber, huber / np.maximum(z, 1e-300), 1.0)
    f = fulls.row_full
    ident = fulls.identity

    def per_row(v):
        return v if ident else v[f]

    a = e * per_row(tgt)  # dK_f/dg_i * target, per row
    rows_i = fulls.row_img
    wres = per_row(wt * res)
    rhs_g = np.bincount(rows_i, a * wres, n_img)
    p1, p2, inv = fulls.pair_r1, fulls.pair_r2, fulls.pair_key_inv
    n_pairs = len(fulls.pair_i)
    if ident:  # pairs are the rows themselves
        wp = wt
        Ngg = np.bincount(inv, wp * a * a, n_pairs)
    else:
        wp = wt[f[p1]]
        Ngg = np.bincount(inv, wp * a[p1] * a[p2], n_pairs)
    blocks_i = [fulls.pair_i]
    blocks_j = [fulls.pair_j]
    vals = [Ngg]
    if refine_b:
        s2r = per_row(s2_full)
        b_ = -2.0 * s2r * a
        rhs_B = np.bincount(rows_i, b_ * wres, n_img)
        if ident:
            NgB = np.bincount(inv, wp * a * b_, n_pairs)
            NBB = np.bincount(inv, wp * b_ * b_, n_pairs)
        else:
            NgB = np.bincount(inv, wp * a[p1] * b_[p2], n_pairs)
            NBB = np.bincount(inv, wp * b_[p1] * b_[p2], n_pairs)
        blocks_i += [fulls.pair_i, fulls.pair_i + n_img]
        blocks_j += [fulls.pair_j + n_img, fulls.pair_j + n_img]
        vals += [NgB, NBB]
        # symmetric counterpart of NgB
        blocks_i.append(fulls.pair_j + n_img)
        blocks_j.append(fulls.pair_i)
        vals.append(NgB)
        rhs = np.concatenate([rhs_g, rhs_B])
        n_par = 2 * n_img
    else:
        rhs = rhs_g
        n_par = n_img
    N = sp.coo_matrix((np.concatenate(vals), (np.concatenate(blocks_i), np.concatenate(blocks_j))),
                      shape=(n_par, n_par)).tocsr()
    diag = N.diagonal().copy()
    info_g = diag[:n_img]
    pos = info_g[info_g > 0]
    scale_g = float(np.median(pos)) if len(pos) else 1.0
    extra_i, extra_j, extra_v = [], [], []
    rvec = np.zeros(n_par)
    if restraints is not None and len(restraints.i):
        ri, rj = restraints.i, restraints.j
        # per-sweep median information
        lam_g = np.empty(len(ri))
        lam_B = np.empty(len(ri))
        info_B = diag[n_img:] if refine_b else None
        for s in np.unique(restraints.sweep):
            m = restraints.sweep == s
            imgs = np.unique(np.concatenate([ri[m], rj[m]]))
            ig = info_g[imgs]
            lam_g[m] = restraints.rho * (np.median(ig[ig > 0]) if np.any(ig > 0) else scale_g)
            if refine_b:
                ib = info_B[imgs]
                lam_B[m] = restraints.rho * (np.median(ib[ib > 0]) if np.any(ib > 0) else 1.0)
        lam_g = lam_g / restraints.gap
        lam_B = lam_B / restraints.gap
        blocks = [(0, lam_g, g)]
        if refine_b:
            blocks.append((n_img, lam_B, B))
        for off, lam, par in blocks:
            d = par[ri] - par[rj]
            extra_i += [ri + off, rj + off, ri + off, rj + off]
            extra_j += [ri + off, rj + off, rj + off, ri + off]
            extra_v += [lam, lam, -lam, -lam]
            np.add.at(rvec, ri + off, -lam * d)
            np.add.at(rvec, rj + off, lam * d)
    # ridge: fixed parameters pinned, tiny ridge everywhere, weak B pull towards 0
    ridge = np.full(n_par, 1e-9 * max(scale_g, 1e-300))
    pin = np.concatenate([~free, ~free]) if refine_b else ~free
    big = 1e6 * max(float(diag.max(initial=0.0)), scale_g, 1.0)
    ridge = np.where(pin, big, ridge)
    if refine_b:
        info_B = diag[n_img:]
        posB = info_B[info_B > 0]
        ridge_frac = restraints.b_ridge if restraints is not None else 1e-3
        lamB0 = ridge_frac * (float(np.median(posB)) if len(posB) else 1.0)
        ridge[n_img:] += np.where(pin[n_img:], 0.0, lamB0)
        rvec[n_img:] += np.where(pin[n_img:], 0.0, -lamB0 * B)
    ridge = ridge + damping * diag
    M = N + sp.diags(ridge)
    if extra_i:
        M = M + sp.coo_matrix((np.concatenate(extra_v), (np.concatenate(extra_i), np.concatenate(extra_j))),
                              shape=(n_par, n_par)).tocsr()
    rhs = np.where(pin, 0.0, rhs + rvec)
    try:
        delta = spl.spsolve(M.tocsc(), rhs)
    except RuntimeError:
        delta = np.zeros(n_par)
    delta = np.nan_to_num(delta)
    dg = np.clip(delta[:n_img], -max_dg, max_dg)
    dg[~free] = 0.0
    g = g + dg
    if refine_b:
        dB = np.clip(delta[n_img:], -max_dB, max_dB)
        dB[~free] = 0.0
        B = B + dB
    return g, B, float(np.max(np.abs(dg))) if len(dg) else 0.0
