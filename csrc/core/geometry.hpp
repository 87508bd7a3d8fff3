// Detector and diffraction geometry shared by all kernels (host and device).
//
// Conventions (docs/conventions.md):
//  - lab frame = the frame of the input file's NXmx vectors; the X-ray beam travels along +z;
//  - pixel (x, y): x = fast (column), y = slow (row), 0-based, the centre of pixel (i, j) is at (i, j);
//  - lab position of a pixel: r = origin + (x * fast + y * slow) * pixel_mm  (mm);
//  - reciprocal vector of a pixel: s = r / (|r| * lambda) - (0, 0, 1 / lambda)  (1/A, no 2 pi), |s| = 1/d.
#pragma once
#include "core/vec3.hpp"

namespace jfjoch {

/// Flat detector geometry. All lengths in mm, wavelength in Angstrom.
struct DetectorGeometry {
    Vec3d origin_mm{0, 0, 100}; ///< lab position of the centre of pixel (0, 0)
    Vec3d fast{1, 0, 0};        ///< unit vector along increasing column index
    Vec3d slow{0, 1, 0};        ///< unit vector along increasing row index
    double pixel_mm = 0.075;    ///< pixel size (square pixels)
    double wavelength_A = 1.0;  ///< X-ray wavelength
};

/// Lab position (mm) of the pixel coordinate (x, y).
template <typename T> JFJOCH_HD Vec3T<T> pixel_to_lab(const DetectorGeometry& g, T x, T y) {
    return {T(g.origin_mm.x + (x * g.fast.x + y * g.slow.x) * g.pixel_mm),
            T(g.origin_mm.y + (x * g.fast.y + y * g.slow.y) * g.pixel_mm),
            T(g.origin_mm.z + (x * g.fast.z + y * g.slow.z) * g.pixel_mm)};
}

/// Reciprocal vector (1/A) of a scattered ray along lab direction r (any length).
template <typename T> JFJOCH_HD Vec3T<T> lab_to_recip(const DetectorGeometry& g, Vec3T<T> r) {
    T inv_lambda = T(1.0 / g.wavelength_A);
    T f = inv_lambda / norm(r);
    return {r.x * f, r.y * f, r.z * f - inv_lambda};
}

/// Reciprocal vector (1/A) of the pixel coordinate (x, y).
template <typename T> JFJOCH_HD Vec3T<T> pixel_to_recip(const DetectorGeometry& g, T x, T y) {
    return lab_to_recip(g, pixel_to_lab(g, x, y));
}

/// Resolution d (A) at pixel (x, y); infinity at the direct beam.
template <typename T> JFJOCH_HD T pixel_to_resolution(const DetectorGeometry& g, T x, T y) {
    Vec3T<T> s = pixel_to_recip(g, x, y);
    T n = norm(s);
    return n > T(0) ? T(1) / n : T(INFINITY);
}

/// Where the ray of reciprocal vector s (1/A) meets the detector plane: returns false when it misses
/// (scatters away from the detector). Pixel coordinates are not clipped to the detector size.
template <typename T> JFJOCH_HD bool recip_to_pixel(const DetectorGeometry& g, Vec3T<T> s, T& x, T& y) {
    Vec3d k{double(s.x), double(s.y), double(s.z) + 1.0 / g.wavelength_A}; // direction of the scattered ray
    Vec3d n = cross(g.fast, g.slow);                                       // detector normal
    double denom = dot(k, n);
    double t_num = dot(g.origin_mm, n);
    if (denom == 0.0)
        return false;
    double t = t_num / denom;
    if (t <= 0.0)
        return false;
    Vec3d p = t * k - g.origin_mm; // in-plane offset from pixel (0, 0), mm
    // Solve p = (u * fast + v * slow) * pixel for u, v (fast and slow need not be orthogonal).
    double ff = dot(g.fast, g.fast), ss = dot(g.slow, g.slow), fs = dot(g.fast, g.slow);
    double pf = dot(p, g.fast), ps = dot(p, g.slow);
    double d = ff * ss - fs * fs;
    x = T((pf * ss - ps * fs) / d / g.pixel_mm);
    y = T((ps * ff - pf * fs) / d / g.pixel_mm);
    return true;
}

/// Solid angle of a pixel relative to one at normal incidence at the plane distance: cos^3 of the
/// angle between the ray and the detector normal.
template <typename T> JFJOCH_HD T solid_angle_factor(const DetectorGeometry& g, T x, T y) {
    Vec3T<T> r = pixel_to_lab(g, x, y);
    Vec3d n = normalized(cross(g.fast, g.slow));
    T c = std::fabs(T(r.x * n.x + r.y * n.y + r.z * n.z)) / norm(r);
    return c * c * c;
}

/// Polarisation factor P for a beam polarised with fraction `fraction` along lab +x
/// (fraction 0.5 = unpolarised): P = fraction * (1 - (r_x/|r|)^2) + (1 - fraction) * (1 - (r_y/|r|)^2).
template <typename T> JFJOCH_HD T polarization_factor(const DetectorGeometry& g, T x, T y, T fraction) {
    Vec3T<T> r = pixel_to_lab(g, x, y);
    T inv = T(1) / dot(r, r);
    return fraction * (T(1) - r.x * r.x * inv) + (T(1) - fraction) * (T(1) - r.y * r.y * inv);
}

} // namespace jfjoch
