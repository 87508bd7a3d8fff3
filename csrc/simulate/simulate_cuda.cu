// CUDA backend of the simulator: memory handling and launches only; the per-item work is the
// JFJOCH_HD code of simulate_impl.hpp that the CPU backend runs.
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <stdexcept>
#include <string>

#include "simulate/simulate_impl.hpp"

namespace jfjoch::sim_detail {

namespace {

void check(cudaError_t e, const char* what) {
    cuda::check(e, "simulator (CUDA)", what);
}

struct DeviceBuffer {
    void* p = nullptr;
    explicit DeviceBuffer(size_t bytes) {
        if (bytes)
            check(cudaMalloc(&p, bytes), "cudaMalloc");
    }
    ~DeviceBuffer() {
        if (p)
            cudaFree(p);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    template <typename T> T* as() const { return static_cast<T*>(p); }
};

// One block per spot; its threads cover the (2R+1)^2 box.
__global__ void spots_kernel(float* expected, int64_t nx, int64_t ny, const double* xy, const double* photons,
                             int64_t n_spots, SimFrameSettings s) {
    const int64_t i = blockIdx.x;
    if (i >= n_spots)
        return;
    const double x = xy[2 * i], y = xy[2 * i + 1], ph = photons[i];
    if (!(ph > 0.0) || !isfinite(x) || !isfinite(y))
        return;
    const int32_t R = spot_radius(s);
    const int32_t w = 2 * R + 1;
    const double k = 1.0 / (sqrt(2.0) * s.psf_sigma_px);
    const int64_t cx = centre_pixel(x), cy = centre_pixel(y);
    for (int32_t t = threadIdx.x; t < w * w; t += blockDim.x) {
        const int64_t px = cx + (t % w) - R, py = cy + (t / w) - R;
        if (px < 0 || px >= nx || py < 0 || py >= ny)
            continue;
        const double v = ph * pixel_fraction(py, y, k) * pixel_fraction(px, x, k);
        atomicAdd(expected + py * nx + px, float(v));
    }
}

__global__ void counts_kernel(const float* expected, const uint8_t* pixel_class, int64_t npix,
                              SimFrameSettings s, int32_t* counts) {
    const uint64_t key = frame_key(s);
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < npix)
        counts[i] = pixel_counts(expected[i], pixel_class[i], i, key, s);
}

} // namespace

void frame_cuda(const float* background, const uint8_t* pixel_class, int64_t nx, int64_t ny, const double* xy,
                const double* photons, int64_t n_spots, const SimFrameSettings& s, float* expected,
                int32_t* counts) {
    const int64_t npix = nx * ny;
    const size_t n = size_t(npix), m = size_t(n_spots);
    DeviceBuffer d_exp{sizeof(float) * n}, d_cls{n}, d_counts{sizeof(int32_t) * n};
    DeviceBuffer d_xy{sizeof(double) * 2 * m}, d_ph{sizeof(double) * m};
    check(cudaMemcpy(d_exp.p, background, sizeof(float) * size_t(npix), cudaMemcpyHostToDevice), "copy");
    check(cudaMemcpy(d_cls.p, pixel_class, size_t(npix), cudaMemcpyHostToDevice), "copy");
    if (n_spots > 0) {
        check(cudaMemcpy(d_xy.p, xy, sizeof(double) * size_t(2 * n_spots), cudaMemcpyHostToDevice), "copy");
        check(cudaMemcpy(d_ph.p, photons, sizeof(double) * size_t(n_spots), cudaMemcpyHostToDevice), "copy");
        spots_kernel<<<unsigned(n_spots), 64>>>(d_exp.as<float>(), nx, ny, d_xy.as<double>(),
                                                d_ph.as<double>(), n_spots, s);
        check(cudaGetLastError(), "spots kernel");
    }
    const int threads = 256;
    counts_kernel<<<unsigned((npix + threads - 1) / threads), threads>>>(
        d_exp.as<float>(), d_cls.as<uint8_t>(), npix, s, d_counts.as<int32_t>());
    check(cudaGetLastError(), "counts kernel");
    check(cudaMemcpy(counts, d_counts.p, sizeof(int32_t) * size_t(npix), cudaMemcpyDeviceToHost),
          "copy back");
    if (expected)
        check(cudaMemcpy(expected, d_exp.p, sizeof(float) * size_t(npix), cudaMemcpyDeviceToHost),
              "copy back");
}

} // namespace jfjoch::sim_detail
