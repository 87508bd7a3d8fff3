// Bindings of csrc/azint: numpy <-> kernel structs; the GIL is released around every kernel call.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "azint/azint.hpp"
#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "core/experiment.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

double corner_q(const ExperimentGeometry& geometry) {
    py::gil_scoped_release release;
    return azint_corner_q(geometry.det, geometry.nx, geometry.ny);
}

py::tuple make_map(py::object mask, const ExperimentGeometry& geometry, const AzintSettings& settings,
                   const std::string& backend) {
    const py::ssize_t nx = geometry.nx, ny = geometry.ny;
    const DetectorGeometry& g = geometry.det;
    const Backend b = jfjoch::parse_backend(backend);
    CArray<uint8_t> m;
    if (!mask.is_none()) {
        m = CArray<uint8_t>::ensure(mask);
        if (!m || m.ndim() != 2 || m.shape(0) != ny || m.shape(1) != nx)
            throw std::invalid_argument("mask: expected a (ny, nx) array");
    }
    const uint8_t* mp = mask.is_none() ? nullptr : m.data();
    py::array_t<int32_t> bin({ny, nx});
    py::array_t<float> weight({ny, nx});
    int32_t* bp = bin.mutable_data();
    float* wp = weight.mutable_data();
    {
        py::gil_scoped_release release;
        azint_make_map(g, nx, ny, mp, settings, bp, wp, b);
    }
    return py::make_tuple(bin, weight);
}

template <typename T>
py::tuple integrate(CArray<T> image, CArray<int32_t> bin, CArray<float> weight, int32_t n_bins,
                    double saturation, const std::string& backend) {
    if (image.size() != bin.size() || image.size() != weight.size())
        throw std::invalid_argument("image, bin and weight must have the same number of pixels");
    if (n_bins < 1)
        throw std::invalid_argument("n_bins must be >= 1");
    const Backend b = jfjoch::parse_backend(backend);
    py::array_t<double> mean(n_bins);
    py::array_t<int64_t> count(n_bins);
    const T* ip = image.data();
    const int32_t* bp = bin.data();
    const float* wp = weight.data();
    double* mp = mean.mutable_data();
    int64_t* cp = count.mutable_data();
    const int64_t npix = int64_t(image.size());
    {
        py::gil_scoped_release release;
        azint_integrate(ip, bp, wp, npix, n_bins, saturation, mp, cp, b);
    }
    return py::make_tuple(mean, count);
}

} // namespace

void add_azint(py::module_& m) {
    py::class_<AzintSettings>(m, "AzintSettings", "Binning and corrections of the azimuthal integration.")
        .def(py::init<>())
        .def_readwrite("q_min", &AzintSettings::q_min, "lower edge of bin 0 (1/A, with 2 pi)")
        .def_readwrite("q_max", &AzintSettings::q_max, "upper edge of the last bin (1/A, with 2 pi)")
        .def_readwrite("n_bins", &AzintSettings::n_bins, "number of bins, uniform in q")
        .def_readwrite("solid_angle", &AzintSettings::solid_angle, "apply the solid-angle correction")
        .def_readwrite("polarization", &AzintSettings::polarization, "apply the polarisation correction")
        .def_readwrite("polarization_fraction", &AzintSettings::polarization_fraction,
                       "fraction of the beam polarised along lab +x (0.5 = unpolarised)");
    m.attr("AZINT_DEFAULT_BIN_WIDTH") = kAzintDefaultBinWidth;
    m.def("azint_corner_q", &corner_q, py::arg("geometry"),
          "Largest q = 2 pi / d (1/A) over the four corner pixel centres.");
    m.def("azint_map", &make_map, py::arg("mask"), py::arg("geometry"), py::arg("settings"),
          py::arg("backend") = "auto",
          "Per-pixel map: (bin int32 (ny, nx), -1 = not integrated; weight float32 = 1 / corrections).");
    m.def("azint_integrate", &integrate<int32_t>, py::arg("image").noconvert(), py::arg("bin"),
          py::arg("weight"), py::arg("n_bins"), py::arg("saturation"), py::arg("backend") = "auto",
          "Integrate an int32 image: (mean corrected intensity (n_bins,), valid pixel count (n_bins,)).");
    m.def("azint_integrate", &integrate<float>, py::arg("image"), py::arg("bin"), py::arg("weight"),
          py::arg("n_bins"), py::arg("saturation"), py::arg("backend") = "auto",
          "Integrate a float32 image (NaN = error): (mean (n_bins,), count (n_bins,)).");
}
