// TORO indexer: input checks, stage orchestration and backend dispatch (CPU loops or CUDA launches).
#include "index/toro/toro.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "index/toro/toro_kernels.hpp"

namespace jfjoch {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

Backend resolve_backend(Backend b) {
    if (b == Backend::CPU)
        return Backend::CPU;
    if (b == Backend::CUDA) {
        if (!cuda_compiled())
            throw std::runtime_error("toro: CUDA backend requested but this build has no CUDA support");
        if (cuda_device_count() == 0)
            throw std::runtime_error("toro: CUDA backend requested but no CUDA device is available");
        return Backend::CUDA;
    }
    return (cuda_compiled() && cuda_device_count() > 0) ? Backend::CUDA : Backend::CPU;
}

void check_sizes(const ToroSizes& z) {
    if (z.max_spots < 3 || z.max_search_spots < 3 || z.num_directions < 16 || z.num_candidates < 1 ||
        z.num_rotations < 4 || z.num_top_vectors < 1 || z.num_cells < 1 ||
        z.num_top_vectors > 3 * z.num_candidates || z.num_cells > 2 * z.num_top_vectors)
        throw std::invalid_argument(
            "toro: invalid sizes (need max_spots>=3, num_directions>=16, num_rotations>=4, "
            "1<=num_top_vectors<=3*num_candidates, 1<=num_cells<=2*num_top_vectors)");
}

void check_thresholds(const ToroThresholds& t) {
    auto in01 = [](float v) { return v > 0.0f && v <= 0.5f; };
    if (!in01(t.vector_trim) || !(t.cell_trim > 0.0f && t.cell_trim <= 0.87f) ||
        !in01(t.refine_threshold_start) || !in01(t.refine_threshold_end) || !in01(t.indexed_threshold) ||
        t.direction_refine_iterations < 0 || t.refine_iterations < 0 || t.min_spots_ls < 4 ||
        t.min_indexed < 0 || !(t.min_fraction >= 0.0f) || !(t.min_fraction <= 1.0f) ||
        !(t.max_cell_deviation > 0.0f))
        throw std::invalid_argument(
            "toro: invalid thresholds (trims and thresholds in (0, 0.5], cell_trim in "
            "(0, 0.87], min_spots_ls >= 4, min_fraction in [0, 1])");
}

/// Greedy selection of up to k lowest scores among the num_dir spiral directions of one length group,
/// skipping directions within min_angle (either sign) of one already chosen.
void select_directions(const float* scores, int num_dir, int k, float cos_min, std::vector<int>& sel,
                       std::vector<Vec3f>& chosen) {
    chosen.clear();
    int pool = std::min(num_dir, std::max(k * 64, 256));
    sel.resize(num_dir);
    for (int j = 0; j < num_dir; ++j)
        sel[j] = j;
    auto less = [scores](int a, int b) { return scores[a] < scores[b] || (scores[a] == scores[b] && a < b); };
    std::partial_sort(sel.begin(), sel.begin() + pool, sel.end(), less);
    for (int p = 0; p < pool && int(chosen.size()) < k; ++p) {
        Vec3f d = toro::spiral_direction(sel[p], num_dir);
        bool near = false;
        for (const auto& c : chosen)
            if (std::fabs(dot(c, d)) > cos_min) {
                near = true;
                break;
            }
        if (!near)
            chosen.push_back(d);
    }
}

/// Deviation of a refined cell L (rows) from the given cell B (rows): the largest relative length change
/// and the largest change of the cosine of an inter-axial angle.
double cell_deviation(const double* L, const float* B) {
    double ll[3], lb[3], dev = 0;
    for (int r = 0; r < 3; ++r) {
        ll[r] = std::sqrt(L[3 * r] * L[3 * r] + L[3 * r + 1] * L[3 * r + 1] + L[3 * r + 2] * L[3 * r + 2]);
        lb[r] = std::sqrt(double(B[3 * r]) * B[3 * r] + double(B[3 * r + 1]) * B[3 * r + 1] +
                          double(B[3 * r + 2]) * B[3 * r + 2]);
        dev = std::max(dev, std::fabs(ll[r] / lb[r] - 1.0));
    }
    for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j) {
            double cl = (L[3 * i] * L[3 * j] + L[3 * i + 1] * L[3 * j + 1] + L[3 * i + 2] * L[3 * j + 2]) /
                        (ll[i] * ll[j]);
            double cb = (double(B[3 * i]) * B[3 * j] + double(B[3 * i + 1]) * B[3 * j + 1] +
                         double(B[3 * i + 2]) * B[3 * j + 2]) /
                        (lb[i] * lb[j]);
            dev = std::max(dev, std::fabs(cl - cb));
        }
    return std::isfinite(dev) ? dev : 1e30;
}

} // namespace

ToroIndexer::ToroIndexer(const ToroSizes& sizes, Backend backend)
    : sizes_(sizes), backend_(resolve_backend(backend)), ws_(new ToroWorkspace) {
    check_sizes(sizes_);
    auto& w = *ws_;
    w.sx.resize(sizes_.max_spots);
    w.sy.resize(sizes_.max_spots);
    w.sz.resize(sizes_.max_spots);
    w.dir_scores.resize(size_t(3) * sizes_.num_directions);
    w.sel.reserve(sizes_.num_directions);
    w.cands.resize(size_t(3) * sizes_.num_candidates);
    w.top.resize(sizes_.num_top_vectors);
    w.rot_scores.resize(size_t(sizes_.num_top_vectors) * 2 * sizes_.num_rotations);
    w.cells.resize(size_t(sizes_.num_cells) * 9);
    w.cell_scores.resize(sizes_.num_cells);
    w.counts.resize(sizes_.num_cells);
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        w.cuda = toro::cuda_alloc(sizes_);
#endif
}

ToroIndexer::~ToroIndexer() {
#ifdef JFJOCH_WITH_CUDA
    if (ws_ && ws_->cuda)
        toro::cuda_free(ws_->cuda);
#endif
}

ToroResult ToroIndexer::index(const float* s, int n, const double cell[9], const ToroThresholds& th,
                              int32_t* hkl, uint8_t* indexed) {
    check_thresholds(th);
    if (n < 0 || (n > 0 && s == nullptr))
        throw std::invalid_argument("toro: bad spot array");
    for (int k = 0; k < 3 * n; ++k)
        if (!std::isfinite(s[k]))
            throw std::invalid_argument("toro: spot vectors must be finite");
    Mat3d B{};
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
            B.m[r][c] = cell[3 * r + c];
    const double vol = det(B);
    if (!std::isfinite(vol) || std::fabs(vol) < 1.0)
        throw std::invalid_argument("toro: the cell must be three non-coplanar vectors (A)");
    // A left-handed input basis is made right-handed (c -> -c): the lattice is the same.
    float Bf[9];
    for (int k = 0; k < 9; ++k)
        Bf[k] = float(cell[k]) * ((vol < 0 && k >= 6) ? -1.0f : 1.0f);

    std::lock_guard<std::mutex> lock(mutex_);
    auto& w = *ws_;
    const ToroSizes& z = sizes_;
    ToroResult res;
    if (hkl)
        std::fill(hkl, hkl + 3 * size_t(n), 0);
    if (indexed)
        std::fill(indexed, indexed + n, uint8_t(0));
    if (n < th.min_spots_ls)
        return res;

    // Spots for the search: the max_spots lowest-resolution ones.
    auto t0 = Clock::now();
    const int m = std::min(n, z.max_spots);
    w.order.resize(n);
    w.sq.resize(n);
    for (int k = 0; k < n; ++k) {
        w.order[k] = k;
        w.sq[k] = s[3 * k] * s[3 * k] + s[3 * k + 1] * s[3 * k + 1] + s[3 * k + 2] * s[3 * k + 2];
    }
    auto by_res = [&](int a, int b) { return w.sq[a] < w.sq[b] || (w.sq[a] == w.sq[b] && a < b); };
    if (m < n)
        std::nth_element(w.order.begin(), w.order.begin() + m, w.order.end(), by_res);
    std::sort(w.order.begin(), w.order.begin() + m, by_res);
    for (int k = 0; k < m; ++k) {
        const float* p = s + 3 * size_t(w.order[k]);
        w.sx[k] = p[0];
        w.sy[k] = p[1];
        w.sz[k] = p[2];
    }
    toro::SpotsSoA sp_all{w.sx.data(), w.sy.data(), w.sz.data(), m};
    const int ms = std::min(m, z.max_search_spots);
    toro::SpotsSoA sp{w.sx.data(), w.sy.data(), w.sz.data(), ms}; // search: the lowest-resolution ms spots
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        toro::cuda_upload_spots(w.cuda, sp_all);
#endif

    // Length groups: vectors of equal length share one direction scan.
    float vec_len[3];
    int group_of[3], rep[3], ngroups = 0;
    float glen[3];
    for (int i = 0; i < 3; ++i) {
        vec_len[i] =
            std::sqrt(Bf[3 * i] * Bf[3 * i] + Bf[3 * i + 1] * Bf[3 * i + 1] + Bf[3 * i + 2] * Bf[3 * i + 2]);
        group_of[i] = -1;
        for (int g = 0; g < ngroups; ++g)
            if (std::fabs(glen[g] - vec_len[i]) <= 1e-4f * vec_len[i])
                group_of[i] = g;
        if (group_of[i] < 0) {
            glen[ngroups] = vec_len[i];
            rep[ngroups] = i;
            group_of[i] = ngroups++;
        }
    }
    const int N = z.num_directions;
    const float vtrim2 = th.vector_trim * th.vector_trim;
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        toro::cuda_directions(w.cuda, ms, glen, ngroups, N, vtrim2, w.dir_scores.data());
    else
#endif
        toro::cpu_directions(sp, glen, ngroups, N, vtrim2, w.dir_scores.data());
    res.stage_seconds[0] = seconds_since(t0);

    // Candidates per length group: best directions with non-maximum suppression, then local refinement.
    t0 = Clock::now();
    const float spacing = std::sqrt(2.0f * 3.14159265f / N); // rad between neighbouring spiral points
    const float cos_min = std::cos(3.0f * spacing);
    const int K = z.num_candidates;
    std::vector<Vec3f> chosen;
    chosen.reserve(K);
    int nc = 0;
    for (int g = 0; g < ngroups; ++g) {
        select_directions(w.dir_scores.data() + size_t(g) * N, N, K, cos_min, w.sel, chosen);
        for (const auto& d : chosen)
            w.cands[nc++] = toro::Candidate{{d.x, d.y, d.z}, 0.0f, rep[g]};
    }
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        toro::cuda_refine_candidates(w.cuda, ms, w.cands.data(), nc, vec_len, vtrim2, spacing,
                                     th.direction_refine_iterations);
    else
#endif
        toro::cpu_refine_candidates(sp, w.cands.data(), nc, vec_len, vtrim2, spacing,
                                    th.direction_refine_iterations);
    // Expand group candidates to every cell vector of the group (all three vectors are hypotheses).
    const int ngc = nc;
    for (int c = 0; c < ngc; ++c)
        for (int i = 0; i < 3; ++i)
            if (i != w.cands[c].vec && group_of[i] == group_of[w.cands[c].vec]) {
                w.cands[nc] = w.cands[c];
                w.cands[nc++].vec = i;
            }
    // Top vectors: round robin over the three cell vectors (best first within each), so that every cell
    // vector gets rotation samples whatever the score scale of its length.
    auto by_score = [](const toro::Candidate& a, const toro::Candidate& b) {
        return a.score < b.score || (a.score == b.score && a.vec < b.vec);
    };
    std::sort(w.cands.begin(), w.cands.begin() + nc, by_score);
    const int ntop = std::min(nc, z.num_top_vectors);
    {
        int taken = 0, rank[3] = {0, 0, 0};
        while (taken < ntop) {
            bool any = false;
            for (int i = 0; i < 3 && taken < ntop; ++i) {
                // the rank[i]-th candidate of vector i
                int seen = 0;
                for (int c = 0; c < nc; ++c)
                    if (w.cands[c].vec == i && seen++ == rank[i]) {
                        w.top[taken++] = w.cands[c];
                        ++rank[i];
                        any = true;
                        break;
                    }
            }
            if (!any)
                break;
        }
        std::sort(w.top.begin(), w.top.begin() + ntop, by_score);
    }
    res.stage_seconds[1] = seconds_since(t0);

    // Rotations about the top vectors complete the orientation; best angle per (vector, sign) sweep.
    t0 = Clock::now();
    const int R = z.num_rotations;
    const float ctrim2 = th.cell_trim * th.cell_trim;
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        toro::cuda_rotations(w.cuda, ms, Bf, w.top.data(), ntop, R, ctrim2, w.rot_scores.data());
    else
#endif
        toro::cpu_rotations(sp, Bf, w.top.data(), ntop, R, ctrim2, w.rot_scores.data());
    const int nsweep = 2 * ntop;
    std::vector<std::pair<float, int>> sweeps(nsweep);
    for (int sw = 0; sw < nsweep; ++sw) {
        const float* r = w.rot_scores.data() + size_t(sw) * R;
        int b = int(std::min_element(r, r + R) - r);
        sweeps[sw] = {r[b], sw * R + b};
    }
    std::sort(sweeps.begin(), sweeps.end());
    const int ncell = std::min(z.num_cells, nsweep);
    for (int c = 0; c < ncell; ++c) {
        float L[9];
        toro::rotation_item(sp.x, sp.y, sp.z, 0, Bf, w.top.data(), R, sweeps[c].second, ctrim2, L);
        for (int k = 0; k < 9; ++k)
            w.cells[9 * c + k] = L[k];
        w.cell_scores[c] = sweeps[c].first;
    }
    res.stage_seconds[2] = seconds_since(t0);

    // Trimmed least-squares refinement of the candidate cells; keep the one indexing the most spots.
    t0 = Clock::now();
#ifdef JFJOCH_WITH_CUDA
    if (backend_ == Backend::CUDA)
        toro::cuda_refine_cells(w.cuda, m, w.cells.data(), ncell, th, w.counts.data());
    else
#endif
        toro::cpu_refine_cells(sp_all, w.cells.data(), ncell, th, w.counts.data());
    // Cells that drifted from the given cell rank after all others.
    int best = 0;
    bool best_valid = false;
    for (int c = 0; c < ncell; ++c) {
        bool valid = cell_deviation(w.cells.data() + 9 * c, Bf) <= th.max_cell_deviation;
        bool better = c == 0 || (valid && !best_valid) ||
                      (valid == best_valid &&
                       (w.counts[c] > w.counts[best] ||
                        (w.counts[c] == w.counts[best] && w.cell_scores[c] < w.cell_scores[best])));
        if (better) {
            best = c;
            best_valid = valid;
        }
    }
    const double* L = w.cells.data() + 9 * best;
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
            res.lattice[r][c] = L[3 * r + c];
    res.score = w.cell_scores[best] / float(ms);

    // Per-spot assignment over all spots.
    int count = 0;
    for (int k = 0; k < n; ++k) {
        int h[3];
        double d = toro::spot_residual(L, s[3 * k], s[3 * k + 1], s[3 * k + 2], h);
        bool ix = d < th.indexed_threshold;
        count += ix;
        if (hkl)
            for (int j = 0; j < 3; ++j)
                hkl[3 * k + j] = h[j];
        if (indexed)
            indexed[k] = ix;
    }
    res.indexed = count;
    res.fraction = float(count) / float(n);
    const bool cell_ok = cell_deviation(L, Bf) <= th.max_cell_deviation;
    res.ok = cell_ok && count >= th.min_indexed && res.fraction >= th.min_fraction;
    res.stage_seconds[3] = seconds_since(t0);
    return res;
}

void toro_direction_scores_cpu(const float* s, int n, float len_A, int num_directions, float trim,
                               float* out) {
    std::vector<float> x(n), y(n), z(n);
    for (int k = 0; k < n; ++k) {
        x[k] = s[3 * k];
        y[k] = s[3 * k + 1];
        z[k] = s[3 * k + 2];
    }
    toro::SpotsSoA sp{x.data(), y.data(), z.data(), n};
    toro::cpu_directions(sp, &len_A, 1, num_directions, trim * trim, out);
}

float toro_direction_score_one(const float* s, int n, const float dir[3], float len_A, float trim) {
    std::vector<float> x(n), y(n), z(n);
    for (int k = 0; k < n; ++k) {
        x[k] = s[3 * k];
        y[k] = s[3 * k + 1];
        z[k] = s[3 * k + 2];
    }
    return toro::direction_score(x.data(), y.data(), z.data(), n, Vec3f{dir[0], dir[1], dir[2]}, len_A,
                                 trim * trim);
}

void toro_spiral(int j, int num_directions, float dir[3]) {
    Vec3f d = toro::spiral_direction(j, num_directions);
    dir[0] = d.x;
    dir[1] = d.y;
    dir[2] = d.z;
}

} // namespace jfjoch
