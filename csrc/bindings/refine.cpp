// Bindings of refine/refine.hpp: one call runs the whole least-squares refinement (GIL released).
#include <cmath>
#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "refine/refine.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

RefineProblem make_problem(const ExperimentGeometry& g, int system, CArray<double> U0, CArray<double> axes,
                           CArray<double> params, CArray<uint8_t> free_mask, bool rotation,
                           double angle_weight, CArray<double> x, CArray<double> y, CArray<int32_t> hkl,
                           py::object angle) {
    RefineProblem p;
    p.geometry = g;
    if (system < 0 || system > 5)
        throw std::invalid_argument("refine: unknown cell system");
    p.system = CellSystem(system);
    if (U0.size() != 9 || axes.size() != 9)
        throw std::invalid_argument("refine: U0 and axes must be (3, 3)");
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
            p.U0.m[r][c] = U0.data()[3 * r + c];
    for (int k = 0; k < 3; ++k)
        p.axes[k] = Vec3d{axes.data()[3 * k], axes.data()[3 * k + 1], axes.data()[3 * k + 2]};
    const int np = refine_param_count(p);
    if (params.size() != np || free_mask.size() != np)
        throw std::invalid_argument("refine: expected " + std::to_string(np) + " parameters and free flags");
    for (int k = 0; k < np; ++k) {
        p.params[k] = params.data()[k];
        p.free[k] = free_mask.data()[k];
        if (!std::isfinite(p.params[k]))
            throw std::invalid_argument("refine: parameters must be finite");
    }
    p.rotation = rotation;
    p.angle_weight = angle_weight;
    const py::ssize_t n = x.size();
    if (y.size() != n || hkl.size() != 3 * n)
        throw std::invalid_argument("refine: x, y (n,) and hkl (n, 3) expected");
    p.n = size_t(n);
    p.x = x.data();
    p.y = y.data();
    p.hkl = hkl.data();
    if (rotation) {
        if (angle.is_none())
            throw std::invalid_argument("refine: rotation needs the observation angles");
        auto a = angle.cast<CArray<double>>();
        if (a.size() != n)
            throw std::invalid_argument("refine: one angle per observation expected");
        p.angle = a.data();
        // keep the array alive for the call: store it on the problem's owner (caller holds `angle`)
    }
    return p;
}

} // namespace

void add_refine(py::module_& m) {
    py::class_<RefineSettings>(m, "RefineSettings")
        .def(py::init<>())
        .def_readwrite("max_iterations", &RefineSettings::max_iterations)
        .def_readwrite("huber_k", &RefineSettings::huber_k)
        .def_readwrite("min_scale_px", &RefineSettings::min_scale_px)
        .def_readwrite("tolerance", &RefineSettings::tolerance);
    m.def(
        "refine_geometry",
        [](const ExperimentGeometry& g, int system, CArray<double> U0, CArray<double> axes,
           CArray<double> params, CArray<uint8_t> free_mask, bool rotation, double angle_weight,
           CArray<double> x, CArray<double> y, CArray<int32_t> hkl, CArray<double> angle,
           const RefineSettings& st) {
            py::object ang = rotation ? py::object(angle) : py::object(py::none());
            RefineProblem p =
                make_problem(g, system, U0, axes, params, free_mask, rotation, angle_weight, x, y, hkl, ang);
            if (rotation)
                p.angle = angle.data();
            RefineResult r;
            {
                py::gil_scoped_release release;
                r = refine_geometry(p, st);
            }
            py::array_t<double> out(r.n_params);
            std::copy(r.params, r.params + r.n_params, out.mutable_data());
            py::dict d;
            d["params"] = out;
            d["iterations"] = r.iterations;
            d["converged"] = r.converged;
            d["rms_px"] = r.rms_px;
            d["rms_angle_frames"] = r.rms_angle_frames;
            d["n_used"] = r.n_used;
            return d;
        },
        py::arg("geometry"), py::arg("system"), py::arg("U0"), py::arg("axes"), py::arg("params"),
        py::arg("free"), py::arg("rotation"), py::arg("angle_weight"), py::arg("x"), py::arg("y"),
        py::arg("hkl"), py::arg("angle"), py::arg("settings"),
        "Least-squares geometry refinement (refine/refine.hpp); params [bx, by, D, t1, t2, t3, cell...].");
    m.def(
        "refine_residuals",
        [](const ExperimentGeometry& g, int system, CArray<double> U0, CArray<double> axes,
           CArray<double> params, bool rotation, double angle_weight, CArray<double> x, CArray<double> y,
           CArray<int32_t> hkl, CArray<double> angle) {
            py::array_t<uint8_t> fm(params.size());
            std::fill(fm.mutable_data(), fm.mutable_data() + fm.size(), 0);
            py::object ang = rotation ? py::object(angle) : py::object(py::none());
            RefineProblem p =
                make_problem(g, system, U0, axes, params, fm, rotation, angle_weight, x, y, hkl, ang);
            if (rotation)
                p.angle = angle.data();
            const int stride = rotation ? 3 : 2;
            py::array_t<double> out({py::ssize_t(p.n), py::ssize_t(stride)});
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                refine_residuals(p, p.params, o);
            }
            return out;
        },
        py::arg("geometry"), py::arg("system"), py::arg("U0"), py::arg("axes"), py::arg("params"),
        py::arg("rotation"), py::arg("angle_weight"), py::arg("x"), py::arg("y"), py::arg("hkl"),
        py::arg("angle"),
        "Residuals (n, 2) stills or (n, 3) rotation [dx px, dy px, weighted angle] at params.");
    m.def(
        "refine_crystal",
        [](int system, CArray<double> U0, CArray<double> axes, CArray<double> params) {
            RefineProblem p;
            p.system = CellSystem(system);
            for (int r = 0; r < 3; ++r)
                for (int c = 0; c < 3; ++c)
                    p.U0.m[r][c] = U0.data()[3 * r + c];
            for (int k = 0; k < 3; ++k)
                p.axes[k] = Vec3d{axes.data()[3 * k], axes.data()[3 * k + 1], axes.data()[3 * k + 2]};
            if (params.size() != refine_param_count(p))
                throw std::invalid_argument("refine_crystal: wrong number of parameters");
            Mat3d A = refine_crystal(p, params.data());
            py::array_t<double> out({3, 3});
            for (int r = 0; r < 3; ++r)
                for (int c = 0; c < 3; ++c)
                    out.mutable_data()[3 * r + c] = A.m[r][c];
            return out;
        },
        py::arg("system"), py::arg("U0"), py::arg("axes"), py::arg("params"),
        "Crystal A (columns a*, b*, c*) of a refinement parameter vector.");
}
