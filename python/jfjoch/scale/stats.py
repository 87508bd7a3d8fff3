"""Merging statistics by resolution shell (definitions: docs/scaling.md; they follow cctbx's
``iotbx.merging_statistics`` so that the figures can be checked against it).

Inputs are scaled, unmerged observations: ``ref`` (index of the Friedel-merged ASU reflection of each
observation), ``x`` (scaled intensity), ``sx`` (its σ). Everything is vectorised with ``np.bincount``.

* shells: equal volume in d*³ between the data's d_max and d_min (cctbx ``setup_binner(n_bins)``);
* mean of a reflection: weighted mean, w = 1/σ²; its σ: sqrt(max(internal variance / n, 1/Σw))
  (cctbx ``merge_equivalents(use_internal_variance=True)``);
* <I/σ>: mean over unique reflections of Ī/σ(Ī);
* R-meas = Σ_h sqrt(n/(n-1)) Σ_j |I_hj - Ī_h| / Σ_h Σ_j I_hj, R-pim with sqrt(1/(n-1)); reflections with n ≥ 2;
* CC1/2: each reflection's observations split at random into halves of n//2 and n - n//2 (the odd one at
  random), weighted means of each half, Pearson CC over reflections with n ≥ 2; the mean over 5 such
  splits (cctbx uses one: its figure scatters by ~0.005 around ours with ~1000 reflections per shell);
* CCanom: the same split (unweighted), anomalous differences I(+) - I(-) of each half, CC over acentric
  reflections with both mates in both halves;
* completeness: unique / possible (gemmi's ASU reflections, absences excluded) in the same d range;
* resolution estimate: d where a fit CC1/2(s) = ½(1 - tanh((s - s0)/r)), s = 1/d², crosses 0.3.
"""

from __future__ import annotations

import math

import numpy as np

from .data import ShellStatistics
from .simplex import nelder_mead

__all__ = [
    "assign_shells",
    "cc_half_halves",
    "group_mean",
    "merging_statistics",
    "pearson",
    "resolution_estimate",
    "shell_limits",
]


def shell_limits(dstar_sq: np.ndarray, n_shells: int = 10, relative_tolerance: float = 1e-6) -> np.ndarray:
    """(n_shells + 1) increasing d*² limits, equal steps in d*³ (as cctbx's ``binning``)."""
    lo, hi = float(np.min(dstar_sq)), float(np.max(dstar_sq))
    tol = (hi - lo) * relative_tolerance
    lo, hi = max(lo - tol, 0.0), hi + tol
    c = np.linspace(lo**1.5, hi**1.5, n_shells + 1)
    lim = c ** (2.0 / 3.0)
    lim[0], lim[-1] = lo, hi
    return lim


def assign_shells(dstar_sq: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Shell index (0 = lowest resolution) of each d*²; -1 outside the limits."""
    i = np.searchsorted(limits, dstar_sq, side="right") - 1
    n = len(limits) - 1
    i = np.where(dstar_sq == limits[-1], n - 1, i)
    return np.where((i < 0) | (i >= n), -1, i)


def group_mean(ref: np.ndarray, x: np.ndarray, w: np.ndarray, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean per group and the sum of weights (mean NaN where no weight)."""
    sw = np.bincount(ref, w, n_ref)
    swx = np.bincount(ref, w * x, n_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        return swx / sw, sw


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN with fewer than 3 pairs or no spread."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if len(a) < 3:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


def cc_half_halves(ref: np.ndarray, n_ref: int, rng: np.random.Generator,
                   order0: np.ndarray | None = None) -> np.ndarray:
    """bool per observation: in the first half. Per reflection with n observations, a random n//2 of them
    (n//2 + 1 with probability 1/2 when n is odd), as cctbx's ``split_unmerged``. ``order0``: a stable
    argsort of ref (reused across splits: then only an almost sorted array is sorted per split)."""
    n_obs = len(ref)
    n = np.bincount(ref, minlength=n_ref)
    if order0 is None:
        order0 = np.argsort(ref, kind="stable")
    rs0 = ref[order0]
    order = order0[np.argsort(rs0 + rng.random(n_obs) * 0.999, kind="stable")]
    rs = ref[order]
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    rank = np.arange(n_obs) - start[rs]
    nsum = n // 2 + ((n % 2 == 1) & (rng.random(n_ref) < 0.5))
    first = np.zeros(n_obs, bool)
    first[order] = rank < nsum[rs]
    return first


def _half_means(ref, x, w, n_ref, first) -> tuple[np.ndarray, np.ndarray]:
    a, _ = group_mean(ref[first], x[first], w[first], n_ref)
    b, _ = group_mean(ref[~first], x[~first], w[~first], n_ref)
    return a, b


def _anom_half_diffs(ref, minus, x, n_ref, first) -> tuple[np.ndarray, np.ndarray]:
    """Anomalous differences I(+) - I(-) of each half (unweighted half means, as cctbx)."""
    key = 2 * ref + minus
    one = np.ones(len(x))
    m1, _ = group_mean(key[first], x[first], one[first], 2 * n_ref)
    m2, _ = group_mean(key[~first], x[~first], one[~first], 2 * n_ref)
    return m1[0::2] - m1[1::2], m2[0::2] - m2[1::2]


def merging_statistics(
    ref: np.ndarray,
    x: np.ndarray,
    sx: np.ndarray,
    ref_dstar_sq: np.ndarray,
    possible_dstar_sq: np.ndarray,
    *,
    n_shells: int = 10,
    seed: int = 0,
    n_splits: int = 5,
    minus: np.ndarray | None = None,
    acentric: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> tuple[list[ShellStatistics], ShellStatistics, dict]:
    """Statistics by shell and overall.

    ref (n_obs) reflection index 0..n_ref-1; x, sx scaled intensities and σ (σ > 0); ref_dstar_sq (n_ref)
    d*² of each reflection; possible_dstar_sq: d*² of every possible ASU reflection (completeness);
    minus (n_obs, bool) the observation is of the Friedel mate I(-) and acentric (n_ref, bool): CCanom;
    reference (n_ref) reference intensities (NaN where none): CCref.
    Returns (shells, overall, merged) where merged holds per-reflection 'mean', 'sigma', 'n' arrays.
    """
    ref = np.asarray(ref, np.int64)
    x = np.asarray(x, float)
    sx = np.asarray(sx, float)
    n_ref = len(ref_dstar_sq)
    w = 1.0 / sx**2
    n = np.bincount(ref, minlength=n_ref)
    mean, sw = group_mean(ref, x, w, n_ref)
    # internal variance (GSL weighted variance) / n vs 1/Σw, as cctbx
    sw2 = np.bincount(ref, w * w, n_ref)
    dev2 = np.bincount(ref, w * (x - mean[ref]) ** 2, n_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        wvar = np.where(sw * sw - sw2 > 0, sw / (sw * sw - sw2) * dev2, 0.0)
        sig_mean = np.where(n > 1, np.sqrt(np.maximum(wvar / n, 1.0 / sw)), 1.0 / np.sqrt(sw))
    absdev = np.bincount(ref, np.abs(x - mean[ref]), n_ref)
    sum_i = np.bincount(ref, x, n_ref)
    rng = np.random.default_rng(seed)
    splits = []  # CC1/2 is the mean over n_splits random half splits (less noise than one split)
    order0 = np.argsort(ref, kind="stable")
    for _ in range(n_splits):
        first = cc_half_halves(ref, n_ref, rng, order0)
        half_a, half_b = _half_means(ref, x, w, n_ref, first)
        dano = (_anom_half_diffs(ref, np.asarray(minus, np.int64), x, n_ref, first)
                if minus is not None and acentric is not None else None)
        splits.append((half_a, half_b, dano))
    observed = n > 0
    obs_d = ref_dstar_sq[observed]
    if not len(obs_d):
        raise ValueError("no observations")
    limits = shell_limits(obs_d, n_shells)
    shell_ref = assign_shells(ref_dstar_sq, limits)
    shell_pos = assign_shells(possible_dstar_sq, limits)

    def block(sel_ref: np.ndarray, dmax: float, dmin: float, sel_pos: np.ndarray) -> ShellStatistics:
        sel = sel_ref & observed
        nu = int(sel.sum())
        no = int(n[sel].sum())
        multi = sel & (n >= 2)
        nm = n[multi].astype(float)
        den = float(sum_i[multi].sum())
        r_meas = float((np.sqrt(nm / (nm - 1)) * absdev[multi]).sum() / den) if den else float("nan")
        r_pim = float((np.sqrt(1.0 / (nm - 1)) * absdev[multi]).sum() / den) if den else float("nan")
        ios = mean[sel] / sig_mean[sel]
        ccs = []
        for half_a, half_b, _ in splits:
            okh = multi & np.isfinite(half_a) & np.isfinite(half_b)
            ccs.append(pearson(half_a[okh], half_b[okh]))
        cc = float(np.mean(ccs))
        npos = int(sel_pos.sum())
        st = ShellStatistics(
            d_max=dmax, d_min=dmin, n_obs=no, n_unique=nu, n_possible=npos,
            multiplicity=no / nu if nu else float("nan"),
            completeness=100.0 * min(nu / npos, 1.0) if npos else float("nan"),
            i_over_sigma=float(np.mean(ios)) if nu else float("nan"),
            cc_half=cc, r_meas=r_meas, r_pim=r_pim,
            mean_i=float(np.mean(mean[sel])) if nu else float("nan"),
        )  # fmt: skip
        if minus is not None and acentric is not None:
            ccs = []
            for _, _, (dano1, dano2) in splits:
                oka = sel & acentric & np.isfinite(dano1) & np.isfinite(dano2)
                ccs.append(pearson(dano1[oka], dano2[oka]))
            st.cc_anom = float(np.mean(ccs))
        if reference is not None:
            ok = sel & np.isfinite(reference)
            st.cc_ref = pearson(mean[ok], reference[ok])
        return st

    shells = []
    for i in range(n_shells):
        lo, hi = limits[i], limits[i + 1]
        shells.append(block(shell_ref == i, 1 / math.sqrt(lo) if lo > 0 else math.inf, 1 / math.sqrt(hi),
                            shell_pos == i))
    dmax_all = 1 / math.sqrt(obs_d.min()) if obs_d.min() > 0 else math.inf
    dmin_all = 1 / math.sqrt(obs_d.max())
    # overall completeness: possible reflections within the data's own range (cctbx d_max_min())
    pos_all = (possible_dstar_sq >= obs_d.min() * (1 - 1e-9)) & (possible_dstar_sq <= obs_d.max() * (1 + 1e-9))
    overall = block(np.ones(n_ref, bool), dmax_all, dmin_all, pos_all)
    merged = {"mean": mean, "sigma": sig_mean, "n": n, "sum_w": sw}
    return shells, overall, merged


def _tanh_model(s, s0, r):
    return 0.5 * (1.0 - np.tanh((s - s0) / r))


def resolution_estimate(shells: list[ShellStatistics], threshold: float = 0.3) -> float | None:
    """d (Å) where the tanh fit of CC1/2 against s = 1/d² (shell centres in s) crosses ``threshold``;
    limited to the data's d_min when CC1/2 stays above it; None when no fit is possible."""
    s, cc, wt = [], [], []
    for sh in shells:
        if sh.cc_half is None or not np.isfinite(sh.cc_half) or sh.n_unique < 3:
            continue
        lo = 0.0 if not np.isfinite(sh.d_max) else 1 / sh.d_max**2
        s.append(0.5 * (lo + 1 / sh.d_min**2))
        cc.append(sh.cc_half)
        wt.append(sh.n_unique)
    if len(s) < 3:
        return None
    s, cc, wt = np.array(s), np.array(cc), np.array(wt, float)
    d_min_data = min(sh.d_min for sh in shells)
    s_max = 1 / d_min_data**2
    cc_fit = np.clip(cc, -0.5, 1.0)

    def weighted_squares(p: np.ndarray) -> float:  # Σ n_unique · (model − CC1/2)²
        with np.errstate(all="ignore"):
            return float(np.sum(wt * (_tanh_model(s, p[0], p[1]) - cc_fit) ** 2))

    p0 = np.array([float(np.median(s)), float(np.ptp(s)) / 4 + 1e-6])
    # least squares by the simplex method: scipy.optimize costs 0.3 s to import (see .simplex)
    s0, r = nelder_mead(weighted_squares, np.array([p0, p0 * [1.05, 1.0], p0 * [1.0, 1.05]]),
                        xatol=1e-9, fatol=1e-12, maxiter=2000)
    if not np.isfinite(s0) or not np.isfinite(r) or r <= 0:
        return float(d_min_data) if cc[-1] >= threshold else None
    s_cross = s0 + abs(r) * math.atanh(1 - 2 * threshold)
    if s_cross <= 0:
        return None
    if s_cross >= s_max:
        return float(d_min_data)
    return float(1 / math.sqrt(s_cross))
