// Bindings of csrc/core: backend queries and vector rotation (geometry: bindings/experiment.cpp).
#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "core/geometry.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

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
    m.def("rotate_vectors", &rotate_vectors, py::arg("v"), py::arg("angles_rad"), py::arg("axis"),
          "Rotate each row of v (n, 3) by its angle (rad, right-handed) about axis.");
}
