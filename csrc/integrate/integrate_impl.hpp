// Per-reflection work of the Bragg integration: the only implementation, shared by the CPU loops
// (integrate_cpu.cpp) and the CUDA kernels (integrate_cuda.cu). Equations: docs/integration_kernel.md.
// Units: pixels for positions and radii, photons for counts and intensities, photons/pixel for backgrounds.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/hd.hpp"
#include "integrate/integrate.hpp"

namespace jfjoch::integrate_impl {

/// The clip threshold is mean + k sqrt(max(mean, kBgClipFloor)): below one photon per pixel the Poisson
/// spread of a single photon sets the scale, so isolated single photons are never clipped.
constexpr double kBgClipFloor = 1.0;
/// Profile fit: at most this many re-weighting iterations; converged when I changes by at most
/// kFitTolerance times the fit's sigma; the variance model is floored at kVarianceFloor photons.
constexpr int32_t kFitMaxIterations = 20;
constexpr double kFitTolerance = 1e-3;
constexpr double kVarianceFloor = 1e-6;
/// A secant step of the fit may be at most this many times the plain re-weighting step.
constexpr double kFitMaxExtrapolation = 100.0;

/// One image as the per-reflection functions see it.
struct ImageView {
    const int32_t* image; ///< ny * nx counts, row-major; INT32_MIN = error
    const uint8_t* mask;  ///< ny * nx, nonzero = invalid; may be null
    int64_t nx, ny;
    int64_t sat; ///< value >= sat is saturated
};

/// The settings the per-reflection functions use (plain, device-copyable).
struct Params {
    double r1, r2, r3;  ///< pixels
    double clip_sigma;  ///< bg_clip_sigma
    int32_t min_bg;     ///< min_background_pixels
    double min_isigma;  ///< profile_min_isigma
    int32_t half;       ///< profile grid half-size H (cells)
    int32_t oversample; ///< cells per pixel
};

inline Params make_params(const IntegrationSettings& s) {
    return {s.r1,
            s.r2,
            s.r3,
            s.bg_clip_sigma,
            s.min_background_pixels,
            s.profile_min_isigma,
            integration_profile_half(s.r1, s.oversampling),
            s.oversampling};
}

JFJOCH_HD bool is_finite(double v) {
    return fabs(v) <= 1.7976931348623157e308;
}

/// Squared distance without fused multiply-add (so the disc/annulus tests are the same on CPU and GPU).
JFJOCH_HD double sq_dist(double dx, double dy) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(__dmul_rn(dx, dx), __dmul_rn(dy, dy));
#else
    return dx * dx + dy * dy;
#endif
}

/// Whether the prediction at (x, y) is looked at all: its box of radius r3 + 1 touches the detector.
JFJOCH_HD bool in_range(double x, double y, int64_t nx, int64_t ny, double r3) {
    return x > -r3 - 1.0 && x < double(nx) + r3 && y > -r3 - 1.0 && y < double(ny) + r3;
}

/// Pixel states: 0 valid, 1 invalid (masked or error), 2 saturated.
JFJOCH_HD int pixel_state(const ImageView& im, int64_t idx) {
    const int32_t v = im.image[idx];
    if (v == INT32_MIN || (im.mask != nullptr && im.mask[idx] != 0))
        return 1;
    return int64_t(v) >= im.sat ? 2 : 0;
}

/// Neighbours whose disc reaches row `row`: those with (row - y_j)^2 <= r1^2 (any pixel of the row within r1
/// of j passes this, since d^2 >= dy^2 also in floating point). Up to kRowNeighbours are copied into `out`;
/// returns their number, or -1 when there are more (then the caller tests the full list).
constexpr int32_t kRowNeighbours = 16;
JFJOCH_HD int32_t row_neighbours(double row, const double* ys, const int32_t* nbr, int64_t n_nbr, double r1sq,
                                 int32_t* out) {
    int32_t m = 0;
    for (int64_t k = 0; k < n_nbr; ++k) {
        const double dy = row - ys[nbr[k]];
        if (sq_dist(0.0, dy) <= r1sq) {
            if (m == kRowNeighbours)
                return -1;
            out[m++] = nbr[k];
        }
    }
    return m;
}

/// Whether pixel (col, row) lies within r1 of any listed neighbour (j in nbr[0..n_nbr)).
JFJOCH_HD bool in_other_disc(double col, double row, const double* xs, const double* ys, const int32_t* nbr,
                             int64_t n_nbr, double r1sq) {
    for (int64_t k = 0; k < n_nbr; ++k) {
        const int32_t j = nbr[k];
        if (sq_dist(col - xs[j], row - ys[j]) <= r1sq)
            return true;
    }
    return false;
}

/// Annulus values 0..kClipBins-1 are histogrammed in pass 1 so that the clip pass needs no second walk over
/// the annulus unless the threshold is >= kClipBins - 1 photons (background above ~45 photons/pixel).
constexpr int32_t kClipBins = 64;

/// Columns [lo, hi] of row offset dy (pixels) whose centre lies within sqrt(rsq) of x: exactly the columns
/// with sq_dist(col - x, dy) <= rsq (a contiguous run, as sq_dist grows with |col - x| also when rounded).
/// Estimated with a square root, then settled with the exact test. Empty: lo > hi.
JFJOCH_HD void row_span(double x, double dy, double rsq, int64_t& lo, int64_t& hi) {
    const double dy2 = sq_dist(0.0, dy);
    if (dy2 > rsq) {
        lo = 1;
        hi = 0;
        return;
    }
    const double h = sqrt(rsq - dy2);
    lo = int64_t(ceil(x - h));
    hi = int64_t(floor(x + h));
    while (sq_dist(double(lo - 1) - x, dy) <= rsq)
        --lo;
    while (lo <= hi && sq_dist(double(lo) - x, dy) > rsq)
        ++lo;
    while (sq_dist(double(hi + 1) - x, dy) <= rsq)
        ++hi;
    while (hi >= lo && sq_dist(double(hi) - x, dy) > rsq)
        --hi;
}

/// Result of the summation of one reflection.
struct SumResult {
    double I;       ///< sum over the disc of (c - bg), photons (NaN when dropped)
    double sigma;   ///< photons (NaN when dropped)
    double bg;      ///< mean of the clipped annulus, photons/pixel (NaN without background pixels)
    int32_t n_disc; ///< disc pixels on the detector
    int32_t n_bg;   ///< annulus pixels used for bg
    uint32_t flags; ///< kIntegrateSummed or the reasons for dropping, plus SATURATED / OVERLAP
};

/// Running sums of the background annulus of one reflection.
struct AnnulusSums {
    int64_t sum = 0, max = INT64_MIN, neg_sum = 0;
    int32_t n = 0, n_neg = 0;
};

/// Walk the annulus pixels of row `row` in columns [a, b] (already inside the detector): valid, not
/// saturated, not within r1 of a neighbour (rn[0..n_rn)) and, when thr is given (pass 2), <= thr.
JFJOCH_HD void annulus_run(const ImageView& im, int64_t row, int64_t a, int64_t b, const double* xs,
                           const double* ys, const int32_t* rn, int64_t n_rn, double r1sq, bool pass2,
                           double thr, AnnulusSums& acc, int32_t* hist) {
    for (int64_t col = a; col <= b; ++col) {
        const int64_t idx = row * im.nx + col;
        const int64_t c = im.image[idx];
        if (pass2 && double(c) > thr)
            continue;
        if (pixel_state(im, idx) != 0)
            continue;
        if (n_rn > 0 && in_other_disc(double(col), double(row), xs, ys, rn, n_rn, r1sq))
            continue;
        acc.sum += c;
        ++acc.n;
        if (pass2)
            continue;
        acc.max = c > acc.max ? c : acc.max;
        if (c < 0) {
            acc.neg_sum += c;
            ++acc.n_neg;
        } else if (c < kClipBins) {
            ++hist[c];
        }
    }
}

/// Walk the background annulus (r2 < d <= r3, on the detector) of the prediction at (x, y) row by row.
JFJOCH_HD void annulus_walk(const ImageView& im, const Params& p, double x, double y, const double* xs,
                            const double* ys, const int32_t* nbr, int64_t n_nbr, bool pass2, double thr,
                            AnnulusSums& acc, int32_t* hist) {
    const double r1sq = p.r1 * p.r1, r2sq = p.r2 * p.r2, r3sq = p.r3 * p.r3;
    int32_t row_nbr[kRowNeighbours];
    const int64_t w0 = int64_t(floor(y - p.r3)), w1 = int64_t(ceil(y + p.r3));
    for (int64_t row = w0 < 0 ? 0 : w0; row <= w1 && row < im.ny; ++row) {
        const double dy = double(row) - y;
        int64_t a3, b3, a2, b2;
        row_span(x, dy, r3sq, a3, b3);
        if (a3 > b3)
            continue;
        row_span(x, dy, r2sq, a2, b2);
        const int32_t m = row_neighbours(double(row), ys, nbr, n_nbr, r1sq, row_nbr);
        const int32_t* rn = m >= 0 ? row_nbr : nbr;
        const int64_t n_rn = m >= 0 ? m : n_nbr;
        // the annulus of this row: [a3, b3] minus [a2, b2], clipped to the detector
        int64_t la = a3, lb = a2 > b2 ? b3 : a2 - 1;
        la = la < 0 ? 0 : la;
        lb = lb >= im.nx ? im.nx - 1 : lb;
        annulus_run(im, row, la, lb, xs, ys, rn, n_rn, r1sq, pass2, thr, acc, hist);
        if (a2 <= b2) {
            int64_t ra = b2 + 1 < 0 ? 0 : b2 + 1, rb = b3 >= im.nx ? im.nx - 1 : b3;
            annulus_run(im, row, ra, rb, xs, ys, rn, n_rn, r1sq, pass2, thr, acc, hist);
        }
    }
}

/// Summation of reflection i at (xs[i], ys[i]) with neighbours nbr[0..n_nbr) (indices into xs, ys).
///  background: annulus pixels (r2 < d <= r3) on the detector, valid, not saturated and not within r1 of a
///    neighbour; mean m; one clip pass drops values > m + clip_sigma sqrt(max(m, 1)); bg = mean of the rest.
///  I = sum_disc (c - bg); sigma^2 = sum_disc max(c, 0) + n_disc^2 max(bg, 0) / n_bg.
JFJOCH_HD SumResult sum_one(const ImageView& im, const Params& p, const double* xs, const double* ys,
                            int64_t i, const int32_t* nbr, int64_t n_nbr) {
    SumResult r{NAN, NAN, NAN, 0, 0, 0u};
    const double x = xs[i], y = ys[i];
    if (!in_range(x, y, im.nx, im.ny, p.r3)) { // also catches NaN
        r.flags = kIntegrateEdge;
        return r;
    }
    const double r1sq = p.r1 * p.r1;
    uint32_t flags = 0;
    for (int64_t k = 0; k < n_nbr; ++k) {
        const int32_t j = nbr[k];
        if (sq_dist(xs[j] - x, ys[j] - y) < 4.0 * r1sq)
            flags |= kIntegrateOverlap;
    }
    // the disc
    int64_t disc_sum = 0, disc_pos = 0;
    int32_t n_disc = 0;
    const int64_t d0 = int64_t(floor(y - p.r1)), d1 = int64_t(ceil(y + p.r1));
    for (int64_t row = d0; row <= d1; ++row) {
        int64_t a, b;
        row_span(x, double(row) - y, r1sq, a, b);
        if (a > b)
            continue;
        if (row < 0 || row >= im.ny || a < 0 || b >= im.nx) {
            flags |= kIntegrateEdge;
            if (row < 0 || row >= im.ny)
                continue;
            a = a < 0 ? 0 : a;
            b = b >= im.nx ? im.nx - 1 : b;
        }
        for (int64_t col = a; col <= b; ++col) {
            ++n_disc;
            const int64_t idx = row * im.nx + col;
            const int st = pixel_state(im, idx);
            if (st == 1) {
                flags |= kIntegrateMasked;
                continue;
            }
            if (st == 2)
                flags |= kIntegrateSaturated;
            const int64_t c = im.image[idx];
            disc_sum += c;
            disc_pos += c > 0 ? c : 0;
        }
    }
    // the background: pass 1 (sum, maximum, histogram), then the clip
    int32_t hist[kClipBins];
    for (int32_t b = 0; b < kClipBins; ++b)
        hist[b] = 0;
    AnnulusSums acc;
    annulus_walk(im, p, x, y, xs, ys, nbr, n_nbr, false, 0.0, acc, hist);
    int64_t bg_sum = acc.sum;
    int32_t n_bg = acc.n;
    if (n_bg > 0) {
        const double mean = double(bg_sum) / double(n_bg);
        const double thr = mean + p.clip_sigma * sqrt(mean > kBgClipFloor ? mean : kBgClipFloor);
        if (double(acc.max) > thr && thr >= 0.0 && thr < double(kClipBins - 1)) {
            // kept = values <= thr: all negative ones and the histogram up to floor(thr); larger ones are
            // dropped
            const int32_t top = int32_t(floor(thr));
            bg_sum = acc.neg_sum;
            n_bg = acc.n_neg;
            for (int32_t v = 0; v <= top; ++v) {
                bg_sum += int64_t(v) * hist[v];
                n_bg += hist[v];
            }
        } else if (double(acc.max) > thr) { // pass 2 (rare: high background): walk the annulus again
            AnnulusSums acc2;
            annulus_walk(im, p, x, y, xs, ys, nbr, n_nbr, true, thr, acc2, hist);
            bg_sum = acc2.sum;
            n_bg = acc2.n;
        }
        if (n_bg > 0)
            r.bg = double(bg_sum) / double(n_bg);
    }
    if (n_bg < p.min_bg)
        flags |= kIntegrateFewBackground;
    r.n_disc = n_disc;
    r.n_bg = n_bg;
    if (!(flags & (kIntegrateEdge | kIntegrateMasked | kIntegrateFewBackground))) {
        flags |= kIntegrateSummed;
        r.I = double(disc_sum) - double(n_disc) * r.bg;
        const double bgv = r.bg > 0.0 ? r.bg : 0.0;
        r.sigma = sqrt(double(disc_pos) + double(n_disc) * double(n_disc) * bgv / double(n_bg));
    }
    r.flags = flags;
    return r;
}

/// Whether a summed reflection is a profile reference: SUMMED, not SATURATED or OVERLAP, sigma > 0 and
/// I >= min_isigma * sigma.
JFJOCH_HD bool is_reference(uint32_t flags, double I, double sigma, double min_isigma) {
    return (flags & kIntegrateSummed) && !(flags & (kIntegrateSaturated | kIntegrateOverlap)) &&
           sigma > 0.0 && I >= min_isigma * sigma;
}

/// Add one reference's disc pixels to its group's cell sums: cell_sum += (c - bg) / I, cell_count += 1.
/// The cell of pixel (col, row) is u = H + round((c0 - x) O) + (col - c0) O (and likewise v), with c0 the
/// first column of the disc's box and round(t) = floor(t + 0.5): the sub-pixel phase is rounded once per
/// reflection, so distinct pixels always land in distinct cells. Pixels are visited in raster order; lane and
/// n_lanes split them between threads (CPU: 0, 1), each cell being touched by one lane only.
JFJOCH_HD void accumulate_one(const ImageView& im, const Params& p, double x, double y, double I, double bg,
                              double* cell_sum, int32_t* cell_count, int32_t lane, int32_t n_lanes) {
    const int32_t O = p.oversample, H = p.half, G = 2 * p.half + 1;
    const double r1sq = p.r1 * p.r1;
    const int64_t c0 = int64_t(floor(x - p.r1)), c1 = int64_t(ceil(x + p.r1));
    const int64_t w0 = int64_t(floor(y - p.r1)), w1 = int64_t(ceil(y + p.r1));
    const int64_t u0 = int64_t(floor((double(c0) - x) * O + 0.5)) + H;
    const int64_t v0 = int64_t(floor((double(w0) - y) * O + 0.5)) + H;
    const int64_t width = c1 - c0 + 1;
    // box pixel k = lane, lane + n_lanes, ... in raster order, stepped without divisions
    int64_t row = w0 + lane / width, col = c0 + lane % width;
    for (; row <= w1; col += n_lanes) {
        while (col > c1) {
            col -= width;
            ++row;
        }
        if (row > w1)
            break;
        if (sq_dist(double(col) - x, double(row) - y) > r1sq)
            continue;
        int64_t u = u0 + (col - c0) * O, v = v0 + (row - w0) * O;
        u = u < 0 ? 0 : (u >= G ? G - 1 : u); // cannot trigger (H covers the disc); defensive
        v = v < 0 ? 0 : (v >= G ? G - 1 : v);
        const int64_t cell = v * G + u;
        cell_sum[cell] += (double(im.image[row * im.nx + col]) - bg) / I;
        cell_count[cell] += 1;
    }
}

/// Finalize one profile from its cell sums and counts (G * G each; scratch: val, tmp of G * G doubles and
/// have, have_tmp of G * G bytes). val receives the profile: the count-weighted 3 x 3 binomial smoothing
/// val = sum_k w_k S_k / sum_k w_k N_k (w = (1 2 1) x (1 2 1)); cells still empty are filled with the mean of
/// their non-empty 8-neighbours, repeatedly (Jacobi passes, at most G; only cells within H + 1 cells of the
/// centre, the others are never read and stay 0). Values keep their sign: clamping the
/// noise of the tails at 0 would move ~1 % of the normalisation out of the fit aperture. Returns
/// sigma_p = sqrt(sum val |o|^2 / (2 sum val)) over the cells with |o| <= r1 (pixels); NaN unless both sums
/// are > 0.
JFJOCH_HD double finalize_profile(const double* sum, const int32_t* count, const Params& p, double* val,
                                  double* tmp, uint8_t* have, uint8_t* have_tmp) {
    const int32_t G = 2 * p.half + 1;
    const double k[3] = {1.0, 2.0, 1.0};
    for (int32_t v = 0; v < G; ++v)
        for (int32_t u = 0; u < G; ++u) {
            double ss = 0.0, cc = 0.0;
            for (int32_t dv = -1; dv <= 1; ++dv)
                for (int32_t du = -1; du <= 1; ++du) {
                    const int32_t vv = v + dv, uu = u + du;
                    if (vv < 0 || vv >= G || uu < 0 || uu >= G)
                        continue;
                    const double kk = k[dv + 1] * k[du + 1];
                    ss += kk * sum[vv * G + uu];
                    cc += kk * double(count[vv * G + uu]);
                }
            const bool h = cc > 0.0;
            val[v * G + u] = h ? ss / cc : 0.0;
            have[v * G + u] = h;
        }
    // Only cells within H + 1 cells of the centre are ever read (bilinear reads at offsets <= r1); the
    // corners beyond stay 0 instead of being filled.
    const int32_t reach_sq = (p.half + 1) * (p.half + 1);
    auto in_use = [&](int32_t u, int32_t v) {
        return (u - p.half) * (u - p.half) + (v - p.half) * (v - p.half) <= reach_sq;
    };
    for (int32_t pass = 0; pass < G; ++pass) {
        bool complete = true;
        for (int32_t v = 0; v < G; ++v)
            for (int32_t u = 0; u < G; ++u)
                complete = complete && (have[v * G + u] || !in_use(u, v));
        if (complete)
            break;
        for (int32_t v = 0; v < G; ++v)
            for (int32_t u = 0; u < G; ++u) {
                const int32_t c = v * G + u;
                tmp[c] = val[c];
                have_tmp[c] = have[c];
                if (have[c] || !in_use(u, v))
                    continue;
                double tot = 0.0;
                int32_t m = 0;
                for (int32_t dv = -1; dv <= 1; ++dv)
                    for (int32_t du = -1; du <= 1; ++du) {
                        const int32_t vv = v + dv, uu = u + du;
                        if (vv < 0 || vv >= G || uu < 0 || uu >= G || !have[vv * G + uu])
                            continue;
                        tot += val[vv * G + uu];
                        ++m;
                    }
                if (m > 0) {
                    tmp[c] = tot / double(m);
                    have_tmp[c] = 1;
                }
            }
        for (int32_t c = 0; c < G * G; ++c) {
            val[c] = tmp[c];
            have[c] = have_tmp[c];
        }
    }
    double w = 0.0, m2 = 0.0;
    const double r1sq = p.r1 * p.r1;
    for (int32_t v = 0; v < G; ++v)
        for (int32_t u = 0; u < G; ++u) {
            const double c = val[v * G + u];
            const double ox = double(u - p.half) / p.oversample, oy = double(v - p.half) / p.oversample;
            const double o2 = ox * ox + oy * oy;
            if (o2 <= r1sq) {
                w += c;
                m2 += c * o2;
            }
        }
    return (w > 0.0 && m2 > 0.0) ? sqrt(m2 / (2.0 * w)) : NAN;
}

/// Profile value at the offset (dx, dy) pixels: bilinear between the four surrounding cells.
JFJOCH_HD double profile_at(const double* prof, const Params& p, double dx, double dy) {
    const int32_t G = 2 * p.half + 1;
    const double fu = dx * p.oversample + p.half, fv = dy * p.oversample + p.half;
    int32_t u0 = int32_t(floor(fu)), v0 = int32_t(floor(fv));
    u0 = u0 < 0 ? 0 : (u0 > G - 2 ? G - 2 : u0); // cannot trigger inside the disc; defensive
    v0 = v0 < 0 ? 0 : (v0 > G - 2 ? G - 2 : v0);
    const double t = fu - u0, s = fv - v0;
    const double* a = prof + v0 * G + u0;
    const double val = (1.0 - s) * ((1.0 - t) * a[0] + t * a[1]) + s * ((1.0 - t) * a[G] + t * a[G + 1]);
    return val;
}

/// Whether a disc pixel (squared distance d2, offset (dcol, drow) from the nearest pixel) enters the fit:
/// within r_fit or in the 3 x 3 block around the nearest pixel, and not saturated (masked pixels never reach
/// a summed reflection).
JFJOCH_HD bool is_fit_pixel(const ImageView& im, double d2, double rfsq, int64_t dcol, int64_t drow,
                            int64_t idx) {
    const bool core = dcol >= -1 && dcol <= 1 && drow >= -1 && drow <= 1;
    return (d2 <= rfsq || core) && pixel_state(im, idx) == 0;
}

/// One pixel's terms of the re-weighted least squares (p normalised, c counts).
JFJOCH_HD void fit_terms(double pi, double c, double bg, double Ipos, double& num, double& den,
                         double& sum_pv) {
    double v = bg + Ipos * pi;
    v = v > kVarianceFloor ? v : kVarianceFloor;
    num += pi * (c - bg) / v;
    den += pi * pi / v;
    sum_pv += pi / v;
}

/// One pixel's term of the fit's chi^2: (c - bg - I p)^2 / v with v = max(bg + max(I, 0) p, floor).
JFJOCH_HD double chi2_term(double pi, double c, double bg, double I, double Ipos) {
    double v = bg + Ipos * pi;
    v = v > kVarianceFloor ? v : kVarianceFloor;
    const double r = c - bg - I * pi;
    return r * r / v;
}

/// Fit pixels kept in a per-thread buffer (more: the fit walks the disc each iteration instead).
constexpr int32_t kFitBuffer = 160;

/// Result of the profile fit of one reflection.
struct FitResult {
    double I;     ///< photons in the r1 disc (NaN unless ok)
    double sigma; ///< photons (NaN unless ok)
    bool ok;
};

/// The unbuffered walk of fit_one: calls visit(p_i, c_i) for each fit pixel of the disc around (x, y), p_i
/// the normalised profile value (max(profile_at, 0) / norm) and c_i the pixel's counts.
template <typename Visit>
JFJOCH_HD void visit_fit_pixels(const ImageView& im, const Params& p, const double* prof, double rfsq,
                                double x, double y, double norm, Visit& visit) {
    const double r1sq = p.r1 * p.r1;
    const int64_t c0 = int64_t(floor(x - p.r1)), c1 = int64_t(ceil(x + p.r1));
    const int64_t w0 = int64_t(floor(y - p.r1)), w1 = int64_t(ceil(y + p.r1));
    const int64_t xc = int64_t(floor(x + 0.5)), yc = int64_t(floor(y + 0.5));
    for (int64_t row = w0; row <= w1; ++row)
        for (int64_t col = c0; col <= c1; ++col) {
            const double dx = double(col) - x, dy = double(row) - y;
            const double d2 = sq_dist(dx, dy);
            const int64_t idx = row * im.nx + col;
            if (d2 > r1sq || !is_fit_pixel(im, d2, rfsq, col - xc, row - yc, idx))
                continue;
            const double pv = profile_at(prof, p, dx, dy);
            visit((pv > 0.0 ? pv : 0.0) / norm, double(im.image[idx]));
        }
}

/// Profile fit of one summed reflection (I_sum, bg, n_bg from sum_one) with profile `prof` (G * G) and fit
/// radius r_fit (pixels). p_i = max(profile_at(offset_i), 0) / sum over the whole disc of profile_at (the sum
/// keeps the signs, so tail noise does not bias the normalisation; a pixel with p <= 0 carries no information
/// and would make v vanish: it enters the fit with p = 0). Fit pixels: disc pixels with d <= r_fit or in the
/// 3 x 3 block around the nearest pixel, not saturated. Iteratively re-weighted least squares from I = I_sum:
/// v_i = max(bg + max(I, 0) p_i, kVarianceFloor), F(I) = sum p_i (c_i - bg) / v_i / sum p_i^2 / v_i;
/// converged when |F(I) - I| <= kFitTolerance / sqrt(sum p_i^2 / v_i) (then I = F(I)), else I moves to F(I)
/// or by the secant step on F(I) - I (see below). sigma^2 = m / sum(p_i^2 / v_i) + n_eff^2 max(bg, 0) / n_bg
/// with n_eff = sum(p_i / v_i) / sum(p_i^2 / v_i) and m = max(1, chi^2 / (n_fit - 1)), chi^2 =
/// sum (c_i - bg - I p_i)^2 / v_i at the solution: a spot the profile does not describe gets the larger error
/// its misfit shows.
JFJOCH_HD FitResult fit_one(const ImageView& im, const Params& p, const double* prof, double r_fit, double x,
                            double y, double I_sum, double bg, int32_t n_bg) {
    FitResult r{NAN, NAN, false};
    const double r1sq = p.r1 * p.r1, rfsq = r_fit * r_fit;
    const int64_t w0 = int64_t(floor(y - p.r1)), w1 = int64_t(ceil(y + p.r1));
    const int64_t xc = int64_t(floor(x + 0.5)), yc = int64_t(floor(y + 0.5));
    // One walk over the disc: the normalisation, and the fit pixels (profile value before normalisation,
    // counts) into a small buffer; when they do not fit, the iterations walk the disc again instead.
    double pbuf[kFitBuffer];
    int32_t cbuf[kFitBuffer];
    int32_t n_fit = 0;
    bool buffered = true;
    double norm = 0.0;
    for (int64_t row = w0; row <= w1; ++row) {
        const double dy = double(row) - y;
        int64_t a, b;
        row_span(x, dy, r1sq, a, b);
        for (int64_t col = a; col <= b; ++col) {
            const double dx = double(col) - x;
            const double pv = profile_at(prof, p, dx, dy);
            norm += pv;
            const int64_t idx = row * im.nx + col;
            if (!is_fit_pixel(im, sq_dist(dx, dy), rfsq, col - xc, row - yc, idx))
                continue;
            if (n_fit < kFitBuffer) {
                pbuf[n_fit] = pv > 0.0 ? pv : 0.0;
                cbuf[n_fit] = im.image[idx];
                ++n_fit;
            } else {
                buffered = false;
            }
        }
    }
    if (!(norm > 0.0))
        return r;
    for (int32_t k = 0; k < n_fit; ++k)
        pbuf[k] = pbuf[k] / norm;
    double I = I_sum, den = 0.0, sum_pv = 0.0, I_prev = 0.0, g_prev = 0.0;
    bool have_prev = false;
    for (int32_t it = 0; it < kFitMaxIterations; ++it) {
        const double Ipos = I > 0.0 ? I : 0.0;
        double num = 0.0;
        den = 0.0;
        sum_pv = 0.0;
        if (buffered) {
            for (int32_t k = 0; k < n_fit; ++k)
                fit_terms(pbuf[k], double(cbuf[k]), bg, Ipos, num, den, sum_pv);
        } else {
            auto add_fit_terms = [&](double pk, double c) { fit_terms(pk, c, bg, Ipos, num, den, sum_pv); };
            visit_fit_pixels(im, p, prof, rfsq, x, y, norm, add_fit_terms);
        }
        if (!(den > 0.0))
            return r;
        const double F = num / den;
        const double g = F - I;
        if (fabs(g) <= kFitTolerance * sqrt(1.0 / den)) {
            I = F;
            const double n_eff = sum_pv / den;
            const double bgv = bg > 0.0 ? bg : 0.0;
            // goodness of fit: a profile that does not describe this spot (chi^2 per degree of freedom > 1)
            // makes the Poisson variance of the fit too small; it is scaled up by that factor
            double chi2 = 0.0;
            int64_t n_used = 0;
            const double Iv = I > 0.0 ? I : 0.0;
            if (buffered) {
                for (int32_t k = 0; k < n_fit; ++k)
                    chi2 += chi2_term(pbuf[k], double(cbuf[k]), bg, I, Iv);
                n_used = n_fit;
            } else {
                auto add_chi2 = [&](double pk, double c) {
                    chi2 += chi2_term(pk, c, bg, I, Iv);
                    ++n_used;
                };
                visit_fit_pixels(im, p, prof, rfsq, x, y, norm, add_chi2);
            }
            const double mismatch = n_used > 1 ? chi2 / double(n_used - 1) : 1.0;
            r.I = I;
            r.sigma = sqrt((mismatch > 1.0 ? mismatch : 1.0) / den + n_eff * n_eff * bgv / double(n_bg));
            r.ok = true;
            return r;
        }
        // Next I: F(I), or the secant step on g(I) = F(I) - I when it points the same way and is not too
        // long. Near I = 0 with a low background plain re-weighting crawls (slope of F near 1) or overshoots
        // back and forth (slope ~ -0.85); the secant step converges in a few iterations in both cases.
        double step = g;
        if (have_prev && g != g_prev) {
            const double sec = -g * (I - I_prev) / (g - g_prev);
            if (sec * g > 0.0 && fabs(sec) <= kFitMaxExtrapolation * fabs(g))
                step = sec;
        }
        I_prev = I;
        g_prev = g;
        have_prev = true;
        I += step;
    }
    return r;
}

/// Profile stage of one reflection: sets PROFILE_REFERENCE / PROFILE_FITTED / PROFILE_FAILED in flags and
/// writes I_prf, sigma_prf (NaN unless fitted). Reflections that were not summed are left alone; prof == null
/// (the group has no profile) gives PROFILE_FAILED.
JFJOCH_HD void fit_reflection(const ImageView& im, const Params& p, const double* prof, double r_fit,
                              double x, double y, double I_sum, double sigma_sum, double bg, int32_t n_bg,
                              uint32_t& flags, double& I_prf, double& sigma_prf) {
    I_prf = NAN;
    sigma_prf = NAN;
    if (!(flags & kIntegrateSummed))
        return;
    if (prof == nullptr) {
        flags |= kIntegrateProfileFailed;
        return;
    }
    if (is_reference(flags, I_sum, sigma_sum, p.min_isigma))
        flags |= kIntegrateProfileReference;
    const FitResult f = fit_one(im, p, prof, r_fit, x, y, I_sum, bg, n_bg);
    if (!f.ok) {
        flags |= kIntegrateProfileFailed;
        return;
    }
    flags |= kIntegrateProfileFitted;
    I_prf = f.I;
    sigma_prf = f.sigma;
}

} // namespace jfjoch::integrate_impl
