"""The scaling model: partiality (fixed | rot | unity), full observations from rotation partials, and the
per-observation model factor K = G · partiality · lp · exp(-2 B s²).

Rows are integrated observations (one reflection on one image). A *full* is what is merged: a still's row,
or the sum of a rotation reflection's partials on consecutive images. With row coefficients q_r, the
model of full f is

    K_f = Σ_{r ∈ f} q_r · exp(g_i(r) - 2 B_i(r) s_f²),    G_i = exp(g_i),

where for stills q_r = p_r · lp_r and for rotation sums q_r = lp_f · F_f · p_r / Σp, F_f = min(Σp, 1)
the recorded fraction and lp_f the p-weighted mean lp (docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Fulls",
    "build_fulls",
    "full_coefficients",
    "group_partials",
    "model_factor",
    "rocking_partiality",
]


def rocking_partiality(phi: np.ndarray, start: np.ndarray, width: np.ndarray, sigma_phi: np.ndarray) -> np.ndarray:
    """Fraction of a Gaussian rocking curve (centre phi, σ sigma_phi, degrees) inside [start, start + width]."""
    from scipy.special import ndtr  # (imported here: only -P rot needs it)

    s = np.maximum(sigma_phi, 1e-6)
    return ndtr((start + width - phi) / s) - ndtr((start - phi) / s)


def group_partials(run: np.ndarray, image: np.ndarray, hkl: np.ndarray, rotation: np.ndarray,
                   max_gap: int = 1) -> tuple[np.ndarray, int]:
    """Full id per row: rows of a rotation run with the same (h, k, l) on images at most ``max_gap`` apart
    are one full; every other row is its own full. Returns (full id (n,), number of fulls)."""
    n = len(run)
    if n == 0:
        return np.zeros(0, np.int64), 0
    if not rotation.any():
        return np.arange(n, dtype=np.int64), n
    order = np.lexsort((image, hkl[:, 2], hkl[:, 1], hkl[:, 0], run))
    r, im, h = run[order], image[order], hkl[order]
    rot = rotation[order]
    new = np.ones(n, bool)
    same = (r[1:] == r[:-1]) & np.all(h[1:] == h[:-1], axis=1) & (im[1:] - im[:-1] <= max_gap) & rot[1:] & rot[:-1]
    new[1:] = ~same
    fid_sorted = np.cumsum(new) - 1
    fid = np.empty(n, np.int64)
    fid[order] = fid_sorted
    return fid, int(fid_sorted[-1]) + 1


@dataclass(eq=False)
class Fulls:
    """Row -> full structure and the pair structure of the normal matrix (constant while rows are fixed)."""

    row_full: np.ndarray
    row_img: np.ndarray
    n_full: int
    n_img: int
    single: bool
    """Every full has one row (stills, or unsummed full observations)."""
    identity: bool
    """row_full is 0, 1, 2, ...: per-full and per-row arrays coincide."""
    pair_r1: np.ndarray
    pair_r2: np.ndarray
    pair_key_inv: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray


def build_fulls(row_full: np.ndarray, row_img: np.ndarray, n_full: int, n_img: int) -> Fulls:
    """Precompute the row pairs (r1, r2) within each full and the distinct (image, image) blocks they touch."""
    cnt = np.bincount(row_full, minlength=n_full)
    single = bool(np.all(cnt <= 1))
    identity = single and len(row_full) == n_full and bool(np.all(row_full == np.arange(n_full)))
    if single:
        r1 = r2 = np.arange(len(row_full))
    else:
        order = np.argsort(row_full, kind="stable")
        start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        c_row = cnt[row_full[order]]
        r1 = np.repeat(order, c_row)
        blk_start = np.repeat(np.cumsum(c_row) - c_row, c_row)
        k = np.arange(len(r1)) - blk_start
        r2 = order[start[row_full[r1]] + k]
    if single:  # every pair is a row with itself: the blocks are the images
        ar = np.arange(n_img)
        return Fulls(row_full=row_full, row_img=row_img, n_full=n_full, n_img=n_img, single=single,
                     identity=identity, pair_r1=r1, pair_r2=r2, pair_key_inv=np.asarray(row_img, np.int64),
                     pair_i=ar, pair_j=ar)
    key = row_img[r1].astype(np.int64) * n_img + row_img[r2]
    uk, inv = np.unique(key, return_inverse=True)
    return Fulls(row_full=row_full, row_img=row_img, n_full=n_full, n_img=n_img, single=single, identity=identity,
                 pair_r1=r1, pair_r2=r2, pair_key_inv=inv, pair_i=uk // n_img, pair_j=uk % n_img)


def full_coefficients(row_full: np.ndarray, n_full: int, p: np.ndarray, lp: np.ndarray,
                      summed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row coefficients q_r and per-full (recorded fraction F_f, lp_f).

    summed (per full): True for rotation sums (q_r = lp_f · F_f · p_r / Σp), False for single rows
    (q_r = p_r · lp_r).
    """
    if not summed.any() and len(row_full) == n_full and np.all(row_full == np.arange(n_full)):
        return p * lp, p.copy(), lp.copy()
    sp = np.bincount(row_full, p, n_full)
    splp = np.bincount(row_full, p * lp, n_full)
    with np.errstate(invalid="ignore", divide="ignore"):
        lp_f = np.where(sp > 0, splp / sp, np.nan)
    frac = np.where(summed, np.minimum(sp, 1.0), sp)
    with np.errstate(invalid="ignore", divide="ignore"):
        q_sum = lp_f[row_full] * frac[row_full] * p / sp[row_full]
    q = np.where(summed[row_full], q_sum, p * lp)
    q = np.where(np.isfinite(q), q, 0.0)
    return q, np.where(np.isfinite(frac), frac, 0.0), lp_f


def model_factor(fulls: Fulls, q: np.ndarray, s2_full: np.ndarray, g: np.ndarray, B: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """(K per full, e_r per row) with e_r = q_r exp(g_i - 2 B_i s²), K_f = Σ_r e_r."""
    i = fulls.row_img
    s2 = s2_full if fulls.identity else s2_full[fulls.row_full]
    if np.any(B != 0):
        e = q * np.exp(g[i] - 2.0 * B[i] * s2)
    else:  # one exp per image
        e = q * np.exp(g)[i]
    if fulls.identity:
        return e, e
    return np.bincount(fulls.row_full, e, fulls.n_full), e
