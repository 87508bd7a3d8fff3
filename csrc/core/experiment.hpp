// One experiment's geometry as one struct (detector, beam, goniometer) and the host+device functions that
// predict where a reciprocal-lattice point diffracts. Shared by prediction, refinement and integration.
//
// Conventions (docs/conventions.md):
//  - lab frame = the frame of the input file's NXmx vectors; the X-ray beam travels along +z, s0 =
//  (0,0,1/lambda);
//  - a crystal is A (3x3, row-major Mat3d) whose COLUMNS are a*, b*, c* in 1/A: s = A h;
//  - rotation data: at goniometer angle w the crystal is R(axis, w) A0 (right-handed about axis);
//  - a reciprocal vector s diffracts when |s + s0| = 1/lambda; its spot is where the ray along s + s0 meets
//    the detector (pixels: x = fast = column, y = slow = row, the centre of pixel (i, j) at (i, j)).
// Angles are radians inside these functions; lengths in mm (detector) and 1/A (reciprocal space).
#pragma once
#include <cstdint>

#include "core/geometry.hpp"

namespace jfjoch {

/// Single-axis goniometer: image i covers [start + i * increment, start + (i + 1) * increment] (radians).
struct Goniometer {
    Vec3d axis{1, 0, 0};        ///< unit rotation axis (right-handed), lab frame
    double start_rad = 0.0;     ///< angle at the start of image 0
    double increment_rad = 0.0; ///< oscillation per image (0: stills)
};

/// Everything the kernels need to know about the geometry of one experiment.
struct ExperimentGeometry {
    DetectorGeometry det;                ///< detector plane + wavelength
    int32_t nx = 0;                      ///< pixels along the fast axis
    int32_t ny = 0;                      ///< pixels along the slow axis
    double polarization_fraction = 0.99; ///< fraction of the beam polarised along lab +x
    Goniometer gonio;                    ///< increment_rad == 0 for stills
    JFJOCH_HD bool rotation() const { return gonio.increment_rad != 0.0; }
};

/// Incident-beam wave vector s0 = (0, 0, 1/lambda), 1/A.
JFJOCH_HD Vec3d beam_vector(const ExperimentGeometry& g) {
    return Vec3d{0.0, 0.0, 1.0 / g.det.wavelength_A};
}

/// Signed distance of the reciprocal point s from the Ewald sphere, |s + s0| - 1/lambda (1/A): positive
/// outside the sphere.
JFJOCH_HD double ewald_offset(const ExperimentGeometry& g, Vec3d s) {
    Vec3d k = s + beam_vector(g);
    return norm(k) - 1.0 / g.det.wavelength_A;
}

/// Polarisation factor of the ray along s + s0 (same formula as polarization_factor() of a pixel).
JFJOCH_HD double polarization_of(const ExperimentGeometry& g, Vec3d s) {
    Vec3d u = normalized(s + beam_vector(g));
    const double f = g.polarization_fraction;
    return f * (1.0 - u.x * u.x) + (1.0 - f) * (1.0 - u.y * u.y);
}

/// Rotation-method Lorentz factor 1 / |e . (u1 x u0)| of the ray along s + s0 (u1, u0 unit vectors of the
/// diffracted and incident beams, e the rotation axis); capped at max_lorentz near the axis.
JFJOCH_HD double rotation_lorentz(const ExperimentGeometry& g, Vec3d s, double max_lorentz = 50.0) {
    Vec3d u1 = normalized(s + beam_vector(g));
    Vec3d u0{0.0, 0.0, 1.0};
    double z = std::fabs(dot(g.gonio.axis, cross(u1, u0)));
    return z * max_lorentz > 1.0 ? 1.0 / z : max_lorentz;
}

/// The two goniometer angles (radians, in (-2 pi, 2 pi)) at which the crystal-frame vector p (= A0 h)
/// lies on the Ewald sphere. Returns false when p never diffracts (too close to the axis or beyond 2/lambda).
/// With Rodrigues, R(w) p = p_par + cos w p_perp + sin w (e x p), and |R p + s0|^2 = 1/lambda^2 gives
/// u cos w + v sin w = t with u = s0 . p_perp, v = s0 . (e x p), t = -|p|^2 / 2 - s0 . p_par.
JFJOCH_HD bool diffraction_angles(const ExperimentGeometry& g, Vec3d p, double& w1, double& w2) {
    const Vec3d e = g.gonio.axis;
    const Vec3d s0 = beam_vector(g);
    Vec3d par = dot(p, e) * e;
    Vec3d perp = p - par;
    double u = dot(s0, perp);
    double v = dot(s0, cross(e, p));
    double t = -0.5 * dot(p, p) - dot(s0, par);
    double r = std::sqrt(u * u + v * v);
    if (!(r > 0.0))
        return false;
    double c = t / r;
    if (c < -1.0 || c > 1.0)
        return false;
    double phi = std::atan2(v, u);
    double delta = std::acos(c);
    w1 = phi - delta;
    w2 = phi + delta;
    return true;
}

/// The angle among w and w +- 2 pi closest to `near` (radians).
JFJOCH_HD double wrap_near(double w, double near) {
    const double two_pi = 6.283185307179586;
    double d = w - near;
    d -= two_pi * std::floor(d / two_pi + 0.5);
    return near + d;
}

/// Of the two diffraction angles of p, the one closest to `near` (radians); false when p never diffracts.
JFJOCH_HD bool nearest_diffraction_angle(const ExperimentGeometry& g, Vec3d p, double near, double& w) {
    double w1, w2;
    if (!diffraction_angles(g, p, w1, w2))
        return false;
    w1 = wrap_near(w1, near);
    w2 = wrap_near(w2, near);
    w = std::fabs(w1 - near) <= std::fabs(w2 - near) ? w1 : w2;
    return true;
}

/// Pixel position (x, y) of the diffracted ray of reciprocal vector s (lab frame, at the moment it is
/// recorded). False when the ray misses the detector plane.
JFJOCH_HD bool spot_position(const ExperimentGeometry& g, Vec3d s, double& x, double& y) {
    return recip_to_pixel(g.det, s, x, y);
}

/// Rotation-sweep rocking width: the rotation (radians) over which a reflection with reciprocal vector s
/// (on the Ewald sphere) passes through a mosaic spread of Gaussian sigma `mosaicity_rad`, i.e.
/// sigma_phi = mosaicity * L with L the Lorentz factor (zeta = 1/L).
JFJOCH_HD double rocking_sigma(const ExperimentGeometry& g, Vec3d s, double mosaicity_rad) {
    return mosaicity_rad * rotation_lorentz(g, s, 1.0e6);
}

/// Standard normal cumulative distribution.
JFJOCH_HD double normal_cdf(double z) {
    return 0.5 * std::erfc(-z * 0.7071067811865476);
}

/// Fraction of a reflection with diffraction angle w_c and rocking sigma sigma_phi recorded between
/// angles lo and hi (radians; lo < hi): Phi((hi - w_c)/sigma) - Phi((lo - w_c)/sigma).
JFJOCH_HD double rocking_fraction(double w_c, double sigma_phi, double lo, double hi) {
    if (!(sigma_phi > 0.0))
        return (w_c >= lo && w_c < hi) ? 1.0 : 0.0;
    return normal_cdf((hi - w_c) / sigma_phi) - normal_cdf((lo - w_c) / sigma_phi);
}

} // namespace jfjoch
