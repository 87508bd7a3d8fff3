// Azimuthal integration dispatch: Backend::CPU / CUDA / Auto (CUDA when compiled and a device is present).
#include <cmath>
#include <stdexcept>
#include <vector>

#include "azint/azint.hpp"
#include "azint/azint_impl.hpp"

namespace jfjoch {

namespace {

void check_sizes(int64_t npix, int32_t n_bins) {
    if (npix < 0)
        throw std::invalid_argument("azimuthal integration: negative pixel count");
    if (n_bins < 1)
        throw std::invalid_argument("azimuthal integration: n_bins must be >= 1");
}

template <typename T>
void integrate(const T* image, const int32_t* bin, const float* weight, int64_t npix, int32_t n_bins,
               double saturation, double* mean_out, int64_t* count_out, Backend backend) {
    check_sizes(npix, n_bins);
    std::vector<double> sum(size_t(n_bins), 0.0);
    for (int32_t b = 0; b < n_bins; ++b)
        count_out[b] = 0;
    if (use_cuda(backend, "azimuthal integration"))
        azint_detail::accumulate_cuda(image, bin, weight, npix, n_bins, saturation, sum.data(), count_out);
    else
        azint_detail::accumulate_cpu(image, bin, weight, npix, n_bins, saturation, sum.data(), count_out);
    for (int32_t b = 0; b < n_bins; ++b)
        mean_out[b] = count_out[b] > 0 ? sum[size_t(b)] / double(count_out[b]) : NAN;
}

} // namespace

void azint_validate(const AzintSettings& s) {
    if (!(s.q_min >= 0.0) || !std::isfinite(s.q_min))
        throw std::invalid_argument("azimuthal integration: q_min must be >= 0");
    if (!(s.q_max > s.q_min) || !std::isfinite(s.q_max))
        throw std::invalid_argument("azimuthal integration: q_max must be > q_min");
    if (s.n_bins < 1)
        throw std::invalid_argument("azimuthal integration: n_bins must be >= 1");
    if (!(s.polarization_fraction >= 0.0 && s.polarization_fraction <= 1.0))
        throw std::invalid_argument("azimuthal integration: polarization_fraction must be in [0, 1]");
}

double azint_corner_q(const DetectorGeometry& geom, int64_t nx, int64_t ny) {
    if (nx < 1 || ny < 1)
        throw std::invalid_argument("azimuthal integration: detector size must be positive");
    double q = 0.0;
    const double xs[2] = {0.0, double(nx - 1)}, ys[2] = {0.0, double(ny - 1)};
    for (double x : xs)
        for (double y : ys)
            q = std::fmax(q, azint_impl::pixel_q(geom, x, y));
    return q;
}

void azint_make_map(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                    const AzintSettings& settings, int32_t* bin_out, float* weight_out, Backend backend) {
    azint_validate(settings);
    if (nx < 1 || ny < 1)
        throw std::invalid_argument("azimuthal integration: detector size must be positive");
    if (use_cuda(backend, "azimuthal integration"))
        azint_detail::make_map_cuda(geom, nx, ny, mask, settings, bin_out, weight_out);
    else
        azint_detail::make_map_cpu(geom, nx, ny, mask, settings, bin_out, weight_out);
}

void azint_integrate(const int32_t* image, const int32_t* bin, const float* weight, int64_t npix,
                     int32_t n_bins, double saturation, double* mean_out, int64_t* count_out,
                     Backend backend) {
    integrate(image, bin, weight, npix, n_bins, saturation, mean_out, count_out, backend);
}

void azint_integrate(const float* image, const int32_t* bin, const float* weight, int64_t npix,
                     int32_t n_bins, double saturation, double* mean_out, int64_t* count_out,
                     Backend backend) {
    integrate(image, bin, weight, npix, n_bins, saturation, mean_out, count_out, backend);
}

#ifndef JFJOCH_WITH_CUDA
void azint_detail::make_map_cuda(const DetectorGeometry&, int64_t, int64_t, const uint8_t*,
                                 const AzintSettings&, int32_t*, float*) {
    throw std::runtime_error("azimuthal integration: this build has no CUDA backend");
}
template <typename T>
void azint_detail::accumulate_cuda(const T*, const int32_t*, const float*, int64_t, int32_t, double, double*,
                                   int64_t*) {
    throw std::runtime_error("azimuthal integration: this build has no CUDA backend");
}
template void azint_detail::accumulate_cuda<int32_t>(const int32_t*, const int32_t*, const float*, int64_t,
                                                     int32_t, double, double*, int64_t*);
template void azint_detail::accumulate_cuda<float>(const float*, const int32_t*, const float*, int64_t,
                                                   int32_t, double, double*, int64_t*);
#endif

} // namespace jfjoch
