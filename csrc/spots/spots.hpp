// Spot finder: strong-pixel test, 8-connected components, photon-weighted centroids, size and
// resolution filters, ice-ring flags and per-image pixel statistics (docs/spots.md).
//
// Thread safety: every function here is reentrant; nothing is shared between calls (each call owns its
// work buffers). Several threads may run spot finding on different images at the same time.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.hpp"
#include "core/geometry.hpp"

namespace jfjoch {

/// Per-call thresholds of the spot finder. Defaults are those of jfjoch_process.
struct SpotFinderSettings {
    int32_t photon_threshold = 10;  ///< --spot-threshold: a strong pixel has value >= this (photons)
    float sigma = 3.0f;             ///< --spot-sigma: (v - mean)^2 > sigma^2 * variance of the window
    int32_t window_half = 7;        ///< window (2w+1)^2 pixels, w in 1..10 (15 x 15); centre excluded
    int32_t min_pixels = 2;         ///< --spot-min-pixels: a spot needs at least this many pixels
    float min_isigma = 4.0f;        ///< --spot-min-isigma: a spot needs I / sigma(I) >= this, with I its
                                    ///< background-subtracted sum (SpotIsigmaTerms); 0: no test (reference)
    int32_t max_pixels = 1000;      ///< and at most this many (bigger blobs are rejected)
    float high_resolution_A = 1.5f; ///< spots with d < this (Angstrom) are dropped; <= 0: no limit
    float low_resolution_A = 0.0f;  ///< spots with d > this (Angstrom) are dropped; <= 0: no limit
    float ice_ring_width_q = 0.02f; ///< half-width of an ice ring in q = 2 pi / d (1/Angstrom)
    int32_t max_spots = 250;        ///< keep this many spots, strongest first; <= 0: keep all
};

/// Bits of the per-pixel flag array built once per experiment by spot_pixel_flags().
enum SpotPixelFlag : uint8_t {
    kSpotPixelInvalid = 1,    ///< masked: excluded from everything
    kSpotPixelOutOfRange = 2, ///< valid for the local statistics, but never part of a spot
};

/// Values at or above this are saturated whatever the detector says, and values at or below minus this are
/// errors: keeps the window sums (and n*sum2 - sum^2) exact in 64-bit integers for window_half <= 10.
/// 2^22 = 4194304 photons per pixel per frame is far beyond any detector.
constexpr int32_t kSpotMaxValue = 1 << 22;
constexpr int32_t kSpotMaxWindowHalf = 10;

/// One spot. Pixel coordinates: x = fast (column), y = slow (row), the centre of pixel (i, j) is (i, j).
struct Spot {
    float x, y;       ///< photon-weighted centroid (pixels)
    float intensity;  ///< sum of the raw pixel values of the spot (photons, not background-subtracted)
    int32_t n_pixels; ///< pixels in the connected component (strong + saturated)
    float d;          ///< resolution of the centroid (Angstrom)
    bool ice_ring;    ///< within ice_ring_width_q of a hexagonal ice (Ih) ring
};

/// Result for one image.
struct SpotFinderResult {
    std::vector<Spot> spots;     ///< strongest first (intensity descending, ties by raster position)
    int64_t max_value = 0;       ///< largest valid pixel value (INT32_MIN when no valid pixel)
    int64_t n_saturated = 0;     ///< unmasked pixels with value >= saturation
    int64_t n_error = 0;         ///< unmasked pixels with value == INT32_MIN
    int64_t n_strong_pixels = 0; ///< pixels that passed the strong-pixel test (saturated ones excluded)
};

/// Per-experiment pixel flags (ny * nx, row-major): kSpotPixelInvalid where mask != 0 (mask may be null),
/// kSpotPixelOutOfRange where the pixel centre's resolution is outside [high, low] of the settings.
void spot_pixel_flags(const uint8_t* mask, int64_t nx, int64_t ny, const DetectorGeometry& geom,
                      const SpotFinderSettings& settings, uint8_t* flags_out);

/// Find the spots of one int32 image (ny * nx, row-major). `flags` comes from spot_pixel_flags().
/// A pixel is invalid when flagged, when value == INT32_MIN (error) or value >= saturation (saturated).
/// Throws std::invalid_argument on bad settings, std::runtime_error when the backend is unavailable.
SpotFinderResult find_spots(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny,
                            int32_t saturation, const DetectorGeometry& geom,
                            const SpotFinderSettings& settings, Backend backend = Backend::Auto);

/// The strong-pixel map alone (ny * nx bytes): 1 strong, 2 saturated (in range, unmasked), 0 otherwise.
/// Same per-pixel test as find_spots; for tests and diagnostics.
void strong_pixel_map(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny, int32_t saturation,
                      const SpotFinderSettings& settings, uint8_t* map_out, Backend backend = Backend::Auto);

/// Backend-specific entry points (spots_cpu.cpp, spots_cuda.cu); use the dispatching functions above.
namespace spots_detail {
/// Strong pixels of one image in raster order, with the image statistics.
struct StrongPixels {
    std::vector<int64_t> index; ///< y * nx + x
    std::vector<int32_t> value; ///< pixel value
    std::vector<uint8_t> kind;  ///< 1 strong, 2 saturated
    /// Window sums of each entry as strong_pixel_test got them (sum, sum2, n; 0 for saturated entries),
    /// when the producer kept them (csrc/frame); empty: the significance test reads the window again.
    std::vector<int64_t> sum, sum2, n;
    int64_t max_value = INT32_MIN, n_saturated = 0, n_error = 0, n_strong = 0;
};
void validate(const SpotFinderSettings& s, int64_t nx, int64_t ny);
void strong_pixels_cpu(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny, int32_t saturation,
                       const SpotFinderSettings& settings, StrongPixels& out);
/// CUDA: the strong-pixel map (1/2/0) and the image statistics; only in a CUDA build.
void strong_map_cuda(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny, int32_t saturation,
                     const SpotFinderSettings& settings, uint8_t* map_out, StrongPixels& stats_out);
/// Connected components (8-connected), centroids, filters, sorting: shared by both backends. The image and
/// flags are read again (host memory) for the spot-level significance test when settings.min_isigma > 0
/// and sp carries no window sums (they may then be null).
void spots_from_strong_pixels(const StrongPixels& sp, const int32_t* image, const uint8_t* flags, int64_t nx,
                              int64_t ny, int32_t saturation, const DetectorGeometry& geom,
                              const SpotFinderSettings& settings, SpotFinderResult& out);
} // namespace spots_detail

} // namespace jfjoch
