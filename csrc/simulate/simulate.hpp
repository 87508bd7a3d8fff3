// In-house diffraction simulator: render one frame (background + Gaussian spots, Poisson noise, saturation,
// mask) from precomputed expected background and spot list. The physics (which reflections, where, how
// many photons) is computed in python/jfjoch/simulate.py; this kernel does the per-pixel work.
//
// Thread safety: every function is reentrant (no shared mutable state). Random numbers come from a
// counter-based generator keyed by (seed, frame, pixel), so the counts do not depend on the backend's
// thread layout or on the order in which frames are rendered.
#pragma once
#include <cstdint>

#include "core/backend.hpp"

namespace jfjoch {

/// What happens to a pixel after the noise: its class (one byte per pixel).
enum SimPixelClass : uint8_t {
    SimPixelNormal = 0,   ///< counts = min(Poisson(expected), saturation)
    SimPixelZero = 1,     ///< module gap: always 0
    SimPixelSaturate = 2, ///< hot pixel: always the saturation value
};

/// Per-frame settings (plain values; defaults match python SimulationSettings).
struct SimFrameSettings {
    uint64_t seed = 0;           ///< random stream of the dataset
    uint64_t frame = 0;          ///< image number (the stream of each frame is independent)
    bool noise = true;           ///< Poisson noise; false: counts = rint(expected)
    int32_t saturation = 32766;  ///< counts are clipped to this value
    double psf_sigma_px = 0.6;   ///< Gaussian PSF sigma of a spot, pixels
    int32_t spot_radius_px = -1; ///< half-width of the box a spot is rendered in; < 0: ceil(4 sigma)
    int32_t n_threads = 1;       ///< CPU threads for the per-pixel loop (<= 0: all hardware threads)
};

/// expected[i] = background[i] + sum over spots of photons * (PSF integrated over pixel i).
/// background, expected: ny * nx floats (row-major, x fast); xy: n_spots * 2 (x, y in px, pixel centre
/// at integer); photons: n_spots. expected may alias background.
void sim_expected(const float* background, int64_t nx, int64_t ny, const double* xy, const double* photons,
                  int64_t n_spots, const SimFrameSettings& settings, float* expected, Backend backend);

/// counts (ny * nx int32) of one frame: expected (as sim_expected) -> noise -> saturation -> pixel class.
void sim_frame(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
               const double* photons, int64_t n_spots, const SimFrameSettings& settings, int32_t* counts,
               Backend backend);

} // namespace jfjoch
