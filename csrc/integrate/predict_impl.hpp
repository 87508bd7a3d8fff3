// Per-line prediction work shared by the CPU and CUDA backends (see predict.hpp for the model).
//
// A "line" is a pair (i, j) of indices along the two outer axes; the third (inner) index runs over the
// values that can satisfy the conditions, found from quadratic inequalities in it. Each accepted hkl is
// passed to a sink functor, in increasing inner index, so the output order is the same on every backend.
#pragma once
#include <cmath>

#include "core/experiment.hpp"
#include "integrate/predict.hpp"

namespace jfjoch::predict_impl {

/// What every line needs: the crystal, the axis order and the index limits.
struct LineSetup {
    Mat3d A;         ///< columns a*, b*, c* (1/A)
    int o1, o2, in;  ///< outer axes and the inner axis (a permutation of 0, 1, 2)
    int n1, n2;      ///< outer index ranges: -n1..n1, -n2..n2
    double res_max2; ///< 1 / d_min^2
    double res_min2; ///< 1 / d_max^2
};

/// Axis order and index limits for crystal A and the resolution range (host only; throws on bad input).
LineSetup make_line_setup(const Mat3d& A, double d_min, double d_max);

JFJOCH_HD Vec3d column(const Mat3d& A, int c) {
    return Vec3d{A.m[0][c], A.m[1][c], A.m[2][c]};
}

/// Interval of l with a l^2 + 2 b l + c0 <= r2 (a > 0); false when empty.
JFJOCH_HD bool quad_interval(double a, double b, double c0, double r2, double& lo, double& hi) {
    double disc = b * b - a * (c0 - r2);
    if (disc < 0.0)
        return false;
    double sq = std::sqrt(disc);
    lo = (-b - sq) / a;
    hi = (-b + sq) / a;
    return true;
}

JFJOCH_HD void line_hkl(const LineSetup& su, int i, int j, int l, int hkl[3]) {
    hkl[su.o1] = i;
    hkl[su.o2] = j;
    hkl[su.in] = l;
}

/// Point l of line (i, j) (line start q0, step c): its hkl, reciprocal vector p and |p|^2 (1/A^2).
/// False for the origin and for points outside the resolution shell.
JFJOCH_HD bool line_point(const LineSetup& su, const Vec3d& q0, const Vec3d& c, int i, int j, long long l,
                          int hkl[3], Vec3d& p, double& s2) {
    line_hkl(su, i, j, int(l), hkl);
    if (hkl[0] == 0 && hkl[1] == 0 && hkl[2] == 0)
        return false;
    p = q0 + double(l) * c;
    s2 = dot(p, p);
    return !(s2 > su.res_max2 || s2 < su.res_min2);
}

/// Line number -> (i, j).
JFJOCH_HD void line_ij(const LineSetup& su, long long line, int& i, int& j) {
    const long long w2 = 2LL * su.n2 + 1;
    i = int(line / w2) - su.n1;
    j = int(line % w2) - su.n2;
}

/// Line `line`: its (i, j), step c (the inner axis's column of A) and start q0 (1/A), and the range
/// [lo_r, hi_r] of inner index (real-valued) inside the resolution limit; false when the line misses it.
JFJOCH_HD bool line_span(const LineSetup& su, long long line, int& i, int& j, Vec3d& c, Vec3d& q0,
                         double& lo_r, double& hi_r) {
    line_ij(su, line, i, j);
    c = column(su.A, su.in);
    q0 = double(i) * column(su.A, su.o1) + double(j) * column(su.A, su.o2);
    // resolution: |q0 + l c|^2 <= 1/d_min^2
    return quad_interval(dot(c, c), dot(q0, c), dot(q0, q0), su.res_max2, lo_r, hi_r);
}

JFJOCH_HD long long line_count(const LineSetup& su) {
    return (2LL * su.n1 + 1) * (2LL * su.n2 + 1);
}

/// Stills: the hkl of line (i, j) within R_eff of the Ewald sphere, on the detector. For each, calls
/// sink(h, k, l, x, y, d, eps, partiality, lp).
template <typename Sink>
JFJOCH_HD void still_line(const ExperimentGeometry& g, const LineSetup& su, const StillPredictionSettings& s,
                          long long line, Sink& sink) {
    int i, j;
    Vec3d c, q0;
    double lo_r, hi_r;
    if (!line_span(su, line, i, j, c, q0, lo_r, hi_r))
        return;
    const Vec3d s0 = beam_vector(g);
    const double inv_lambda = s0.z;
    const double a = dot(c, c);
    // Ewald shell: (1/lambda - R)^2 <= |q0 + s0 + l c|^2 <= (1/lambda + R)^2, R the largest R_eff
    const double bl = s.bandwidth * g.det.wavelength_A;
    const double r_max =
        std::sqrt(s.profile_radius * s.profile_radius + 0.5 * bl * bl * su.res_max2 * su.res_max2);
    const Vec3d k0 = q0 + s0;
    const double bk = dot(k0, c), ck = dot(k0, k0);
    double lo_o, hi_o;
    const double ro = inv_lambda + r_max;
    if (!quad_interval(a, bk, ck, ro * ro, lo_o, hi_o))
        return;
    double lo_i = 0, hi_i = 0;
    const double ri = inv_lambda - r_max;
    const bool inner = ri > 0 && quad_interval(a, bk, ck, ri * ri, lo_i, hi_i);
    double ranges[2][2];
    int nr = 0;
    if (inner) {
        ranges[0][0] = lo_o;
        ranges[0][1] = lo_i;
        ranges[1][0] = hi_i;
        ranges[1][1] = hi_o;
        nr = 2;
    } else {
        ranges[0][0] = lo_o;
        ranges[0][1] = hi_o;
        nr = 1;
    }
    for (int r = 0; r < nr; ++r) {
        double lo = ranges[r][0] > lo_r ? ranges[r][0] : lo_r;
        double hi = ranges[r][1] < hi_r ? ranges[r][1] : hi_r;
        for (long long l = (long long)std::ceil(lo); l <= (long long)std::floor(hi); ++l) {
            int hkl[3];
            Vec3d sv;
            double s2;
            if (!line_point(su, q0, c, i, j, l, hkl, sv, s2))
                continue;
            const double eps = ewald_offset(g, sv);
            const double reff2 = s.profile_radius * s.profile_radius + 0.5 * bl * bl * s2 * s2;
            if (eps * eps > reff2)
                continue;
            double x, y;
            if (!spot_position(g, sv, x, y))
                continue;
            const double m = s.edge_margin_px;
            if (x < -m || y < -m || x > double(g.nx - 1) + m || y > double(g.ny - 1) + m)
                continue;
            const double rho2 = reff2 / (s.cutoff_sigmas * s.cutoff_sigmas);
            const double part = rho2 > 0 ? std::exp(-0.5 * eps * eps / rho2) : 1.0;
            sink(hkl[0], hkl[1], hkl[2], x, y, 1.0 / std::sqrt(s2), eps, part, polarization_of(g, sv));
        }
    }
}

/// Rotation: the sweep events of line (i, j): every hkl within the resolution range and each of its
/// diffraction angles (moved by whole turns) inside [phi_min, phi_max]. Calls
/// sink(h, k, l, phi, sigma, reach): reach = the angle range (half-width, rad) that covers 6 sigma and the
/// angles where the point is within ewald_cutoff of the Ewald sphere (to first order), capped.
template <typename Sink>
JFJOCH_HD void rotation_line(const ExperimentGeometry& g, const LineSetup& su,
                             const RotationPredictionSettings& s, long long line, Sink& sink) {
    int i, j;
    Vec3d c, q0;
    double lo_r, hi_r;
    if (!line_span(su, line, i, j, c, q0, lo_r, hi_r))
        return;
    const double two_pi = 6.283185307179586;
    const double mid = 0.5 * (s.phi_min + s.phi_max);
    for (long long l = (long long)std::ceil(lo_r); l <= (long long)std::floor(hi_r); ++l) {
        int hkl[3];
        Vec3d p;
        double s2;
        if (!line_point(su, q0, c, i, j, l, hkl, p, s2))
            continue;
        double w[2];
        if (!diffraction_angles(g, p, w[0], w[1]))
            continue;
        for (int t = 0; t < 2; ++t) {
            // every whole-turn copy of the angle inside [phi_min, phi_max]
            double first = wrap_near(w[t], mid);
            while (first - two_pi >= s.phi_min)
                first -= two_pi;
            while (first < s.phi_min)
                first += two_pi;
            for (double ang = first; ang <= s.phi_max; ang += two_pi) {
                const Vec3d sv = rotate(p, g.gonio.axis, ang);
                double sig = rocking_sigma(g, sv, s.mosaicity_rad);
                if (sig > s.max_sigma_rad)
                    sig = s.max_sigma_rad;
                // |d eps / d phi| = 1 / (lambda L): the Ewald cutoff is reached after ewald_cutoff * lambda *
                // L
                const double L = rotation_lorentz(g, sv, 1.0e6);
                double reach = 6.0 * sig;
                const double r_eps = 2.0 * s.ewald_cutoff * g.det.wavelength_A * L;
                if (r_eps > reach)
                    reach = r_eps;
                if (reach > s.max_reach_rad)
                    reach = s.max_reach_rad;
                sink(hkl[0], hkl[1], hkl[2], ang, sig, reach);
            }
        }
    }
}

/// Rotation, one event on one image [lo, hi]: recompute its angle for crystal A0 near `phi_event`, its
/// position and recorded fraction. False when it is not predicted on this image.
JFJOCH_HD bool rotation_observation(const ExperimentGeometry& g, const Mat3d& A0, const int hkl[3],
                                    double phi_event, double lo, double hi,
                                    const RotationPredictionSettings& s, double& x, double& y, double& phi,
                                    double& fraction, double& lp, double& zeta, double& d) {
    const Vec3d p = A0 * Vec3d{double(hkl[0]), double(hkl[1]), double(hkl[2])};
    if (!nearest_diffraction_angle(g, p, phi_event, phi))
        return false;
    const Vec3d sv = rotate(p, g.gonio.axis, phi);
    const double L = rotation_lorentz(g, sv);
    double sig = s.mosaicity_rad * rotation_lorentz(g, sv, 1.0e6);
    if (sig > s.max_sigma_rad)
        sig = s.max_sigma_rad;
    fraction = rocking_fraction(phi, sig, lo, hi);
    // the angle within the image closest to the diffraction angle: where the spot is recorded
    const double at = phi < lo ? lo : (phi > hi ? hi : phi);
    if (!(fraction >= s.min_fraction)) {
        if (!(s.ewald_cutoff > 0))
            return false;
        // the point's closest approach to the Ewald sphere during the image (at an edge, since w is outside)
        const double e = std::fabs(ewald_offset(g, rotate(p, g.gonio.axis, at)));
        if (!(e <= s.ewald_cutoff))
            return false;
    }
    if (!spot_position(g, rotate(p, g.gonio.axis, at), x, y))
        return false;
    const double m = s.edge_margin_px;
    if (x < -m || y < -m || x > double(g.nx - 1) + m || y > double(g.ny - 1) + m)
        return false;
    lp = L * polarization_of(g, sv);
    zeta = 1.0 / L;
    d = 1.0 / norm(p);
    return true;
}

} // namespace jfjoch::predict_impl
