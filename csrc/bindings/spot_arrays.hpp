// Spot finder result -> numpy arrays, shared by the spot finder's and the frame pass's bindings.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "spots/spots.hpp"

namespace jfjoch::bind {
namespace py = pybind11;

/// [x, y, intensity, n_pixels, d, ice_ring, stats]: one numpy array per spot field (pixels, photons,
/// Angstrom) and a dict of the image statistics (max_value, n_saturated, n_error, n_strong_pixels).
inline py::list spot_arrays(const SpotFinderResult& r) {
    const auto n = py::ssize_t(r.spots.size());
    py::array_t<float> x(n), y(n), inten(n), d(n);
    py::array_t<int32_t> npx(n);
    py::array_t<bool> ice(n);
    for (py::ssize_t i = 0; i < n; ++i) {
        const Spot& s = r.spots[size_t(i)];
        x.mutable_data()[i] = s.x;
        y.mutable_data()[i] = s.y;
        inten.mutable_data()[i] = s.intensity;
        npx.mutable_data()[i] = s.n_pixels;
        d.mutable_data()[i] = s.d;
        ice.mutable_data()[i] = s.ice_ring;
    }
    py::dict stats;
    stats["max_value"] = r.max_value;
    stats["n_saturated"] = r.n_saturated;
    stats["n_error"] = r.n_error;
    stats["n_strong_pixels"] = r.n_strong_pixels;
    py::list out;
    for (py::object o : {py::object(x), py::object(y), py::object(inten), py::object(npx), py::object(d),
                         py::object(ice), py::object(stats)})
        out.append(o);
    return out;
}

} // namespace jfjoch::bind
