// Per-pixel work of the azimuthal integration: the only implementation, shared by the CPU loops
// (azint_cpu.cpp) and the CUDA kernels (azint_cuda.cu). See docs/azint.md.
#pragma once
#include <cmath>
#include <cstdint>

#include "azint/azint.hpp"
#include "core/geometry.hpp"
#include "core/hd.hpp"

namespace jfjoch::azint_impl {

constexpr double kTwoPi = 6.283185307179586476925286766559;

/// Plain (device-copyable) form of AzintSettings for the per-pixel map.
struct MapParams {
    double q_min;     ///< 1/A, with 2 pi
    double inv_width; ///< bins per 1/A
    int32_t n_bins;
    bool solid_angle;
    bool polarization;
    double polarization_fraction;
};

inline MapParams map_params(const AzintSettings& s) {
    return {s.q_min,        double(s.n_bins) / (s.q_max - s.q_min),
            s.n_bins,       s.solid_angle,
            s.polarization, s.polarization_fraction};
}

/// q = 2 pi |s| (1/A) at the centre of pixel (x, y).
JFJOCH_HD double pixel_q(const DetectorGeometry& g, double x, double y) {
    return kTwoPi * norm(pixel_to_recip(g, x, y));
}

/// Bin index and correction weight of pixel (x, y): bin = floor((q - q_min) * inv_width) when that lies in
/// [0, n_bins) and the pixel is not masked, else -1; weight = 1 / (solid angle * polarisation) (0 when bin <
/// 0).
JFJOCH_HD void pixel_map(const DetectorGeometry& g, const MapParams& p, double x, double y, bool masked,
                         int32_t& bin, float& weight) {
    bin = -1;
    weight = 0.0f;
    if (masked)
        return;
    const double t = (pixel_q(g, x, y) - p.q_min) * p.inv_width;
    if (!(t >= 0.0) || !(t < double(p.n_bins)))
        return;
    double c = 1.0;
    if (p.solid_angle)
        c *= solid_angle_factor(g, x, y);
    if (p.polarization)
        c *= polarization_factor(g, x, y, p.polarization_fraction);
    if (!(c > 0.0))
        return;
    int32_t b = int32_t(t);
    bin = b < p.n_bins ? b : p.n_bins - 1;
    weight = float(1.0 / c);
}

/// Saturation threshold in the image's own type: a value v is saturated when v >= threshold.
/// saturation <= 0 or not finite: no saturation test.
inline int64_t saturation_threshold(double saturation, const int32_t*) {
    if (!(saturation > 0.0) || !std::isfinite(saturation) || saturation > 2147483647.0)
        return INT64_MAX;
    return int64_t(std::ceil(saturation));
}
inline float saturation_threshold(double saturation, const float*) {
    if (!(saturation > 0.0) || !std::isfinite(saturation))
        return INFINITY;
    return float(saturation);
}

/// Corrected value of one pixel; false when the pixel does not count (not binned, error, saturated).
JFJOCH_HD bool pixel_value(int32_t v, int32_t bin, float weight, int64_t sat_threshold, double& out) {
    if (bin < 0 || v == INT32_MIN || int64_t(v) >= sat_threshold)
        return false;
    out = double(v) * double(weight);
    return true;
}
JFJOCH_HD bool pixel_value(float v, int32_t bin, float weight, float sat_threshold, double& out) {
    if (bin < 0 || !(v < sat_threshold)) // NaN (error) fails the comparison
        return false;
    out = double(v) * double(weight);
    return true;
}

} // namespace jfjoch::azint_impl
