// Per-pixel work of the frame pass: the only implementation, shared by the CPU sweep (frame_cpu.cpp) and
// the CUDA kernels (frame_cuda.cu). The tests that decide anything are the spot finder's and the
// integrator's own (spots_impl.hpp, azint_impl.hpp); this file adds the forms the fused sweep needs.
#pragma once
#include <cstdint>

#include "azint/azint_impl.hpp"
#include "core/hd.hpp"
#include "frame/frame.hpp"
#include "spots/spots_impl.hpp"

namespace jfjoch::frame_impl {

/// A stored pixel as int32, by the reader's rule (nxmx.to_int32, docs/io.md).
JFJOCH_HD int32_t stored_to_int32(int8_t v) {
    return v == INT8_MIN ? INT32_MIN : int32_t(v);
}
JFJOCH_HD int32_t stored_to_int32(int16_t v) {
    return v == INT16_MIN ? INT32_MIN : int32_t(v);
}
JFJOCH_HD int32_t stored_to_int32(int32_t v) {
    return v;
}
JFJOCH_HD int32_t stored_to_int32(uint8_t v) {
    return v == UINT8_MAX ? INT32_MIN : int32_t(v);
}
JFJOCH_HD int32_t stored_to_int32(uint16_t v) {
    return v == UINT16_MAX ? INT32_MIN : int32_t(v);
}
JFJOCH_HD int32_t stored_to_int32(uint32_t v) {
    return v == UINT32_MAX ? INT32_MIN : (v > uint32_t(INT32_MAX) ? INT32_MAX : int32_t(v));
}

/// Spot-finder classification of an unmasked pixel as the window sums see it: vs = v for a valid pixel
/// (else 0), ok = 1 for a valid pixel (else 0); err / sat flag the error and saturated pixels
/// (spots_impl::classify_pixel with flags 0, written without branches).
JFJOCH_HD void spot_valid(int32_t v, int32_t sat_eff, int32_t& vs, int32_t& ok, int32_t& err, int32_t& sat) {
    err = v <= -kSpotMaxValue; // includes INT32_MIN
    sat = !err & (v >= sat_eff);
    ok = !err & !sat;
    vs = ok ? v : 0;
}

/// The integrator's saturation threshold (azint_impl::saturation_threshold) as the largest int32 value
/// that is NOT saturated: a value v counts when v != INT32_MIN and v <= this.
inline int32_t azint_max_value(double saturation) {
    const int64_t t = azint_impl::saturation_threshold(saturation, static_cast<const int32_t*>(nullptr));
    return t > int64_t(INT32_MAX) ? INT32_MAX : int32_t(t - 1);
}

/// Corrected value of an integrated pixel (weight w, 0 when the pixel is not integrated): v * w, and
/// ok = 0 when the value does not count (error value or saturated; azint_impl::pixel_value).
JFJOCH_HD double azint_term(int32_t v, float w, int32_t max_value, int32_t& ok) {
    ok = (v != INT32_MIN) & (v <= max_value);
    return double(ok ? v : 0) * double(w); // weights are finite: 0 * w = +0
}

/// Window sums of the spot finder from running column sums (c1, c2, cn: sums of value, value^2 and valid
/// count over the rows of the window, per column): columns [x0, x1); c2 may be null (sum2 left alone).
/// Unsigned wrap-around arithmetic, exact as spots_impl::sat_window whenever the true sums fit (they do:
/// |v| < 2^22, <= 441 pixels).
JFJOCH_HD void column_window_sums(const uint32_t* c1, const uint64_t* c2, const uint32_t* cn, int64_t x0,
                                  int64_t x1, int64_t& sum, int64_t& sum2, int64_t& n) {
    uint32_t s1 = 0, sn = 0;
    for (int64_t x = x0; x < x1; ++x) {
        s1 += c1[x];
        sn += cn[x];
    }
    sum = int32_t(s1);
    n = int32_t(sn);
    if (c2 != nullptr) {
        uint64_t s2 = 0;
        for (int64_t x = x0; x < x1; ++x)
            s2 += c2[x];
        sum2 = int64_t(s2);
    }
}

/// Index of the run that holds column x, starting the search at run k of the same row (runs in
/// increasing x; `ends` holds each run's exclusive end).
JFJOCH_HD int64_t run_at(const int32_t* ends, int64_t k, int64_t x) {
    while (ends[k] <= x)
        ++k;
    return k;
}

} // namespace jfjoch::frame_impl
