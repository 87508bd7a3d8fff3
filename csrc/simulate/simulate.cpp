// Simulator dispatch: Backend::CPU / CUDA / Auto (CUDA when compiled and a device is present).
#include <stdexcept>
#include <vector>

#include "simulate/simulate.hpp"

namespace jfjoch {

namespace sim_detail {
void expected_cpu(const float* background, int64_t nx, int64_t ny, const double* xy, const double* photons,
                  int64_t n_spots, const SimFrameSettings& s, float* expected);
void counts_cpu(const float* expected, const uint8_t* pixel_class, int64_t npix, const SimFrameSettings& s,
                int32_t* counts);
void frame_cpu(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
               const double* photons, int64_t n_spots, const SimFrameSettings& s, int32_t* counts);
#ifdef JFJOCH_WITH_CUDA
void frame_cuda(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
                const double* photons, int64_t n_spots, const SimFrameSettings& s, float* expected,
                int32_t* counts);
#endif
} // namespace sim_detail

namespace {

void validate(int64_t nx, int64_t ny, int64_t n_spots, const SimFrameSettings& s) {
    if (nx <= 0 || ny <= 0 || n_spots < 0)
        throw std::invalid_argument("simulator: bad image or spot-list size");
    if (!(s.psf_sigma_px > 0.0) || s.psf_sigma_px > 16.0)
        throw std::invalid_argument("simulator: psf_sigma_px must be in (0, 16]");
    if (s.spot_radius_px > 64)
        throw std::invalid_argument("simulator: spot_radius_px must be <= 64");
    if (s.saturation < 1)
        throw std::invalid_argument("simulator: saturation must be >= 1");
}

} // namespace

void sim_expected(const float* background, int64_t nx, int64_t ny, const double* xy, const double* photons,
                  int64_t n_spots, const SimFrameSettings& settings, float* expected, Backend backend) {
    validate(nx, ny, n_spots, settings);
#ifdef JFJOCH_WITH_CUDA
    if (use_cuda(backend, "simulator")) {
        std::vector<uint8_t> cls(size_t(nx * ny), SimPixelNormal);
        std::vector<int32_t> counts(size_t(nx * ny));
        sim_detail::frame_cuda(background, cls.data(), nx, ny, xy, photons, n_spots, settings, expected,
                               counts.data());
        return;
    }
#else
    use_cuda(backend, "simulator");
#endif
    sim_detail::expected_cpu(background, nx, ny, xy, photons, n_spots, settings, expected);
}

void sim_frame(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
               const double* photons, int64_t n_spots, const SimFrameSettings& settings, int32_t* counts,
               Backend backend) {
    validate(nx, ny, n_spots, settings);
#ifdef JFJOCH_WITH_CUDA
    if (use_cuda(backend, "simulator")) {
        sim_detail::frame_cuda(background, pixel_class, nx, ny, xy, photons, n_spots, settings, nullptr,
                               counts);
        return;
    }
#else
    use_cuda(backend, "simulator");
#endif
    sim_detail::frame_cpu(background, pixel_class, nx, ny, xy, photons, n_spots, settings, counts);
}

} // namespace jfjoch
