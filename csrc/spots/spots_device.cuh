// Device-side glue of the spot finder's per-pixel work, shared by the spot-finder kernel (spots_cuda.cu)
// and the fused frame pass (frame_cuda.cu). The classification and the strong-pixel test themselves are
// the JFJOCH_HD functions of spots_impl.hpp that the CPU backend runs; this header only adds the
// block-level statistics (shared-memory counters, one global atomic per block) around them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "spots/spots_impl.hpp"

namespace jfjoch {
namespace spots_device {

/// Image statistics accumulated on the device (one per launch).
struct DeviceStats {
    int max_value;
    unsigned long long n_saturated, n_error, n_strong;
};

/// Per-block counters; lives in shared memory.
struct BlockStats {
    int max_value;
    unsigned long long n_saturated, n_error, n_strong;

    __device__ void reset() {
        max_value = INT32_MIN;
        n_saturated = n_error = n_strong = 0;
    }
    /// Adds the block's counts to the launch's totals (call once per block after a __syncthreads).
    __device__ void flush(DeviceStats* stats) const {
        atomicMax(&stats->max_value, max_value);
        if (n_saturated)
            atomicAdd(&stats->n_saturated, n_saturated);
        if (n_error)
            atomicAdd(&stats->n_error, n_error);
        if (n_strong)
            atomicAdd(&stats->n_strong, n_strong);
    }
};

/// The strong-pixel map value of pixel (x, y): 0 background, 1 strong, 2 saturated (in range); counts
/// the pixel into the block's statistics. Window sums are read directly (clipped window), which gives
/// the same integer sums as the CPU's summed-area table.
__device__ inline uint8_t classify_pixel_counted(const int32_t* image, const uint8_t* flags, int64_t nx,
                                                 int64_t ny, int64_t x, int64_t y, int32_t sat_eff, int32_t w,
                                                 int32_t threshold, double sigma2, BlockStats& block) {
    using namespace spots_impl;
    const int64_t i = y * nx + x;
    const int32_t v = image[i];
    const uint8_t f = flags[i];
    const uint8_t kind = classify_pixel(v, f, sat_eff);
    if (kind == kValid)
        atomicMax(&block.max_value, int(v));
    else if (kind == kSaturated)
        atomicAdd(&block.n_saturated, 1ull);
    else if (kind == kError)
        atomicAdd(&block.n_error, 1ull);
    if (kind == kSaturated && !(f & kSpotPixelOutOfRange))
        return 2;
    if (is_candidate(v, kind, f, threshold)) {
        int64_t sum, sum2, n;
        direct_window_sums(image, flags, nx, ny, x, y, w, sat_eff, sum, sum2, n);
        if (strong_pixel_test(v, sum, sum2, n, sigma2)) {
            atomicAdd(&block.n_strong, 1ull);
            return 1;
        }
    }
    return 0;
}

} // namespace spots_device
} // namespace jfjoch
