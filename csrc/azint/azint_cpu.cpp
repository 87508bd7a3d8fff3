// CPU backend of the azimuthal integration: loops over the per-pixel functions of azint_impl.hpp.
#include <cstdint>

#include "azint/azint.hpp"
#include "azint/azint_impl.hpp"

namespace jfjoch {

void azint_detail::make_map_cpu(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                                const AzintSettings& settings, int32_t* bin_out, float* weight_out) {
    const azint_impl::MapParams p = azint_impl::map_params(settings);
    for (int64_t y = 0; y < ny; ++y)
        for (int64_t x = 0; x < nx; ++x) {
            const int64_t i = y * nx + x;
            azint_impl::pixel_map(geom, p, double(x), double(y), mask != nullptr && mask[i] != 0, bin_out[i],
                                  weight_out[i]);
        }
}

template <typename T>
void azint_detail::accumulate_cpu(const T* image, const int32_t* bin, const float* weight, int64_t npix,
                                  int32_t n_bins, double saturation, double* sum, int64_t* count) {
    const auto sat = azint_impl::saturation_threshold(saturation, image);
    // Neighbouring pixels along a row mostly share a bin: accumulate runs locally and flush on a bin
    // change, which avoids a store-to-load dependency on sum[b] for every pixel.
    int32_t cur = -1;
    double run_sum = 0.0;
    int64_t run_count = 0;
    for (int64_t i = 0; i < npix; ++i) {
        double v;
        if (!azint_impl::pixel_value(image[i], bin[i], weight[i], sat, v))
            continue;
        const int32_t b = bin[i];
        if (b != cur) {
            if (cur >= 0) {
                sum[cur] += run_sum;
                count[cur] += run_count;
            }
            cur = b;
            run_sum = 0.0;
            run_count = 0;
        }
        run_sum += v;
        ++run_count;
    }
    if (cur >= 0) {
        sum[cur] += run_sum;
        count[cur] += run_count;
    }
    (void)n_bins;
}

template void azint_detail::accumulate_cpu<int32_t>(const int32_t*, const int32_t*, const float*, int64_t,
                                                    int32_t, double, double*, int64_t*);
template void azint_detail::accumulate_cpu<float>(const float*, const int32_t*, const float*, int64_t,
                                                  int32_t, double, double*, int64_t*);

} // namespace jfjoch
