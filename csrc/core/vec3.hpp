// Small 3-vector and 3x3-matrix types shared by all kernels (host and device).
#pragma once
#include <cmath>

#include "core/hd.hpp"

namespace jfjoch {

template <typename T> struct Vec3T {
    T x, y, z;
};
using Vec3f = Vec3T<float>;
using Vec3d = Vec3T<double>;

template <typename T> JFJOCH_HD Vec3T<T> operator+(Vec3T<T> a, Vec3T<T> b) {
    return {a.x + b.x, a.y + b.y, a.z + b.z};
}
template <typename T> JFJOCH_HD Vec3T<T> operator-(Vec3T<T> a, Vec3T<T> b) {
    return {a.x - b.x, a.y - b.y, a.z - b.z};
}
template <typename T> JFJOCH_HD Vec3T<T> operator*(T s, Vec3T<T> a) {
    return {s * a.x, s * a.y, s * a.z};
}
template <typename T> JFJOCH_HD Vec3T<T> operator*(Vec3T<T> a, T s) {
    return {s * a.x, s * a.y, s * a.z};
}
template <typename T> JFJOCH_HD T dot(Vec3T<T> a, Vec3T<T> b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
template <typename T> JFJOCH_HD Vec3T<T> cross(Vec3T<T> a, Vec3T<T> b) {
    return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
template <typename T> JFJOCH_HD T norm(Vec3T<T> a) {
    return std::sqrt(dot(a, a));
}
template <typename T> JFJOCH_HD Vec3T<T> normalized(Vec3T<T> a) {
    return (T(1) / norm(a)) * a;
}

/// Row-major 3x3 matrix: m[r][c].
template <typename T> struct Mat3T {
    T m[3][3];
};
using Mat3f = Mat3T<float>;
using Mat3d = Mat3T<double>;

template <typename T> JFJOCH_HD Vec3T<T> operator*(const Mat3T<T>& a, Vec3T<T> v) {
    return {a.m[0][0] * v.x + a.m[0][1] * v.y + a.m[0][2] * v.z,
            a.m[1][0] * v.x + a.m[1][1] * v.y + a.m[1][2] * v.z,
            a.m[2][0] * v.x + a.m[2][1] * v.y + a.m[2][2] * v.z};
}
template <typename T> JFJOCH_HD Mat3T<T> operator*(const Mat3T<T>& a, const Mat3T<T>& b) {
    Mat3T<T> r{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            r.m[i][j] = a.m[i][0] * b.m[0][j] + a.m[i][1] * b.m[1][j] + a.m[i][2] * b.m[2][j];
    return r;
}
template <typename T> JFJOCH_HD Mat3T<T> transpose(const Mat3T<T>& a) {
    Mat3T<T> r{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            r.m[i][j] = a.m[j][i];
    return r;
}
template <typename T> JFJOCH_HD T det(const Mat3T<T>& a) {
    return a.m[0][0] * (a.m[1][1] * a.m[2][2] - a.m[1][2] * a.m[2][1]) -
           a.m[0][1] * (a.m[1][0] * a.m[2][2] - a.m[1][2] * a.m[2][0]) +
           a.m[0][2] * (a.m[1][0] * a.m[2][1] - a.m[1][1] * a.m[2][0]);
}
/// Inverse; returns false (and leaves out untouched) when |det| < eps.
template <typename T> JFJOCH_HD bool inverse(const Mat3T<T>& a, Mat3T<T>& out, T eps = T(1e-30)) {
    T d = det(a);
    if (std::fabs(d) < eps)
        return false;
    T id = T(1) / d;
    out.m[0][0] = (a.m[1][1] * a.m[2][2] - a.m[1][2] * a.m[2][1]) * id;
    out.m[0][1] = (a.m[0][2] * a.m[2][1] - a.m[0][1] * a.m[2][2]) * id;
    out.m[0][2] = (a.m[0][1] * a.m[1][2] - a.m[0][2] * a.m[1][1]) * id;
    out.m[1][0] = (a.m[1][2] * a.m[2][0] - a.m[1][0] * a.m[2][2]) * id;
    out.m[1][1] = (a.m[0][0] * a.m[2][2] - a.m[0][2] * a.m[2][0]) * id;
    out.m[1][2] = (a.m[0][2] * a.m[1][0] - a.m[0][0] * a.m[1][2]) * id;
    out.m[2][0] = (a.m[1][0] * a.m[2][1] - a.m[1][1] * a.m[2][0]) * id;
    out.m[2][1] = (a.m[0][1] * a.m[2][0] - a.m[0][0] * a.m[2][1]) * id;
    out.m[2][2] = (a.m[0][0] * a.m[1][1] - a.m[0][1] * a.m[1][0]) * id;
    return true;
}

/// Rotation of v by angle_rad (right-handed) about the unit vector axis (Rodrigues).
template <typename T> JFJOCH_HD Vec3T<T> rotate(Vec3T<T> v, Vec3T<T> axis, T angle_rad) {
    T c = std::cos(angle_rad), s = std::sin(angle_rad);
    return c * v + s * cross(axis, v) + (dot(axis, v) * (T(1) - c)) * axis;
}

} // namespace jfjoch
