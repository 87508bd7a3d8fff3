// Bindings of csrc/simulate: convert arrays, release the GIL, call the kernel.
#include <cstring>
#include <string>

#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "simulate/simulate.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

SimFrameSettings make_settings(uint64_t seed, uint64_t frame, bool noise, int32_t saturation, double psf,
                               int32_t n_threads = 1) {
    SimFrameSettings s;
    s.n_threads = n_threads;
    s.seed = seed;
    s.frame = frame;
    s.noise = noise;
    s.saturation = saturation;
    s.psf_sigma_px = psf;
    return s;
}

void check_spots(const CArray<double>& xy, const CArray<double>& photons) {
    bind::require_2d(xy, 2, "xy");
    if (photons.ndim() != 1 || photons.shape(0) != xy.shape(0))
        throw std::invalid_argument("photons: one value per spot expected");
}

py::array_t<float> sim_expected_py(CArray<float> background, CArray<double> xy, CArray<double> photons,
                                   double psf_sigma_px, const std::string& backend) {
    if (background.ndim() != 2)
        throw std::invalid_argument("background: 2-D array expected");
    check_spots(xy, photons);
    const py::ssize_t ny = background.shape(0), nx = background.shape(1);
    py::array_t<float> out({ny, nx});
    auto s = make_settings(0, 0, false, 1, psf_sigma_px);
    const Backend be = jfjoch::parse_backend(backend);
    {
        py::gil_scoped_release release;
        sim_expected(background.data(), nx, ny, xy.data(), photons.data(), xy.shape(0), s, out.mutable_data(),
                     be);
    }
    return out;
}

py::array_t<int32_t> sim_frame_py(CArray<float> background, CArray<uint8_t> pixel_class, CArray<double> xy,
                                  CArray<double> photons, double psf_sigma_px, uint64_t seed, uint64_t frame,
                                  bool noise, int32_t saturation, int32_t n_threads,
                                  const std::string& backend) {
    if (background.ndim() != 2 || pixel_class.ndim() != 2 || background.shape(0) != pixel_class.shape(0) ||
        background.shape(1) != pixel_class.shape(1))
        throw std::invalid_argument("background and pixel_class: 2-D arrays of the same shape expected");
    check_spots(xy, photons);
    const py::ssize_t ny = background.shape(0), nx = background.shape(1);
    py::array_t<int32_t> out({ny, nx});
    auto s = make_settings(seed, frame, noise, saturation, psf_sigma_px, n_threads);
    const Backend be = jfjoch::parse_backend(backend);
    {
        py::gil_scoped_release release;
        sim_frame(background.data(), pixel_class.data(), nx, ny, xy.data(), photons.data(), xy.shape(0), s,
                  out.mutable_data(), be);
    }
    return out;
}

} // namespace

void add_simulate(py::module_& m) {
    m.def(
        "sim_expected", &sim_expected_py, py::arg("background"), py::arg("xy"), py::arg("photons"),
        py::arg("psf_sigma_px"), py::arg("backend") = "cpu",
        "Expected photons (ny, nx) float32: background + Gaussian spots (sigma px) integrated over pixels.");
    m.def(
        "sim_frame", &sim_frame_py, py::arg("background"), py::arg("pixel_class"), py::arg("xy"),
        py::arg("photons"), py::arg("psf_sigma_px"), py::arg("seed"), py::arg("frame"),
        py::arg("noise") = true, py::arg("saturation") = 32766, py::arg("n_threads") = 1,
        py::arg("backend") = "cpu",
        "One simulated frame (ny, nx) int32: expected -> Poisson(seed, frame, pixel) -> saturation -> class "
        "(0 normal, 1 always 0, 2 always saturated).");
}
