// CPU loops of the simulator over the JFJOCH_HD functions in simulate_impl.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "simulate/simulate_impl.hpp"

namespace jfjoch::sim_detail {

namespace {

/// Calls add(pixel_index, photons) for every detector pixel under each spot (separable pixel-integrated
/// Gaussian of the PSF), spot by spot and row by row: the order expected_cpu and frame_cpu both rely on.
template <typename Add>
void for_each_spot_pixel(int64_t nx, int64_t ny, const double* xy, const double* photons, int64_t n_spots,
                         const SimFrameSettings& s, Add&& add) {
    const int32_t R = spot_radius(s);
    const double k = 1.0 / (std::sqrt(2.0) * s.psf_sigma_px);
    double wx[129], wy[129]; // R <= 64 (checked in dispatch)
    for (int64_t i = 0; i < n_spots; ++i) {
        const double x = xy[2 * i], y = xy[2 * i + 1], ph = photons[i];
        if (!(ph > 0.0) || !std::isfinite(x) || !std::isfinite(y))
            continue;
        const int64_t cx = centre_pixel(x), cy = centre_pixel(y);
        for (int32_t d = -R; d <= R; ++d) {
            wx[d + R] = pixel_fraction(cx + d, x, k);
            wy[d + R] = ph * pixel_fraction(cy + d, y, k);
        }
        for (int32_t dy = -R; dy <= R; ++dy) {
            const int64_t py = cy + dy;
            if (py < 0 || py >= ny)
                continue;
            for (int32_t dx = -R; dx <= R; ++dx) {
                const int64_t px = cx + dx;
                if (px >= 0 && px < nx)
                    add(py * nx + px, float(wy[dy + R] * wx[dx + R]));
            }
        }
    }
}

} // namespace

void expected_cpu(const float* background, int64_t nx, int64_t ny, const double* xy, const double* photons,
                  int64_t n_spots, const SimFrameSettings& s, float* expected) {
    if (expected != background)
        std::memcpy(expected, background, sizeof(float) * size_t(nx * ny));
    for_each_spot_pixel(nx, ny, xy, photons, n_spots, s,
                        [expected](int64_t idx, float v) { expected[idx] += v; });
}

void counts_cpu(const float* expected, const uint8_t* pixel_class, int64_t npix, const SimFrameSettings& s,
                int32_t* counts) {
    int64_t nt = s.n_threads > 0 ? s.n_threads : int64_t(std::thread::hardware_concurrency());
    nt = std::max<int64_t>(1, std::min<int64_t>(nt, npix / 65536 + 1));
    const uint64_t key = frame_key(s);
    auto work = [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
            counts[i] = pixel_counts(expected[i], pixel_class[i], i, key, s);
    };
    if (nt == 1) {
        work(0, npix);
        return;
    }
    // the stream of a pixel depends only on (seed, frame, pixel): the split does not change the counts
    std::vector<std::thread> pool;
    pool.reserve(size_t(nt - 1));
    const int64_t chunk = (npix + nt - 1) / nt;
    for (int64_t t = 1; t < nt; ++t)
        pool.emplace_back(work, std::min(npix, t * chunk), std::min(npix, (t + 1) * chunk));
    work(0, std::min(npix, chunk));
    for (auto& th : pool)
        th.join();
}

} // namespace jfjoch::sim_detail

namespace jfjoch::sim_detail {

// Same counts as expected_cpu + counts_cpu, without a dense expected image: every pixel is first drawn from
// its background alone, then the pixels under spots are drawn again from background + spot photons. Spot
// contributions are added in float in the same order as expected_cpu, so the bytes are identical.
void frame_cpu(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
               const double* photons, int64_t n_spots, const SimFrameSettings& s, int32_t* counts) {
    counts_cpu(background, pixel_class, nx * ny, s, counts);
    const int32_t R = spot_radius(s);
    const int64_t box = int64_t(2 * R + 1) * (2 * R + 1);
    std::vector<std::pair<int64_t, float>> touched;
    touched.reserve(size_t(n_spots * box));
    for_each_spot_pixel(nx, ny, xy, photons, n_spots, s,
                        [&touched](int64_t idx, float v) { touched.emplace_back(idx, v); });
    std::stable_sort(touched.begin(), touched.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    const uint64_t key = frame_key(s);
    for (size_t j = 0; j < touched.size();) {
        const int64_t idx = touched[j].first;
        float e = background[idx];
        for (; j < touched.size() && touched[j].first == idx; ++j)
            e += touched[j].second;
        counts[idx] = pixel_counts(e, pixel_class[idx], idx, key, s);
    }
}

} // namespace jfjoch::sim_detail
