// Known-cell fast-feedback indexer (TORO, Gasparotto et al., J. Appl. Cryst. 57 (2024)), CPU + CUDA.
//
// Given the reciprocal vectors s of the spots of one image (1/A, no 2 pi) and a known real-space cell
// (rows a, b, c in A, any orientation), find the orientation of the cell that puts the most spots on
// integer hkl, refine the cell by trimmed least squares and return the per-spot assignment.
//
// Settings are split by lifetime (as in PSI's ffbidx):
//  * ToroSizes fix the allocations of a ToroIndexer (max spots, direction samples, candidates, rotation
//    samples, cells refined); change them by making a new indexer.
//  * ToroThresholds are per call.
//
// Thread safety: a ToroIndexer owns its workspace; index() locks an internal mutex, so one indexer may be
// shared, but calls on it serialise. Use one indexer per thread for parallelism (the Python layer does).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend.hpp"

namespace jfjoch {

/// Sizes that fix the workspace (allocation-time settings).
struct ToroSizes {
    int max_spots = 300; ///< spots used in the cell refinement (the lowest-resolution ones); all are assigned
    int max_search_spots =
        128; ///< of these, the lowest-resolution ones used to score directions and rotations
    int num_directions = 32768; ///< samples of the half-sphere spiral per cell-vector length
    int num_candidates = 32;    ///< best directions kept (and locally refined) per cell vector
    int num_rotations = 720;    ///< samples of the rotation about a candidate (per sign), full turn
    int num_top_vectors = 24;   ///< best refined candidate vectors (over all 3) whose rotations are sampled
    int num_cells = 24;         ///< best candidate cells refined by least squares
};

/// Per-call thresholds. Distances are in units of the lattice spacing (fractional Miller index).
struct ToroThresholds {
    float vector_trim = 0.25f;            ///< direction score: per-spot distance to integer capped at this
    float cell_trim = 0.3f;               ///< cell score: per-spot |hkl - round(hkl)| capped at this
    int direction_refine_iterations = 12; ///< pattern-search steps refining each candidate direction
    int refine_iterations = 8;            ///< trimmed least-squares iterations on each candidate cell
    float refine_threshold_start = 0.3f;  ///< inclusion threshold of the first least-squares iteration
    float refine_threshold_end = 0.1f;    ///< ... and of the last (geometric shrink in between)
    float indexed_threshold = 0.1f;       ///< a spot is indexed when max |hkl - round(hkl)| < this
    int min_spots_ls = 6;                 ///< a least-squares step needs at least this many spots
    int min_indexed = 9;                  ///< ok needs at least this many indexed spots ...
    float min_fraction = 0.35f;           ///< ... and at least this fraction of the spots indexed
    float max_cell_deviation = 0.02f;     ///< ... and refined cell close to the given one:
                                          ///< lengths within this relative change, cos(angles) within this
};

/// Result of one call. lattice: rows a, b, c (A) in the frame of s.
struct ToroResult {
    double lattice[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    float score = 0;    ///< mean trimmed cell score of the chosen cell before refinement (lower = better)
    int indexed = 0;    ///< number of indexed spots
    float fraction = 0; ///< indexed / n
    bool ok = false;    ///< enough spots indexed (min_indexed AND min_fraction) and cell not drifted
    double stage_seconds[4] = {0, 0, 0, 0}; ///< directions, candidate refinement, rotations, cell refinement
};

struct ToroWorkspace; // defined in toro_workspace.hpp (host) and toro_cuda.cu (device part)

class ToroIndexer {
  public:
    explicit ToroIndexer(const ToroSizes& sizes, Backend backend = Backend::Auto);
    ~ToroIndexer();
    ToroIndexer(const ToroIndexer&) = delete;
    ToroIndexer& operator=(const ToroIndexer&) = delete;

    /// Index n spots s (n x 3, row-major, 1/A) with the known cell (rows a, b, c, A, row-major 3x3).
    /// hkl (n x 3) and indexed (n) receive the per-spot assignment (may be null). Throws
    /// std::invalid_argument for bad input.
    ToroResult index(const float* s, int n, const double cell[9], const ToroThresholds& th, int32_t* hkl,
                     uint8_t* indexed);

    const ToroSizes& sizes() const { return sizes_; }
    Backend backend() const { return backend_; } ///< resolved: CPU or CUDA

  private:
    ToroSizes sizes_;
    Backend backend_;
    std::unique_ptr<ToroWorkspace> ws_;
    std::mutex mutex_;
};

/// Direction-score loop alone (for tests): scores of the first `count` spiral samples of num_directions
/// for a vector of length len_A; s is n x 3 (row-major). Runs the CPU loop.
void toro_direction_scores_cpu(const float* s, int n, float len_A, int num_directions, float trim,
                               float* out);
/// One direction scored by a direct call of the per-item function (for tests).
float toro_direction_score_one(const float* s, int n, const float dir[3], float len_A, float trim);
/// The j-th direction of the num_directions half-sphere spiral.
void toro_spiral(int j, int num_directions, float dir[3]);

} // namespace jfjoch
