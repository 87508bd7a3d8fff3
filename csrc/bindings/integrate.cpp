// Bindings of csrc/integrate: numpy <-> kernel arrays; inputs are checked here (ValueError, one line) and the
// GIL is released around the kernel.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "integrate/integrate.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;

namespace {

bool has_dtype(const py::array& a, const py::dtype& d) {
    return a.dtype().equal(d);
}

/// 1-D float32/float64 array of n values as contiguous float64 (a copy only for float32 or strided input).
CArray<double> coords(const py::array& a, const char* name) {
    if (a.ndim() != 1 || (a.dtype().kind() != 'f') || a.itemsize() > 8)
        throw std::invalid_argument(std::string(name) + ": expected a 1-D float32 or float64 array");
    return CArray<double>::ensure(a);
}

py::dict integrate(const py::array& image, const py::object& mask, double saturation, const py::array& x,
                   const py::array& y, const py::object& group, int32_t n_groups,
                   const IntegrationSettings& settings, bool profile, const std::string& backend) {
    if (image.ndim() != 2 || !has_dtype(image, py::dtype::of<int32_t>()))
        throw std::invalid_argument("image: expected a 2-D int32 array (ny, nx)");
    const auto img = CArray<int32_t>::ensure(image);
    const py::ssize_t ny = img.shape(0), nx = img.shape(1);
    if (nx < 1 || ny < 1)
        throw std::invalid_argument("image: empty");
    // mask: uint8 or bool (one byte, 0/1) read in place when C-contiguous, else copied once
    py::array m;
    if (!mask.is_none()) {
        m = py::array::ensure(mask);
        if (!m || m.ndim() != 2 || m.shape(0) != ny || m.shape(1) != nx ||
            !(has_dtype(m, py::dtype::of<uint8_t>()) || has_dtype(m, py::dtype::of<bool>())))
            throw std::invalid_argument("mask: expected a (ny, nx) uint8 or bool array matching the image");
        if (!(m.flags() & py::array::c_style))
            m = CArray<uint8_t>::ensure(m);
    }
    const auto xs = coords(x, "x"), ys = coords(y, "y");
    if (xs.size() != ys.size())
        throw std::invalid_argument("x and y must have the same length");
    const py::ssize_t n = xs.size();
    if (n_groups < 1)
        throw std::invalid_argument("n_groups must be >= 1");
    CArray<int32_t> grp;
    if (!group.is_none()) {
        const py::array ga = py::array::ensure(group);
        if (!ga || ga.ndim() != 1 || ga.size() != n || !has_dtype(ga, py::dtype::of<int32_t>()))
            throw std::invalid_argument("group: expected a 1-D int32 array, one value per reflection");
        grp = CArray<int32_t>::ensure(ga);
    }
    integration_validate(settings);
    const Backend b = jfjoch::parse_backend(backend);
    const py::ssize_t G = integration_profile_size(settings.r1, settings.oversampling);

    py::array_t<double> I_sum(n), sigma_sum(n), I_prf(n), sigma_prf(n), background(n);
    py::array_t<int32_t> n_disc(n), n_background(n);
    py::array_t<uint32_t> flags(n);
    py::array_t<double> profiles({py::ssize_t(n_groups), G, G}), width(n_groups);
    py::array_t<int32_t> n_ref(n_groups), source(n_groups);
    IntegrationOutput out;
    out.I_sum = I_sum.mutable_data();
    out.sigma_sum = sigma_sum.mutable_data();
    out.I_prf = I_prf.mutable_data();
    out.sigma_prf = sigma_prf.mutable_data();
    out.background = background.mutable_data();
    out.n_disc = n_disc.mutable_data();
    out.n_background = n_background.mutable_data();
    out.flags = flags.mutable_data();
    out.profiles = profiles.mutable_data();
    out.profile_width = width.mutable_data();
    out.profile_n_reference = n_ref.mutable_data();
    out.profile_source = source.mutable_data();
    for (py::ssize_t k = 0; k < profiles.size(); ++k)
        out.profiles[k] = 0.0;
    for (int32_t g = 0; g < n_groups; ++g) {
        out.profile_width[g] = NAN;
        out.profile_n_reference[g] = 0;
        out.profile_source[g] = kProfileNone;
    }
    const int32_t* ip = img.data();
    const uint8_t* mp = mask.is_none() ? nullptr : static_cast<const uint8_t*>(m.data());
    const double* xp = xs.data();
    const double* yp = ys.data();
    const int32_t* gp = group.is_none() ? nullptr : grp.data();
    {
        py::gil_scoped_release release;
        integrate_image(ip, mp, nx, ny, saturation, xp, yp, gp, n, n_groups, settings, profile, out, b);
    }
    py::dict d;
    d["I_sum"] = I_sum;
    d["sigma_sum"] = sigma_sum;
    d["I_prf"] = I_prf;
    d["sigma_prf"] = sigma_prf;
    d["background"] = background;
    d["n_disc"] = n_disc;
    d["n_background"] = n_background;
    d["flags"] = flags;
    d["profiles"] = profiles;
    d["profile_width"] = width;
    d["profile_n_reference"] = n_ref;
    d["profile_source"] = source;
    return d;
}

} // namespace

void add_integrate(py::module_& m) {
    py::class_<IntegrationSettings>(m, "IntegrationSettings",
                                    "Settings of the Bragg integration kernel (docs/integration_kernel.md).")
        .def(py::init<>())
        .def_readwrite("r1", &IntegrationSettings::r1, "signal disc radius (pixels)")
        .def_readwrite("r2", &IntegrationSettings::r2, "inner background radius (pixels, exclusive)")
        .def_readwrite("r3", &IntegrationSettings::r3, "outer background radius (pixels, inclusive)")
        .def_readwrite("bg_clip_sigma", &IntegrationSettings::bg_clip_sigma,
                       "clip annulus pixels above mean + k sqrt(max(mean, 1))")
        .def_readwrite("min_background_pixels", &IntegrationSettings::min_background_pixels,
                       "fewer background pixels: FEW_BACKGROUND")
        .def_readwrite("profile_min_isigma", &IntegrationSettings::profile_min_isigma,
                       "I/sigma of a profile reference")
        .def_readwrite("profile_min_reflections", &IntegrationSettings::profile_min_reflections,
                       "references needed for a group's own profile")
        .def_readwrite("profile_multiplier", &IntegrationSettings::profile_multiplier,
                       "fit radius = min(r1, profile_multiplier * sigma_p / 2)")
        .def_readwrite("oversampling", &IntegrationSettings::oversampling, "profile cells per pixel");
    py::dict f;
    f["SUMMED"] = uint32_t(kIntegrateSummed);
    f["PROFILE_FITTED"] = uint32_t(kIntegrateProfileFitted);
    f["SATURATED"] = uint32_t(kIntegrateSaturated);
    f["OVERLAP"] = uint32_t(kIntegrateOverlap);
    f["MASKED"] = uint32_t(kIntegrateMasked);
    f["FEW_BACKGROUND"] = uint32_t(kIntegrateFewBackground);
    f["EDGE"] = uint32_t(kIntegrateEdge);
    f["PROFILE_REFERENCE"] = uint32_t(kIntegrateProfileReference);
    f["PROFILE_FAILED"] = uint32_t(kIntegrateProfileFailed);
    m.attr("INTEGRATION_FLAGS") = f;
    m.attr("INTEGRATION_MAX_RADIUS") = kIntegrationMaxRadius;
    m.def(
        "integration_validate", [](const IntegrationSettings& s) { integration_validate(s); },
        py::arg("settings"),
        "Raise ValueError (one line) unless the settings are valid (0 < r1 < r2 < r3 <= 32, ...).");
    m.def(
        "integration_profile_size",
        [](double r1, int32_t oversampling) { return integration_profile_size(r1, oversampling); },
        py::arg("r1"), py::arg("oversampling"), "G: profiles are G x G cells of 1/oversampling pixels.");
    m.def("integrate_image", &integrate, py::arg("image"), py::arg("mask"), py::arg("saturation"),
          py::arg("x"), py::arg("y"), py::arg("group"), py::arg("n_groups"), py::arg("settings"),
          py::arg("profile") = true, py::arg("backend") = "auto",
          "Integrate predictions (x, y) on one int32 image: dict of per-reflection arrays (I_sum, sigma_sum, "
          "I_prf, sigma_prf, background, n_disc, n_background, flags) and per-group profiles, profile_width, "
          "profile_n_reference, profile_source.");
}
