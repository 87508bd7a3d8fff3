// Per-direction work of the FFT indexer, shared by the CPU loop (fft_cpu.cpp) and the CUDA launch
// (fft_cuda.cu).
#pragma once
#include <cmath>

#include "core/vec3.hpp"

namespace jfjoch {

/// Histogram layout: bin b covers projections p in [p_min + b/inv_bin, p_min + (b+1)/inv_bin).
/// FFT bin k is a periodicity of k/(n_bins*bin) in p, i.e. a real-space length L = k * length_per_k.
struct FftLayout {
    float p_min;
    float inv_bin;
    int n_bins;
    int k_min, k_max; ///< frequencies searched (inclusive), from max/min cell
    float length_per_k;
    int n_directions;
};

struct DirectionPeak {
    float magnitude; ///< |F(k)| at the peak (spots)
    float k;         ///< peak frequency, parabolic sub-bin interpolation
};

/// Direction i of n on the upper half sphere (z >= 0), Fibonacci spiral: evenly spread.
JFJOCH_HD Vec3f fibonacci_direction(int i, int n) {
    const float golden = 2.39996322972865332f; // pi * (3 - sqrt(5))
    float z = 1.0f - (float(i) + 0.5f) / float(n);
    float r = sqrtf(fmaxf(0.0f, 1.0f - z * z));
    float phi = golden * float(i);
    return {r * cosf(phi), r * sinf(phi), z};
}

/// Histogram bin of spot i projected on direction d (clamped to the histogram).
JFJOCH_HD int projection_bin(const float* s_xyz, int i, Vec3f d, const FftLayout& L) {
    float p = s_xyz[3 * i] * d.x + s_xyz[3 * i + 1] * d.y + s_xyz[3 * i + 2] * d.z;
    int b = int((p - L.p_min) * L.inv_bin);
    return b < 0 ? 0 : (b >= L.n_bins ? L.n_bins - 1 : b);
}

/// Histogram of the projections s_i . d (n_bins floats, overwritten).
JFJOCH_HD void histogram_direction(const float* s_xyz, int n, Vec3f d, const FftLayout& L, float* hist) {
    for (int b = 0; b < L.n_bins; ++b)
        hist[b] = 0.0f;
    for (int i = 0; i < n; ++i)
        hist[projection_bin(s_xyz, i, d, L)] += 1.0f;
}

/// |F(k)|^2 from an interleaved (re, im) half spectrum (FFTW fftwf_complex / cuFFT cufftComplex).
struct SpectrumPower {
    const float* spec;
    JFJOCH_HD float operator()(int k) const {
        return spec[2 * k] * spec[2 * k] + spec[2 * k + 1] * spec[2 * k + 1];
    }
};

/// |F(k)|^2 by a direct DFT of one histogram (the CUDA fallback when cuFFT is absent).
struct DftPower {
    const float* hist;
    int n_bins;
    JFJOCH_HD float operator()(int k) const {
        float re = 0, im = 0;
        const float w = -6.283185307179586f * float(k) / float(n_bins);
        for (int b = 0; b < n_bins; ++b) {
            float h = hist[b];
            if (h != 0.0f) {
                float sn, cs;
                sincosf(w * float(b), &sn, &cs);
                re += h * cs;
                im += h * sn;
            }
        }
        return re * re + im * im;
    }
};

/// Strongest frequency in [k_min, k_max] with a parabolic interpolation of |F| around it.
template <typename Power> JFJOCH_HD DirectionPeak pick_peak(const Power& power, const FftLayout& L) {
    int best_k = L.k_min;
    float best = -1.0f;
    for (int k = L.k_min; k <= L.k_max; ++k) {
        float p = power(k);
        if (p > best) {
            best = p;
            best_k = k;
        }
    }
    float m0 = sqrtf(best);
    float km = best_k;
    if (best_k > 1 && best_k + 1 <= L.n_bins / 2) {
        float ml = sqrtf(power(best_k - 1)), mr = sqrtf(power(best_k + 1));
        float den = ml - 2.0f * m0 + mr;
        if (den < 0.0f) {
            float off = 0.5f * (ml - mr) / den;
            if (off > -0.5f && off < 0.5f)
                km += off;
        }
    }
    return {m0, km};
}

} // namespace jfjoch
