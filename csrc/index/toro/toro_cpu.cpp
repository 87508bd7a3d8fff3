// CPU backend of the TORO indexer: plain loops over the per-item functions of toro_impl.hpp.
#include "index/toro/toro_kernels.hpp"

namespace jfjoch::toro {

void cpu_directions(const SpotsSoA& s, const float* lens, int nlen, int num_dir, float trim2, float* out) {
    for (int g = 0; g < nlen; ++g)
        for (int j = 0; j < num_dir; ++j)
            out[g * num_dir + j] =
                direction_score(s.x, s.y, s.z, s.n, spiral_direction(j, num_dir), lens[g], trim2);
}

void cpu_refine_candidates(const SpotsSoA& s, Candidate* c, int nc, const float* vec_len, float trim2,
                           float step, int iterations) {
    for (int i = 0; i < nc; ++i)
        refine_candidate(s.x, s.y, s.z, s.n, c[i], vec_len[c[i].vec], trim2, step, iterations);
}

void cpu_rotations(const SpotsSoA& s, const float* B, const Candidate* top, int ntop, int num_rot,
                   float trim2, float* out) {
    const int total = ntop * 2 * num_rot;
    for (int q = 0; q < total; ++q) {
        float L[9];
        out[q] = rotation_item(s.x, s.y, s.z, s.n, B, top, num_rot, q, trim2, L);
    }
}

void cpu_refine_cells(const SpotsSoA& s, double* cells, int ncells, const ToroThresholds& th, int* counts) {
    for (int i = 0; i < ncells; ++i)
        counts[i] =
            refine_cell(s.x, s.y, s.z, s.n, cells + 9 * i, th.refine_iterations, th.refine_threshold_start,
                        th.refine_threshold_end, th.min_spots_ls, th.indexed_threshold);
}

} // namespace jfjoch::toro
