// CUDA backend of the frame pass: memory handling and launches only. The per-pixel work is the same
// JFJOCH_HD functions the CPU backends run: the spot finder's classification and strong-pixel test
// (spots_impl.hpp, window sums read directly as in spots_cuda.cu) and the integrator's pixel value
// (azint_impl.hpp, per-block shared-memory histograms as in azint_cuda.cu), in one kernel over the pixels.
// The run map is expanded to per-pixel flags and bins on the device. The strong-pixel map, the image
// statistics and the per-bin sums go back to the host, where labelling runs (spots_cpu.cpp). Decoding
// stays on the host (frame.cpp). The map and the image are copied per call (reentrant).
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <vector>

#include "frame/frame.hpp"
#include "frame/frame_impl.hpp"
#include "spots/spots_device.cuh"

namespace jfjoch {
namespace {

using namespace spots_impl;

constexpr int kBlock = 256;
constexpr int32_t kMaxSharedBins = 2048; // 2048 * (8 + 8) bytes = 32 KiB of shared memory

void check(cudaError_t e, const char* what) {
    cuda::check(e, "frame pass (CUDA)", what);
}
using cuda::DeviceBuffer;
using cuda::Stream;

using spots_device::BlockStats;
using spots_device::DeviceStats;

/// One block per row: its runs (thread-strided) written out as per-pixel flags and bins.
__global__ void expand_kernel(int64_t nx, const int64_t* flag_row, const int32_t* flag_end,
                              const uint8_t* flag_id, const int64_t* bin_row, const int32_t* bin_end,
                              const int32_t* bin_id, uint8_t* flags, int32_t* bins) {
    const int64_t y = blockIdx.x;
    for (int64_t k = flag_row[y] + threadIdx.x; k < flag_row[y + 1]; k += blockDim.x) {
        const int64_t x0 = k == flag_row[y] ? 0 : flag_end[k - 1];
        for (int64_t x = x0; x < flag_end[k]; ++x)
            flags[y * nx + x] = flag_id[k];
    }
    for (int64_t k = bin_row[y] + threadIdx.x; k < bin_row[y + 1]; k += blockDim.x) {
        const int64_t x0 = k == bin_row[y] ? 0 : bin_end[k - 1];
        for (int64_t x = x0; x < bin_end[k]; ++x)
            bins[y * nx + x] = bin_id[k];
    }
}

/// Per pixel: the spot finder's strong-pixel test and statistics, and the pixel's azimuthal contribution.
__global__ void pass_kernel(const int32_t* image, const uint8_t* flags, const int32_t* bins,
                            const float* weight, int64_t nx, int64_t ny, int32_t sat_eff, int32_t w,
                            int32_t threshold, double sigma2, int64_t az_sat, int32_t n_bins, bool use_shared,
                            uint8_t* map, DeviceStats* stats, double* sum, unsigned long long* count) {
    extern __shared__ __align__(16) unsigned char smem[];
    double* s_sum = reinterpret_cast<double*>(smem);
    unsigned long long* s_count = reinterpret_cast<unsigned long long*>(s_sum + (use_shared ? n_bins : 0));
    __shared__ BlockStats block;
    if (threadIdx.x == 0)
        block.reset();
    if (use_shared)
        for (int32_t b = threadIdx.x; b < n_bins; b += blockDim.x) {
            s_sum[b] = 0.0;
            s_count[b] = 0ull;
        }
    __syncthreads();
    const int64_t npix = nx * ny;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < npix; i += stride) {
        const int64_t y = i / nx, x = i - y * nx;
        map[i] = spots_device::classify_pixel_counted(image, flags, nx, ny, x, y, sat_eff, w, threshold,
                                                      sigma2, block);
        const int32_t v = image[i];
        double val;
        const int32_t b = bins[i];
        if (azint_impl::pixel_value(v, b, weight[i], az_sat, val)) {
            if (use_shared) {
                atomicAdd(&s_sum[b], val);
                atomicAdd(&s_count[b], 1ull);
            } else {
                atomicAdd(&sum[b], val);
                atomicAdd(&count[b], 1ull);
            }
        }
    }
    __syncthreads();
    if (threadIdx.x == 0)
        block.flush(stats);
    if (use_shared)
        for (int32_t b = threadIdx.x; b < n_bins; b += blockDim.x)
            if (s_count[b]) {
                atomicAdd(&sum[b], s_sum[b]);
                atomicAdd(&count[b], s_count[b]);
            }
}

template <typename T>
void upload(DeviceBuffer<T>& d, const std::vector<T>& h, const Stream& s, const char* what) {
    check(cudaMemcpyAsync(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, s.s), what);
}

} // namespace

void frame_detail::pass_cuda(const int32_t* image, const FrameMap& m, const FrameSettings& settings,
                             uint8_t* map_out, spots_detail::StrongPixels& stats_out,
                             std::vector<double>& sum, std::vector<int64_t>& count) {
    const size_t npix = size_t(m.nx * m.ny), nb = size_t(m.n_bins);
    Stream stream;
    DeviceBuffer<int32_t> d_image(npix), d_bins(npix);
    DeviceBuffer<uint8_t> d_flags(npix), d_map(npix);
    DeviceBuffer<float> d_weight(npix);
    DeviceBuffer<int64_t> d_flag_row(m.flag_row.size()), d_bin_row(m.bin_row.size());
    DeviceBuffer<int32_t> d_flag_end(m.flag_end.size()), d_bin_end(m.bin_end.size()),
        d_bin_id(m.bin_id.size());
    DeviceBuffer<uint8_t> d_flag_id(m.flag_id.size());
    DeviceBuffer<DeviceStats> d_stats(1);
    DeviceBuffer<double> d_sum(nb);
    DeviceBuffer<unsigned long long> d_count(nb);
    const DeviceStats init{INT32_MIN, 0, 0, 0};
    check(cudaMemcpyAsync(d_image.p, image, npix * sizeof(int32_t), cudaMemcpyHostToDevice, stream.s),
          "copy image");
    upload(d_weight, m.weight, stream, "copy weights");
    upload(d_flag_row, m.flag_row, stream, "copy map");
    upload(d_flag_end, m.flag_end, stream, "copy map");
    upload(d_flag_id, m.flag_id, stream, "copy map");
    upload(d_bin_row, m.bin_row, stream, "copy map");
    upload(d_bin_end, m.bin_end, stream, "copy map");
    upload(d_bin_id, m.bin_id, stream, "copy map");
    check(cudaMemcpyAsync(d_stats.p, &init, sizeof(init), cudaMemcpyHostToDevice, stream.s), "copy stats");
    check(cudaMemsetAsync(d_sum.p, 0, nb * sizeof(double), stream.s), "clear sums");
    check(cudaMemsetAsync(d_count.p, 0, nb * sizeof(unsigned long long), stream.s), "clear counts");

    expand_kernel<<<unsigned(m.ny), 128, 0, stream.s>>>(m.nx, d_flag_row.p, d_flag_end.p, d_flag_id.p,
                                                        d_bin_row.p, d_bin_end.p, d_bin_id.p, d_flags.p,
                                                        d_bins.p);
    check(cudaGetLastError(), "expand kernel launch");
    const SpotFinderSettings& ss = settings.spots;
    const bool use_shared = m.n_bins <= kMaxSharedBins;
    const size_t shared_bytes = use_shared ? nb * (sizeof(double) + sizeof(unsigned long long)) : 0;
    const int64_t blocks_needed = (int64_t(npix) + kBlock - 1) / kBlock;
    const unsigned grid = unsigned(blocks_needed < 1024 ? blocks_needed : 1024);
    const int64_t az_sat = azint_impl::saturation_threshold(settings.azint_saturation, image);
    pass_kernel<<<grid, kBlock, shared_bytes, stream.s>>>(
        d_image.p, d_flags.p, d_bins.p, d_weight.p, m.nx, m.ny,
        effective_saturation(settings.spot_saturation), ss.window_half, ss.photon_threshold,
        double(ss.sigma) * double(ss.sigma), az_sat, m.n_bins, use_shared, d_map.p, d_stats.p, d_sum.p,
        d_count.p);
    check(cudaGetLastError(), "pass kernel launch");

    DeviceStats st{};
    std::vector<unsigned long long> h_count(nb);
    sum.assign(nb, 0.0);
    check(cudaMemcpyAsync(map_out, d_map.p, npix, cudaMemcpyDeviceToHost, stream.s), "copy map");
    check(cudaMemcpyAsync(&st, d_stats.p, sizeof(st), cudaMemcpyDeviceToHost, stream.s), "copy stats");
    check(cudaMemcpyAsync(sum.data(), d_sum.p, nb * sizeof(double), cudaMemcpyDeviceToHost, stream.s),
          "copy sums");
    check(cudaMemcpyAsync(h_count.data(), d_count.p, nb * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                          stream.s),
          "copy counts");
    check(cudaStreamSynchronize(stream.s), "synchronize");
    count.assign(h_count.begin(), h_count.end());
    stats_out.max_value = st.max_value;
    stats_out.n_saturated = int64_t(st.n_saturated);
    stats_out.n_error = int64_t(st.n_error);
    stats_out.n_strong = int64_t(st.n_strong);
}

} // namespace jfjoch
