// CUDA backend of the FFT indexer's per-direction stage: memory handling and launches only; the per-direction
// work is fft_impl.hpp (the same functions the CPU loop runs). cuFFT batched R2C over all directions when
// JFJOCH_HAVE_CUFFT (cmake/FindCuFFT.cmake); otherwise a direct DFT of the searched frequencies.
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"
#ifdef JFJOCH_HAVE_CUFFT
#include <cufft.h>
#endif

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "index/fft/fft_backends.hpp"

namespace jfjoch::detail {
namespace {

void check(cudaError_t e, const char* what) {
    cuda::check(e, "FFT indexer (CUDA)", what);
}

__global__ void histogram_kernel(const float* s, int n, FftLayout L, float* hist) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= L.n_directions)
        return;
    histogram_direction(s, n, fibonacci_direction(d, L.n_directions), L, hist + size_t(d) * L.n_bins);
}

#ifdef JFJOCH_HAVE_CUFFT
__global__ void peak_kernel(const float* spec, FftLayout L, DirectionPeak* peaks) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= L.n_directions)
        return;
    peaks[d] = pick_peak(SpectrumPower{spec + 2 * size_t(d) * (L.n_bins / 2 + 1)}, L);
}
#else
__global__ void dft_peak_kernel(const float* hist, FftLayout L, DirectionPeak* peaks) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= L.n_directions)
        return;
    peaks[d] = pick_peak(DftPower{hist + size_t(d) * L.n_bins, L.n_bins}, L);
}
#endif

/// Per-thread device state (buffers grown on demand, cuFFT plan for the current size), released at thread
/// exit: no state is shared between threads, so concurrent calls from Python threads are safe.
struct DeviceWork {
    cudaStream_t stream = nullptr;
    float* s = nullptr;
    size_t s_cap = 0;
    float* hist = nullptr;
    size_t hist_cap = 0;
    float* spec = nullptr;
    size_t spec_cap = 0;
    DirectionPeak* peaks = nullptr;
    size_t peaks_cap = 0;
#ifdef JFJOCH_HAVE_CUFFT
    cufftHandle plan = 0;
    bool have_plan = false;
    int plan_bins = 0, plan_batch = 0;
#endif
    ~DeviceWork() {
#ifdef JFJOCH_HAVE_CUFFT
        if (have_plan)
            cufftDestroy(plan);
#endif
        cudaFree(s);
        cudaFree(hist);
        cudaFree(spec);
        cudaFree(peaks);
        if (stream)
            cudaStreamDestroy(stream);
    }
    template <typename T> static void grow(T*& p, size_t& cap, size_t need) {
        if (need <= cap)
            return;
        cudaFree(p);
        p = nullptr;
        check(cudaMalloc(&p, need * sizeof(T)), "cudaMalloc");
        cap = need;
    }
};

DeviceWork& work() {
    thread_local DeviceWork w;
    if (!w.stream)
        check(cudaStreamCreateWithFlags(&w.stream, cudaStreamNonBlocking), "stream");
    return w;
}

} // namespace

void fft_peaks_cuda(const float* s_xyz, int n, const FftLayout& L, DirectionPeak* peaks, double& t_hist,
                    double& t_fft) {
    using clk = std::chrono::steady_clock;
    DeviceWork& w = work();
    const size_t nd = size_t(L.n_directions), nb = size_t(L.n_bins);
    DeviceWork::grow(w.s, w.s_cap, size_t(3) * n);
    DeviceWork::grow(w.hist, w.hist_cap, nd * nb);
    DeviceWork::grow(w.peaks, w.peaks_cap, nd);
    const int block = 128, grid = int((nd + block - 1) / block);
    auto t0 = clk::now();
    check(cudaMemcpyAsync(w.s, s_xyz, sizeof(float) * 3 * n, cudaMemcpyHostToDevice, w.stream), "upload");
    histogram_kernel<<<grid, block, 0, w.stream>>>(w.s, n, L, w.hist);
    check(cudaGetLastError(), "histogram kernel");
    check(cudaStreamSynchronize(w.stream), "histogram");
    auto t1 = clk::now();
#ifdef JFJOCH_HAVE_CUFFT
    DeviceWork::grow(w.spec, w.spec_cap, 2 * nd * (nb / 2 + 1));
    if (!w.have_plan || w.plan_bins != L.n_bins || w.plan_batch != L.n_directions) {
        if (w.have_plan)
            cufftDestroy(w.plan);
        w.have_plan = false;
        int dims[1] = {L.n_bins};
        if (cufftPlanMany(&w.plan, 1, dims, nullptr, 1, L.n_bins, nullptr, 1, L.n_bins / 2 + 1, CUFFT_R2C,
                          L.n_directions) != CUFFT_SUCCESS)
            throw std::runtime_error("FFT indexer (CUDA): cufftPlanMany failed");
        cufftSetStream(w.plan, w.stream);
        w.have_plan = true;
        w.plan_bins = L.n_bins;
        w.plan_batch = L.n_directions;
    }
    if (cufftExecR2C(w.plan, w.hist, reinterpret_cast<cufftComplex*>(w.spec)) != CUFFT_SUCCESS)
        throw std::runtime_error("FFT indexer (CUDA): cufftExecR2C failed");
    peak_kernel<<<grid, block, 0, w.stream>>>(w.spec, L, w.peaks);
#else
    dft_peak_kernel<<<grid, block, 0, w.stream>>>(w.hist, L, w.peaks);
#endif
    check(cudaGetLastError(), "peak kernel");
    check(cudaMemcpyAsync(peaks, w.peaks, sizeof(DirectionPeak) * nd, cudaMemcpyDeviceToHost, w.stream),
          "download");
    check(cudaStreamSynchronize(w.stream), "peaks");
    auto t2 = clk::now();
    t_hist += std::chrono::duration<double>(t1 - t0).count();
    t_fft += std::chrono::duration<double>(t2 - t1).count();
}

} // namespace jfjoch::detail
