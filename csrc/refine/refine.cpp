#include "refine/refine.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace jfjoch {

namespace {

constexpr double kDeg = 3.14159265358979323846 / 180.0;

Mat3d rotation_matrix(Vec3d axis, double angle) {
    Mat3d r{};
    Vec3d e[3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    for (int c = 0; c < 3; ++c) {
        Vec3d v = rotate(e[c], axis, angle);
        r.m[0][c] = v.x;
        r.m[1][c] = v.y;
        r.m[2][c] = v.z;
    }
    return r;
}

Mat3d rotation_from_vector(Vec3d w) {
    double t = norm(w);
    if (t < 1e-300) {
        Mat3d id{};
        id.m[0][0] = id.m[1][1] = id.m[2][2] = 1.0;
        return id;
    }
    return rotation_matrix((1.0 / t) * w, t);
}

/// Solve the symmetric positive definite system M x = b (n x n, row-major) by Cholesky; false if singular.
bool solve_spd(std::vector<double>& M, std::vector<double>& b, int n) {
    for (int j = 0; j < n; ++j) {
        double d = M[j * n + j];
        for (int k = 0; k < j; ++k)
            d -= M[j * n + k] * M[j * n + k];
        if (!(d > 0.0))
            return false;
        d = std::sqrt(d);
        M[j * n + j] = d;
        for (int i = j + 1; i < n; ++i) {
            double s = M[i * n + j];
            for (int k = 0; k < j; ++k)
                s -= M[i * n + k] * M[j * n + k];
            M[i * n + j] = s / d;
        }
    }
    for (int i = 0; i < n; ++i) {
        double s = b[i];
        for (int k = 0; k < i; ++k)
            s -= M[i * n + k] * b[k];
        b[i] = s / M[i * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {
        double s = b[i];
        for (int k = i + 1; k < n; ++k)
            s -= M[k * n + i] * b[k];
        b[i] = s / M[i * n + i];
    }
    return true;
}

double median_of(std::vector<double> v) {
    if (v.empty())
        return 0.0;
    size_t m = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + m, v.end());
    return v[m];
}

} // namespace

int cell_param_count(CellSystem system) {
    switch (system) {
    case CellSystem::Cubic:
        return 1;
    case CellSystem::Tetragonal:
    case CellSystem::Hexagonal:
        return 2;
    case CellSystem::Orthorhombic:
        return 3;
    case CellSystem::Monoclinic:
        return 4;
    case CellSystem::Triclinic:
    default:
        return 6;
    }
}

void cell_from_params(CellSystem system, const double* p, double cell[6]) {
    switch (system) {
    case CellSystem::Cubic:
        cell[0] = cell[1] = cell[2] = p[0];
        cell[3] = cell[4] = cell[5] = 90.0;
        break;
    case CellSystem::Tetragonal:
        cell[0] = cell[1] = p[0];
        cell[2] = p[1];
        cell[3] = cell[4] = cell[5] = 90.0;
        break;
    case CellSystem::Hexagonal:
        cell[0] = cell[1] = p[0];
        cell[2] = p[1];
        cell[3] = cell[4] = 90.0;
        cell[5] = 120.0;
        break;
    case CellSystem::Orthorhombic:
        cell[0] = p[0];
        cell[1] = p[1];
        cell[2] = p[2];
        cell[3] = cell[4] = cell[5] = 90.0;
        break;
    case CellSystem::Monoclinic:
        cell[0] = p[0];
        cell[1] = p[1];
        cell[2] = p[2];
        cell[3] = cell[5] = 90.0;
        cell[4] = p[3];
        break;
    case CellSystem::Triclinic:
    default:
        for (int i = 0; i < 6; ++i)
            cell[i] = p[i];
    }
}

void params_from_cell(CellSystem system, const double cell[6], double* p) {
    switch (system) {
    case CellSystem::Cubic:
        p[0] = (cell[0] + cell[1] + cell[2]) / 3.0;
        break;
    case CellSystem::Tetragonal:
    case CellSystem::Hexagonal:
        p[0] = 0.5 * (cell[0] + cell[1]);
        p[1] = cell[2];
        break;
    case CellSystem::Orthorhombic:
        p[0] = cell[0];
        p[1] = cell[1];
        p[2] = cell[2];
        break;
    case CellSystem::Monoclinic:
        p[0] = cell[0];
        p[1] = cell[1];
        p[2] = cell[2];
        p[3] = cell[4];
        break;
    case CellSystem::Triclinic:
    default:
        for (int i = 0; i < 6; ++i)
            p[i] = cell[i];
    }
}

bool real_basis_from_cell(const double cell[6], Mat3d& b) {
    const double a = cell[0], bb = cell[1], c = cell[2];
    const double ca = std::cos(cell[3] * kDeg), cb = std::cos(cell[4] * kDeg), cg = std::cos(cell[5] * kDeg);
    const double sg = std::sin(cell[5] * kDeg);
    if (!(a > 0 && bb > 0 && c > 0) || !(sg > 1e-9))
        return false;
    const double cx = c * cb;
    const double cy = c * (ca - cb * cg) / sg;
    const double cz2 = c * c - cx * cx - cy * cy;
    if (!(cz2 > 0))
        return false;
    b = Mat3d{{{a, 0, 0}, {bb * cg, bb * sg, 0}, {cx, cy, std::sqrt(cz2)}}};
    return true;
}

DetectorGeometry detector_with_beam(const DetectorGeometry& det, double bx, double by, double distance_mm) {
    DetectorGeometry d = det;
    Vec3d n = normalized(cross(det.fast, det.slow));
    if (n.z < 0)
        n = -1.0 * n;
    const double L = distance_mm / n.z;
    const Vec3d hit{0.0, 0.0, L};
    d.origin_mm = hit - (det.pixel_mm * bx) * det.fast - (det.pixel_mm * by) * det.slow;
    return d;
}

void beam_of_detector(const DetectorGeometry& det, double& bx, double& by, double& distance_mm) {
    Vec3d n = normalized(cross(det.fast, det.slow));
    distance_mm = std::fabs(dot(det.origin_mm, n));
    if (!recip_to_pixel(det, Vec3d{0.0, 0.0, 0.0}, bx, by))
        bx = by = NAN;
}

int refine_param_count(const RefineProblem& p) {
    return kRefineFixedParams + cell_param_count(p.system);
}

Mat3d refine_crystal(const RefineProblem& p, const double* q) {
    double cell[6];
    cell_from_params(p.system, q + kRefineFixedParams, cell);
    Mat3d basis, B;
    if (!real_basis_from_cell(cell, basis) || !inverse(basis, B))
        return Mat3d{{{NAN, NAN, NAN}, {NAN, NAN, NAN}, {NAN, NAN, NAN}}};
    Vec3d w = q[3] * p.axes[0] + q[4] * p.axes[1] + q[5] * p.axes[2];
    return rotation_from_vector(w) * (p.U0 * B);
}

void refine_residuals(const RefineProblem& p, const double* q, double* out) {
    ExperimentGeometry g = p.geometry;
    g.det = detector_with_beam(p.geometry.det, q[0], q[1], q[2]);
    const Mat3d A = refine_crystal(p, q);
    const int stride = p.rotation ? 3 : 2;
    const double inc = std::fabs(g.gonio.increment_rad);
    for (size_t i = 0; i < p.n; ++i) {
        const Vec3d h{double(p.hkl[3 * i]), double(p.hkl[3 * i + 1]), double(p.hkl[3 * i + 2])};
        Vec3d s = A * h;
        double* r = out + stride * i;
        bool ok = true;
        double w = 0.0;
        double at = 0.0, zeta = 1.0;
        if (p.rotation) {
            ok = nearest_diffraction_angle(g, s, p.angle[i], w);
            if (ok) {
                // the spot is recorded at the angle of its image closest to w (w itself when inside the
                // frame)
                const double half = 0.5 * inc;
                at = w < p.angle[i] - half ? p.angle[i] - half
                                           : (w > p.angle[i] + half ? p.angle[i] + half : w);
                zeta = 1.0 / rotation_lorentz(g, rotate(s, g.gonio.axis, w), 1.0e6);
                // near the spindle the rocking curve spans many degrees: position and angle are not reliable
                ok = zeta >= kRefineMinZeta;
                s = rotate(s, g.gonio.axis, at);
            }
        }
        double x = NAN, y = NAN;
        if (ok)
            ok = spot_position(g, s, x, y);
        if (!ok) {
            for (int k = 0; k < stride; ++k)
                r[k] = NAN;
            continue;
        }
        r[0] = x - p.x[i];
        r[1] = y - p.y[i];
        // angle residual: how far the diffraction angle lies outside the image's frame (0 inside), scaled by
        // zeta = 1/L, i.e. the Ewald offset it stands for
        if (p.rotation)
            r[2] = inc > 0 ? p.angle_weight * (w - at) * zeta / inc : 0.0;
    }
}

RefineResult refine_geometry(const RefineProblem& p, const RefineSettings& st) {
    const int np = refine_param_count(p);
    if (np > kRefineMaxParams)
        throw std::invalid_argument("refine: too many parameters");
    if (p.n > 0 && (!p.x || !p.y || !p.hkl || (p.rotation && !p.angle)))
        throw std::invalid_argument("refine: missing observation arrays");
    if (p.rotation && !(std::fabs(p.geometry.gonio.increment_rad) > 0))
        throw std::invalid_argument("refine: rotation residuals need a goniometer increment");
    RefineResult res;
    res.n_params = np;
    for (int k = 0; k < np; ++k)
        res.params[k] = p.params[k];
    std::vector<int> freeidx;
    for (int k = 0; k < np; ++k)
        if (p.free[k])
            freeidx.push_back(k);
    const int nf = int(freeidx.size());
    const int stride = p.rotation ? 3 : 2;
    const size_t nr = p.n * size_t(stride);
    if (nf == 0 || p.n < size_t(nf)) {
        std::vector<double> r(nr);
        refine_residuals(p, res.params, r.data());
        double ss = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < p.n; ++i)
            if (std::isfinite(r[stride * i])) {
                ss += r[stride * i] * r[stride * i] + r[stride * i + 1] * r[stride * i + 1];
                ++cnt;
            }
        res.rms_px = cnt ? std::sqrt(ss / double(cnt)) : NAN;
        res.n_used = cnt;
        return res;
    }
    // finite-difference steps: pixels, mm, radians, A / degrees
    double step[kRefineMaxParams];
    for (int k = 0; k < np; ++k)
        step[k] =
            k < 2 ? 1e-3 : (k == 2 ? 1e-3 : (k < 6 ? 1e-6 : 1e-5 * std::max(1.0, std::fabs(p.params[k]))));

    std::vector<double> r(nr), rp(nr), rm(nr), J(nr * size_t(nf)), wts(p.n);
    double q[kRefineMaxParams], trial[kRefineMaxParams];
    for (int k = 0; k < np; ++k)
        q[k] = p.params[k];

    auto weights = [&](const std::vector<double>& rr) {
        // per observation: Huber weight on its residual length, scale from the median length
        std::vector<double> len;
        len.reserve(p.n);
        for (size_t i = 0; i < p.n; ++i) {
            double s2 = 0;
            for (int k = 0; k < stride; ++k)
                s2 += rr[stride * i + k] * rr[stride * i + k];
            if (std::isfinite(s2))
                len.push_back(std::sqrt(s2));
        }
        double scale = std::max(st.min_scale_px, 1.4826 * median_of(len));
        const double c = st.huber_k * scale;
        for (size_t i = 0; i < p.n; ++i) {
            double s2 = 0;
            for (int k = 0; k < stride; ++k)
                s2 += rr[stride * i + k] * rr[stride * i + k];
            if (!std::isfinite(s2)) {
                wts[i] = 0.0;
                continue;
            }
            double l = std::sqrt(s2);
            // Huber inside 3c, then zero: far outliers (wrong hkl) do not pull at all
            wts[i] = l <= c ? 1.0 : (l <= 3.0 * c ? c / l : 0.0);
        }
    };
    auto cost = [&](const std::vector<double>& rr) {
        double s = 0;
        for (size_t i = 0; i < p.n; ++i) {
            if (wts[i] == 0.0)
                continue;
            double s2 = 0;
            for (int k = 0; k < stride; ++k)
                s2 += rr[stride * i + k] * rr[stride * i + k];
            if (!std::isfinite(s2))
                s2 = 1e6;
            s += wts[i] * s2;
        }
        return s;
    };

    refine_residuals(p, q, r.data());
    weights(r);
    double c0 = cost(r);
    double lambda = 1e-3;
    std::vector<double> M(size_t(nf) * nf), g(nf);
    int it = 0;
    bool converged = false;
    for (; it < st.max_iterations; ++it) {
        // Jacobian by central differences
        for (int j = 0; j < nf; ++j) {
            const int k = freeidx[j];
            for (int m = 0; m < np; ++m)
                trial[m] = q[m];
            trial[k] = q[k] + step[k];
            refine_residuals(p, trial, rp.data());
            trial[k] = q[k] - step[k];
            refine_residuals(p, trial, rm.data());
            for (size_t i = 0; i < nr; ++i) {
                double d = (rp[i] - rm[i]) / (2.0 * step[k]);
                J[i * nf + j] = std::isfinite(d) ? d : 0.0;
            }
        }
        std::fill(M.begin(), M.end(), 0.0);
        std::fill(g.begin(), g.end(), 0.0);
        for (size_t i = 0; i < nr; ++i) {
            const double w = wts[i / stride];
            if (w == 0.0 || !std::isfinite(r[i]))
                continue;
            const double* Ji = &J[i * nf];
            for (int a = 0; a < nf; ++a) {
                g[a] += w * Ji[a] * r[i];
                for (int b = 0; b <= a; ++b)
                    M[a * nf + b] += w * Ji[a] * Ji[b];
            }
        }
        for (int a = 0; a < nf; ++a)
            for (int b = 0; b < a; ++b)
                M[b * nf + a] = M[a * nf + b];
        bool improved = false;
        for (int tries = 0; tries < 10; ++tries) {
            std::vector<double> A = M, dx(nf);
            double dmax = 0;
            for (int a = 0; a < nf; ++a)
                dmax = std::max(dmax, M[a * nf + a]);
            for (int a = 0; a < nf; ++a) {
                // damping with a floor: a parameter the data do not determine stays put
                A[a * nf + a] += lambda * std::max(M[a * nf + a], 1e-9 * dmax) + 1e-12 * dmax;
                dx[a] = -g[a];
            }
            if (!solve_spd(A, dx, nf)) {
                lambda *= 10;
                continue;
            }
            for (int m = 0; m < np; ++m)
                trial[m] = q[m];
            for (int a = 0; a < nf; ++a)
                trial[freeidx[a]] += dx[a];
            refine_residuals(p, trial, rp.data());
            double c1 = cost(rp);
            if (c1 < c0) {
                const double rel = (c0 - c1) / std::max(c0, 1e-300);
                for (int m = 0; m < np; ++m)
                    q[m] = trial[m];
                r.swap(rp);
                lambda = std::max(lambda * 0.3, 1e-9);
                improved = true;
                if (rel < st.tolerance)
                    converged = true;
                break;
            }
            lambda *= 10;
        }
        if (!improved) {
            converged = true;
            break;
        }
        // re-weight at the new parameters (the cost changes definition, so recompute c0)
        weights(r);
        c0 = cost(r);
        if (converged)
            break;
    }
    for (int k = 0; k < np; ++k)
        res.params[k] = q[k];
    res.iterations = it;
    res.converged = converged;
    double ss = 0, sa = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < p.n; ++i) {
        if (wts[i] < 1.0 || !std::isfinite(r[stride * i]))
            continue;
        ss += r[stride * i] * r[stride * i] + r[stride * i + 1] * r[stride * i + 1];
        if (p.rotation && p.angle_weight > 0)
            sa += r[stride * i + 2] * r[stride * i + 2] / (p.angle_weight * p.angle_weight);
        ++cnt;
    }
    res.n_used = cnt;
    res.rms_px = cnt ? std::sqrt(ss / double(cnt)) : NAN;
    res.rms_angle_frames = cnt && p.rotation ? std::sqrt(sa / double(cnt)) : 0.0;
    return res;
}

} // namespace jfjoch
