// Per-item work of the bitshuffle transposition: one 8x8 bit-matrix transpose (JFJOCH_HD, usable from CUDA).
#pragma once
#include <cstdint>

#include "core/hd.hpp"

namespace jfjoch::codec {

/// Transpose the 8x8 bit matrix held in x: bit (8*r + c) <-> bit (8*c + r) (little-endian byte order).
/// Byte k of x holds row k; after the call, byte b holds bit b of every input byte (bit k = byte k's bit b).
JFJOCH_HD std::uint64_t transpose_bits_8x8(std::uint64_t x) {
    std::uint64_t t;
    t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
    x = x ^ t ^ (t << 28);
    return x;
}

/// Big-endian integer reads/writes of the chunk headers.
JFJOCH_HD std::uint64_t read_be64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | p[i];
    return v;
}
JFJOCH_HD std::uint32_t read_be32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
JFJOCH_HD void write_be64(std::uint8_t* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8)
        p[i] = std::uint8_t(v & 0xFF);
}
JFJOCH_HD void write_be32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8)
        p[i] = std::uint8_t(v & 0xFF);
}

} // namespace jfjoch::codec
