// CUDA backend of the spot finder: memory handling and launches only. The per-pixel work is the same
// JFJOCH_HD functions the CPU backend runs (spots_impl.hpp); window sums are read directly (one thread
// per pixel, clipped window), which gives the same integer sums as the CPU's summed-area table. The
// strong-pixel map goes back to the host, where labelling and centroids run (spots_cpu.cpp).
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <stdexcept>
#include <string>

#include "spots/spots.hpp"
#include "spots/spots_device.cuh"
#include "spots/spots_impl.hpp"

namespace jfjoch {
namespace {

using namespace spots_impl;

using spots_device::BlockStats;
using spots_device::DeviceStats;

__global__ void strong_map_kernel(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny,
                                  int32_t sat_eff, int32_t w, int32_t threshold, double sigma2, uint8_t* map,
                                  DeviceStats* stats) {
    // Image statistics: block-level reduction in shared memory, then one global atomic per block.
    __shared__ BlockStats block;
    const bool first = threadIdx.x == 0 && threadIdx.y == 0;
    if (first)
        block.reset();
    __syncthreads();
    const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
    if (x < nx && y < ny)
        map[y * nx + x] = spots_device::classify_pixel_counted(image, flags, nx, ny, x, y, sat_eff, w,
                                                               threshold, sigma2, block);
    __syncthreads();
    if (first)
        block.flush(stats);
}

void check(cudaError_t e, const char* what) {
    cuda::check(e, "spot finder (CUDA)", what);
}
using cuda::DeviceBuffer;
using cuda::Stream;

} // namespace

void spots_detail::strong_map_cuda(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny,
                                   int32_t saturation, const SpotFinderSettings& settings, uint8_t* map_out,
                                   StrongPixels& stats_out) {
    const size_t npix = size_t(nx * ny);
    Stream stream;
    DeviceBuffer<int32_t> d_image(npix);
    DeviceBuffer<uint8_t> d_flags(npix), d_map(npix);
    DeviceBuffer<DeviceStats> d_stats(1);
    const DeviceStats init{INT32_MIN, 0, 0, 0};
    check(cudaMemcpyAsync(d_image.p, image, npix * sizeof(int32_t), cudaMemcpyHostToDevice, stream.s),
          "copy image");
    check(cudaMemcpyAsync(d_flags.p, flags, npix, cudaMemcpyHostToDevice, stream.s), "copy flags");
    check(cudaMemcpyAsync(d_stats.p, &init, sizeof(init), cudaMemcpyHostToDevice, stream.s), "copy stats");
    const dim3 block(32, 8);
    const dim3 grid(unsigned((nx + block.x - 1) / block.x), unsigned((ny + block.y - 1) / block.y));
    const double sigma2 = double(settings.sigma) * double(settings.sigma);
    strong_map_kernel<<<grid, block, 0, stream.s>>>(d_image.p, d_flags.p, nx, ny,
                                                    effective_saturation(saturation), settings.window_half,
                                                    settings.photon_threshold, sigma2, d_map.p, d_stats.p);
    check(cudaGetLastError(), "kernel launch");
    DeviceStats st{};
    check(cudaMemcpyAsync(map_out, d_map.p, npix, cudaMemcpyDeviceToHost, stream.s), "copy map");
    check(cudaMemcpyAsync(&st, d_stats.p, sizeof(st), cudaMemcpyDeviceToHost, stream.s), "copy stats");
    check(cudaStreamSynchronize(stream.s), "synchronize");
    stats_out.max_value = st.max_value;
    stats_out.n_saturated = int64_t(st.n_saturated);
    stats_out.n_error = int64_t(st.n_error);
    stats_out.n_strong = int64_t(st.n_strong);
}

} // namespace jfjoch
