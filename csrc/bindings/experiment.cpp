// Binding of core/experiment.hpp: ExperimentGeometry as one Python object (built once per experiment,
// picklable), with its vectorised conversions. Bindings only convert arrays and release the GIL.
#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>

#include "bindings/common.hpp"
#include "core/experiment.hpp"
#include "refine/refine.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

constexpr double kDeg = 3.14159265358979323846 / 180.0;

py::array_t<double> vec(Vec3d v) {
    py::array_t<double> a(3);
    auto p = a.mutable_data();
    p[0] = v.x;
    p[1] = v.y;
    p[2] = v.z;
    return a;
}

ExperimentGeometry make(py::handle origin, py::handle fast, py::handle slow, double pixel_mm,
                        double wavelength_A, int32_t nx, int32_t ny, double polarization_fraction,
                        py::handle axis, double start_deg, double increment_deg) {
    ExperimentGeometry g;
    g.det = bind::make_geometry(origin, fast, slow, pixel_mm, wavelength_A);
    if (nx < 1 || ny < 1)
        throw std::invalid_argument("detector size must be positive");
    g.nx = nx;
    g.ny = ny;
    if (!(polarization_fraction >= 0.0 && polarization_fraction <= 1.0))
        throw std::invalid_argument("polarization fraction must be in [0, 1]");
    g.polarization_fraction = polarization_fraction;
    if (!axis.is_none()) {
        Vec3d a = bind::to_vec3(axis);
        if (!(norm(a) > 0))
            throw std::invalid_argument("rotation axis must not be zero");
        g.gonio.axis = normalized(a);
    }
    if (!std::isfinite(start_deg) || !std::isfinite(increment_deg))
        throw std::invalid_argument("goniometer angles must be finite");
    g.gonio.start_rad = start_deg * kDeg;
    g.gonio.increment_rad = increment_deg * kDeg;
    return g;
}

py::array_t<double> pixels_to_recip(const ExperimentGeometry& g, CArray<double> xy) {
    bind::require_2d(xy, 2, "xy");
    const py::ssize_t n = xy.shape(0);
    py::array_t<double> out({n, py::ssize_t(3)});
    const double* in = xy.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            Vec3d s = pixel_to_recip(g.det, in[2 * i], in[2 * i + 1]);
            o[3 * i] = s.x;
            o[3 * i + 1] = s.y;
            o[3 * i + 2] = s.z;
        }
    }
    return out;
}

py::array_t<double> recip_to_pixels(const ExperimentGeometry& g, CArray<double> s) {
    bind::require_2d(s, 3, "s");
    const py::ssize_t n = s.shape(0);
    py::array_t<double> out({n, py::ssize_t(2)});
    const double* in = s.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            double x, y;
            if (spot_position(g, Vec3d{in[3 * i], in[3 * i + 1], in[3 * i + 2]}, x, y)) {
                o[2 * i] = x;
                o[2 * i + 1] = y;
            } else {
                o[2 * i] = o[2 * i + 1] = NAN;
            }
        }
    }
    return out;
}

} // namespace

void add_experiment(py::module_& m) {
    py::class_<ExperimentGeometry>(m, "ExperimentGeometry",
                                   "Detector, beam and goniometer of one experiment (core/experiment.hpp).")
        .def(py::init(&make), py::arg("origin_mm"), py::arg("fast"), py::arg("slow"), py::arg("pixel_mm"),
             py::arg("wavelength_A"), py::arg("nx"), py::arg("ny"), py::arg("polarization_fraction") = 0.99,
             py::arg("axis") = py::none(), py::arg("start_deg") = 0.0, py::arg("increment_deg") = 0.0)
        .def_property_readonly("origin_mm", [](const ExperimentGeometry& g) { return vec(g.det.origin_mm); })
        .def_property_readonly("fast", [](const ExperimentGeometry& g) { return vec(g.det.fast); })
        .def_property_readonly("slow", [](const ExperimentGeometry& g) { return vec(g.det.slow); })
        .def_property_readonly("pixel_mm", [](const ExperimentGeometry& g) { return g.det.pixel_mm; })
        .def_property_readonly("wavelength_A", [](const ExperimentGeometry& g) { return g.det.wavelength_A; })
        .def_property_readonly("nx", [](const ExperimentGeometry& g) { return g.nx; })
        .def_property_readonly("ny", [](const ExperimentGeometry& g) { return g.ny; })
        .def_property_readonly("polarization_fraction",
                               [](const ExperimentGeometry& g) { return g.polarization_fraction; })
        .def_property_readonly("axis", [](const ExperimentGeometry& g) { return vec(g.gonio.axis); })
        .def_property_readonly("start_deg",
                               [](const ExperimentGeometry& g) { return g.gonio.start_rad / kDeg; })
        .def_property_readonly("increment_deg",
                               [](const ExperimentGeometry& g) { return g.gonio.increment_rad / kDeg; })
        .def(
            "beam",
            [](const ExperimentGeometry& g) {
                double bx, by, d;
                beam_of_detector(g.det, bx, by, d);
                return py::make_tuple(bx, by, d);
            },
            "(beam_x px, beam_y px, distance mm) of the detector plane.")
        .def(
            "with_beam",
            [](const ExperimentGeometry& g, double bx, double by, double distance_mm) {
                if (!std::isfinite(bx) || !std::isfinite(by) || !(distance_mm > 0))
                    throw std::invalid_argument("beam centre must be finite and distance > 0");
                ExperimentGeometry o = g;
                o.det = detector_with_beam(g.det, bx, by, distance_mm);
                return o;
            },
            py::arg("beam_x"), py::arg("beam_y"), py::arg("distance_mm"),
            "The same geometry with the detector moved to this beam centre (px) and distance (mm).")
        .def("pixels_to_recip", &pixels_to_recip, py::arg("xy"),
             "(n, 2) pixel coordinates -> (n, 3) reciprocal vectors, 1/A (no 2 pi).")
        .def("recip_to_pixels", &recip_to_pixels, py::arg("s"),
             "(n, 3) reciprocal vectors (1/A) -> (n, 2) pixel coordinates; NaN where the ray misses.")
        .def(py::pickle(
            [](const ExperimentGeometry& g) {
                // raw values (radians): the copy is bit-identical to the original
                return py::make_tuple(vec(g.det.origin_mm), vec(g.det.fast), vec(g.det.slow), g.det.pixel_mm,
                                      g.det.wavelength_A, g.nx, g.ny, g.polarization_fraction,
                                      vec(g.gonio.axis), g.gonio.start_rad, g.gonio.increment_rad);
            },
            [](py::tuple t) {
                if (t.size() != 11)
                    throw std::runtime_error("ExperimentGeometry: bad pickle");
                ExperimentGeometry g =
                    make(t[0], t[1], t[2], t[3].cast<double>(), t[4].cast<double>(), t[5].cast<int32_t>(),
                         t[6].cast<int32_t>(), t[7].cast<double>(), py::none(), 0.0, 0.0);
                g.gonio.axis = bind::to_vec3(t[8]);
                g.gonio.start_rad = t[9].cast<double>();
                g.gonio.increment_rad = t[10].cast<double>();
                return g;
            }));
}
