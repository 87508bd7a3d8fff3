// Azimuthal integration: mean corrected intensity in bins uniform in q = 2 pi / d (docs/azint.md).
//
// Two steps with different lifetimes (as in ffbidx: what fixes allocations vs per-call data):
//  1. azint_make_map(): once per geometry and mask, the per-pixel bin index (-1: not integrated) and the
//     per-pixel correction weight w = 1 / (solid-angle factor * polarisation factor);
//  2. azint_integrate(): per image, sum of value * w and number of valid pixels per bin; the mean is
//     sum / count (NaN in empty bins).
// A pixel is left out when the mask is nonzero, its centre falls outside [q_min, q_max), its value is
// the error value (INT32_MIN for int32 images, NaN for float images) or value >= saturation.
//
// Thread safety: every function is reentrant; the map is read-only during integration and nothing is
// shared between calls, so several threads may integrate different images with one map at the same time.
#pragma once
#include <cstdint>

#include "core/backend.hpp"
#include "core/geometry.hpp"

namespace jfjoch {

/// Binning and corrections; fixes the per-pixel map. q in 1/Angstrom WITH 2 pi (q = 4 pi sin(theta) /
/// lambda).
struct AzintSettings {
    double q_min = 0.1;                  ///< lower edge of bin 0 (1/A)
    double q_max = 0.0;                  ///< upper edge of the last bin (1/A); must be > q_min
    int32_t n_bins = 0;                  ///< number of bins, uniform in q; must be >= 1
    bool solid_angle = true;             ///< divide by the solid-angle factor cos^3 (1 at normal incidence)
    bool polarization = true;            ///< divide by the polarisation factor
    double polarization_fraction = 0.99; ///< fraction of the beam polarised along lab +x (0.5: unpolarised)
};

/// Default bin width (1/A, with 2 pi) when only the q range is given.
constexpr double kAzintDefaultBinWidth = 0.02;

/// Largest q (1/A, with 2 pi) over the centres of the four corner pixels of an nx x ny detector: on a
/// flat detector the scattering angle is largest at a corner (quasi-convexity of the angle on a plane).
double azint_corner_q(const DetectorGeometry& geom, int64_t nx, int64_t ny);

/// Throws std::invalid_argument unless q_min >= 0, q_max > q_min, n_bins >= 1, fraction in [0, 1].
void azint_validate(const AzintSettings& s);

/// Per-pixel map (ny * nx, row-major): bin_out (int32, -1 = not integrated) and weight_out (float, 1 / (solid
/// angle * polarisation), 0 where bin_out is -1). mask (ny * nx bytes, nonzero = invalid) may be null.
void azint_make_map(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                    const AzintSettings& settings, int32_t* bin_out, float* weight_out,
                    Backend backend = Backend::Auto);

/// Integrate one image of npix pixels with a map from azint_make_map(). Outputs n_bins values each:
/// mean_out = sum(value * weight) / count (NaN where count == 0), count_out = valid pixels in the bin.
/// Valid: bin >= 0, value != INT32_MIN (int32) / not NaN (float), value < saturation (saturation <= 0 or
/// not finite: no saturation test).
void azint_integrate(const int32_t* image, const int32_t* bin, const float* weight, int64_t npix,
                     int32_t n_bins, double saturation, double* mean_out, int64_t* count_out,
                     Backend backend = Backend::Auto);
void azint_integrate(const float* image, const int32_t* bin, const float* weight, int64_t npix,
                     int32_t n_bins, double saturation, double* mean_out, int64_t* count_out,
                     Backend backend = Backend::Auto);

/// Backend-specific entry points (azint_cpu.cpp, azint_cuda.cu); use the dispatching functions above.
/// The accumulate functions ADD into sum (n_bins doubles) and count (n_bins int64), which the caller zeroes.
namespace azint_detail {
void make_map_cpu(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                  const AzintSettings& settings, int32_t* bin_out, float* weight_out);
void make_map_cuda(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                   const AzintSettings& settings, int32_t* bin_out, float* weight_out);
template <typename T>
void accumulate_cpu(const T* image, const int32_t* bin, const float* weight, int64_t npix, int32_t n_bins,
                    double saturation, double* sum, int64_t* count);
template <typename T>
void accumulate_cuda(const T* image, const int32_t* bin, const float* weight, int64_t npix, int32_t n_bins,
                     double saturation, double* sum, int64_t* count);
} // namespace azint_detail

} // namespace jfjoch
