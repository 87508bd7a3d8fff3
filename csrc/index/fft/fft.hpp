// FFT indexer (unknown cell): project the spots' reciprocal vectors on many directions, histogram the
// projections, 1-D FFT each histogram, take the strongest periodicity per direction as a real-space vector
// candidate, choose three non-coplanar candidates that index the most spots, reduce and refine.
// CPU backend: FFTW single precision (plans cached by size, planning guarded by a mutex); CUDA backend:
// cuFFT batched over directions (direct DFT of the needed frequencies when built without cuFFT).
// Thread-safe: every call uses its own buffers; call from many threads at once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/backend.hpp"
#include "core/vec3.hpp"

namespace jfjoch {

struct FftIndexerSettings {
    int n_directions = 16384;             ///< directions on the half sphere (Fibonacci spiral)
    float min_cell_A = 10.0f;             ///< shortest real-space vector considered (Angstrom)
    float max_cell_A = 250.0f;            ///< longest real-space vector considered (Angstrom)
    float oversampling = 1.5f;            ///< histogram bins per Nyquist bin of max_cell_A (>= 1)
    int n_candidates = 30;                ///< candidate vectors kept after non-maximum suppression
    float min_candidate_angle_deg = 5.0f; ///< candidates closer than this in direction are duplicates
    float index_tolerance = 0.1f;         ///< spot indexed when every |h - round(h)| < this
    float count_fraction = 0.95f;      ///< basis: smallest volume among triples indexing >= this x best count
    int refine_cycles = 4;             ///< least-squares refine / re-index cycles on the final basis
    int min_indexed = 6;               ///< ok needs at least this many indexed spots ...
    float min_indexed_fraction = 0.2f; ///< ... and at least this fraction of the spots
};

struct FftIndexerTimes {
    double histogram_s = 0;  ///< projection + histogram
    double fft_s = 0;        ///< FFT + per-direction peak pick
    double candidates_s = 0; ///< candidate selection, vector refinement, basis choice
    double refine_s = 0;     ///< reduction + least-squares refinement of the basis
};

struct FftIndexerResult {
    bool ok = false;
    Mat3d lattice{}; ///< rows a, b, c (Angstrom), reduced, right-handed
    size_t n_indexed = 0;
    Backend backend = Backend::CPU; ///< backend that ran the per-direction work
    FftIndexerTimes times;
};

/// Index n spots (s_xyz: n*3 floats, 1/Angstrom). hkl (n*3) and indexed (n) are outputs, may be null.
/// backend: CPU, CUDA (throws std::runtime_error when no CUDA backend/device), Auto (CUDA when a device is
/// present, else CPU). Throws std::invalid_argument on bad settings.
FftIndexerResult fft_index(const float* s_xyz, size_t n, const FftIndexerSettings& settings, Backend backend,
                           int32_t* hkl, uint8_t* indexed);

} // namespace jfjoch
