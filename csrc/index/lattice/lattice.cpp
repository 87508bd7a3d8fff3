#include "index/lattice/lattice.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "index/lattice/lattice_impl.hpp"

namespace jfjoch {
namespace {

Vec3d row(const Mat3d& m, int i) {
    return {m.m[i][0], m.m[i][1], m.m[i][2]};
}
void set_row(Mat3d& m, int i, Vec3d v) {
    m.m[i][0] = v.x;
    m.m[i][1] = v.y;
    m.m[i][2] = v.z;
}

// Pairwise (Lagrange/Gauss) and three-term reductions until no vector gets shorter.
void pre_reduce(Mat3d& b) {
    for (int iter = 0; iter < 100; ++iter) {
        bool changed = false;
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
                if (i == j)
                    continue;
                Vec3d bi = row(b, i), bj = row(b, j);
                double mu = std::round(dot(bi, bj) / dot(bj, bj));
                if (mu != 0) {
                    Vec3d r = bi - mu * bj;
                    if (dot(r, r) < dot(bi, bi) * (1 - 1e-12)) {
                        set_row(b, i, r);
                        changed = true;
                    }
                }
            }
        for (int i = 0; i < 3; ++i) {
            int j = (i + 1) % 3, k = (i + 2) % 3;
            Vec3d bi = row(b, i), bj = row(b, j), bk = row(b, k);
            for (int sj = -1; sj <= 1; sj += 2)
                for (int sk = -1; sk <= 1; sk += 2) {
                    Vec3d r = bi + double(sj) * bj + double(sk) * bk;
                    if (dot(r, r) < dot(bi, bi) * (1 - 1e-12)) {
                        bi = r;
                        set_row(b, i, r);
                        changed = true;
                    }
                }
        }
        if (!changed)
            return;
    }
}

int idet(const std::array<int, 3>& a, const std::array<int, 3>& b, const std::array<int, 3>& c) {
    return a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) +
           a[2] * (b[0] * c[1] - b[1] * c[0]);
}

} // namespace

bool reduce_basis(Mat3d& basis) {
    double d0 = det(basis);
    if (!(std::fabs(d0) > 1e-9))
        return false;
    Mat3d b = basis;
    pre_reduce(b);
    // Successive minima among short combinations of the pre-reduced basis.
    struct Cand {
        double len2;
        std::array<int, 3> u;
        Vec3d v;
    };
    std::array<Cand, 124> c{};
    int nc = 0;
    for (int i = -2; i <= 2; ++i)
        for (int j = -2; j <= 2; ++j)
            for (int k = -2; k <= 2; ++k) {
                if (!i && !j && !k)
                    continue;
                Vec3d v = double(i) * row(b, 0) + double(j) * row(b, 1) + double(k) * row(b, 2);
                c[nc++] = {dot(v, v), {i, j, k}, v};
            }
    std::sort(c.begin(), c.begin() + nc, [](const Cand& x, const Cand& y) { return x.len2 < y.len2; });
    bool found = false;
    Mat3d r{};
    for (int i = 0; i < nc && !found; ++i)
        for (int j = i + 1; j < nc && !found; ++j) {
            Vec3d cr = cross(c[i].v, c[j].v);
            if (dot(cr, cr) < 1e-12 * c[i].len2 * c[j].len2)
                continue;
            for (int k = j + 1; k < nc; ++k) {
                if (std::abs(idet(c[i].u, c[j].u, c[k].u)) == 1) {
                    set_row(r, 0, c[i].v);
                    set_row(r, 1, c[j].v);
                    set_row(r, 2, c[k].v);
                    found = true;
                    break;
                }
            }
        }
    if (!found)
        r = b;
    // Signs: all metric off-diagonals positive (type I) or all non-positive (type II), right-handed.
    int best = -1;
    double best_score = -1e300;
    for (int sgn = 0; sgn < 8; ++sgn) {
        double sa = (sgn & 1) ? -1 : 1, sb = (sgn & 2) ? -1 : 1, sc = (sgn & 4) ? -1 : 1;
        Vec3d a = sa * row(r, 0), bb = sb * row(r, 1), cc = sc * row(r, 2);
        double p[3] = {dot(bb, cc), dot(a, cc), dot(a, bb)};
        bool allpos = p[0] > 0 && p[1] > 0 && p[2] > 0;
        bool allneg = p[0] <= 0 && p[1] <= 0 && p[2] <= 0;
        Mat3d t{};
        set_row(t, 0, a);
        set_row(t, 1, bb);
        set_row(t, 2, cc);
        double score = (allpos ? 4 : 0) + (allneg ? 2 : 0) + (det(t) > 0 ? 1 : 0);
        if (score > best_score) {
            best_score = score;
            best = sgn;
        }
    }
    double sa = (best & 1) ? -1 : 1, sb = (best & 2) ? -1 : 1, sc = (best & 4) ? -1 : 1;
    Mat3d out{};
    set_row(out, 0, sa * row(r, 0));
    set_row(out, 1, sb * row(r, 1));
    set_row(out, 2, sc * row(r, 2));
    if (det(out) < 0)
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                out.m[i][j] = -out.m[i][j];
    basis = out;
    return true;
}

size_t index_spots(const float* s_xyz, size_t n, const Mat3d& basis, double tolerance, int32_t* hkl,
                   uint8_t* indexed) {
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) {
        Vec3d s{s_xyz[3 * i], s_xyz[3 * i + 1], s_xyz[3 * i + 2]};
        int h[3];
        double e = fractional_error(basis, s, h);
        bool ok = e < tolerance;
        count += ok;
        if (hkl) {
            hkl[3 * i] = h[0];
            hkl[3 * i + 1] = h[1];
            hkl[3 * i + 2] = h[2];
        }
        if (indexed)
            indexed[i] = ok;
    }
    return count;
}

bool refine_basis_lsq(const float* s_xyz, const int32_t* hkl, const uint8_t* mask, size_t n, Mat3d& basis) {
    Mat3d hh{}, hs{}; // hh = sum h h^T, hs[c][r] = sum h_c s_r
    size_t used = 0;
    for (size_t i = 0; i < n; ++i) {
        if (mask && !mask[i])
            continue;
        double h[3] = {double(hkl[3 * i]), double(hkl[3 * i + 1]), double(hkl[3 * i + 2])};
        double s[3] = {s_xyz[3 * i], s_xyz[3 * i + 1], s_xyz[3 * i + 2]};
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                hh.m[a][b] += h[a] * h[b];
                hs.m[a][b] += h[a] * s[b];
            }
        ++used;
    }
    if (used < 3)
        return false;
    double scale = hh.m[0][0] + hh.m[1][1] + hh.m[2][2];
    if (!(std::fabs(det(hh)) > 1e-9 * scale * scale * scale))
        return false;
    Mat3d hinv{};
    if (!inverse(hh, hinv))
        return false;
    // Row r of A* solves hh x = hs[:, r]; so A*^T = hinv * hs.
    Mat3d astar = transpose(hinv * hs);
    Mat3d b{};
    if (!inverse(astar, b))
        return false;
    basis = b;
    return true;
}

size_t refine_and_index(const float* s_xyz, size_t n, Mat3d& basis, double tolerance, int cycles,
                        int32_t* hkl_scratch, uint8_t* mask_scratch) {
    size_t count = index_spots(s_xyz, n, basis, tolerance, hkl_scratch, mask_scratch);
    for (int c = 0; c < cycles; ++c) {
        Mat3d trial = basis;
        if (!refine_basis_lsq(s_xyz, hkl_scratch, mask_scratch, n, trial))
            break;
        size_t trial_count = index_spots(s_xyz, n, trial, tolerance, nullptr, nullptr);
        if (trial_count < count)
            break;
        basis = trial;
        count = index_spots(s_xyz, n, basis, tolerance, hkl_scratch, mask_scratch);
    }
    return count;
}

int remove_supercell(const float* s_xyz, size_t n, Mat3d& basis, double tolerance, double min_fraction,
                     int32_t* hkl, uint8_t* mask) {
    int reductions = 0;
    for (int round = 0; round < 6; ++round) {
        const size_t n_idx = index_spots(s_xyz, n, basis, tolerance, hkl, mask);
        if (n_idx < 6)
            return reductions;
        bool reduced = false;
        for (int p = 2; p <= 3 && !reduced; ++p)
            for (int v0 = 0; v0 < p && !reduced; ++v0)
                for (int v1 = 0; v1 < p && !reduced; ++v1)
                    for (int v2 = 0; v2 < p && !reduced; ++v2) {
                        const int v[3] = {v0, v1, v2};
                        // one representative per line: first non-zero component 1
                        int first = v0 ? 0 : (v1 ? 1 : (v2 ? 2 : -1));
                        if (first < 0 || v[first] != 1)
                            continue;
                        size_t good = 0;
                        for (size_t i = 0; i < n; ++i)
                            if (mask[i]) {
                                long d = long(v0) * hkl[3 * i] + long(v1) * hkl[3 * i + 1] +
                                         long(v2) * hkl[3 * i + 2];
                                good += (d % p) == 0;
                            }
                        if (good < min_fraction * double(n_idx))
                            continue;
                        // integer basis (columns) of {h : v . h = 0 mod p}: p e_first, e_j - v_j e_first
                        Mat3d H{};
                        for (int j = 0; j < 3; ++j) {
                            if (j == first) {
                                H.m[first][j] = p;
                            } else {
                                H.m[j][j] = 1;
                                H.m[first][j] = -v[j];
                            }
                        }
                        Mat3d Hi{};
                        if (!inverse(H, Hi))
                            continue;
                        Mat3d finer = Hi * basis; // k = H^-1 h = H^-1 basis s
                        if (!reduce_basis(finer))
                            continue;
                        basis = finer;
                        reduced = true;
                        ++reductions;
                    }
        if (!reduced)
            return reductions;
    }
    return reductions;
}

} // namespace jfjoch
