// Bindings of csrc/spots: numpy <-> kernel structs; the GIL is released around every kernel call.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "bindings/spot_arrays.hpp"
#include "core/backend.hpp"
#include "core/experiment.hpp"
#include "spots/spots.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;
using jfjoch::bind::spot_arrays;

namespace {

void require_image(const py::array& a, const char* name) {
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(name) + ": expected a 2-D (ny, nx) array");
}

void require_same_shape(const py::array& a, const py::array& b, const char* name) {
    if (b.ndim() != 2 || a.shape(0) != b.shape(0) || a.shape(1) != b.shape(1))
        throw std::invalid_argument(std::string(name) + ": shape differs from the image");
}

py::array_t<uint8_t> pixel_flags(py::object mask, const ExperimentGeometry& geometry,
                                 const SpotFinderSettings& settings) {
    const py::ssize_t nx = geometry.nx, ny = geometry.ny;
    const DetectorGeometry& g = geometry.det;
    CArray<uint8_t> m;
    if (!mask.is_none()) {
        m = CArray<uint8_t>::ensure(mask);
        if (!m || m.ndim() != 2 || m.shape(0) != ny || m.shape(1) != nx)
            throw std::invalid_argument("mask: expected a (ny, nx) array");
    }
    py::array_t<uint8_t> out({ny, nx});
    const uint8_t* mp = mask.is_none() ? nullptr : m.data();
    uint8_t* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        spot_pixel_flags(mp, nx, ny, g, settings, o);
    }
    return out;
}

py::tuple find(CArray<int32_t> image, CArray<uint8_t> flags, int32_t saturation,
               const ExperimentGeometry& geometry, const SpotFinderSettings& settings,
               const std::string& backend) {
    require_image(image, "image");
    require_same_shape(image, flags, "flags");
    const DetectorGeometry& g = geometry.det;
    const Backend b = jfjoch::parse_backend(backend);
    SpotFinderResult r;
    {
        py::gil_scoped_release release;
        r = find_spots(image.data(), flags.data(), image.shape(1), image.shape(0), saturation, g, settings,
                       b);
    }
    return py::tuple(spot_arrays(r));
}

py::array_t<uint8_t> strong_map(CArray<int32_t> image, CArray<uint8_t> flags, int32_t saturation,
                                const SpotFinderSettings& settings, const std::string& backend) {
    require_image(image, "image");
    require_same_shape(image, flags, "flags");
    const Backend b = jfjoch::parse_backend(backend);
    py::array_t<uint8_t> out({image.shape(0), image.shape(1)});
    uint8_t* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        strong_pixel_map(image.data(), flags.data(), image.shape(1), image.shape(0), saturation, settings, o,
                         b);
    }
    return out;
}

} // namespace

void add_spots(py::module_& m) {
    py::class_<SpotFinderSettings>(m, "SpotFinderSettings", "Spot finder thresholds (csrc/spots/spots.hpp).")
        .def(py::init<>())
        .def_readwrite("photon_threshold", &SpotFinderSettings::photon_threshold)
        .def_readwrite("sigma", &SpotFinderSettings::sigma)
        .def_readwrite("window_half", &SpotFinderSettings::window_half)
        .def_readwrite("min_pixels", &SpotFinderSettings::min_pixels)
        .def_readwrite("min_isigma", &SpotFinderSettings::min_isigma)
        .def_readwrite("max_pixels", &SpotFinderSettings::max_pixels)
        .def_readwrite("high_resolution_A", &SpotFinderSettings::high_resolution_A)
        .def_readwrite("low_resolution_A", &SpotFinderSettings::low_resolution_A)
        .def_readwrite("ice_ring_width_q", &SpotFinderSettings::ice_ring_width_q)
        .def_readwrite("max_spots", &SpotFinderSettings::max_spots);
    m.attr("SPOT_PIXEL_INVALID") = int(kSpotPixelInvalid);
    m.attr("SPOT_PIXEL_OUT_OF_RANGE") = int(kSpotPixelOutOfRange);
    m.attr("SPOT_MAX_VALUE") = kSpotMaxValue;
    m.def("spot_pixel_flags", &pixel_flags, py::arg("mask"), py::arg("geometry"), py::arg("settings"),
          "Per-experiment uint8 (ny, nx) pixel flags: 1 = invalid (mask != 0), 2 = outside the resolution "
          "limits of settings.");
    m.def("find_spots", &find, py::arg("image"), py::arg("flags"), py::arg("saturation"), py::arg("geometry"),
          py::arg("settings"), py::arg("backend") = "auto",
          "Spots of one int32 (ny, nx) image: (x, y, intensity, n_pixels, d, ice_ring, stats dict).");
    m.def("spot_strong_pixel_map", &strong_map, py::arg("image"), py::arg("flags"), py::arg("saturation"),
          py::arg("settings"), py::arg("backend") = "auto",
          "uint8 (ny, nx) map: 1 strong pixel, 2 saturated pixel inside the resolution range, 0 otherwise.");
}
