// Internal: the backend operations of the TORO indexer (CPU loops in toro_cpu.cpp, CUDA launches in
// toro_cuda.cu) and the host workspace. Not part of the public API.
#pragma once
#include <vector>

#include "index/toro/toro.hpp"
#include "index/toro/toro_impl.hpp"

namespace jfjoch::toro {

/// Spots in structure-of-arrays form (host pointers), n <= ToroSizes::max_spots.
struct SpotsSoA {
    const float* x;
    const float* y;
    const float* z;
    int n;
};

// CPU loops over the per-item functions of toro_impl.hpp.
void cpu_directions(const SpotsSoA& s, const float* lens, int nlen, int num_dir, float trim2, float* out);
void cpu_refine_candidates(const SpotsSoA& s, Candidate* c, int nc, const float* vec_len, float trim2,
                           float step, int iterations);
void cpu_rotations(const SpotsSoA& s, const float* B, const Candidate* top, int ntop, int num_rot,
                   float trim2, float* out);
void cpu_refine_cells(const SpotsSoA& s, double* cells, int ncells, const ToroThresholds& th, int* counts);

#ifdef JFJOCH_WITH_CUDA
// CUDA: same operations, host pointers in and out; device buffers live in CudaBuffers.
struct CudaBuffers;
CudaBuffers* cuda_alloc(const ToroSizes& sizes);
void cuda_free(CudaBuffers* b);
void cuda_upload_spots(CudaBuffers* b, const SpotsSoA& s);
void cuda_directions(CudaBuffers* b, int n, const float* lens, int nlen, int num_dir, float trim2,
                     float* out);
void cuda_refine_candidates(CudaBuffers* b, int n, Candidate* c, int nc, const float* vec_len, float trim2,
                            float step, int iterations);
void cuda_rotations(CudaBuffers* b, int n, const float* B, const Candidate* top, int ntop, int num_rot,
                    float trim2, float* out);
void cuda_refine_cells(CudaBuffers* b, int n, double* cells, int ncells, const ToroThresholds& th,
                       int* counts);
#endif

} // namespace jfjoch::toro

namespace jfjoch {

/// Host workspace of one ToroIndexer (all allocations happen at construction).
struct ToroWorkspace {
    std::vector<float> sx, sy, sz;      // spots used for the search (max_spots)
    std::vector<int> order;             // spot order by |s| (all spots of a call; grows if needed)
    std::vector<float> sq;              // |s|^2 of all spots
    std::vector<float> dir_scores;      // 3 * num_directions
    std::vector<int> sel;               // selection scratch
    std::vector<toro::Candidate> cands; // 3 * num_candidates
    std::vector<toro::Candidate> top;   // num_top_vectors
    std::vector<float> rot_scores;      // num_top_vectors * 2 * num_rotations
    std::vector<double> cells;          // num_cells * 9
    std::vector<float> cell_scores;     // num_cells
    std::vector<int> counts;            // num_cells
#ifdef JFJOCH_WITH_CUDA
    toro::CudaBuffers* cuda = nullptr;
#endif
};

} // namespace jfjoch
