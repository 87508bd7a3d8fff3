// CPU backend of the FFT indexer's per-direction stage: loops over fft_impl.hpp with FFTW.
#include <fftw3.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "index/fft/fft_backends.hpp"

namespace jfjoch::detail {
namespace {

struct FftwFree {
    void operator()(void* p) const { fftwf_free(p); }
};

std::mutex plan_mutex;
std::map<int, fftwf_plan>& plan_cache() {
    static std::map<int, fftwf_plan> cache; // plans live for the process; guarded by plan_mutex
    return cache;
}

/// Plan for an r2c transform of n floats (FFTW planning is not thread-safe: mutex). Execution with the
/// new-array interface is thread-safe; buffers come from fftwf_malloc, so alignment matches the plan.
fftwf_plan get_plan(int n) {
    std::lock_guard<std::mutex> lock(plan_mutex);
    auto& cache = plan_cache();
    auto it = cache.find(n);
    if (it != cache.end())
        return it->second;
    std::unique_ptr<float, FftwFree> in(fftwf_alloc_real(n));
    std::unique_ptr<fftwf_complex, FftwFree> out(fftwf_alloc_complex(n / 2 + 1));
    fftwf_plan p = fftwf_plan_dft_r2c_1d(n, in.get(), out.get(), FFTW_MEASURE | FFTW_DESTROY_INPUT);
    if (!p)
        throw std::runtime_error("FFTW planning failed");
    cache.emplace(n, p);
    return p;
}

} // namespace

void fft_peaks_cpu(const float* s_xyz, int n, const FftLayout& L, DirectionPeak* peaks, double& t_hist,
                   double& t_fft) {
    using clk = std::chrono::steady_clock;
    // Directions in blocks of kBlock: one pass over the spots fills kBlock independent histograms (the
    // scatter-adds of different histograms do not depend on each other), then one FFT + peak per direction.
    constexpr int kBlock = 4;
    const size_t stride = (size_t(L.n_bins) + 15) & ~size_t(15); // keeps every row SIMD-aligned
    fftwf_plan plan = get_plan(L.n_bins);
    std::unique_ptr<float, FftwFree> hist(fftwf_alloc_real(kBlock * stride));
    std::unique_ptr<fftwf_complex, FftwFree> spec(fftwf_alloc_complex(L.n_bins / 2 + 1));
    const SpectrumPower power{reinterpret_cast<const float*>(spec.get())};
    clk::duration dh{}, df{};
    for (int d0 = 0; d0 < L.n_directions; d0 += kBlock) {
        const int nb = std::min(kBlock, L.n_directions - d0);
        auto t0 = clk::now();
        Vec3f dir[kBlock];
        float* h[kBlock];
        for (int j = 0; j < nb; ++j) {
            dir[j] = fibonacci_direction(d0 + j, L.n_directions);
            h[j] = hist.get() + j * stride;
            std::fill(h[j], h[j] + L.n_bins, 0.0f);
        }
        if (nb == kBlock) {
            for (int i = 0; i < n; ++i) {
                const int b0 = projection_bin(s_xyz, i, dir[0], L), b1 = projection_bin(s_xyz, i, dir[1], L);
                const int b2 = projection_bin(s_xyz, i, dir[2], L), b3 = projection_bin(s_xyz, i, dir[3], L);
                h[0][b0] += 1.0f;
                h[1][b1] += 1.0f;
                h[2][b2] += 1.0f;
                h[3][b3] += 1.0f;
            }
        } else {
            for (int j = 0; j < nb; ++j)
                histogram_direction(s_xyz, n, dir[j], L, h[j]);
        }
        auto t1 = clk::now();
        for (int j = 0; j < nb; ++j) {
            fftwf_execute_dft_r2c(plan, h[j], spec.get());
            peaks[d0 + j] = pick_peak(power, L);
        }
        auto t2 = clk::now();
        dh += t1 - t0;
        df += t2 - t1;
    }
    t_hist += std::chrono::duration<double>(dh).count();
    t_fft += std::chrono::duration<double>(df).count();
}

} // namespace jfjoch::detail
