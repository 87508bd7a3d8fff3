// Per-item work of the TORO indexer: the only implementation, shared by the CPU loops (toro_cpu.cpp) and
// the CUDA launches (toro_cuda.cu). Spots are passed as structure-of-arrays (sx, sy, sz), 1/A.
// Distances are fractional Miller indices; "trim2" is the square of a trim distance.
#pragma once
#include <cmath>

#include "core/hd.hpp"
#include "core/vec3.hpp"

namespace jfjoch::toro {

/// A candidate direction for cell vector `vec` (0 = a, 1 = b, 2 = c): unit direction and its score.
struct Candidate {
    float d[3];
    float score;
    int vec;
};

/// j-th point (0 <= j < count) of a Fibonacci spiral on the upper half sphere (z > 0).
JFJOCH_HD Vec3f spiral_direction(int j, int count) {
    const double golden = 2.3999632297286533; // pi * (3 - sqrt(5))
    const double two_pi = 6.283185307179586;
    double z = 1.0 - (j + 0.5) / count;
    double r = std::sqrt(1.0 - z * z > 0 ? 1.0 - z * z : 0.0);
    double phi = std::fmod(golden * j, two_pi);
    return {float(r * std::cos(phi)), float(r * std::sin(phi)), float(z)};
}

/// Lanes of the partial sums in the spot loops: the sums are kept in kLanes independent accumulators
/// (spot k goes to lane k % kLanes) so that the host compiler vectorises them without reassociating
/// floating-point sums; host and device add in the same order and give the same result.
constexpr int kLanes = 8;

/// Fractional part distance to the nearest integer (ties to even), same on host and device.
JFJOCH_HD float frac_distance(float p) {
#if defined(__CUDA_ARCH__)
    return p - rintf(p);
#else
    const float M = 12582912.0f; // 1.5 * 2^23: (p + M) - M rounds p to an integer for |p| < 2^22
    return p - ((p + M) - M);
#endif
}

/// Direction score: sum over spots of min(d^2, trim2), d = distance of len * (s . dir) to the nearest
/// integer. Lower is better; a random direction scores about n * E[min(d^2, trim2)].
JFJOCH_HD float direction_score(const float* sx, const float* sy, const float* sz, int n, Vec3f dir,
                                float len, float trim2) {
    const float dx = dir.x * len, dy = dir.y * len, dz = dir.z * len;
    float acc[kLanes];
    for (int l = 0; l < kLanes; ++l)
        acc[l] = 0.0f;
    int k = 0;
    for (; k + kLanes <= n; k += kLanes)
        for (int l = 0; l < kLanes; ++l) {
            float d = frac_distance(sx[k + l] * dx + sy[k + l] * dy + sz[k + l] * dz);
            float d2 = d * d;
            acc[l] += d2 < trim2 ? d2 : trim2;
        }
    for (; k < n; ++k) {
        float d = frac_distance(sx[k] * dx + sy[k] * dy + sz[k] * dz);
        float d2 = d * d;
        acc[k % kLanes] += d2 < trim2 ? d2 : trim2;
    }
    float total = 0.0f;
    for (int l = 0; l < kLanes; ++l)
        total += acc[l];
    return total;
}

/// Two unit vectors completing dir (unit) to a right-handed orthonormal frame.
JFJOCH_HD void orthonormal_frame(Vec3f dir, Vec3f& u, Vec3f& w) {
    Vec3f helper = std::fabs(dir.x) < 0.9f ? Vec3f{1.0f, 0.0f, 0.0f} : Vec3f{0.0f, 1.0f, 0.0f};
    u = normalized(cross(dir, helper));
    w = cross(dir, u);
}

/// Local refinement of a candidate direction by pattern search: try 8 directions at angle `step` (rad)
/// around the current one, move to the best if it improves the score, else halve the step.
JFJOCH_HD void refine_candidate(const float* sx, const float* sy, const float* sz, int n, Candidate& c,
                                float len, float trim2, float step, int iterations) {
    Vec3f d{c.d[0], c.d[1], c.d[2]};
    float best = direction_score(sx, sy, sz, n, d, len, trim2);
    const float cs[8] = {1.0f, 0.70710678f, 0.0f, -0.70710678f, -1.0f, -0.70710678f, 0.0f, 0.70710678f};
    for (int it = 0; it < iterations; ++it) {
        Vec3f u, w;
        orthonormal_frame(d, u, w);
        Vec3f best_d = d;
        bool improved = false;
        for (int q = 0; q < 8; ++q) {
            Vec3f t = normalized(d + step * (cs[q] * u + cs[(q + 6) & 7] * w));
            float sc = direction_score(sx, sy, sz, n, t, len, trim2);
            if (sc < best) {
                best = sc;
                best_d = t;
                improved = true;
            }
        }
        if (improved)
            d = best_d;
        else
            step *= 0.5f;
    }
    c.d[0] = d.x;
    c.d[1] = d.y;
    c.d[2] = d.z;
    c.score = best;
}

/// The known cell (rows of B, A) rotated so that its vector `vec` points along the unit vector t, then
/// rotated by theta (rad) about t. Result: rows of L (A).
JFJOCH_HD void candidate_cell(const float* B, int vec, Vec3f t, float theta, float* L) {
    Vec3f bi{B[3 * vec], B[3 * vec + 1], B[3 * vec + 2]};
    Vec3f ui = normalized(bi);
    Vec3f axis = cross(ui, t);
    float s = norm(axis), c = dot(ui, t);
    float angle;
    if (s < 1e-7f) {
        Vec3f w;
        orthonormal_frame(ui, axis, w); // any axis perpendicular to ui
        angle = c > 0 ? 0.0f : 3.14159265f;
    } else {
        axis = (1.0f / s) * axis;
        angle = std::atan2(s, c);
    }
    for (int r = 0; r < 3; ++r) {
        Vec3f v{B[3 * r], B[3 * r + 1], B[3 * r + 2]};
        v = rotate(rotate(v, axis, angle), t, theta);
        L[3 * r] = v.x;
        L[3 * r + 1] = v.y;
        L[3 * r + 2] = v.z;
    }
}

/// Trimmed squared distance of one spot to the nearest lattice point (fractional hkl units).
JFJOCH_HD float cell_term(const float* L, float x, float y, float z, float trim2) {
    float dh = frac_distance(L[0] * x + L[1] * y + L[2] * z);
    float dk = frac_distance(L[3] * x + L[4] * y + L[5] * z);
    float dl = frac_distance(L[6] * x + L[7] * y + L[8] * z);
    float d2 = dh * dh + dk * dk + dl * dl;
    return d2 < trim2 ? d2 : trim2;
}

/// Cell score: sum over spots of min(|hkl - round(hkl)|^2, trim2) with hkl = L s. Lower is better.
JFJOCH_HD float cell_score(const float* sx, const float* sy, const float* sz, int n, const float* L,
                           float trim2) {
    float acc[kLanes];
    for (int l = 0; l < kLanes; ++l)
        acc[l] = 0.0f;
    int k = 0;
    for (; k + kLanes <= n; k += kLanes)
        for (int l = 0; l < kLanes; ++l)
            acc[l] += cell_term(L, sx[k + l], sy[k + l], sz[k + l], trim2);
    for (; k < n; ++k)
        acc[k % kLanes] += cell_term(L, sx[k], sy[k], sz[k], trim2);
    float total = 0.0f;
    for (int l = 0; l < kLanes; ++l)
        total += acc[l];
    return total;
}

/// Rotation-sampling item q of num_top * 2 * num_rot: top vector q / (2 num_rot), sign (q / num_rot) % 2
/// (cell vector along +d or -d), angle 2 pi (q % num_rot) / num_rot. Writes the cell to L, returns its score.
JFJOCH_HD float rotation_item(const float* sx, const float* sy, const float* sz, int n, const float* B,
                              const Candidate* top, int num_rot, int q, float trim2, float* L) {
    int v = q / (2 * num_rot);
    int sign = (q / num_rot) % 2;
    int r = q % num_rot;
    const Candidate& c = top[v];
    float sg = sign ? -1.0f : 1.0f;
    Vec3f t{sg * c.d[0], sg * c.d[1], sg * c.d[2]};
    candidate_cell(B, c.vec, t, 6.283185307f * float(r) / float(num_rot), L);
    return cell_score(sx, sy, sz, n, L, trim2);
}

/// Largest |hkl - round(hkl)| of spot s for lattice L (rows, A); rounded hkl in h.
JFJOCH_HD double spot_residual(const double* L, double x, double y, double z, int* h) {
    double m = 0;
    for (int j = 0; j < 3; ++j) {
        double f = L[3 * j] * x + L[3 * j + 1] * y + L[3 * j + 2] * z;
        double r = std::floor(f + 0.5);
        h[j] = int(r);
        double d = std::fabs(f - r);
        m = d > m ? d : m;
    }
    return m;
}

/// Iterative trimmed least squares of the lattice L (rows a, b, c, A; in/out). Iteration i keeps the spots
/// with max |hkl - round(hkl)| below thr_i (geometric from thr_start to thr_end) and fits the reciprocal
/// basis A* (s = A* hkl) by least squares with the integer hkl as the exact regressors (the noisy s are the
/// observations, so the cell is not shrunk by regression dilution); then L = inv(A*). Stops early when
/// fewer than min_spots remain or the normal matrix is singular. Returns the number of spots with max
/// residual < indexed_threshold for the final L.
JFJOCH_HD int refine_cell(const float* sx, const float* sy, const float* sz, int n, double* L, int iterations,
                          float thr_start, float thr_end, int min_spots, float indexed_threshold) {
    for (int it = 0; it < iterations; ++it) {
        double thr = iterations > 1
                         ? thr_start * std::pow(double(thr_end) / thr_start, double(it) / (iterations - 1))
                         : thr_start;
        Mat3d HtH{}; // sum h h^T
        Mat3d StH{}; // sum s h^T
        int count = 0;
        for (int k = 0; k < n; ++k) {
            double sv[3] = {sx[k], sy[k], sz[k]};
            int h[3];
            if (spot_residual(L, sv[0], sv[1], sv[2], h) >= thr)
                continue;
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) {
                    HtH.m[a][b] += double(h[a]) * h[b];
                    StH.m[a][b] += sv[a] * h[b];
                }
            ++count;
        }
        if (count < min_spots)
            break;
        double tr = HtH.m[0][0] + HtH.m[1][1] + HtH.m[2][2];
        Mat3d inv_hh, Astar, Lnew;
        if (!(det(HtH) > 1e-6 * tr * tr * tr) || !inverse(HtH, inv_hh))
            break;
        Astar = StH * inv_hh; // columns a*, b*, c*
        if (!inverse(Astar, Lnew, 1e-18))
            break;
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 3; ++c)
                L[3 * r + c] = Lnew.m[r][c];
    }
    int indexed = 0;
    for (int k = 0; k < n; ++k) {
        int h[3];
        if (spot_residual(L, sx[k], sy[k], sz[k], h) < indexed_threshold)
            ++indexed;
    }
    return indexed;
}

} // namespace jfjoch::toro
