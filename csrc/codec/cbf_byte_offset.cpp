// CBF byte-offset decoding (see cbf_byte_offset.hpp). CPU only: frames are decoded on the host.
#include "codec/cbf_byte_offset.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace jfjoch::codec {
namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHigh = 0x8080808080808080ULL;

/// Bytes of w equal to 0x80 (the escape byte) as the high bit of each byte: exact up to the first such byte
/// (the classic has-zero-byte test on w ^ 0x80..., whose false positives only lie above a true zero).
inline std::uint64_t escape_bytes(std::uint64_t w) {
    const std::uint64_t x = w ^ kHigh;
    return (x - kOnes) & ~x & kHigh;
}

template <class T> inline T load_le(const std::uint8_t* p) {
    T v; // the stream is little-endian, as every host this builds for
    std::memcpy(&v, p, sizeof(T));
    return v;
}

[[noreturn]] void ends_early(std::size_t i, std::size_t n, std::size_t pos, std::size_t in_size,
                             const char* inside) {
    throw CorruptStream("byte-offset stream of " + std::to_string(in_size) + " bytes ends " + inside +
                        "after " + std::to_string(i) + " of " + std::to_string(n) + " values (byte " +
                        std::to_string(pos) + ")");
}

/// No block fast path (the int64 output, unusual element types).
struct NoBlock {
    bool operator()(const std::uint8_t*, std::size_t, std::uint64_t&) const { return false; }
};

/// The one decoding loop: store(i, value) for i in [0, n). Returns the bytes used. block(in + pos, i, acc)
/// may decode 16 int8 deltas at once (returning true, acc updated) when it can.
template <class Store, class Block = NoBlock>
inline std::size_t decode(const std::uint8_t* in, std::size_t in_size, std::size_t n, Store&& store,
                          Block&& block = Block{}) {
    std::uint64_t acc = 0; // running value, wrapping modulo 2^64
    std::size_t pos = 0, i = 0;
    while (i < n) {
        // Fastest path: 16 int8 deltas (no escape byte) in SIMD registers.
        if (pos + 16 <= in_size && n - i >= 16 && block(in + pos, i, acc)) {
            pos += 16;
            i += 16;
            continue;
        }
        // Fast path: a word of int8 deltas up to the first escape byte.
        if (pos + 8 <= in_size && n - i >= 8) {
            const std::uint64_t esc = escape_bytes(load_le<std::uint64_t>(in + pos));
            const std::size_t k = esc ? std::size_t(__builtin_ctzll(esc)) >> 3 : 8;
            for (std::size_t j = 0; j < k; ++j) {
                acc += std::uint64_t(std::int64_t(std::int8_t(in[pos + j])));
                store(i + j, acc);
            }
            pos += k;
            i += k;
            if (k == 8)
                continue;
        }
        // One value, any width.
        if (pos >= in_size)
            ends_early(i, n, pos, in_size, "");
        const std::int8_t d8 = std::int8_t(in[pos]);
        if (d8 != INT8_MIN) {
            acc += std::uint64_t(std::int64_t(d8));
            pos += 1;
        } else {
            if (pos + 3 > in_size)
                ends_early(i, n, pos, in_size, "inside a 2-byte delta ");
            const std::int16_t d16 = load_le<std::int16_t>(in + pos + 1);
            if (d16 != INT16_MIN) {
                acc += std::uint64_t(std::int64_t(d16));
                pos += 3;
            } else {
                if (pos + 7 > in_size)
                    ends_early(i, n, pos, in_size, "inside a 4-byte delta ");
                const std::int32_t d32 = load_le<std::int32_t>(in + pos + 3);
                if (d32 != INT32_MIN) {
                    acc += std::uint64_t(std::int64_t(d32));
                    pos += 7;
                } else {
                    if (pos + 15 > in_size)
                        ends_early(i, n, pos, in_size, "inside an 8-byte delta ");
                    acc += load_le<std::uint64_t>(in + pos + 7);
                    pos += 15;
                }
            }
        }
        store(i, acc);
        ++i;
    }
    return pos;
}

[[noreturn]] void out_of_range(std::size_t i, std::int64_t v, const ByteOffsetSettings& s) {
    throw CorruptStream("value " + std::to_string(v) + " of pixel " + std::to_string(i) +
                        " lies outside the element type's range [" + std::to_string(s.min_value) + ", " +
                        std::to_string(s.max_value) + "]");
}

#if defined(__SSE2__)
/// 16 int8 deltas without an escape byte, for the signed 32-bit element type (PILATUS, EIGER): while the
/// running value stays 2048 (16 x 128) inside the int32 range, every value of the block fits int32, so
/// the prefix sum runs in four int32 vectors; negative values -> INT32_MIN when NegativeInvalid.
template <bool NegativeInvalid> struct Block16Int32 {
    std::int32_t* out;
    bool operator()(const std::uint8_t* p, std::size_t i, std::uint64_t& acc) const {
        const std::int64_t a = std::int64_t(acc);
        if (a < std::int64_t(INT32_MIN) + 2048 || a > std::int64_t(INT32_MAX) - 2048)
            return false;
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(char(0x80)))) != 0)
            return false;
        const __m128i lo16 = _mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8); // sign-extended int8 -> int16
        const __m128i hi16 = _mm_srai_epi16(_mm_unpackhi_epi8(b, b), 8);
        __m128i v[4] = {_mm_srai_epi32(_mm_unpacklo_epi16(lo16, lo16), 16),
                        _mm_srai_epi32(_mm_unpackhi_epi16(lo16, lo16), 16),
                        _mm_srai_epi32(_mm_unpacklo_epi16(hi16, hi16), 16),
                        _mm_srai_epi32(_mm_unpackhi_epi16(hi16, hi16), 16)};
        __m128i carry = _mm_set1_epi32(std::int32_t(a));
        const __m128i invalid = _mm_set1_epi32(INT32_MIN);
        for (int k = 0; k < 4; ++k) {
            __m128i x = _mm_add_epi32(v[k], _mm_slli_si128(v[k], 4)); // prefix sum within the 4 lanes
            x = _mm_add_epi32(x, _mm_slli_si128(x, 8));
            x = _mm_add_epi32(x, carry);
            carry = _mm_shuffle_epi32(x, 0xFF); // the last value, broadcast
            if (NegativeInvalid) {
                const __m128i neg = _mm_srai_epi32(x, 31);
                x = _mm_or_si128(_mm_andnot_si128(neg, x), _mm_and_si128(neg, invalid));
            }
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 4 * k), x);
        }
        acc = std::uint64_t(std::int64_t(_mm_cvtsi128_si32(carry)));
        return true;
    }
};
#endif

template <bool NegativeInvalid, bool MaxInvalid, bool Clip>
std::size_t decode_int32(const std::uint8_t* in, std::size_t in_size, std::int32_t* out, std::size_t n,
                         const ByteOffsetSettings& s) {
    const std::int64_t lo = s.min_value, hi = s.max_value;
    const std::uint64_t span = std::uint64_t(hi) - std::uint64_t(lo);
    std::uint64_t bad = 0; // values out of range: counted without a branch, located below
    auto store = [&bad, out, lo, hi, span](std::size_t i, std::uint64_t acc) {
        const std::int64_t v = std::int64_t(acc);
        bad |= std::uint64_t(acc - std::uint64_t(lo) > span);
        std::int32_t o = std::int32_t(v);
        if (Clip)
            o = v > INT32_MAX ? INT32_MAX : o;
        if (NegativeInvalid)
            o = v < 0 ? INT32_MIN : o;
        if (MaxInvalid)
            o = v == hi ? INT32_MIN : o;
        out[i] = o;
    };
    std::size_t used;
#if defined(__SSE2__)
    if (!MaxInvalid && !Clip && lo == INT32_MIN && hi == INT32_MAX)
        used = decode(in, in_size, n, store, Block16Int32<NegativeInvalid>{out});
    else
#endif
        used = decode(in, in_size, n, store);
    if (bad) // corrupt data only: decode again to name the first value out of range
        decode(in, in_size, n, [&s, lo, hi](std::size_t i, std::uint64_t acc) {
            const std::int64_t v = std::int64_t(acc);
            if (v < lo || v > hi)
                out_of_range(i, v, s);
        });
    return used;
}

} // namespace

std::size_t byte_offset_decode(const std::uint8_t* in, std::size_t in_size, std::int64_t* out,
                               std::size_t n) {
    return decode(in, in_size, n, [out](std::size_t i, std::uint64_t acc) { out[i] = std::int64_t(acc); });
}

std::size_t byte_offset_decode(const std::uint8_t* in, std::size_t in_size, std::int32_t* out, std::size_t n,
                               const ByteOffsetSettings& s) {
    if (s.min_value > s.max_value)
        throw std::invalid_argument("byte_offset_decode: min_value > max_value");
    const bool clip = s.max_value > INT32_MAX;
    using Fn = std::size_t (*)(const std::uint8_t*, std::size_t, std::int32_t*, std::size_t,
                               const ByteOffsetSettings&);
    static constexpr Fn table[8] = {decode_int32<false, false, false>, decode_int32<false, false, true>,
                                    decode_int32<false, true, false>,  decode_int32<false, true, true>,
                                    decode_int32<true, false, false>,  decode_int32<true, false, true>,
                                    decode_int32<true, true, false>,   decode_int32<true, true, true>};
    return table[4 * s.negative_invalid + 2 * s.max_invalid + clip](in, in_size, out, n, s);
}

} // namespace jfjoch::codec
