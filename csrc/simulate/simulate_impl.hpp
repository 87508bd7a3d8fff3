// Per-item work of the simulator, shared by the CPU loops and the CUDA kernels (JFJOCH_HD).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/hd.hpp"
#include "simulate/simulate.hpp"

namespace jfjoch::sim_detail {

/// SplitMix64 finaliser: a bijective 64-bit mix.
JFJOCH_HD uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// Key of the random stream of one frame (computed once per frame).
JFJOCH_HD uint64_t frame_key(const SimFrameSettings& s) {
    return mix64(s.seed ^ 0x6A09E667F3BCC909ull) ^ mix64(s.frame + 0x3C6EF372FE94F82Bull);
}

/// Counter-based uniform generator for one pixel of one frame.
struct PixelRng {
    uint64_t state;
    JFJOCH_HD PixelRng(uint64_t key, uint64_t pixel) : state(mix64(key ^ pixel)) {}
    /// Uniform in (0, 1) (never exactly 0 or 1).
    JFJOCH_HD double uniform() {
        state += 0x9E3779B97F4A7C15ull;
        return (double((mix64(state) >> 11)) + 0.5) * (1.0 / 9007199254740992.0);
    }
};

/// One term of the Poisson CDF: p_j = p_{j-1} * lam / j; counts the terms still below u.
JFJOCH_HD void cdf_step(float& p, float& F, int32_t& k, float lam, float inv_j, float u) {
    p *= lam * inv_j;
    F += p;
    k += u > F;
}

/// Poisson random number: inversion for lambda < 10, PTRS (Hoermann 1993, as numpy) above.
JFJOCH_HD int64_t poisson(double lam, PixelRng& rng) {
    if (!(lam > 0.0))
        return 0;
    if (lam < 10.0) {
        // CDF inversion in single precision: the CDF error (~1e-7) is far below any statistical use of
        // the counts. Should rounding keep F below u in the extreme tail (probability ~1e-7), the walk
        // stops once the terms are < 1e-12, i.e. deep in the tail (never beyond k = 64).
        // The first 9 CDF terms are compared without branches (data-dependent branches cost more
        // than the arithmetic for the typical background of ~1 photon); the tail loops.
        const float u = float(rng.uniform()) * 0.99999988f;
        const float l = float(lam);
        float p = expf(-l);
        float F = p;
        int32_t k = u > F;
        cdf_step(p, F, k, l, 1.0f, u);
        cdf_step(p, F, k, l, 1.0f / 2.0f, u);
        cdf_step(p, F, k, l, 1.0f / 3.0f, u);
        cdf_step(p, F, k, l, 1.0f / 4.0f, u);
        cdf_step(p, F, k, l, 1.0f / 5.0f, u);
        cdf_step(p, F, k, l, 1.0f / 6.0f, u);
        cdf_step(p, F, k, l, 1.0f / 7.0f, u);
        cdf_step(p, F, k, l, 1.0f / 8.0f, u);
        if (k < 9)
            return k;
        k = 8;
        while (u > F && p > 1e-12f && k < 64) {
            ++k;
            p *= l / float(k);
            F += p;
        }
        return k;
    }
    const double slam = sqrt(lam);
    const double loglam = log(lam);
    const double b = 0.931 + 2.53 * slam;
    const double a = -0.059 + 0.02483 * b;
    const double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    const double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (int iter = 0; iter < 1000; ++iter) {
        const double U = rng.uniform() - 0.5;
        const double V = rng.uniform();
        const double us = 0.5 - fabs(U);
        const double kd = floor((2.0 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= vr)
            return int64_t(kd);
        if (kd < 0.0 || (us < 0.013 && V > us))
            continue;
        if (log(V) + log(invalpha) - log(a / (us * us) + b) <= -lam + kd * loglam - lgamma(kd + 1.0))
            return int64_t(kd);
    }
    return int64_t(floor(lam + 0.5)); // not reached in practice
}

/// Final counts of one pixel from its expected photons.
JFJOCH_HD int32_t pixel_counts(float expected, uint8_t pixel_class, int64_t pixel, uint64_t key,
                               const SimFrameSettings& s) {
    if (pixel_class == SimPixelZero)
        return 0;
    if (pixel_class == SimPixelSaturate)
        return s.saturation;
    int64_t k;
    if (s.noise) {
        PixelRng rng(key, uint64_t(pixel));
        k = poisson(double(expected), rng);
    } else {
        k = expected > 0.0f ? int64_t(floor(double(expected) + 0.5)) : 0;
    }
    return k < int64_t(s.saturation) ? int32_t(k) : s.saturation;
}

/// Box half-width used for spots.
JFJOCH_HD int32_t spot_radius(const SimFrameSettings& s) {
    if (s.spot_radius_px >= 0)
        return s.spot_radius_px;
    const int32_t r = int32_t(ceil(4.0 * s.psf_sigma_px));
    return r < 1 ? 1 : r;
}

/// Fraction of a 1-D Gaussian (centre c, k = 1 / (sqrt(2) sigma)) falling in pixel p ([p - 0.5, p + 0.5]).
JFJOCH_HD double pixel_fraction(int64_t p, double c, double k) {
    return 0.5 * (erf((double(p) + 0.5 - c) * k) - erf((double(p) - 0.5 - c) * k));
}

/// Centre pixel of a spot (nearest pixel to x).
JFJOCH_HD int64_t centre_pixel(double x) {
    return int64_t(floor(x + 0.5));
}

} // namespace jfjoch::sim_detail
