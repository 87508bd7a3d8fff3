// Spot finder dispatch: Backend::CPU / CUDA / Auto (CUDA when compiled and a device is present).
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "spots/spots.hpp"

namespace jfjoch {

namespace {

// Host-side list of the strong pixels from a strong-pixel map (CUDA path), values from the image.
void list_from_map(const uint8_t* map, const int32_t* image, int64_t npix, spots_detail::StrongPixels& sp) {
    sp.index.clear();
    sp.value.clear();
    sp.kind.clear();
    for (int64_t i = 0; i < npix; ++i)
        if (map[i]) {
            sp.index.push_back(i);
            sp.value.push_back(image[i]);
            sp.kind.push_back(map[i]);
        }
}

} // namespace

SpotFinderResult find_spots(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny,
                            int32_t saturation, const DetectorGeometry& geom,
                            const SpotFinderSettings& settings, Backend backend) {
    spots_detail::validate(settings, nx, ny);
    spots_detail::StrongPixels sp;
    if (use_cuda(backend, "spot finder")) {
        std::vector<uint8_t> map(size_t(nx * ny));
        spots_detail::strong_map_cuda(image, flags, nx, ny, saturation, settings, map.data(), sp);
        list_from_map(map.data(), image, nx * ny, sp);
    } else {
        spots_detail::strong_pixels_cpu(image, flags, nx, ny, saturation, settings, sp);
    }
    SpotFinderResult out;
    spots_detail::spots_from_strong_pixels(sp, image, flags, nx, ny, saturation, geom, settings, out);
    return out;
}

void strong_pixel_map(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny, int32_t saturation,
                      const SpotFinderSettings& settings, uint8_t* map_out, Backend backend) {
    spots_detail::validate(settings, nx, ny);
    spots_detail::StrongPixels sp;
    if (use_cuda(backend, "spot finder")) {
        spots_detail::strong_map_cuda(image, flags, nx, ny, saturation, settings, map_out, sp);
        return;
    }
    spots_detail::strong_pixels_cpu(image, flags, nx, ny, saturation, settings, sp);
    std::fill(map_out, map_out + nx * ny, uint8_t(0));
    for (size_t k = 0; k < sp.index.size(); ++k)
        map_out[sp.index[k]] = sp.kind[k];
}

#ifndef JFJOCH_WITH_CUDA
void spots_detail::strong_map_cuda(const int32_t*, const uint8_t*, int64_t, int64_t, int32_t,
                                   const SpotFinderSettings&, uint8_t*, StrongPixels&) {
    throw std::runtime_error("spot finder: this build has no CUDA backend");
}
#endif

} // namespace jfjoch
