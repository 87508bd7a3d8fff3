// FFT indexer: backend dispatch of the per-direction stage, then candidate selection, basis choice,
// reduction and refinement (host code shared by both backends).
#include "index/fft/fft.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "index/fft/fft_backends.hpp"
#include "index/lattice/lattice.hpp"
#include "index/lattice/lattice_impl.hpp"

namespace jfjoch {
namespace {

using clk = std::chrono::steady_clock;
double seconds(clk::time_point a, clk::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

int good_fft_size(int n) {
    for (int m = std::max(n, 16);; ++m) {
        int r = m;
        for (int p : {2, 3, 5})
            while (r % p == 0)
                r /= p;
        if (r == 1)
            return m;
    }
}

FftLayout make_layout(const FftIndexerSettings& st, double smax) {
    const double w_target = 1.0 / (2.0 * st.max_cell_A * st.oversampling);
    const double span0 = 2.0 * smax + 2.0 * w_target;
    FftLayout L{};
    L.n_bins = good_fft_size(int(std::ceil(span0 / w_target)));
    const double w = span0 / L.n_bins;
    L.inv_bin = float(1.0 / w);
    L.p_min = float(-0.5 * span0);
    L.length_per_k = float(1.0 / span0);
    L.k_max = std::min(L.n_bins / 2 - 1, int(std::ceil(st.max_cell_A * span0)) + 1);
    L.k_min = std::max(2, int(std::floor(st.min_cell_A * span0)));
    L.n_directions = st.n_directions;
    return L;
}

Vec3d to_d(Vec3f v) {
    return {v.x, v.y, v.z};
}

/// Refine one real-space vector so that t . s is close to an integer for as many spots as possible:
/// damped least squares over growing resolution shells. The first shell keeps the rounding error of the
/// initial vector (direction error ~ half the direction spacing, dir_err rad) below ~0.2 cycles.
void refine_vector(const float* s, const float* s_len, int n, double smax, double dir_err, Vec3d& t) {
    double rmax = std::min(smax, std::max(0.2 / (norm(t) * dir_err), 0.2 * smax));
    for (int it = 0; it < 16; ++it) {
        const bool last = rmax >= smax;
        const double tol = last ? 0.15 : 0.25;
        Mat3d S{};
        Vec3d b{0, 0, 0};
        int used = 0;
        for (int i = 0; i < n; ++i) {
            if (s_len[i] > rmax)
                continue;
            Vec3d si{s[3 * i], s[3 * i + 1], s[3 * i + 2]};
            int h;
            double e = vector_fractional_error(t, si, h);
            if (e >= tol)
                continue;
            double r = double(h) - dot(si, t);
            double v[3] = {si.x, si.y, si.z};
            for (int a = 0; a < 3; ++a)
                for (int c = 0; c < 3; ++c)
                    S.m[a][c] += v[a] * v[c];
            b = b + r * si;
            ++used;
        }
        if (used >= 4) {
            const double mu = 1e-3 * (S.m[0][0] + S.m[1][1] + S.m[2][2]) / 3.0;
            for (int a = 0; a < 3; ++a)
                S.m[a][a] += mu;
            Mat3d Si{};
            if (inverse(S, Si))
                t = t + Si * b;
        }
        if (last && it >= 2)
            break;
        rmax = std::min(smax, rmax * 1.4);
    }
}

struct Candidate {
    Vec3d v;
    int score;
    std::vector<uint64_t> mask; // spots with |t . s - round| < tolerance
};

} // namespace

FftIndexerResult fft_index(const float* s_xyz, size_t n_spots, const FftIndexerSettings& st, Backend backend,
                           int32_t* hkl, uint8_t* indexed) {
    if (st.n_directions < 16 || !(st.min_cell_A > 0) || !(st.max_cell_A > st.min_cell_A) ||
        !(st.oversampling >= 1.0f) || st.n_candidates < 3 || !(st.index_tolerance > 0) ||
        !(st.index_tolerance < 0.5f))
        throw std::invalid_argument("fft_index: invalid settings");
    if (backend == Backend::CUDA && (!cuda_compiled() || cuda_device_count() == 0))
        throw std::runtime_error("fft_index: the CUDA backend was requested but no CUDA device is usable");
    FftIndexerResult res;
    res.backend = (backend == Backend::CUDA || (backend == Backend::Auto && cuda_device_count() > 0))
                      ? Backend::CUDA
                      : Backend::CPU;
    const int n = int(n_spots);
    if (hkl)
        std::fill(hkl, hkl + 3 * n_spots, 0);
    if (indexed)
        std::fill(indexed, indexed + n_spots, 0);
    if (n < 4)
        return res;

    std::vector<float> s_len(n);
    double smax = 0;
    for (int i = 0; i < n; ++i) {
        s_len[i] = std::sqrt(s_xyz[3 * i] * s_xyz[3 * i] + s_xyz[3 * i + 1] * s_xyz[3 * i + 1] +
                             s_xyz[3 * i + 2] * s_xyz[3 * i + 2]);
        smax = std::max(smax, double(s_len[i]));
    }
    if (!(smax > 0) || !std::isfinite(smax))
        return res;
    const FftLayout L = make_layout(st, smax);

    // 1. Per direction: histogram, FFT, strongest periodicity.
    std::vector<DirectionPeak> peaks(L.n_directions);
#ifdef JFJOCH_WITH_CUDA
    if (res.backend == Backend::CUDA)
        detail::fft_peaks_cuda(s_xyz, n, L, peaks.data(), res.times.histogram_s, res.times.fft_s);
    else
#endif
        detail::fft_peaks_cpu(s_xyz, n, L, peaks.data(), res.times.histogram_s, res.times.fft_s);

    // 2. Candidates: strongest directions, non-maximum suppression, refined vectors, indexed masks.
    auto t0 = clk::now();
    std::vector<int> order(L.n_directions);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return peaks[a].magnitude > peaks[b].magnitude; });
    const double cos_min = std::cos(st.min_candidate_angle_deg * M_PI / 180.0);
    std::vector<Vec3d> dirs;
    std::vector<Candidate> cands;
    const size_t words = (n_spots + 63) / 64;
    const double dir_err = 0.5 * std::sqrt(2.0 * M_PI / L.n_directions); // half the direction spacing
    for (int idx : order) {
        if (int(dirs.size()) >= st.n_candidates)
            break;
        Vec3d d = to_d(fibonacci_direction(idx, L.n_directions));
        bool dup = false;
        for (const Vec3d& e : dirs)
            if (std::fabs(dot(d, e)) > cos_min) {
                dup = true;
                break;
            }
        if (dup)
            continue;
        dirs.push_back(d);
        const double len = peaks[idx].k * L.length_per_k;
        if (len < st.min_cell_A || len > st.max_cell_A)
            continue;
        Candidate c;
        c.v = len * d;
        refine_vector(s_xyz, s_len.data(), n, smax, dir_err, c.v);
        const double l2 = norm(c.v);
        if (!(l2 >= 0.9 * st.min_cell_A && l2 <= 1.2 * st.max_cell_A))
            continue;
        c.mask.assign(words, 0);
        c.score = 0;
        for (int i = 0; i < n; ++i) {
            int h;
            Vec3d si{s_xyz[3 * i], s_xyz[3 * i + 1], s_xyz[3 * i + 2]};
            if (vector_fractional_error(c.v, si, h) < st.index_tolerance) {
                c.mask[i / 64] |= uint64_t(1) << (i % 64);
                ++c.score;
            }
        }
        // after refinement two directions may have converged on the same vector
        bool same = false;
        for (Candidate& e : cands) {
            double cosang = dot(e.v, c.v) / (norm(e.v) * l2);
            if (std::fabs(cosang) > std::cos(1.0 * M_PI / 180.0) && std::fabs(norm(e.v) - l2) < 0.02 * l2) {
                same = true;
                if (c.score > e.score)
                    e = c;
                break;
            }
        }
        if (!same)
            cands.push_back(std::move(c));
    }
    std::sort(cands.begin(), cands.end(),
              [](const Candidate& a, const Candidate& b) { return a.score > b.score; });

    // 3. Basis: the non-coplanar triple indexing the most spots; among those within count_fraction of the
    // best, the smallest cell (a supercell indexes the same spots).
    const int nc = int(cands.size());
    struct Triple {
        int i, j, k, count;
        double volume;
    };
    std::vector<Triple> triples;
    triples.reserve(size_t(nc) * nc * nc / 6 + 1);
    int best_count = 0;
    for (int i = 0; i < nc; ++i)
        for (int j = i + 1; j < nc; ++j)
            for (int k = j + 1; k < nc; ++k) {
                const Vec3d &a = cands[i].v, &b = cands[j].v, &c = cands[k].v;
                double vol = std::fabs(dot(a, cross(b, c)));
                if (vol < 0.2 * norm(a) * norm(b) * norm(c))
                    continue;
                int count = 0;
                for (size_t w = 0; w < words; ++w)
                    count += __builtin_popcountll(cands[i].mask[w] & cands[j].mask[w] & cands[k].mask[w]);
                triples.push_back({i, j, k, count, vol});
                best_count = std::max(best_count, count);
            }
    auto t1 = clk::now();
    res.times.candidates_s = seconds(t0, t1);
    if (triples.empty() || best_count < st.min_indexed)
        return res;
    const Triple* pick = nullptr;
    for (const Triple& t : triples)
        if (t.count >= st.count_fraction * best_count && (!pick || t.volume < pick->volume))
            pick = &t;

    // 4. Reduce, refine by least squares on the indexed spots, final indices.
    Mat3d basis{};
    const Vec3d* v[3] = {&cands[pick->i].v, &cands[pick->j].v, &cands[pick->k].v};
    for (int r = 0; r < 3; ++r) {
        basis.m[r][0] = v[r]->x;
        basis.m[r][1] = v[r]->y;
        basis.m[r][2] = v[r]->z;
    }
    std::vector<int32_t> hkl_buf(3 * n_spots);
    std::vector<uint8_t> mask_buf(n_spots);
    if (!reduce_basis(basis))
        return res;
    refine_and_index(s_xyz, n_spots, basis, st.index_tolerance, st.refine_cycles, hkl_buf.data(),
                     mask_buf.data());
    if (remove_supercell(s_xyz, n_spots, basis, st.index_tolerance, 0.95, hkl_buf.data(), mask_buf.data()) >
        0)
        refine_and_index(s_xyz, n_spots, basis, st.index_tolerance, st.refine_cycles, hkl_buf.data(),
                         mask_buf.data());
    // final cycles on the tight inliers only (|h - round(h)| < tolerance / 2): junk spots that happen to lie
    // within the tolerance no longer pull the cell
    refine_and_index(s_xyz, n_spots, basis, 0.5 * st.index_tolerance, st.refine_cycles, hkl_buf.data(),
                     mask_buf.data());
    reduce_basis(basis); // refinement keeps the lattice; keep the reported basis reduced
    const size_t count = index_spots(s_xyz, n_spots, basis, st.index_tolerance, hkl, indexed);
    res.times.refine_s = seconds(t1, clk::now());
    res.lattice = basis;
    res.n_indexed = count;
    res.ok = count >= size_t(st.min_indexed) && count >= st.min_indexed_fraction * n_spots;
    return res;
}

} // namespace jfjoch
