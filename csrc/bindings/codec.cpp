// Bindings of csrc/codec: bitshuffle + LZ4/Zstd chunks (HDF5 filter 32008) and CBF byte-offset streams.
// Convert, release the GIL, call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "codec/cbf_byte_offset.hpp"
#include "codec/codec.hpp"

namespace py = pybind11;
using jfjoch::codec::Compression;

namespace {

Compression parse_codec(const py::object& codec) {
    if (py::isinstance<py::int_>(codec)) {
        const int mode = codec.cast<int>();
        if (mode == 2)
            return Compression::LZ4;
        if (mode == 3)
            return Compression::Zstd;
        throw std::invalid_argument("bitshuffle compression mode must be 2 (LZ4) or 3 (Zstd), got " +
                                    std::to_string(mode));
    }
    const std::string s = codec.cast<std::string>();
    if (s == "lz4")
        return Compression::LZ4;
    if (s == "zstd")
        return Compression::Zstd;
    throw std::invalid_argument("codec must be 'lz4' or 'zstd', got '" + s + "'");
}

} // namespace

void add_codec(py::module_& m) {
    py::register_exception<jfjoch::codec::CorruptChunk>(m, "CorruptChunkError", PyExc_ValueError);

    m.def(
        "bitshuffle_decompress",
        [](py::buffer chunk, py::array out, py::object codec) {
            const Compression c = parse_codec(codec);
            py::buffer_info in = chunk.request();
            if (!(out.flags() & py::array::c_style) || !out.writeable())
                throw std::invalid_argument("out must be a C-contiguous, writeable array");
            const auto* src = static_cast<const std::uint8_t*>(in.ptr);
            const std::size_t in_size = std::size_t(in.size * in.itemsize);
            auto* dst = static_cast<std::uint8_t*>(out.mutable_data());
            const std::size_t out_size = std::size_t(out.nbytes());
            const std::size_t es = std::size_t(out.itemsize());
            py::gil_scoped_release release;
            jfjoch::codec::bitshuffle_decompress(src, in_size, dst, out_size, es, c);
        },
        py::arg("chunk"), py::arg("out"), py::arg("codec") = "lz4",
        "Decode one bitshuffle chunk (bytes-like, as from read_direct_chunk) into out (C-contiguous; its "
        "itemsize "
        "is the element size and its nbytes must equal the chunk's size). codec: 'lz4'/'zstd' or mode 2/3. "
        "Raises CorruptChunkError (a ValueError) on malformed input.");

    m.def(
        "bitshuffle_compress",
        [](py::array arr, py::object codec, int level, std::size_t block_size) {
            jfjoch::codec::EncodeSettings s;
            s.compression = parse_codec(codec);
            s.level = level;
            s.block_size = block_size;
            if (!(arr.flags() & py::array::c_style))
                throw std::invalid_argument("arr must be C-contiguous");
            const auto* src = static_cast<const std::uint8_t*>(arr.data());
            const std::size_t n = std::size_t(arr.size());
            const std::size_t es = std::size_t(arr.itemsize());
            std::unique_ptr<std::uint8_t[]> out;
            std::size_t used;
            {
                py::gil_scoped_release release;
                const std::size_t cap = jfjoch::codec::bitshuffle_compress_bound(n, es, s);
                out.reset(new std::uint8_t[cap]); // not zero-filled
                used = jfjoch::codec::bitshuffle_compress(src, n, es, out.get(), cap, s);
            }
            return py::bytes(reinterpret_cast<const char*>(out.get()), used);
        },
        py::arg("arr"), py::arg("codec") = "lz4", py::arg("level") = 0, py::arg("block_size") = 0,
        "Encode a C-contiguous array as one bitshuffle chunk (HDF5 filter 32008 format, for "
        "write_direct_chunk). "
        "level: Zstd level (0 = 3) or LZ4 acceleration; block_size in elements (0 = bitshuffle default).");

    m.def(
        "bitshuffle_chunk_size",
        [](py::buffer chunk) {
            py::buffer_info in = chunk.request();
            return jfjoch::codec::chunk_uncompressed_size(static_cast<const std::uint8_t*>(in.ptr),
                                                          std::size_t(in.size * in.itemsize));
        },
        py::arg("chunk"), "Uncompressed size in bytes stored in a bitshuffle chunk header.");

    py::register_exception<jfjoch::codec::CorruptStream>(m, "CorruptStreamError", PyExc_ValueError);

    m.def(
        "cbf_byte_offset_decode",
        [](py::buffer stream, py::array out, std::int64_t min_value, std::int64_t max_value,
           bool negative_invalid, bool max_invalid) {
            py::buffer_info in = stream.request();
            if (!(out.flags() & py::array::c_style) || !out.writeable())
                throw std::invalid_argument("out must be a C-contiguous, writeable array");
            const auto* src = static_cast<const std::uint8_t*>(in.ptr);
            const std::size_t in_size = std::size_t(in.size * in.itemsize);
            const std::size_t n = std::size_t(out.size());
            if (out.dtype().is(py::dtype::of<std::int64_t>())) {
                auto* dst = static_cast<std::int64_t*>(out.mutable_data());
                py::gil_scoped_release release;
                return jfjoch::codec::byte_offset_decode(src, in_size, dst, n);
            }
            if (!out.dtype().is(py::dtype::of<std::int32_t>()))
                throw std::invalid_argument("out must be an int32 or int64 array");
            jfjoch::codec::ByteOffsetSettings s;
            s.min_value = min_value;
            s.max_value = max_value;
            s.negative_invalid = negative_invalid;
            s.max_invalid = max_invalid;
            auto* dst = static_cast<std::int32_t*>(out.mutable_data());
            py::gil_scoped_release release;
            return jfjoch::codec::byte_offset_decode(src, in_size, dst, n, s);
        },
        py::arg("stream"), py::arg("out"), py::arg("min_value") = std::int64_t(INT32_MIN),
        py::arg("max_value") = std::int64_t(INT32_MAX), py::arg("negative_invalid") = false,
        py::arg("max_invalid") = false,
        "Decode the first out.size values of a CBF byte-offset stream (bytes-like) into out; returns the "
        "bytes "
        "used. int64 out: raw values. int32 out: values outside [min_value, max_value] raise; "
        "negative_invalid: "
        "values < 0 -> INT32_MIN; max_invalid: max_value -> INT32_MIN; values > INT32_MAX are clipped. "
        "Raises "
        "CorruptStreamError (a ValueError) for a stream that ends early or a value out of range.");
}
