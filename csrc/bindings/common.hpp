// Helpers shared by the binding files: numpy <-> kernel structs. Bindings only convert and release the GIL.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "core/geometry.hpp"

namespace jfjoch::bind {
namespace py = pybind11;

template <typename T> using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline Vec3d to_vec3(py::handle h) {
    auto a = CArray<double>::ensure(h);
    if (!a || a.size() != 3)
        throw std::invalid_argument("expected a 3-vector");
    auto p = a.data();
    return {p[0], p[1], p[2]};
}

/// Build a DetectorGeometry from keyword values (mm, Angstrom).
inline DetectorGeometry make_geometry(py::handle origin_mm, py::handle fast, py::handle slow, double pixel_mm,
                                      double wavelength_A) {
    if (!(pixel_mm > 0) || !(wavelength_A > 0))
        throw std::invalid_argument("pixel size and wavelength must be positive");
    DetectorGeometry g;
    g.origin_mm = to_vec3(origin_mm);
    g.fast = to_vec3(fast);
    g.slow = to_vec3(slow);
    g.pixel_mm = pixel_mm;
    g.wavelength_A = wavelength_A;
    return g;
}

/// Check that a is (n, k) with the given k (k < 0: any).
template <typename T> inline void require_2d(const CArray<T>& a, py::ssize_t k, const char* name) {
    if (a.ndim() != 2 || (k >= 0 && a.shape(1) != k))
        throw std::invalid_argument(std::string(name) + ": wrong shape");
}

} // namespace jfjoch::bind
