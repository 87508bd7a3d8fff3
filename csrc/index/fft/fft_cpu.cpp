// CPU backend of the FFT indexer's per-direction stage: loops over fft_impl.hpp with FFTW.
#include <fftw3.h>

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
    fftwf_plan plan = get_plan(L.n_bins);
    std::unique_ptr<float, FftwFree> hist(fftwf_alloc_real(L.n_bins));
    std::unique_ptr<fftwf_complex, FftwFree> spec(fftwf_alloc_complex(L.n_bins / 2 + 1));
    float* h = hist.get();
    const SpectrumPower power{reinterpret_cast<const float*>(spec.get())};
    clk::duration dh{}, df{};
    for (int d = 0; d < L.n_directions; ++d) {
        auto t0 = clk::now();
        histogram_direction(s_xyz, n, fibonacci_direction(d, L.n_directions), L, h);
        auto t1 = clk::now();
        fftwf_execute_dft_r2c(plan, h, spec.get());
        peaks[d] = pick_peak(power, L);
        auto t2 = clk::now();
        dh += t1 - t0;
        df += t2 - t1;
    }
    t_hist += std::chrono::duration<double>(dh).count();
    t_fft += std::chrono::duration<double>(df).count();
}

} // namespace jfjoch::detail
