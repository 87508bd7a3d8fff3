// Bindings of csrc/frame: the per-experiment map as an opaque object, the pass on an image or a raw chunk.
// Convert, check, release the GIL, call.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "bindings/spot_arrays.hpp"
#include "core/backend.hpp"
#include "core/experiment.hpp"
#include "frame/frame.hpp"

namespace py = pybind11;
using namespace jfjoch;
using jfjoch::bind::CArray;
using jfjoch::bind::spot_arrays;

namespace {

void require_shape(const py::array& a, int64_t ny, int64_t nx, const char* name) {
    if (a.ndim() != 2 || a.shape(0) != ny || a.shape(1) != nx)
        throw std::invalid_argument(std::string(name) + ": expected a (" + std::to_string(ny) + ", " +
                                    std::to_string(nx) + ") array");
}

std::shared_ptr<FrameMap> make_map(CArray<uint8_t> flags, CArray<int32_t> bins, CArray<float> weight,
                                   int32_t n_bins, const ExperimentGeometry& geometry) {
    const int64_t ny = geometry.ny, nx = geometry.nx;
    require_shape(flags, ny, nx, "flags");
    require_shape(bins, ny, nx, "bins");
    require_shape(weight, ny, nx, "weight");
    auto m = std::make_shared<FrameMap>();
    const uint8_t* f = flags.data();
    const int32_t* b = bins.data();
    const float* w = weight.data();
    {
        py::gil_scoped_release release;
        *m = frame_make_map(f, b, w, nx, ny, n_bins, geometry.det);
    }
    return m;
}

FrameSettings settings_of(const SpotFinderSettings& spots, int32_t spot_saturation, double azint_saturation) {
    FrameSettings s;
    s.spots = spots;
    s.spot_saturation = spot_saturation;
    s.azint_saturation = azint_saturation;
    return s;
}

py::tuple result_tuple(const FrameResult& r) {
    py::list items = spot_arrays(r.spots);
    const auto nb = py::ssize_t(r.mean.size());
    py::array_t<double> mean(nb);
    py::array_t<int64_t> count(nb);
    std::copy(r.mean.begin(), r.mean.end(), mean.mutable_data());
    std::copy(r.count.begin(), r.count.end(), count.mutable_data());
    items.append(mean);
    items.append(count);
    return py::tuple(items);
}

py::tuple run_image(CArray<int32_t> image, const FrameMap& map, const SpotFinderSettings& spots,
                    int32_t spot_saturation, double azint_saturation, const std::string& backend) {
    require_shape(image, map.ny, map.nx, "image");
    const Backend b = parse_backend(backend);
    const FrameSettings s = settings_of(spots, spot_saturation, azint_saturation);
    FrameResult r;
    const int32_t* p = image.data();
    {
        py::gil_scoped_release release;
        frame_pass(p, map, s, r, b);
    }
    return result_tuple(r);
}

PixelType parse_type(const std::string& t) {
    if (t == "int8")
        return PixelType::Int8;
    if (t == "uint8")
        return PixelType::UInt8;
    if (t == "int16")
        return PixelType::Int16;
    if (t == "uint16")
        return PixelType::UInt16;
    if (t == "int32")
        return PixelType::Int32;
    if (t == "uint32")
        return PixelType::UInt32;
    throw std::invalid_argument("frame pass: stored pixel type must be (u)int8, (u)int16 or (u)int32, not '" +
                                t + "'");
}

py::tuple run_chunk(py::buffer chunk, int codec, const std::string& stored_type, py::array_t<int32_t> out,
                    const FrameMap& map, const SpotFinderSettings& spots, int32_t spot_saturation,
                    double azint_saturation, const std::string& backend) {
    if (codec != 2 && codec != 3)
        throw std::invalid_argument("bitshuffle compression mode must be 2 (LZ4) or 3 (Zstd), got " +
                                    std::to_string(codec));
    if (!(out.flags() & py::array::c_style) || !out.writeable())
        throw std::invalid_argument("out must be a C-contiguous, writeable int32 array");
    require_shape(out, map.ny, map.nx, "out");
    const PixelType t = parse_type(stored_type);
    const Backend b = parse_backend(backend);
    const FrameSettings s = settings_of(spots, spot_saturation, azint_saturation);
    py::buffer_info in = chunk.request();
    const auto* src = static_cast<const uint8_t*>(in.ptr);
    const size_t size = size_t(in.size * in.itemsize);
    int32_t* dst = out.mutable_data();
    FrameResult r;
    {
        py::gil_scoped_release release;
        frame_pass_chunk(src, size, codec::Compression(codec), t, dst, map, s, r, b);
    }
    return result_tuple(r);
}

} // namespace

void add_frame(py::module_& m) {
    py::class_<FrameMap, std::shared_ptr<FrameMap>>(
        m, "FrameMap",
        "Per-experiment map of the frame pass (csrc/frame/frame.hpp): runs of constant azimuthal bin and of "
        "constant spot-finder flags per row, one float32 weight per pixel. Read-only; shareable by threads.")
        .def(py::init(&make_map), py::arg("flags"), py::arg("bins"), py::arg("weight"), py::arg("n_bins"),
             py::arg("geometry"),
             "From the spot finder's pixel flags and the integrator's bin/weight maps ((ny, nx) each).")
        .def_readonly("nx", &FrameMap::nx)
        .def_readonly("ny", &FrameMap::ny)
        .def_readonly("n_bins", &FrameMap::n_bins)
        .def_property_readonly("n_bin_runs", [](const FrameMap& f) { return f.bin_end.size(); })
        .def_property_readonly("n_flag_runs", [](const FrameMap& f) { return f.flag_end.size(); })
        .def_property_readonly("nbytes", [](const FrameMap& f) {
            return f.weight.size() * sizeof(float) + (f.bin_end.size() + f.bin_id.size()) * sizeof(int32_t) +
                   f.flag_end.size() * sizeof(int32_t) + f.flag_id.size() +
                   (f.bin_row.size() + f.flag_row.size()) * sizeof(int64_t);
        });
    m.def(
        "frame_pass", &run_image, py::arg("image"), py::arg("map"), py::arg("settings"),
        py::arg("spot_saturation"), py::arg("azint_saturation"), py::arg("backend") = "auto",
        "Spots, azimuthal profile and statistics of one int32 (ny, nx) image: (x, y, intensity, n_pixels, d, "
        "ice_ring, stats dict, mean, count).");
    m.def("frame_pass_chunk", &run_chunk, py::arg("chunk"), py::arg("codec"), py::arg("stored_type"),
          py::arg("out"), py::arg("map"), py::arg("settings"), py::arg("spot_saturation"),
          py::arg("azint_saturation"), py::arg("backend") = "auto",
          "Decode one bitshuffle chunk (codec 2 LZ4 / 3 Zstd; stored_type 'int32', 'uint16', ...) into out "
          "(int32 (ny, nx), the reader's conversion) and run the pass on it; same tuple as frame_pass. "
          "Raises CorruptChunkError (a ValueError) on a malformed chunk.");
}
