"""Synthetic spot images and a slow, obvious numpy reference of the Bragg integration kernel
(csrc/integrate, docs/integration_kernel.md), shared by tests/test_integrate_kernel.py and
bench/bench_integrate.py.

The reference follows the documented equations pixel by pixel, one reflection at a time, with no shared
code with the C++ kernel (it imports only the flag values).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from jfjoch.integration_kernel import Flag

INT32_MIN = np.iinfo(np.int32).min

# Constants of the kernel (csrc/integrate/integrate.hpp), restated here on purpose.
BG_CLIP_FLOOR = 1.0  # photons: the clip threshold uses sqrt(max(mean, 1))
FIT_MAX_ITERATIONS = 20
FIT_TOLERANCE = 1e-3  # in units of the fit's sigma
VARIANCE_FLOOR = 1e-6  # photons
FIT_MAX_EXTRAPOLATION = 100.0  # a secant step may be at most this many plain steps


# ---------------------------------------------------------------- synthetic data
def gaussian_spot_image(
    ny: int,
    nx: int,
    x: np.ndarray,
    y: np.ndarray,
    photons: np.ndarray,
    sigma_px: float | np.ndarray,
    background: float | np.ndarray,
    rng: np.random.Generator | None,
    half: int = 8,
) -> np.ndarray:
    """Expected counts (float64, (ny, nx)) of a background plus pixel-integrated 2-D Gaussian spots
    (`photons` each, centre (x, y) in pixel-centre coordinates), or a Poisson draw of them as int32 when
    `rng` is given. `background` is photons/pixel (scalar or (ny, nx))."""
    lam = np.zeros((ny, nx)) + background
    sig = np.broadcast_to(np.asarray(sigma_px, float), np.shape(x))
    for xi, yi, ph, s in zip(x, y, photons, sig):
        c0, r0 = math.floor(xi) - half, math.floor(yi) - half
        cols = np.arange(max(c0, 0), min(c0 + 2 * half + 2, nx))
        rows = np.arange(max(r0, 0), min(r0 + 2 * half + 2, ny))
        if cols.size == 0 or rows.size == 0:
            continue
        k = math.sqrt(2.0) * s
        fx = 0.5 * (erf((cols + 0.5 - xi) / k) - erf((cols - 0.5 - xi) / k))  # pixel spans [i-0.5, i+0.5]
        fy = 0.5 * (erf((rows + 0.5 - yi) / k) - erf((rows - 0.5 - yi) / k))
        lam[np.ix_(rows, cols)] += ph * np.outer(fy, fx)
    if rng is None:
        return lam
    return rng.poisson(lam).astype(np.int32)


def random_positions(
    n: int, ny: int, nx: int, rng: np.random.Generator, min_dist: float, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """n sub-pixel positions at least `min_dist` px apart and `margin` px from the edges."""
    xs: list[float] = []
    ys: list[float] = []
    while len(xs) < n:
        cx, cy = rng.uniform(margin, nx - 1 - margin), rng.uniform(margin, ny - 1 - margin)
        if xs and np.min(np.hypot(np.asarray(xs) - cx, np.asarray(ys) - cy)) < min_dist:
            continue
        xs.append(cx)
        ys.append(cy)
    return np.array(xs), np.array(ys)


# ---------------------------------------------------------------- reference: summation
def _valid_and_saturated(image, mask, saturation):
    invalid = image == INT32_MIN
    if mask is not None:
        invalid |= mask != 0
    sat = image >= saturation if saturation is not None and saturation > 0 else np.zeros(image.shape, bool)
    return invalid, sat


def reference_summation(image, mask, saturation, x, y, r1, r2, r3, clip=3.0, min_bg=6):
    """Summation of every reflection, one at a time (docs/integration_kernel.md, "Summation").
    Returns a dict of arrays: I_sum, sigma_sum, background, n_disc, n_background, flags."""
    ny, nx = image.shape
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = x.size
    invalid, sat = _valid_and_saturated(image, mask, saturation)
    img = image.astype(np.float64)
    out = {
        "I_sum": np.full(n, np.nan),
        "sigma_sum": np.full(n, np.nan),
        "background": np.full(n, np.nan),
        "n_disc": np.zeros(n, np.int32),
        "n_background": np.zeros(n, np.int32),
        "flags": np.zeros(n, np.uint32),
    }
    finite = np.isfinite(x) & np.isfinite(y)
    for i in range(n):
        if not finite[i] or not (-r3 - 1 < x[i] < nx + r3 and -r3 - 1 < y[i] < ny + r3):
            out["flags"][i] = Flag.EDGE
            continue
        flags = 0
        others = np.flatnonzero(finite & (np.arange(n) != i))
        ox, oy = x[others] - x[i], y[others] - y[i]
        dn2 = ox * ox + oy * oy
        if (dn2 < 4 * r1 * r1).any():
            flags |= Flag.OVERLAP
        near = others[dn2 <= (r1 + r3 + 1) ** 2]  # only these can reach the annulus (saves time)
        c0, c1 = math.floor(x[i] - r3), math.ceil(x[i] + r3)
        r0_, r1_ = math.floor(y[i] - r3), math.ceil(y[i] + r3)
        disc_sum = disc_pos = 0.0
        n_disc = 0
        bg_vals = []
        for row in range(r0_, r1_ + 1):
            for col in range(c0, c1 + 1):
                dx, dy = col - x[i], row - y[i]
                d2 = dx * dx + dy * dy
                inside = 0 <= col < nx and 0 <= row < ny
                if d2 <= r1 * r1:
                    if not inside:
                        flags |= Flag.EDGE
                        continue
                    n_disc += 1
                    if invalid[row, col]:
                        flags |= Flag.MASKED
                        continue
                    if sat[row, col]:
                        flags |= Flag.SATURATED
                    disc_sum += img[row, col]
                    disc_pos += max(img[row, col], 0.0)
                elif r2 * r2 < d2 <= r3 * r3:
                    if not inside or invalid[row, col] or sat[row, col]:
                        continue
                    ex, ey = col - x[near], row - y[near]
                    if (ex * ex + ey * ey <= r1 * r1).any():
                        continue  # inside another prediction's signal disc
                    bg_vals.append(img[row, col])
        bg_vals = np.array(bg_vals)
        bg = math.nan
        n_bg = 0
        if bg_vals.size:
            mean = bg_vals.sum() / bg_vals.size
            keep = bg_vals[bg_vals <= mean + clip * math.sqrt(max(mean, BG_CLIP_FLOOR))]
            n_bg = keep.size
            bg = keep.sum() / n_bg if n_bg else math.nan
        if n_bg < min_bg:
            flags |= Flag.FEW_BACKGROUND
        out["background"][i] = bg
        out["n_disc"][i] = n_disc
        out["n_background"][i] = n_bg
        if not flags & (Flag.EDGE | Flag.MASKED | Flag.FEW_BACKGROUND):
            flags |= Flag.SUMMED
            out["I_sum"][i] = disc_sum - n_disc * bg
            out["sigma_sum"][i] = math.sqrt(disc_pos + float(n_disc) * float(n_disc) * max(bg, 0.0) / float(n_bg))
        out["flags"][i] = flags
    return out


# ---------------------------------------------------------------- reference: profile
def profile_grid_half(r1: float, oversampling: int) -> int:
    """H: the profile grid is (2H+1)^2 cells of 1/oversampling px, cell H at offset 0."""
    return math.ceil(r1 * oversampling) + 1


def _disc_pixels(x, y, r1):
    """(cols, rows, dx, dy) of the pixels whose centre lies within r1 of (x, y), row-major."""
    out = []
    for row in range(math.floor(y - r1), math.ceil(y + r1) + 1):
        for col in range(math.floor(x - r1), math.ceil(x + r1) + 1):
            dx, dy = col - x, row - y
            if dx * dx + dy * dy <= r1 * r1:
                out.append((col, row, dx, dy))
    return out


def _finalize(s, c, r1, o):
    """Learned profile from per-cell sums and counts: 3x3 normalised convolution with the binomial kernel
    (1 2 1)x(1 2 1), empty cells within H + 1 cells of the centre filled from their non-empty 8-neighbours
    (repeatedly; the corners are never read and stay 0); values keep their sign
    (noise in the tails averages out). Returns (profile, sigma_p)."""
    g = s.shape[0]
    k = np.array([1.0, 2.0, 1.0])
    kk = np.outer(k, k)
    val = np.zeros((g, g))
    have = np.zeros((g, g), bool)
    for v in range(g):
        for u in range(g):
            ss = cc = 0.0
            for dv in (-1, 0, 1):
                for du in (-1, 0, 1):
                    vv, uu = v + dv, u + du
                    if 0 <= vv < g and 0 <= uu < g:
                        ss += kk[dv + 1, du + 1] * s[vv, uu]
                        cc += kk[dv + 1, du + 1] * c[vv, uu]
            if cc > 0:
                val[v, u] = ss / cc
                have[v, u] = True
    h = (g - 1) // 2
    in_use = np.add.outer((np.arange(g) - h) ** 2, (np.arange(g) - h) ** 2) <= (h + 1) ** 2  # [v, u]
    for _ in range(g):
        if (have | ~in_use).all():
            break
        new_val, new_have = val.copy(), have.copy()
        for v in range(g):
            for u in range(g):
                if have[v, u] or not in_use[v, u]:
                    continue
                tot, m = 0.0, 0
                for dv in (-1, 0, 1):
                    for du in (-1, 0, 1):
                        vv, uu = v + dv, u + du
                        if 0 <= vv < g and 0 <= uu < g and have[vv, uu]:
                            tot += val[vv, uu]
                            m += 1
                if m:
                    new_val[v, u] = tot / m
                    new_have[v, u] = True
        val, have = new_val, new_have
    off = (np.arange(g) - h) / o
    ox, oy = np.meshgrid(off, off)
    inside = ox * ox + oy * oy <= r1 * r1
    w = val[inside].sum()
    m2 = (val[inside] * (ox[inside] ** 2 + oy[inside] ** 2)).sum()
    if not (w > 0 and m2 > 0):
        return val, math.nan
    return val, math.sqrt(m2 / (2.0 * w))


def _bilinear(prof, h, o, dx, dy):
    fu, fv = dx * o + h, dy * o + h
    u0, v0 = math.floor(fu), math.floor(fv)
    t, s = fu - u0, fv - v0
    return (1 - s) * ((1 - t) * prof[v0, u0] + t * prof[v0, u0 + 1]) + s * (
        (1 - t) * prof[v0 + 1, u0] + t * prof[v0 + 1, u0 + 1]
    )


def reference_integrate(
    image,
    mask,
    saturation,
    x,
    y,
    r1,
    r2,
    r3,
    clip=3.0,
    min_bg=6,
    group=None,
    n_groups=1,
    profile=True,
    min_isigma=10.0,
    min_refs=8,
    multiplier=6.0,
    oversampling=5,
):
    """Summation plus profile learning and fitting (docs/integration_kernel.md), one reflection at a
    time. Returns the summation dict plus I_prf, sigma_prf, profiles (n_groups, G, G), profile_width,
    profile_n_reference, profile_source."""
    out = reference_summation(image, mask, saturation, x, y, r1, r2, r3, clip, min_bg)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = x.size
    grp = np.zeros(n, np.int64) if group is None else np.asarray(group, np.int64)
    o = oversampling
    h = profile_grid_half(r1, o)
    g = 2 * h + 1
    invalid, sat = _valid_and_saturated(image, mask, saturation)
    img = image.astype(np.float64)
    out["I_prf"] = np.full(n, np.nan)
    out["sigma_prf"] = np.full(n, np.nan)
    out["profiles"] = np.zeros((n_groups, g, g))
    out["profile_width"] = np.full(n_groups, np.nan)
    out["profile_n_reference"] = np.zeros(n_groups, np.int32)
    out["profile_source"] = np.zeros(n_groups, np.int32)
    if not profile:
        return out
    flags = out["flags"]
    I_sum, sig_sum, bgs, n_bgs = out["I_sum"], out["sigma_sum"], out["background"], out["n_background"]
    strong = (
        ((flags & Flag.SUMMED) != 0)
        & ((flags & (Flag.SATURATED | Flag.OVERLAP)) == 0)
        & (np.nan_to_num(sig_sum) > 0)
        & (np.nan_to_num(I_sum) >= min_isigma * np.nan_to_num(sig_sum))
    )
    sums = np.zeros((n_groups + 1, g, g))
    counts = np.zeros((n_groups + 1, g, g))
    for i in np.flatnonzero(strong):
        # cell of a pixel: the sub-pixel phase rounded once per reflection, at the disc box's first column/row
        c0, w0 = math.floor(x[i] - r1), math.floor(y[i] - r1)
        u0, v0 = math.floor((c0 - x[i]) * o + 0.5) + h, math.floor((w0 - y[i]) * o + 0.5) + h
        for col, row, _, _ in _disc_pixels(x[i], y[i], r1):
            u, v = u0 + (col - c0) * o, v0 + (row - w0) * o
            sums[grp[i], v, u] += (img[row, col] - bgs[i]) / I_sum[i]
            counts[grp[i], v, u] += 1
    sums[n_groups] = sums[:n_groups].sum(axis=0)
    counts[n_groups] = counts[:n_groups].sum(axis=0)
    n_ref = np.bincount(grp[strong], minlength=n_groups).astype(np.int32)
    slots = []
    glob = None
    if strong.sum() >= min_refs:
        glob = _finalize(sums[n_groups], counts[n_groups], r1, o)
        if not math.isfinite(glob[1]):
            glob = None
    for k in range(n_groups):
        own = _finalize(sums[k], counts[k], r1, o) if n_ref[k] >= min_refs else None
        if own is not None and math.isfinite(own[1]):
            slots.append((1, *own))
        elif glob is not None:
            slots.append((2, *glob))
        else:
            slots.append((0, None, math.nan))
        out["profile_source"][k] = slots[-1][0]
        out["profile_n_reference"][k] = n_ref[k]
        if slots[-1][0]:
            out["profiles"][k] = slots[-1][1]
            out["profile_width"][k] = slots[-1][2]
    for i in range(n):
        if not flags[i] & Flag.SUMMED:
            continue
        src, prof, sp = slots[grp[i]]
        if src == 0:
            flags[i] |= Flag.PROFILE_FAILED
            continue
        if strong[i]:
            flags[i] |= Flag.PROFILE_REFERENCE
        r_fit = min(r1, multiplier * sp / 2.0)
        xc, yc = math.floor(x[i] + 0.5), math.floor(y[i] + 0.5)
        pix = _disc_pixels(x[i], y[i], r1)
        p = np.array([_bilinear(prof, h, o, dx, dy) for _, _, dx, dy in pix])
        norm = p.sum()  # signed: tail noise averages out
        if not norm > 0:
            flags[i] |= Flag.PROFILE_FAILED
            continue
        p = np.maximum(p, 0.0) / norm  # p <= 0 carries no information
        use = np.array(
            [
                (dx * dx + dy * dy <= r_fit * r_fit or (abs(col - xc) <= 1 and abs(row - yc) <= 1))
                and not sat[row, col]
                for col, row, dx, dy in pix
            ]
        )
        c = np.array([img[row, col] for col, row, _, _ in pix])
        pu, cu = p[use], c[use]
        bg, nb = bgs[i], n_bgs[i]
        I = I_sum[i]
        ok = False
        den = sum_pv = 0.0
        I_prev = g_prev = None
        for _ in range(FIT_MAX_ITERATIONS):
            v = np.maximum(bg + max(I, 0.0) * pu, VARIANCE_FLOOR)
            num = (pu * (cu - bg) / v).sum()
            den = (pu * pu / v).sum()
            sum_pv = (pu / v).sum()
            if not den > 0:
                break
            F = num / den
            g = F - I
            if abs(g) <= FIT_TOLERANCE * math.sqrt(1.0 / den):
                I = F
                ok = True
                break
            step = g  # plain re-weighting, or the secant step on g(I) = F(I) - I
            if I_prev is not None and g != g_prev:
                sec = -g * (I - I_prev) / (g - g_prev)
                if sec * g > 0 and abs(sec) <= FIT_MAX_EXTRAPOLATION * abs(g):
                    step = sec
            I_prev, g_prev = I, g
            I += step
        if not ok:
            flags[i] |= Flag.PROFILE_FAILED
            continue
        flags[i] |= Flag.PROFILE_FITTED
        out["I_prf"][i] = I
        n_eff = sum_pv / den
        v = np.maximum(bg + max(I, 0.0) * pu, VARIANCE_FLOOR)
        chi2 = float((((cu - bg - I * pu) ** 2) / v).sum())
        mismatch = chi2 / (len(pu) - 1) if len(pu) > 1 else 1.0
        out["sigma_prf"][i] = math.sqrt(max(mismatch, 1.0) / den + n_eff * n_eff * max(bg, 0.0) / nb)
    return out
