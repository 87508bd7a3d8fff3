// Per-pixel and per-spot work of the spot finder: the only implementation, shared by the CPU loops
// (spots_cpu.cpp) and the CUDA kernels (spots_cuda.cu). See docs/spots.md for the algorithm.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/geometry.hpp"
#include "core/hd.hpp"
#include "spots/spots.hpp"

namespace jfjoch::spots_impl {

/// What a pixel is, before any spot test.
enum PixelKind : uint8_t {
    kValid = 0,     ///< usable value: enters the window statistics
    kMasked = 1,    ///< flagged invalid by the mask: ignored (not counted anywhere)
    kError = 2,     ///< INT32_MIN (or below -kSpotMaxValue): counted as error, ignored otherwise
    kSaturated = 3, ///< value >= saturation: counted, excluded from the statistics, may join a spot
};

/// Saturation actually used: the detector's, but never above kSpotMaxValue (keeps the sums exact).
JFJOCH_HD int32_t effective_saturation(int32_t saturation) {
    return saturation < kSpotMaxValue ? saturation : kSpotMaxValue;
}

/// Classify one pixel from its value, its per-experiment flags and the effective saturation.
JFJOCH_HD uint8_t classify_pixel(int32_t v, uint8_t flags, int32_t sat_eff) {
    if (flags & kSpotPixelInvalid)
        return kMasked;
    if (v == INT32_MIN || v <= -kSpotMaxValue)
        return kError;
    if (v >= sat_eff)
        return kSaturated;
    return kValid;
}

/// A pixel is worth the window test when it is valid, inside the resolution range and >= the threshold.
JFJOCH_HD bool is_candidate(int32_t v, uint8_t kind, uint8_t flags, int32_t photon_threshold) {
    return kind == kValid && !(flags & kSpotPixelOutOfRange) && v >= photon_threshold;
}

/// The strong-pixel test. `sum`, `sum2` and `n` are the sums of value, value^2 and the number of valid
/// pixels over the whole (2w+1)^2 window INCLUDING the (valid) centre pixel; the centre is removed here.
/// With m = sum/n and var = sum2/n - m^2 (population variance) of the n neighbours the pixel is strong when
///     v > m   and   (v - m)^2 > sigma^2 * var,
/// evaluated exactly as  dn = n*v - sum > 0  and  dn^2 > sigma^2 * (n*sum2 - sum^2)  (both sides times n^2),
/// with integer sums (|v| < 2^22, n < 2^9: no overflow) and one double comparison. Needs n >= 2.
/// (The threshold test v >= photon_threshold is is_candidate().)
JFJOCH_HD bool strong_pixel_test(int32_t v, int64_t sum, int64_t sum2, int64_t n, double sigma2) {
    sum -= v;
    sum2 -= int64_t(v) * v;
    n -= 1;
    if (n < 2)
        return false;
    const int64_t dn = n * v - sum;
    if (dn <= 0)
        return false;
    const int64_t var_n2 = n * sum2 - sum * sum; // >= 0 (Cauchy-Schwarz), exact
    const double lhs = double(dn) * double(dn);
    const double rhs = sigma2 * double(var_n2);
    return lhs > rhs;
}

/// Window sum of a summed-area table stored as two rows: row_hi = S[y1], row_lo = S[y0], where
/// S[r][c] = sum over rows < r and columns < c. Columns [x0, x1). Unsigned (wrap-around) arithmetic:
/// the difference is exact whenever the true window sum fits the type.
template <typename T> JFJOCH_HD T sat_window(const T* row_lo, const T* row_hi, int64_t x0, int64_t x1) {
    return T(T(row_hi[x1] - row_hi[x0]) - T(row_lo[x1] - row_lo[x0]));
}

/// Direct window sums (no table): used by the GPU kernel, where one thread per pixel reads its window.
/// Same sums as the summed-area table, over the window clipped to the image.
JFJOCH_HD void direct_window_sums(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny,
                                  int64_t x, int64_t y, int32_t w, int32_t sat_eff, int64_t& sum,
                                  int64_t& sum2, int64_t& n) {
    const int64_t y0 = y - w < 0 ? 0 : y - w, y1 = y + w + 1 > ny ? ny : y + w + 1;
    const int64_t x0 = x - w < 0 ? 0 : x - w, x1 = x + w + 1 > nx ? nx : x + w + 1;
    sum = 0;
    sum2 = 0;
    n = 0;
    for (int64_t yy = y0; yy < y1; ++yy)
        for (int64_t xx = x0; xx < x1; ++xx) {
            const int64_t i = yy * nx + xx;
            const int32_t v = image[i];
            if (classify_pixel(v, flags[i], sat_eff) == kValid) {
                sum += v;
                sum2 += int64_t(v) * v;
                n += 1;
            }
        }
}

/// Background of a strong pixel from the window sums of its (2w+1)^2 window INCLUDING the pixel itself (as
/// strong_pixel_test gets them): mean and population variance of the n_bg other valid pixels. n_bg < 2
/// leaves mean = var = 0.
JFJOCH_HD void pixel_background(int32_t v, int64_t sum, int64_t sum2, int64_t n, double& mean, double& var,
                                int64_t& n_bg) {
    sum -= v;
    sum2 -= int64_t(v) * v;
    n_bg = n - 1;
    mean = 0.0;
    var = 0.0;
    if (n_bg < 2)
        return;
    mean = double(sum) / double(n_bg);
    // exact integers, then one division
    var = double(n_bg * sum2 - sum * sum) / (double(n_bg) * double(n_bg));
}

/// Per-spot sums of the significance test, accumulated over the spot's strong pixels (spot_isigma_add):
///     I = sum (v - m),   var(I) = sum max(v - m, 0) + sum var + N * sum var / n_bg
/// with m, var, n_bg the background of each pixel's window (pixel_background) and N the spot's pixel
/// count: Poisson variance of the signal, the background's own variance, and the error of the N
/// background estimates (each from n_bg pixels). For Poisson counts var ~ m, so var(I) ~ sum v.
struct SpotIsigmaTerms {
    double signal = 0.0;      ///< sum (v - m), photons
    double signal_var = 0.0;  ///< sum max(v - m, 0)
    double bg_var = 0.0;      ///< sum var
    double bg_mean_var = 0.0; ///< sum var / n_bg
    bool saturated = false;   ///< the spot has a saturated pixel: significant whatever the sums say
};

/// Add one strong pixel (value v, its window background mean, var and n_bg) to a spot's sums.
JFJOCH_HD void spot_isigma_add(SpotIsigmaTerms& t, int32_t v, double mean, double var, int64_t n_bg) {
    const double s = double(v) - mean;
    t.signal += s;
    t.signal_var += s > 0 ? s : 0.0;
    t.bg_var += var;
    t.bg_mean_var += n_bg > 0 ? var / double(n_bg) : var;
}

/// I / sigma(I) of a spot of n_pixels pixels (INFINITY when it holds a saturated pixel or sigma is 0 with
/// a positive signal).
JFJOCH_HD double spot_isigma(const SpotIsigmaTerms& t, int64_t n_pixels) {
    if (t.saturated)
        return INFINITY;
    const double var = t.signal_var + t.bg_var + double(n_pixels) * t.bg_mean_var;
    if (!(var > 0))
        return t.signal > 0 ? INFINITY : 0.0;
    return t.signal / std::sqrt(var);
}

/// The spot-level significance test: I / sigma(I) >= min_isigma (min_isigma <= 0: every spot passes).
JFJOCH_HD bool spot_significant(const SpotIsigmaTerms& t, int64_t n_pixels, double min_isigma) {
    return !(min_isigma > 0) || spot_isigma(t, n_pixels) >= min_isigma;
}

/// Per-experiment flag of one pixel: mask, and resolution d (Angstrom) against [high, low] (<= 0: none).
JFJOCH_HD uint8_t pixel_flag(bool masked, double d, double high_A, double low_A) {
    uint8_t f = masked ? uint8_t(kSpotPixelInvalid) : uint8_t(0);
    if ((high_A > 0 && d < high_A) || (low_A > 0 && d > low_A))
        f |= kSpotPixelOutOfRange;
    return f;
}

/// Whether a spot at resolution d (Angstrom) lies within width_q (1/Angstrom, q = 2 pi / d) of one of the
/// strong hexagonal ice (Ih) rings.
JFJOCH_HD bool ice_ring_flag(double d, double width_q) {
    const double ice_d[10] = {3.897, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918, 1.883, 1.721};
    if (!(width_q > 0) || !(d > 0) || !(d < INFINITY))
        return false;
    const double two_pi = 6.283185307179586;
    const double q = two_pi / d;
    for (int i = 0; i < 10; ++i)
        if (std::fabs(q - two_pi / ice_d[i]) < width_q)
            return true;
    return false;
}

/// Whether a spot at resolution d passes the resolution limits (<= 0: no limit).
JFJOCH_HD bool resolution_ok(double d, double high_A, double low_A) {
    return !((high_A > 0 && d < high_A) || (low_A > 0 && d > low_A));
}

} // namespace jfjoch::spots_impl
