// CUDA backend of the azimuthal integration: memory handling and launches only. The per-pixel work is the
// same JFJOCH_HD functions the CPU backend runs (azint_impl.hpp). Per image, each block accumulates into a
// shared-memory histogram (when n_bins fits) and adds it to the global one with atomics.
// The map and the image are copied per call (the caller's host arrays stay the only state: reentrant).
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <stdexcept>
#include <string>
#include <vector>

#include "azint/azint.hpp"
#include "azint/azint_impl.hpp"

namespace jfjoch {
namespace {

using namespace azint_impl;

constexpr int kBlock = 256;
constexpr int32_t kMaxSharedBins = 2048; // 2048 * (8 + 8) bytes = 32 KiB of shared memory

void check(cudaError_t e, const char* what) {
    cuda::check(e, "azimuthal integration (CUDA)", what);
}
using cuda::DeviceBuffer;
using cuda::Stream;

__global__ void map_kernel(DetectorGeometry g, MapParams p, int64_t nx, int64_t ny, const uint8_t* mask,
                           int32_t* bin, float* weight) {
    const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
    if (x >= nx || y >= ny)
        return;
    const int64_t i = y * nx + x;
    pixel_map(g, p, double(x), double(y), mask != nullptr && mask[i] != 0, bin[i], weight[i]);
}

template <typename T, typename S>
__global__ void accumulate_kernel(const T* image, const int32_t* bin, const float* weight, int64_t npix,
                                  int32_t n_bins, S sat, bool use_shared, double* sum,
                                  unsigned long long* count) {
    extern __shared__ __align__(16) unsigned char smem[];
    double* s_sum = reinterpret_cast<double*>(smem);
    unsigned long long* s_count = reinterpret_cast<unsigned long long*>(s_sum + (use_shared ? n_bins : 0));
    if (use_shared) {
        for (int32_t b = threadIdx.x; b < n_bins; b += blockDim.x) {
            s_sum[b] = 0.0;
            s_count[b] = 0ull;
        }
        __syncthreads();
    }
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < npix; i += stride) {
        double v;
        if (!pixel_value(image[i], bin[i], weight[i], sat, v))
            continue;
        const int32_t b = bin[i];
        if (use_shared) {
            atomicAdd(&s_sum[b], v);
            atomicAdd(&s_count[b], 1ull);
        } else {
            atomicAdd(&sum[b], v);
            atomicAdd(&count[b], 1ull);
        }
    }
    if (use_shared) {
        __syncthreads();
        for (int32_t b = threadIdx.x; b < n_bins; b += blockDim.x)
            if (s_count[b]) {
                atomicAdd(&sum[b], s_sum[b]);
                atomicAdd(&count[b], s_count[b]);
            }
    }
}

} // namespace

void azint_detail::make_map_cuda(const DetectorGeometry& geom, int64_t nx, int64_t ny, const uint8_t* mask,
                                 const AzintSettings& settings, int32_t* bin_out, float* weight_out) {
    const size_t npix = size_t(nx * ny);
    Stream stream;
    DeviceBuffer<uint8_t> d_mask(mask ? npix : 0);
    DeviceBuffer<int32_t> d_bin(npix);
    DeviceBuffer<float> d_weight(npix);
    if (mask)
        check(cudaMemcpyAsync(d_mask.p, mask, npix, cudaMemcpyHostToDevice, stream.s), "copy mask");
    const dim3 block(32, 8);
    const dim3 grid(unsigned((nx + block.x - 1) / block.x), unsigned((ny + block.y - 1) / block.y));
    map_kernel<<<grid, block, 0, stream.s>>>(geom, map_params(settings), nx, ny, mask ? d_mask.p : nullptr,
                                             d_bin.p, d_weight.p);
    check(cudaGetLastError(), "kernel launch");
    check(cudaMemcpyAsync(bin_out, d_bin.p, npix * sizeof(int32_t), cudaMemcpyDeviceToHost, stream.s),
          "copy bins");
    check(cudaMemcpyAsync(weight_out, d_weight.p, npix * sizeof(float), cudaMemcpyDeviceToHost, stream.s),
          "copy weights");
    check(cudaStreamSynchronize(stream.s), "synchronize");
}

template <typename T>
void azint_detail::accumulate_cuda(const T* image, const int32_t* bin, const float* weight, int64_t npix,
                                   int32_t n_bins, double saturation, double* sum, int64_t* count) {
    if (npix == 0)
        return;
    const size_t n = size_t(npix), nb = size_t(n_bins);
    Stream stream;
    DeviceBuffer<T> d_image(n);
    DeviceBuffer<int32_t> d_bin(n);
    DeviceBuffer<float> d_weight(n);
    DeviceBuffer<double> d_sum(nb);
    DeviceBuffer<unsigned long long> d_count(nb);
    check(cudaMemcpyAsync(d_image.p, image, n * sizeof(T), cudaMemcpyHostToDevice, stream.s), "copy image");
    check(cudaMemcpyAsync(d_bin.p, bin, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream.s), "copy bins");
    check(cudaMemcpyAsync(d_weight.p, weight, n * sizeof(float), cudaMemcpyHostToDevice, stream.s),
          "copy weights");
    check(cudaMemsetAsync(d_sum.p, 0, nb * sizeof(double), stream.s), "clear sums");
    check(cudaMemsetAsync(d_count.p, 0, nb * sizeof(unsigned long long), stream.s), "clear counts");
    const bool use_shared = n_bins <= kMaxSharedBins;
    const size_t shared_bytes = use_shared ? nb * (sizeof(double) + sizeof(unsigned long long)) : 0;
    const int64_t blocks_needed = (npix + kBlock - 1) / kBlock;
    const unsigned grid = unsigned(blocks_needed < 1024 ? blocks_needed : 1024);
    const auto sat = saturation_threshold(saturation, image);
    accumulate_kernel<<<grid, kBlock, shared_bytes, stream.s>>>(d_image.p, d_bin.p, d_weight.p, npix, n_bins,
                                                                sat, use_shared, d_sum.p, d_count.p);
    check(cudaGetLastError(), "kernel launch");
    std::vector<double> h_sum(nb);
    std::vector<unsigned long long> h_count(nb);
    check(cudaMemcpyAsync(h_sum.data(), d_sum.p, nb * sizeof(double), cudaMemcpyDeviceToHost, stream.s),
          "copy sums");
    check(cudaMemcpyAsync(h_count.data(), d_count.p, nb * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                          stream.s),
          "copy counts");
    check(cudaStreamSynchronize(stream.s), "synchronize");
    for (size_t b = 0; b < nb; ++b) {
        sum[b] += h_sum[b];
        count[b] += int64_t(h_count[b]);
    }
}

template void azint_detail::accumulate_cuda<int32_t>(const int32_t*, const int32_t*, const float*, int64_t,
                                                     int32_t, double, double*, int64_t*);
template void azint_detail::accumulate_cuda<float>(const float*, const int32_t*, const float*, int64_t,
                                                   int32_t, double, double*, int64_t*);

} // namespace jfjoch
