// Bragg integration of one image at predicted positions: summation in a disc with a local background
// annulus, and 2-D profile fitting with profiles learned from the image's own strong reflections
// (docs/integration_kernel.md states the equations).
//
// Pixel convention: x = fast (column), y = slow (row), 0-based; the centre of pixel (i, j) is at (i, j).
// A pixel belongs to the signal disc of a prediction (x, y) when the distance d from its centre to (x, y) is
// <= r1, to its background annulus when r2 < d <= r3. Counts are photons.
//
// Thread safety: every function is reentrant (no static or global mutable state; each call owns its work
// buffers), so several threads may integrate different images at the same time.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.hpp"

namespace jfjoch {

/// Per-call settings of the integration (mirrored by jfjoch.integration_kernel.IntegrationKernelSettings).
/// Default radii: docs/integration_kernel.md ("Default radii") gives the evidence from the shared data.
struct IntegrationSettings {
    double r1 = 5.5;                   ///< signal disc radius (pixels); 0 < r1 < r2
    double r2 = 7.5;                   ///< inner radius of the background annulus (pixels, exclusive)
    double r3 = 9.5;                   ///< outer radius of the background annulus (pixels, inclusive); <= 32
    double bg_clip_sigma = 3.0;        ///< one clip pass: drop annulus pixels > mean + k sqrt(max(mean, 1))
    int32_t min_background_pixels = 6; ///< fewer valid annulus pixels after clipping: FEW_BACKGROUND
    double profile_min_isigma = 10.0;  ///< a profile reference needs I_sum / sigma_sum >= this
    int32_t profile_min_reflections = 8; ///< a group needs this many references for its own profile
    double profile_multiplier = 6.0;     ///< fit radius = min(r1, profile_multiplier * sigma_p / 2) (pixels)
    int32_t oversampling = 5;            ///< profile cells per pixel along each axis (1..10)
};

/// Largest r3 (pixels): bounds the work per reflection and the profile grid.
constexpr double kIntegrationMaxRadius = 32.0;
constexpr int32_t kIntegrationMaxOversampling = 10;

/// Bits of the per-reflection flags (uint32). Bits 16..31 are reserved for the pipeline.
enum IntegrationFlag : uint32_t {
    kIntegrateSummed = 1u << 0,           ///< summation succeeded (I_sum, sigma_sum valid)
    kIntegrateProfileFitted = 1u << 1,    ///< profile fit converged (I_prf, sigma_prf valid)
    kIntegrateSaturated = 1u << 2,        ///< a disc pixel is saturated (I_sum kept: an underestimate)
    kIntegrateOverlap = 1u << 3,          ///< another prediction lies closer than 2 r1
    kIntegrateMasked = 1u << 4,           ///< dropped: a disc pixel is masked or an error value
    kIntegrateFewBackground = 1u << 5,    ///< dropped: fewer than min_background_pixels background pixels
    kIntegrateEdge = 1u << 6,             ///< dropped: the disc leaves the detector (or x, y not finite)
    kIntegrateProfileReference = 1u << 7, ///< this reflection was used to learn the profile it is fitted with
    kIntegrateProfileFailed = 1u << 8,    ///< no usable profile or no convergence: I_prf = NaN
};

/// Where a group's profile came from (profile_source).
enum IntegrationProfileSource : int32_t {
    kProfileNone = 0,   ///< too few references in the group and in the image: no profile fitting
    kProfileOwn = 1,    ///< learned from the group's own references
    kProfileGlobal = 2, ///< the group had too few references: learned from all references of the image
};

/// The profile grid is G x G cells of 1/oversampling pixels, G = 2 H + 1 with H = ceil(r1 * oversampling) +
/// 1; cell (u, v) (v = row) sits at the offset ((u - H) / oversampling, (v - H) / oversampling) pixels from
/// the prediction.
int32_t integration_profile_half(double r1, int32_t oversampling);
inline int32_t integration_profile_size(double r1, int32_t oversampling) {
    return 2 * integration_profile_half(r1, oversampling) + 1;
}

/// Throws std::invalid_argument (one-line message) unless 0 < r1 < r2 < r3 <= kIntegrationMaxRadius, all
/// finite, bg_clip_sigma > 0, min_background_pixels >= 1, profile_min_isigma >= 0,
/// profile_min_reflections >= 1, profile_multiplier > 0 and 1 <= oversampling <= 10.
void integration_validate(const IntegrationSettings& s);

/// Caller-owned outputs. Per reflection (n each): I_sum, sigma_sum, I_prf, sigma_prf (photons; NaN where not
/// measured), background (mean of the clipped annulus, photons/pixel; NaN without background pixels),
/// n_disc (disc pixels on the detector), n_background (annulus pixels used), flags (IntegrationFlag bits).
/// Per group (n_groups each; used only when profile fitting runs, else left untouched): profiles
/// (n_groups * G * G, the profile each group was fitted with, row-major (v, u), fraction of the disc photons
/// falling in a pixel centred at that offset; zeros without a profile), profile_width (sigma_p in pixels,
/// NaN without a profile), profile_n_reference (references in the group), profile_source.
struct IntegrationOutput {
    double* I_sum = nullptr;
    double* sigma_sum = nullptr;
    double* I_prf = nullptr;
    double* sigma_prf = nullptr;
    double* background = nullptr;
    int32_t* n_disc = nullptr;
    int32_t* n_background = nullptr;
    uint32_t* flags = nullptr;
    double* profiles = nullptr;
    double* profile_width = nullptr;
    int32_t* profile_n_reference = nullptr;
    int32_t* profile_source = nullptr;
};

/// Integrate n predictions on one image.
///  image: ny * nx int32 counts, row-major; INT32_MIN = error pixel. mask: ny * nx bytes, nonzero = invalid,
///  or null. saturation: a pixel with value >= saturation is saturated (<= 0 or not finite: no test).
///  x, y: n predicted positions (pixels). group: n profile groups in [0, n_groups), or null (all in group 0).
///  profile: false runs the summation only (I_prf, sigma_prf = NaN; per-group outputs untouched).
/// Throws std::invalid_argument on bad settings/sizes/groups, std::runtime_error when the backend is
/// unavailable.
void integrate_image(const int32_t* image, const uint8_t* mask, int64_t nx, int64_t ny, double saturation,
                     const double* x, const double* y, const int32_t* group, int64_t n, int32_t n_groups,
                     const IntegrationSettings& settings, bool profile, const IntegrationOutput& out,
                     Backend backend = Backend::Auto);

/// Host-side steps shared by both backends (integrate.cpp) and the backend entry points
/// (integrate_cpu.cpp, integrate_cuda.cu); use integrate_image() above.
namespace integrate_detail {

/// Everything a backend needs; the arrays stay owned by the caller of integrate_image().
struct Job {
    const int32_t* image;
    const uint8_t* mask; ///< may be null
    int64_t nx, ny;
    int64_t sat_threshold; ///< value >= this is saturated (INT64_MAX: no test)
    const double* x;
    const double* y;
    const int32_t* group; ///< never null here
    int64_t n;
    int32_t n_groups;
    const int32_t* order;       ///< n: the reflections in spatial order (spatial_order); loops follow it
    const int64_t* nbr_offsets; ///< n + 1 (CSR of build_neighbours)
    const int32_t* nbr_indices;
    IntegrationSettings settings;
    bool profile;
};

/// For each reflection i, the predictions j != i (ascending) with |p_j - p_i| <= r1 + r3 + 0.5 (a superset of
/// those whose disc can reach i's annulus, and of those closer than 2 r1), as CSR. Reflections that are not
/// integrated (x, y not finite, or the whole box r3 + 1 off the detector) get empty lists. Spatial grid,
/// O(n).
void build_neighbours(const double* x, const double* y, int64_t n, int64_t nx, int64_t ny,
                      const IntegrationSettings& s, std::vector<int64_t>& offsets,
                      std::vector<int32_t>& indices);

/// The reflections sorted by the row of their centre (counting sort, ties in index order; not integrated ones
/// last), so that consecutive reflections read the same image rows from cache. Only the visiting order
/// changes: every reflection's result is independent of it.
void spatial_order(const double* x, const double* y, int64_t n, int64_t nx, int64_t ny, double r3,
                   std::vector<int32_t>& order);

/// After the summation: the profile references of each group (integrate_impl::is_reference) in visiting order
/// (`order`), as CSR over the n_groups groups (offsets: n_groups + 1). The cell sums add in this order.
void select_references(const Job& job, const IntegrationOutput& out, std::vector<int64_t>& offsets,
                       std::vector<int32_t>& indices);

/// From the per-group cell sums and counts (n_groups slots of G * G, G = integration_profile_size): the
/// global profile (the groups' sums added in group order), each group's profile (own, global or none),
/// sigma_p, the per-group outputs, and into `profiles` (n_groups * G * G) the profile each group is fitted
/// with and into `fit_radius` (n_groups) its fit radius in pixels (< 0: no profile).
void finalize_profiles(const Job& job, const std::vector<int64_t>& ref_offsets, const double* cell_sum,
                       const int32_t* cell_count, const IntegrationOutput& out, std::vector<double>& profiles,
                       std::vector<double>& fit_radius);

void integrate_cpu(const Job& job, const IntegrationOutput& out);
void integrate_cuda(const Job& job, const IntegrationOutput& out);

} // namespace integrate_detail

} // namespace jfjoch
