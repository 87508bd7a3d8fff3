// Bindings of integrate/predict.hpp: stills and rotation prediction; arrays out, GIL released.
#include <cmath>
#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "core/experiment.hpp"
#include "integrate/predict.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

Mat3d to_mat3(CArray<double> a, const char* name) {
    if (a.ndim() != 2 || a.shape(0) != 3 || a.shape(1) != 3)
        throw std::invalid_argument(std::string(name) + ": expected a (3, 3) array");
    Mat3d m;
    auto p = a.data();
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) {
            m.m[r][c] = p[3 * r + c];
            if (!std::isfinite(m.m[r][c]))
                throw std::invalid_argument(std::string(name) + ": not finite");
        }
    return m;
}

template <typename T> py::array_t<T> arr(const std::vector<T>& v) {
    py::array_t<T> a(py::ssize_t(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

py::dict to_dict(const Predictions& p) {
    py::dict d;
    const py::ssize_t n = py::ssize_t(p.size());
    py::array_t<int32_t> hkl({n, py::ssize_t(3)});
    auto h = hkl.mutable_data();
    for (py::ssize_t i = 0; i < n; ++i) {
        h[3 * i] = p.h[size_t(i)];
        h[3 * i + 1] = p.k[size_t(i)];
        h[3 * i + 2] = p.l[size_t(i)];
    }
    d["hkl"] = hkl;
    d["x"] = arr(p.x);
    d["y"] = arr(p.y);
    d["d"] = arr(p.d);
    d["eps"] = arr(p.eps);
    d["phi"] = arr(p.phi);
    d["partiality"] = arr(p.partiality);
    d["lp"] = arr(p.lp);
    d["zeta"] = arr(p.zeta);
    d["event"] = arr(p.event);
    return d;
}

RotationEvents events_from(CArray<int32_t> hkl, CArray<double> phi, CArray<double> sigma) {
    // (reach is only needed to select events, which the caller has done)
    if (hkl.ndim() != 2 || hkl.shape(1) != 3 || phi.ndim() != 1 || sigma.ndim() != 1 ||
        phi.shape(0) != hkl.shape(0) || sigma.shape(0) != hkl.shape(0))
        throw std::invalid_argument("events: hkl (n, 3), phi (n,), sigma (n,) expected");
    RotationEvents ev;
    ev.hkl.assign(hkl.data(), hkl.data() + hkl.size());
    ev.phi.assign(phi.data(), phi.data() + phi.size());
    ev.sigma.assign(sigma.data(), sigma.data() + sigma.size());
    return ev;
}

} // namespace

void add_predict(py::module_& m) {
    py::class_<StillPredictionSettings>(m, "StillPredictionSettings")
        .def(py::init<>())
        .def_readwrite("d_min_A", &StillPredictionSettings::d_min_A)
        .def_readwrite("d_max_A", &StillPredictionSettings::d_max_A)
        .def_readwrite("profile_radius", &StillPredictionSettings::profile_radius)
        .def_readwrite("bandwidth", &StillPredictionSettings::bandwidth)
        .def_readwrite("cutoff_sigmas", &StillPredictionSettings::cutoff_sigmas)
        .def_readwrite("edge_margin_px", &StillPredictionSettings::edge_margin_px);
    py::class_<RotationPredictionSettings>(m, "RotationPredictionSettings")
        .def(py::init<>())
        .def_readwrite("d_min_A", &RotationPredictionSettings::d_min_A)
        .def_readwrite("d_max_A", &RotationPredictionSettings::d_max_A)
        .def_readwrite("mosaicity_rad", &RotationPredictionSettings::mosaicity_rad)
        .def_readwrite("max_sigma_rad", &RotationPredictionSettings::max_sigma_rad)
        .def_readwrite("phi_min", &RotationPredictionSettings::phi_min)
        .def_readwrite("phi_max", &RotationPredictionSettings::phi_max)
        .def_readwrite("min_fraction", &RotationPredictionSettings::min_fraction)
        .def_readwrite("ewald_cutoff", &RotationPredictionSettings::ewald_cutoff)
        .def_readwrite("max_reach_rad", &RotationPredictionSettings::max_reach_rad)
        .def_readwrite("edge_margin_px", &RotationPredictionSettings::edge_margin_px);

    m.def(
        "predict_still",
        [](const ExperimentGeometry& g, CArray<double> A, const StillPredictionSettings& s,
           const std::string& backend) {
            Mat3d a = to_mat3(A, "A");
            Backend b = parse_backend(backend);
            Predictions p;
            {
                py::gil_scoped_release release;
                p = predict_still(g, a, s, b);
            }
            return to_dict(p);
        },
        py::arg("geometry"), py::arg("A"), py::arg("settings"), py::arg("backend") = "cpu",
        "Reflections of one still (A: columns a*, b*, c* in 1/A) -> dict of arrays.");
    m.def(
        "rotation_events",
        [](const ExperimentGeometry& g, CArray<double> A0, const RotationPredictionSettings& s) {
            Mat3d a = to_mat3(A0, "A0");
            RotationEvents ev;
            {
                py::gil_scoped_release release;
                ev = rotation_events(g, a, s);
            }
            py::dict d;
            py::array_t<int32_t> hkl({py::ssize_t(ev.size()), py::ssize_t(3)});
            std::copy(ev.hkl.begin(), ev.hkl.end(), hkl.mutable_data());
            d["hkl"] = hkl;
            d["phi"] = arr(ev.phi);
            d["sigma"] = arr(ev.sigma);
            d["reach"] = arr(ev.reach);
            return d;
        },
        py::arg("geometry"), py::arg("A0"), py::arg("settings"),
        "Sweep events (hkl, diffraction angle phi in rad, rocking sigma in rad) of crystal A0 (omega = 0).");
    m.def(
        "predict_rotation_image",
        [](const ExperimentGeometry& g, CArray<double> A0, CArray<int32_t> hkl, CArray<double> phi,
           CArray<double> sigma, CArray<int32_t> index, double lo, double hi,
           const RotationPredictionSettings& s) {
            Mat3d a = to_mat3(A0, "A0");
            RotationEvents ev = events_from(hkl, phi, sigma);
            if (index.ndim() != 1)
                throw std::invalid_argument("index: expected a 1-d array");
            Predictions p;
            const int32_t* ip = index.data();
            const size_t n = size_t(index.size());
            {
                py::gil_scoped_release release;
                p = predict_rotation_image(g, a, ev, ip, n, lo, hi, s);
            }
            return to_dict(p);
        },
        py::arg("geometry"), py::arg("A0"), py::arg("hkl"), py::arg("phi"), py::arg("sigma"),
        py::arg("index"), py::arg("lo"), py::arg("hi"), py::arg("settings"),
        "Observations on one image [lo, hi] (rad) of the selected sweep events, predicted with A0.");
}
