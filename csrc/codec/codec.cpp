// Bitshuffle + LZ4/Zstd chunk codec (CPU only: decoding runs on the host before frames go to any device).
#include "codec/codec.hpp"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "codec/bitshuffle_impl.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace jfjoch::codec {
namespace {

constexpr std::size_t kTargetBlockBytes = 8192;
constexpr std::size_t kBlockedMult = 8;
constexpr std::size_t kMinBlock = 128;
constexpr std::size_t kHeader = 12;

inline std::uint64_t load_u64(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

/// scratch[g * 8es + r] = in[r * R + g]: the (8 es) x R byte matrix of bit-rows, transposed.
void transpose_bitrows(const std::uint8_t* in, std::uint8_t* out, std::size_t rows, std::size_t cols) {
    // Tiles of 8 rows x 8 columns: 8 loads of 8 bytes, an 8x8 byte transpose in registers, 8 stores.
    std::size_t r = 0;
    for (; r + 8 <= rows; r += 8) {
        std::size_t g = 0;
        for (; g + 8 <= cols; g += 8) {
            std::uint64_t x[8];
            for (int k = 0; k < 8; ++k)
                x[k] = load_u64(in + (r + k) * cols + g);
            // 8x8 byte transpose: swap 4x4 blocks, then 2x2, then 1x1.
            for (int k = 0; k < 4; ++k) {
                std::uint64_t a = x[k], b = x[k + 4];
                x[k] = (a & 0x00000000FFFFFFFFULL) | (b << 32);
                x[k + 4] = (a >> 32) | (b & 0xFFFFFFFF00000000ULL);
            }
            for (int k : {0, 1, 4, 5}) {
                std::uint64_t a = x[k], b = x[k + 2];
                x[k] = (a & 0x0000FFFF0000FFFFULL) | ((b & 0x0000FFFF0000FFFFULL) << 16);
                x[k + 2] = ((a >> 16) & 0x0000FFFF0000FFFFULL) | (b & 0xFFFF0000FFFF0000ULL);
            }
            for (int k : {0, 2, 4, 6}) {
                std::uint64_t a = x[k], b = x[k + 1];
                x[k] = (a & 0x00FF00FF00FF00FFULL) | ((b & 0x00FF00FF00FF00FFULL) << 8);
                x[k + 1] = ((a >> 8) & 0x00FF00FF00FF00FFULL) | (b & 0xFF00FF00FF00FF00ULL);
            }
            for (int k = 0; k < 8; ++k)
                std::memcpy(out + (g + k) * rows + r, &x[k], 8);
        }
        for (; g < cols; ++g)
            for (int k = 0; k < 8; ++k)
                out[g * rows + r + k] = in[(r + k) * cols + g];
    }
    for (; r < rows; ++r)
        for (std::size_t g = 0; g < cols; ++g)
            out[g * rows + r] = in[r * cols + g];
}

#if defined(__SSE2__)
/// 8 rows x 16 columns of bytes (row stride ld) -> v[p] = columns 2p and 2p+1, 8 bytes (rows 0..7) each.
inline void transpose_8x16(const std::uint8_t* in, std::size_t ld, __m128i v[8]) {
    __m128i r[8], t[8], u[8];
    for (int k = 0; k < 8; ++k)
        r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + k * ld));
    for (int k = 0; k < 4; ++k) {
        t[2 * k] = _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
    }
    u[0] = _mm_unpacklo_epi16(t[0], t[2]);
    u[1] = _mm_unpackhi_epi16(t[0], t[2]);
    u[2] = _mm_unpacklo_epi16(t[1], t[3]);
    u[3] = _mm_unpackhi_epi16(t[1], t[3]);
    u[4] = _mm_unpacklo_epi16(t[4], t[6]);
    u[5] = _mm_unpackhi_epi16(t[4], t[6]);
    u[6] = _mm_unpacklo_epi16(t[5], t[7]);
    u[7] = _mm_unpackhi_epi16(t[5], t[7]);
    for (int k = 0; k < 4; ++k) {
        v[2 * k] = _mm_unpacklo_epi32(u[k], u[k + 4]);
        v[2 * k + 1] = _mm_unpackhi_epi32(u[k], u[k + 4]);
    }
}

/// 16 bytes = byte j0 (bytes 0..7) and byte j0+1 (bytes 8..15) bit-rows of a group of 8 elements ->
/// those two bytes of each of the 8 elements (dst = the group's first element + j0).
inline void store_bits_16(__m128i v, std::uint8_t* dst, std::size_t es) {
    for (int kk = 0; kk < 8; ++kk) {
        const std::uint16_t bt = std::uint16_t(_mm_movemask_epi8(v));
        v = _mm_slli_epi16(v, 1);
        std::memcpy(dst + (7 - kk) * es, &bt, 2);
    }
}

/// Fused un-bitshuffle for even element sizes and n_elem a multiple of 128: no scratch pass.
void bitunshuffle_sse2(const std::uint8_t* in, std::uint8_t* out, std::size_t n_elem, std::size_t es) {
    const std::size_t R = n_elem / 8;
    for (std::size_t j0 = 0; j0 < es; j0 += 2) {
        const std::uint8_t* rows_a = in + (j0 * 8) * R;
        const std::uint8_t* rows_b = rows_a + 8 * R;
        for (std::size_t g = 0; g < R; g += 16) {
            __m128i va[8], vb[8];
            transpose_8x16(rows_a + g, R, va);
            transpose_8x16(rows_b + g, R, vb);
            std::uint8_t* dst = out + 8 * g * es + j0;
            for (int p = 0; p < 8; ++p) {
                store_bits_16(_mm_unpacklo_epi64(va[p], vb[p]), dst + 16 * p * es, es);
                store_bits_16(_mm_unpackhi_epi64(va[p], vb[p]), dst + (16 * p + 8) * es, es);
            }
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JFJOCH_CODEC_AVX2 1
/// AVX2 version of transpose_8x16, per 128-bit lane: lane 0 = columns 0..15, lane 1 = columns 16..31.
__attribute__((target("avx2"))) inline void transpose_8x32(const std::uint8_t* in, std::size_t ld,
                                                           __m256i v[8]) {
    __m256i r[8], t[8], u[8];
    for (int k = 0; k < 8; ++k)
        r[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + k * ld));
    for (int k = 0; k < 4; ++k) {
        t[2 * k] = _mm256_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
    }
    u[0] = _mm256_unpacklo_epi16(t[0], t[2]);
    u[1] = _mm256_unpackhi_epi16(t[0], t[2]);
    u[2] = _mm256_unpacklo_epi16(t[1], t[3]);
    u[3] = _mm256_unpackhi_epi16(t[1], t[3]);
    u[4] = _mm256_unpacklo_epi16(t[4], t[6]);
    u[5] = _mm256_unpackhi_epi16(t[4], t[6]);
    u[6] = _mm256_unpacklo_epi16(t[5], t[7]);
    u[7] = _mm256_unpackhi_epi16(t[5], t[7]);
    for (int k = 0; k < 4; ++k) {
        v[2 * k] = _mm256_unpacklo_epi32(u[k], u[k + 4]);
        v[2 * k + 1] = _mm256_unpackhi_epi32(u[k], u[k + 4]);
    }
}

/// 4-byte elements: all four bytes of 8 elements from two 256-bit bit-row pairs; one 4-byte store each.
/// ab: bytes 0,1 of the groups in lane 0 (d0) and lane 1 (d1); cd: bytes 2,3 of the same groups.
__attribute__((target("avx2"))) inline void store_bits_es4(__m256i ab, __m256i cd, std::uint8_t* d0,
                                                           std::uint8_t* d1) {
    for (int kk = 0; kk < 8; ++kk) {
        const std::uint32_t m_ab = std::uint32_t(_mm256_movemask_epi8(ab));
        const std::uint32_t m_cd = std::uint32_t(_mm256_movemask_epi8(cd));
        ab = _mm256_slli_epi16(ab, 1);
        cd = _mm256_slli_epi16(cd, 1);
        const std::uint32_t e0 = (m_ab & 0xFFFFu) | (m_cd << 16);
        const std::uint32_t e1 = (m_ab >> 16) | (m_cd & 0xFFFF0000u);
        std::memcpy(d0 + (7 - kk) * 4, &e0, 4);
        std::memcpy(d1 + (7 - kk) * 4, &e1, 4);
    }
}

/// Even element sizes: two bytes of 8 elements per lane and movemask.
__attribute__((target("avx2"))) inline void store_bits_2x16(__m256i v, std::uint8_t* d0, std::uint8_t* d1,
                                                            std::size_t es) {
    for (int kk = 0; kk < 8; ++kk) {
        const std::uint32_t m = std::uint32_t(_mm256_movemask_epi8(v));
        v = _mm256_slli_epi16(v, 1);
        const std::uint16_t lo = std::uint16_t(m), hi = std::uint16_t(m >> 16);
        std::memcpy(d0 + (7 - kk) * es, &lo, 2);
        std::memcpy(d1 + (7 - kk) * es, &hi, 2);
    }
}

/// Fused un-bitshuffle with AVX2, even element sizes, n_elem a multiple of 256.
__attribute__((target("avx2"))) void bitunshuffle_avx2(const std::uint8_t* in, std::uint8_t* out,
                                                       std::size_t n_elem, std::size_t es) {
    const std::size_t R = n_elem / 8;
    if (es == 4) {
        for (std::size_t g = 0; g < R; g += 32) {
            __m256i va[8], vb[8], vc[8], vd[8];
            transpose_8x32(in + g, R, va);
            transpose_8x32(in + 8 * R + g, R, vb);
            transpose_8x32(in + 16 * R + g, R, vc);
            transpose_8x32(in + 24 * R + g, R, vd);
            std::uint8_t* dst = out + 8 * g * 4;
            for (int p = 0; p < 8; ++p) {
                std::uint8_t* c0 = dst + 8 * (2 * p) * 4;      // column 2p (lane 0)
                std::uint8_t* c1 = dst + 8 * (16 + 2 * p) * 4; // column 16 + 2p (lane 1)
                store_bits_es4(_mm256_unpacklo_epi64(va[p], vb[p]), _mm256_unpacklo_epi64(vc[p], vd[p]), c0,
                               c1);
                store_bits_es4(_mm256_unpackhi_epi64(va[p], vb[p]), _mm256_unpackhi_epi64(vc[p], vd[p]),
                               c0 + 32, c1 + 32);
            }
        }
        return;
    }
    for (std::size_t j0 = 0; j0 < es; j0 += 2) {
        const std::uint8_t* rows_a = in + (j0 * 8) * R;
        const std::uint8_t* rows_b = rows_a + 8 * R;
        for (std::size_t g = 0; g < R; g += 32) {
            __m256i va[8], vb[8];
            transpose_8x32(rows_a + g, R, va);
            transpose_8x32(rows_b + g, R, vb);
            std::uint8_t* dst = out + 8 * g * es + j0;
            for (int p = 0; p < 8; ++p) {
                std::uint8_t* c0 = dst + 8 * (2 * p) * es;
                std::uint8_t* c1 = dst + 8 * (16 + 2 * p) * es;
                store_bits_2x16(_mm256_unpacklo_epi64(va[p], vb[p]), c0, c1, es);
                store_bits_2x16(_mm256_unpackhi_epi64(va[p], vb[p]), c0 + 8 * es, c1 + 8 * es, es);
            }
        }
    }
}

/// 8x8 bit-matrix transposes of the four 64-bit lanes of x (transpose_bits_8x8, four at a time).
__attribute__((target("avx2"))) inline __m256i transpose_bits_8x8_x4(__m256i x) {
    const __m256i m1 = _mm256_set1_epi64x(0x00AA00AA00AA00AALL);
    const __m256i m2 = _mm256_set1_epi64x(0x0000CCCC0000CCCCLL);
    const __m256i m3 = _mm256_set1_epi64x(0x00000000F0F0F0F0LL);
    __m256i t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 7)), m1);
    x = _mm256_xor_si256(_mm256_xor_si256(x, t), _mm256_slli_epi64(t, 7));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 14)), m2);
    x = _mm256_xor_si256(_mm256_xor_si256(x, t), _mm256_slli_epi64(t, 14));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 28)), m3);
    x = _mm256_xor_si256(_mm256_xor_si256(x, t), _mm256_slli_epi64(t, 28));
    return x;
}

/// Whether n bytes (a multiple of 32) are all zero.
__attribute__((target("avx2"))) inline bool all_zero_avx2(const std::uint8_t* p, std::size_t n) {
    __m256i acc = _mm256_setzero_si256();
    for (std::size_t i = 0; i < n; i += 32)
        acc = _mm256_or_si256(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    return _mm256_testz_si256(acc, acc) != 0;
}

/// 4-byte elements whose upper byte planes are zero in the whole block (values 0..255 or 0..65535, the
/// common case of photon-counting frames): only the low one or two planes are transposed. Returns false
/// (nothing written) when a higher plane holds a set bit. n_elem a multiple of 256.
__attribute__((target("avx2"))) bool bitunshuffle_es4_narrow_avx2(const std::uint8_t* in, std::uint8_t* out,
                                                                  std::size_t n_elem) {
    const std::size_t R = n_elem / 8; // bytes per bit-row; plane j = rows 8j..8j+7 = bytes [8jR, 8(j+1)R)
    if (!all_zero_avx2(in + 16 * R, 16 * R))
        return false;
    const bool two_planes = !all_zero_avx2(in + 8 * R, 8 * R);
    for (std::size_t g = 0; g < R; g += 32) {
        __m256i va[8], vb[8];
        transpose_8x32(in + g, R,
                       va); // va[p]: 64-bit lanes = bit-rows 0..7 of columns 2p, 2p+1, 16+2p, 17+2p
        if (two_planes)
            transpose_8x32(in + 8 * R + g, R, vb);
        for (int p = 0; p < 8; ++p) {
            // after the bit transpose, byte b of the lane for column c is the low byte of element 8c + b
            const __m256i lo = transpose_bits_8x8_x4(va[p]);
            const std::size_t cols[4] = {g + 2 * std::size_t(p), g + 2 * std::size_t(p) + 1,
                                         g + 16 + 2 * std::size_t(p), g + 17 + 2 * std::size_t(p)};
            __m256i w16a, w16b; // lanes as 16-bit values: (cols 0, 1 | cols 2, 3) of this p
            if (two_planes) {
                const __m256i hi = transpose_bits_8x8_x4(vb[p]);
                w16a = _mm256_unpacklo_epi8(lo, hi); // lane 0: column 2p; lane 1: column 16 + 2p
                w16b = _mm256_unpackhi_epi8(lo, hi); // lane 0: column 2p + 1; lane 1: column 17 + 2p
            } else {
                const __m256i z = _mm256_setzero_si256();
                w16a = _mm256_unpacklo_epi8(lo, z);
                w16b = _mm256_unpackhi_epi8(lo, z);
            }
            const __m256i e[4] = {_mm256_cvtepu16_epi32(_mm256_castsi256_si128(w16a)),
                                  _mm256_cvtepu16_epi32(_mm256_castsi256_si128(w16b)),
                                  _mm256_cvtepu16_epi32(_mm256_extracti128_si256(w16a, 1)),
                                  _mm256_cvtepu16_epi32(_mm256_extracti128_si256(w16b, 1))};
            for (int c = 0; c < 4; ++c)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * cols[c]), e[c]);
        }
    }
    return true;
}

bool cpu_has_avx2() {
    static const bool has = __builtin_cpu_supports("avx2");
    return has;
}
#endif
#endif

} // namespace

std::size_t default_block_size(std::size_t elem_size) {
    std::size_t bs = kTargetBlockBytes / elem_size;
    bs = (bs / kBlockedMult) * kBlockedMult;
    return bs > kMinBlock ? bs : kMinBlock;
}

void bitshuffle_block(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* scratch, std::size_t n_elem,
                      std::size_t es) {
    const std::size_t R = n_elem / 8; // bytes per bit-row
#if defined(__SSE2__)
    if (n_elem % 16 == 0) {
        // 1: byte planes, scratch[j * n + i] = byte j of element i
        if (es == 4) {
            for (std::size_t i = 0; i < n_elem; ++i) {
                std::uint32_t v;
                std::memcpy(&v, in + 4 * i, 4);
                scratch[i] = std::uint8_t(v);
                scratch[n_elem + i] = std::uint8_t(v >> 8);
                scratch[2 * n_elem + i] = std::uint8_t(v >> 16);
                scratch[3 * n_elem + i] = std::uint8_t(v >> 24);
            }
        } else {
            for (std::size_t i = 0; i < n_elem; ++i)
                for (std::size_t j = 0; j < es; ++j)
                    scratch[j * n_elem + i] = in[i * es + j];
        }
        // 2: per plane and 16 elements, movemask yields 2 bytes of each of the plane's 8 bit-rows
        for (std::size_t j = 0; j < es; ++j) {
            const std::uint8_t* plane = scratch + j * n_elem;
            std::uint8_t* rows = out + j * 8 * R;
            for (std::size_t q = 0; q < n_elem / 16; ++q) {
                __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(plane + 16 * q));
                for (int kk = 0; kk < 8; ++kk) {
                    const std::uint16_t m = std::uint16_t(_mm_movemask_epi8(x));
                    x = _mm_slli_epi16(x, 1);
                    std::memcpy(rows + (7 - kk) * R + 2 * q, &m, 2);
                }
            }
        }
        return;
    }
#endif
    (void)scratch;
    for (std::size_t g = 0; g < R; ++g) {
        const std::uint8_t* src = in + g * 8 * es;
        for (std::size_t j = 0; j < es; ++j) {
            std::uint64_t x = 0;
            for (int b = 0; b < 8; ++b)
                x |= std::uint64_t(src[b * es + j]) << (8 * b);
            x = transpose_bits_8x8(x);
            for (int k = 0; k < 8; ++k)
                out[(j * 8 + k) * R + g] = std::uint8_t(x >> (8 * k));
        }
    }
}

void bitunshuffle_block(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* scratch, std::size_t n_elem,
                        std::size_t es) {
    const std::size_t R = n_elem / 8;
    const std::size_t rows = 8 * es;
#if defined(__SSE2__)
#if defined(JFJOCH_CODEC_AVX2)
    if (es % 2 == 0 && n_elem % 256 == 0 && cpu_has_avx2()) {
        if (es == 4 && bitunshuffle_es4_narrow_avx2(in, out, n_elem))
            return;
        bitunshuffle_avx2(in, out, n_elem, es);
        return;
    }
#endif
    if (es % 2 == 0 && n_elem % 128 == 0) {
        bitunshuffle_sse2(in, out, n_elem, es);
        return;
    }
#endif
    // Phase 1: gather, for every group of 8 elements, its 8*es bit-row bytes contiguously.
    transpose_bitrows(in, scratch, rows, R);
    // Phase 2: per group, 8x8 bit transposes back to element bytes.
#if defined(__SSE2__)
    if (es % 2 == 0) {
        for (std::size_t g = 0; g < R; ++g) {
            const std::uint8_t* src = scratch + g * rows;
            std::uint8_t* dst = out + g * 8 * es;
            for (std::size_t jj = 0; jj < rows; jj += 16) {
                __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + jj));
                for (int kk = 0; kk < 8; ++kk) {
                    const std::uint16_t bt = std::uint16_t(_mm_movemask_epi8(v));
                    v = _mm_slli_epi16(v, 1);
                    std::memcpy(dst + (7 - kk) * es + jj / 8, &bt, 2);
                }
            }
        }
        return;
    }
#endif
    for (std::size_t g = 0; g < R; ++g) {
        const std::uint8_t* src = scratch + g * rows;
        std::uint8_t* dst = out + g * 8 * es;
        for (std::size_t j = 0; j < es; ++j) {
            const std::uint64_t y = transpose_bits_8x8(load_u64(src + j * 8));
            for (int b = 0; b < 8; ++b)
                dst[b * es + j] = std::uint8_t(y >> (8 * b));
        }
    }
}

std::uint64_t chunk_uncompressed_size(const std::uint8_t* in, std::size_t in_size) {
    if (in_size < kHeader)
        throw CorruptChunk("bitshuffle chunk shorter than its 12-byte header (" + std::to_string(in_size) +
                           " bytes)");
    return read_be64(in);
}

ChunkDecoder::ChunkDecoder(const std::uint8_t* in, std::size_t in_size, std::size_t out_size, std::size_t es,
                           Compression compression)
    : in_(in), in_size_(in_size), es_(es), compression_(compression) {
    if (es == 0 || out_size % es != 0)
        throw std::invalid_argument("output size is not a multiple of the element size");
    if (compression != Compression::LZ4 && compression != Compression::Zstd)
        throw std::invalid_argument("unknown bitshuffle compression mode");
    const std::uint64_t total = chunk_uncompressed_size(in, in_size);
    if (total != out_size)
        throw CorruptChunk("bitshuffle chunk holds " + std::to_string(total) + " bytes, expected " +
                           std::to_string(out_size));
    const std::uint32_t bs_bytes = read_be32(in + 8);
    if (bs_bytes == 0) {
        bs_ = default_block_size(es);
    } else {
        if (bs_bytes % es != 0 || (bs_bytes / es) % kBlockedMult != 0)
            throw CorruptChunk("bitshuffle chunk has an invalid block size of " + std::to_string(bs_bytes) +
                               " bytes");
        bs_ = bs_bytes / es;
    }
    n_ = out_size / es;
    n_full_ = n_ / bs_;
    last_ = n_ % bs_;
    leftover_ = last_ % kBlockedMult;
    last_ -= leftover_;
    // scratch for one block; never more than the frame, whatever the header claims
    block_bytes_ = std::min(bs_, n_ + kBlockedMult) * es;
    buf_.reset(new std::uint8_t[2 * block_bytes_]);
    if (compression == Compression::Zstd) {
        zstd_ = ZSTD_createDCtx();
        if (!zstd_)
            throw std::bad_alloc();
    }
    pos_ = kHeader;
}

ChunkDecoder::~ChunkDecoder() {
    if (zstd_)
        ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(zstd_));
}

std::size_t ChunkDecoder::max_block_elements() const {
    return std::max(std::min(bs_, n_), leftover_);
}

std::size_t ChunkDecoder::next(std::uint8_t* dst) {
    const std::size_t index = block_;
    std::size_t n_elem;
    if (index < n_full_)
        n_elem = bs_;
    else if (index == n_full_ && last_)
        n_elem = last_;
    else if (leftover_ && done_ < n_) {
        const std::size_t leftover_bytes = leftover_ * es_;
        if (in_size_ - pos_ < leftover_bytes)
            throw CorruptChunk("bitshuffle chunk truncated in its trailing uncompressed bytes");
        std::memcpy(dst, in_ + pos_, leftover_bytes);
        pos_ += leftover_bytes;
        done_ += leftover_;
        ++block_;
        return leftover_;
    } else {
        return 0;
    }
    const std::size_t nbytes = n_elem * es_;
    if (in_size_ - pos_ < 4)
        throw CorruptChunk("bitshuffle chunk truncated before block " + std::to_string(index));
    const std::uint32_t csize = read_be32(in_ + pos_);
    pos_ += 4;
    if (csize > in_size_ - pos_)
        throw CorruptChunk("bitshuffle block " + std::to_string(index) + " claims " + std::to_string(csize) +
                           " bytes, only " + std::to_string(in_size_ - pos_) + " left");
    std::uint8_t* tmp = buf_.get();
    if (compression_ == Compression::LZ4) {
        const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(in_ + pos_),
                                            reinterpret_cast<char*>(tmp), int(csize), int(nbytes));
        if (got != int(nbytes))
            throw CorruptChunk("LZ4 error in bitshuffle block " + std::to_string(index));
    } else {
        const std::size_t got =
            ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(zstd_), tmp, nbytes, in_ + pos_, csize);
        if (ZSTD_isError(got) || got != nbytes)
            throw CorruptChunk("Zstd error in bitshuffle block " + std::to_string(index) +
                               (ZSTD_isError(got) ? std::string(": ") + ZSTD_getErrorName(got) : ""));
    }
    pos_ += csize;
    bitunshuffle_block(tmp, dst, tmp + block_bytes_, n_elem, es_);
    done_ += n_elem;
    ++block_;
    return n_elem;
}

void bitshuffle_decompress(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out,
                           std::size_t out_size, std::size_t es, Compression compression) {
    ChunkDecoder dec(in, in_size, out_size, es, compression);
    while (dec.next(out + dec.elements_done() * es) > 0) {
    }
}

std::size_t bitshuffle_compress_bound(std::size_t n_elem, std::size_t es, const EncodeSettings& s) {
    const std::size_t bs = s.block_size ? s.block_size : default_block_size(es);
    const std::size_t n_blocks = n_elem / bs + 1;
    const std::size_t per_block = s.compression == Compression::LZ4
                                      ? std::size_t(LZ4_compressBound(int(bs * es)))
                                      : ZSTD_compressBound(bs * es);
    return kHeader + n_blocks * (4 + per_block) + kBlockedMult * es;
}

std::size_t bitshuffle_compress(const std::uint8_t* in, std::size_t n_elem, std::size_t es, std::uint8_t* out,
                                std::size_t out_cap, const EncodeSettings& s) {
    if (es == 0)
        throw std::invalid_argument("element size must be positive");
    const std::size_t bs = s.block_size ? s.block_size : default_block_size(es);
    if (bs % kBlockedMult != 0)
        throw std::invalid_argument("block size must be a multiple of 8 elements");
    if (bs * es > 0x7FFFFFFF)
        throw std::invalid_argument("block size too large");
    if (out_cap < bitshuffle_compress_bound(n_elem, es, s))
        throw std::invalid_argument("output buffer smaller than bitshuffle_compress_bound");
    write_be64(out, std::uint64_t(n_elem) * es);
    write_be32(out + 8, std::uint32_t(bs * es));

    const std::size_t block_bytes = std::min(bs, n_elem + kBlockedMult) * es;
    std::unique_ptr<std::uint8_t[]> tmp(new std::uint8_t[2 * block_bytes]);
    std::uint8_t* scratch = tmp.get() + block_bytes;
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(nullptr, &ZSTD_freeCCtx);
    if (s.compression == Compression::Zstd) {
        cctx.reset(ZSTD_createCCtx());
        if (!cctx)
            throw std::bad_alloc();
    }
    std::size_t pos = kHeader;
    const std::uint8_t* src = in;
    auto do_block = [&](std::size_t n) {
        const std::size_t nbytes = n * es;
        bitshuffle_block(src, tmp.get(), scratch, n, es);
        std::size_t csize;
        if (s.compression == Compression::LZ4) {
            const int cap = int(std::min<std::size_t>(out_cap - pos - 4, 0x7FFFFFFF));
            const int c =
                s.level > 1
                    ? LZ4_compress_fast(reinterpret_cast<const char*>(tmp.get()),
                                        reinterpret_cast<char*>(out + pos + 4), int(nbytes), cap, s.level)
                    : LZ4_compress_default(reinterpret_cast<const char*>(tmp.get()),
                                           reinterpret_cast<char*>(out + pos + 4), int(nbytes), cap);
            if (c <= 0)
                throw std::runtime_error("LZ4 compression failed");
            csize = std::size_t(c);
        } else {
            csize = ZSTD_compressCCtx(cctx.get(), out + pos + 4, out_cap - pos - 4, tmp.get(), nbytes,
                                      s.level ? s.level : ZSTD_CLEVEL_DEFAULT);
            if (ZSTD_isError(csize))
                throw std::runtime_error(std::string("Zstd compression failed: ") + ZSTD_getErrorName(csize));
        }
        write_be32(out + pos, std::uint32_t(csize));
        pos += 4 + csize;
        src += nbytes;
    };
    for (std::size_t b = 0; b < n_elem / bs; ++b)
        do_block(bs);
    std::size_t last = n_elem % bs;
    const std::size_t leftover_bytes = (last % kBlockedMult) * es;
    last -= last % kBlockedMult;
    if (last)
        do_block(last);
    if (leftover_bytes) {
        std::memcpy(out + pos, src, leftover_bytes);
        pos += leftover_bytes;
    }
    return pos;
}

} // namespace jfjoch::codec
