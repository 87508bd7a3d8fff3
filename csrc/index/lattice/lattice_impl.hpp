// Per-spot lattice work shared by the CPU and CUDA indexers.
#pragma once
#include <cmath>

#include "core/vec3.hpp"

namespace jfjoch {

/// Largest distance of h = basis * s from the nearest integer triple; the rounded triple goes to h_out.
template <typename T> JFJOCH_HD T fractional_error(const Mat3T<T>& basis, Vec3T<T> s, int h_out[3]) {
    T h[3] = {basis.m[0][0] * s.x + basis.m[0][1] * s.y + basis.m[0][2] * s.z,
              basis.m[1][0] * s.x + basis.m[1][1] * s.y + basis.m[1][2] * s.z,
              basis.m[2][0] * s.x + basis.m[2][1] * s.y + basis.m[2][2] * s.z};
    T e = 0;
    for (int i = 0; i < 3; ++i) {
        T r = std::floor(h[i] + T(0.5));
        h_out[i] = static_cast<int>(r);
        T d = std::fabs(h[i] - r);
        e = d > e ? d : e;
    }
    return e;
}

/// Distance of v . s from the nearest integer (one real-space vector v), rounded integer to h_out.
template <typename T> JFJOCH_HD T vector_fractional_error(Vec3T<T> v, Vec3T<T> s, int& h_out) {
    T x = dot(v, s);
    T r = std::floor(x + T(0.5));
    h_out = static_cast<int>(r);
    return std::fabs(x - r);
}

} // namespace jfjoch
