// CBF byte-offset decoding ("x-CBF_BYTE_OFFSET", CBFlib manual section 3.3.3): the compression of the
// miniCBF images that DECTRIS PILATUS and EIGER detectors write.
//
// Stream: value[i] = value[i - 1] + delta[i], with value[-1] = 0. Each delta is little-endian:
//   1 byte, int8, unless that byte is 0x80; then
//   2 bytes, int16, unless they are 0x8000; then
//   4 bytes, int32, unless they are 0x80000000; then
//   8 bytes, int64.
// So a delta of -128 takes 3 bytes (80 80 ff) and a delta of 2^31 takes 15. Sums wrap modulo 2^64, as
// CBFlib's 64-bit arithmetic does; bytes after the n-th value are not read.
//
// Thread safety: re-entrant (no shared state), no allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace jfjoch::codec {

/// Thrown for a stream that ends early (before n values, or inside an escaped delta) or whose values fall
/// outside the stored element type's range.
class CorruptStream : public std::runtime_error {
  public:
    explicit CorruptStream(const std::string& what) : std::runtime_error(what) {}
};

/// How decoded values become int32 pixels (docs/io.md): values above INT32_MAX (uint32 elements) are clipped
/// to INT32_MAX; invalid pixels become INT32_MIN.
struct ByteOffsetSettings {
    std::int64_t min_value = INT32_MIN; ///< the element type's range: a value outside it is a corrupt stream
    std::int64_t max_value = INT32_MAX;
    bool negative_invalid = false; ///< values < 0 -> INT32_MIN (PILATUS: -1 module gaps, -2 bad pixels)
    bool max_invalid = false;      ///< max_value -> INT32_MIN (the all-ones error marker of unsigned types)
};

/// Decode the first n values of a stream of in_size bytes into out (raw values, no range check).
/// Returns the number of bytes used. Throws CorruptStream if the stream ends early; never reads past in_size.
std::size_t byte_offset_decode(const std::uint8_t* in, std::size_t in_size, std::int64_t* out, std::size_t n);

/// Decode the first n values into int32 pixels mapped by s (one pass). Returns the number of bytes used.
/// Throws CorruptStream if the stream ends early or a value lies outside [s.min_value, s.max_value].
std::size_t byte_offset_decode(const std::uint8_t* in, std::size_t in_size, std::int32_t* out, std::size_t n,
                               const ByteOffsetSettings& s);

} // namespace jfjoch::codec
