// Internal: the per-direction stage of the FFT indexer on each backend (histogram, FFT, peak per direction).
#pragma once
#include "index/fft/fft_impl.hpp"

namespace jfjoch::detail {

/// CPU: FFTW. peaks has L.n_directions entries. Adds the stage times (seconds).
void fft_peaks_cpu(const float* s_xyz, int n, const FftLayout& L, DirectionPeak* peaks, double& t_hist,
                   double& t_fft);

#ifdef JFJOCH_WITH_CUDA
/// CUDA: one thread per direction for histograms and peaks, cuFFT batched (or a direct DFT without cuFFT).
void fft_peaks_cuda(const float* s_xyz, int n, const FftLayout& L, DirectionPeak* peaks, double& t_hist,
                    double& t_fft);
#endif

} // namespace jfjoch::detail
