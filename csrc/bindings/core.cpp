// Bindings of csrc/core: geometry conversions, vectorised over numpy arrays.
#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "core/geometry.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

/// (n, 2) pixel coordinates -> (n, 3) reciprocal vectors in 1/A.
py::array_t<double> pixels_to_recip(CArray<double> xy, py::handle origin, py::handle fast, py::handle slow,
                                    double pixel_mm, double wavelength_A) {
    bind::require_2d(xy, 2, "xy");
    auto g = bind::make_geometry(origin, fast, slow, pixel_mm, wavelength_A);
    const py::ssize_t n = xy.shape(0);
    py::array_t<double> out({n, py::ssize_t(3)});
    const double* in = xy.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            Vec3d s = pixel_to_recip(g, in[2 * i], in[2 * i + 1]);
            o[3 * i] = s.x;
            o[3 * i + 1] = s.y;
            o[3 * i + 2] = s.z;
        }
    }
    return out;
}

/// (n, 3) reciprocal vectors -> (n, 2) pixel coordinates (NaN where the ray misses the detector plane).
py::array_t<double> recip_to_pixels(CArray<double> s, py::handle origin, py::handle fast, py::handle slow,
                                    double pixel_mm, double wavelength_A) {
    bind::require_2d(s, 3, "s");
    auto g = bind::make_geometry(origin, fast, slow, pixel_mm, wavelength_A);
    const py::ssize_t n = s.shape(0);
    py::array_t<double> out({n, py::ssize_t(2)});
    const double* in = s.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            double x, y;
            if (recip_to_pixel(g, Vec3d{in[3 * i], in[3 * i + 1], in[3 * i + 2]}, x, y)) {
                o[2 * i] = x;
                o[2 * i + 1] = y;
            } else {
                o[2 * i] = o[2 * i + 1] = NAN;
            }
        }
    }
    return out;
}

/// Rotate (n, 3) vectors by per-row angles (rad) about a unit axis.
py::array_t<double> rotate_vectors(CArray<double> v, CArray<double> angles_rad, py::handle axis) {
    bind::require_2d(v, 3, "v");
    if (angles_rad.ndim() != 1 || angles_rad.shape(0) != v.shape(0))
        throw std::invalid_argument("angles_rad: one angle per vector expected");
    Vec3d ax = normalized(bind::to_vec3(axis));
    const py::ssize_t n = v.shape(0);
    py::array_t<double> out({n, py::ssize_t(3)});
    const double* in = v.data();
    const double* a = angles_rad.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n; ++i) {
            Vec3d r = rotate(Vec3d{in[3 * i], in[3 * i + 1], in[3 * i + 2]}, ax, a[i]);
            o[3 * i] = r.x;
            o[3 * i + 1] = r.y;
            o[3 * i + 2] = r.z;
        }
    }
    return out;
}

} // namespace

void add_core(py::module_& m) {
    m.def("cuda_device_count", &jfjoch::cuda_device_count,
          "Number of usable CUDA devices (0 in a CPU-only build or without a GPU).");
    m.def("pixels_to_recip", &pixels_to_recip, py::arg("xy"), py::arg("origin_mm"), py::arg("fast"),
          py::arg("slow"), py::arg("pixel_mm"), py::arg("wavelength_A"),
          "Pixel coordinates (n, 2) -> reciprocal vectors (n, 3) in 1/A (no 2 pi).");
    m.def("recip_to_pixels", &recip_to_pixels, py::arg("s"), py::arg("origin_mm"), py::arg("fast"),
          py::arg("slow"), py::arg("pixel_mm"), py::arg("wavelength_A"),
          "Reciprocal vectors (n, 3) in 1/A -> pixel coordinates (n, 2); NaN where the ray misses.");
    m.def("rotate_vectors", &rotate_vectors, py::arg("v"), py::arg("angles_rad"), py::arg("axis"),
          "Rotate each row of v (n, 3) by its angle (rad, right-handed) about axis.");
}
