// Frame pass: the per-experiment map, dispatch by backend, and the block-by-block decode that feeds the
// CPU sweep.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "frame/frame.hpp"
#include "frame/frame_impl.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace jfjoch {

namespace {

/// Runs of constant value of one row of `a` (ny * nx): appends each run's exclusive end and value.
template <typename T> void row_runs(const T* a, int64_t nx, std::vector<int32_t>& ends, std::vector<T>& ids) {
    for (int64_t x = 0; x < nx;) {
        const T v = a[x];
        int64_t e = x + 1;
        while (e < nx && a[e] == v)
            ++e;
        ends.push_back(int32_t(e));
        ids.push_back(v);
        x = e;
    }
}

/// Statistics of the strong-pixel list as find_spots fills them, then the spots.
void finish(const spots_detail::StrongPixels& sp, const int32_t* image, const FrameMap& map,
            const FrameSettings& settings, const std::vector<double>& sum, const std::vector<int64_t>& count,
            FrameResult& out) {
    spots_detail::spots_from_strong_pixels(sp, image, nullptr, map.nx, map.ny, settings.spot_saturation,
                                           map.geom, settings.spots, out.spots);
    out.mean.resize(sum.size());
    out.count = count;
    for (size_t b = 0; b < sum.size(); ++b)
        out.mean[b] = count[b] > 0 ? sum[b] / double(count[b]) : NAN;
}

/// Window sums (centre included) of pixel (x, y) read from the image with the run map's flags: the same
/// sums as spots_impl::direct_window_sums (for the CUDA path, whose map holds no sums).
void window_sums_from_runs(const int32_t* image, const FrameMap& m, int64_t x, int64_t y, int32_t w,
                           int32_t sat_eff, int64_t& sum, int64_t& sum2, int64_t& n) {
    const int64_t y0 = std::max<int64_t>(0, y - w), y1 = std::min<int64_t>(m.ny, y + w + 1);
    const int64_t x0 = std::max<int64_t>(0, x - w), x1 = std::min<int64_t>(m.nx, x + w + 1);
    sum = sum2 = n = 0;
    for (int64_t yy = y0; yy < y1; ++yy) {
        int64_t k = m.flag_row[size_t(yy)];
        for (int64_t xx = x0; xx < x1; ++xx) {
            k = frame_impl::run_at(m.flag_end.data(), k, xx);
            const int32_t v = image[yy * m.nx + xx];
            if (spots_impl::classify_pixel(v, m.flag_id[size_t(k)], sat_eff) == spots_impl::kValid) {
                sum += v;
                sum2 += int64_t(v) * v;
                n += 1;
            }
        }
    }
}

/// Rows of a complete image.
struct ImageRows final : frame_detail::RowSource {
    const int32_t* image;
    int64_t nx;
    ImageRows(const int32_t* im, int64_t nx_) : image(im), nx(nx_) {}
    const int32_t* row(int64_t r) override { return image + r * nx; }
};

/// Copy n int32 values to dst with non-temporal stores where dst is aligned (the image is written once
/// and read later from memory anyway: no read-for-ownership of its cache lines).
void stream_copy(int32_t* dst, const int32_t* src, int64_t n) {
#if defined(__SSE2__)
    int64_t i = 0;
    while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0) {
        dst[i] = src[i];
        ++i;
    }
    for (; i + 4 <= n; i += 4)
        _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    for (; i < n; ++i)
        dst[i] = src[i];
#else
    std::memcpy(dst, src, size_t(n) * sizeof(int32_t));
#endif
}

/// Rows decoded on demand from a chunk, block by block, into a small staging buffer that stays in cache
/// (other stored types through the reader's conversion); each row is then streamed to the image.
template <typename T> struct ChunkRows final : frame_detail::RowSource {
    codec::ChunkDecoder dec;
    int32_t* image;
    int64_t nx;
    std::vector<int32_t> stage; // elements [s0, s0 + stage_n) of the frame
    std::vector<T> block;
    size_t s0 = 0, stage_n = 0;
    ChunkRows(const uint8_t* chunk, size_t size, codec::Compression c, int32_t* image_out, int64_t nx_,
              int64_t ny_)
        : dec(chunk, size, size_t(nx_ * ny_) * sizeof(T), sizeof(T), c), image(image_out), nx(nx_) {
        stage.resize(8 * size_t(nx) + 2 * dec.max_block_elements());
        if (!std::is_same<T, int32_t>::value)
            block.resize(dec.max_block_elements());
    }
    const int32_t* row(int64_t r) override {
        const size_t begin = size_t(r * nx), end = begin + size_t(nx);
        // drop what the pass has consumed when the next block might not fit
        if (stage.size() - stage_n < dec.max_block_elements() + size_t(nx)) {
            const size_t keep = s0 + stage_n - begin;
            std::memmove(stage.data(), stage.data() + (begin - s0), keep * sizeof(int32_t));
            s0 = begin;
            stage_n = keep;
        }
        while (s0 + stage_n < end) {
            int32_t* dst = stage.data() + stage_n;
            size_t got;
            if (std::is_same<T, int32_t>::value) {
                got = dec.next(reinterpret_cast<uint8_t*>(dst));
            } else {
                got = dec.next(reinterpret_cast<uint8_t*>(block.data()));
                for (size_t i = 0; i < got; ++i)
                    dst[i] = frame_impl::stored_to_int32(block[i]);
            }
            if (got == 0)
                throw codec::CorruptChunk("bitshuffle chunk ended before row " + std::to_string(r));
            stage_n += got;
        }
        const int32_t* p = stage.data() + (begin - s0);
        stream_copy(image + begin, p, nx);
        return p;
    }
    void finish() override {
#if defined(__SSE2__)
        _mm_sfence();
#endif
    }
    void decode_all(int64_t ny) {
        for (int64_t r = 0; r < ny; ++r)
            row(r);
        finish();
    }
};

void run_backend(const int32_t* image, frame_detail::RowSource* rows, const FrameMap& map,
                 const FrameSettings& settings, FrameResult& out, bool cuda) {
    spots_detail::StrongPixels sp;
    std::vector<double> sum;
    std::vector<int64_t> count;
    if (cuda) {
        std::vector<uint8_t> strong(size_t(map.nx * map.ny));
        frame_detail::pass_cuda(image, map, settings, strong.data(), sp, sum, count);
        const int32_t sat_eff = spots_impl::effective_saturation(settings.spot_saturation);
        for (int64_t i = 0; i < map.nx * map.ny; ++i)
            if (strong[size_t(i)]) {
                int64_t s1 = 0, s2 = 0, n = 0;
                if (strong[size_t(i)] == 1)
                    window_sums_from_runs(image, map, i % map.nx, i / map.nx, settings.spots.window_half,
                                          sat_eff, s1, s2, n);
                sp.index.push_back(i);
                sp.value.push_back(image[i]);
                sp.kind.push_back(strong[size_t(i)]);
                sp.sum.push_back(s1);
                sp.sum2.push_back(s2);
                sp.n.push_back(n);
            }
    } else {
        ImageRows plain(image, map.nx);
        frame_detail::pass_cpu(rows ? *rows : plain, map, settings, sp, sum, count);
    }
    finish(sp, image, map, settings, sum, count, out);
}

template <typename T>
void chunk_pass(const uint8_t* chunk, size_t size, codec::Compression c, int32_t* image, const FrameMap& map,
                const FrameSettings& settings, FrameResult& out, bool cuda) {
    ChunkRows<T> rows(chunk, size, c, image, map.nx, map.ny);
    if (cuda) {
        rows.decode_all(map.ny); // decoding stays on the host
        run_backend(image, nullptr, map, settings, out, true);
    } else {
        run_backend(image, &rows, map, settings, out, false);
    }
}

} // namespace

int pixel_type_size(PixelType t) {
    switch (t) {
    case PixelType::Int8:
    case PixelType::UInt8:
        return 1;
    case PixelType::Int16:
    case PixelType::UInt16:
        return 2;
    case PixelType::Int32:
    case PixelType::UInt32:
        return 4;
    }
    throw std::invalid_argument("frame pass: unknown pixel type");
}

FrameMap frame_make_map(const uint8_t* spot_flags, const int32_t* bin, const float* weight, int64_t nx,
                        int64_t ny, int32_t n_bins, const DetectorGeometry& geom) {
    if (nx < 1 || ny < 1)
        throw std::invalid_argument("frame pass: empty detector");
    if (nx > INT32_MAX)
        throw std::invalid_argument("frame pass: rows longer than 2^31 pixels");
    if (n_bins < 1)
        throw std::invalid_argument("frame pass: n_bins must be >= 1");
    FrameMap m;
    m.nx = nx;
    m.ny = ny;
    m.n_bins = n_bins;
    m.geom = geom;
    m.weight.resize(size_t(nx * ny));
    m.bin_row.reserve(size_t(ny + 1));
    m.flag_row.reserve(size_t(ny + 1));
    m.bin_row.push_back(0);
    m.flag_row.push_back(0);
    for (int64_t i = 0; i < nx * ny; ++i) {
        if (bin[i] < -1 || bin[i] >= n_bins)
            throw std::invalid_argument("frame pass: bin index " + std::to_string(bin[i]) + " outside [-1, " +
                                        std::to_string(n_bins) + ")");
        m.weight[size_t(i)] = bin[i] >= 0 ? weight[i] : 0.0f;
    }
    for (int64_t y = 0; y < ny; ++y) {
        std::vector<int32_t> b(bin + y * nx, bin + (y + 1) * nx);
        for (int32_t& v : b)
            v = v < 0 ? -1 : v;
        row_runs(b.data(), nx, m.bin_end, m.bin_id);
        row_runs(spot_flags + y * nx, nx, m.flag_end, m.flag_id);
        m.bin_row.push_back(int64_t(m.bin_end.size()));
        m.flag_row.push_back(int64_t(m.flag_end.size()));
    }
    return m;
}

void frame_detail::validate(const FrameMap& map, const FrameSettings& settings) {
    spots_detail::validate(settings.spots, map.nx, map.ny);
    if (map.n_bins < 1 || map.bin_row.size() != size_t(map.ny + 1) ||
        map.flag_row.size() != size_t(map.ny + 1) || map.weight.size() != size_t(map.nx * map.ny))
        throw std::invalid_argument("frame pass: the map is not built (frame_make_map)");
}

void frame_pass(const int32_t* image, const FrameMap& map, const FrameSettings& settings, FrameResult& out,
                Backend backend) {
    frame_detail::validate(map, settings);
    run_backend(image, nullptr, map, settings, out, use_cuda(backend, "frame pass"));
}

void frame_pass_chunk(const uint8_t* chunk, size_t chunk_size, codec::Compression compression, PixelType type,
                      int32_t* image_out, const FrameMap& map, const FrameSettings& settings,
                      FrameResult& out, Backend backend) {
    frame_detail::validate(map, settings);
    const bool cuda = use_cuda(backend, "frame pass");
    switch (type) {
    case PixelType::Int8:
        return chunk_pass<int8_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    case PixelType::UInt8:
        return chunk_pass<uint8_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    case PixelType::Int16:
        return chunk_pass<int16_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    case PixelType::UInt16:
        return chunk_pass<uint16_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    case PixelType::Int32:
        return chunk_pass<int32_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    case PixelType::UInt32:
        return chunk_pass<uint32_t>(chunk, chunk_size, compression, image_out, map, settings, out, cuda);
    }
    throw std::invalid_argument("frame pass: unknown pixel type");
}

#ifndef JFJOCH_WITH_CUDA
void frame_detail::pass_cuda(const int32_t*, const FrameMap&, const FrameSettings&, uint8_t*,
                             spots_detail::StrongPixels&, std::vector<double>&, std::vector<int64_t>&) {
    throw std::runtime_error("frame pass: this build has no CUDA backend");
}
#endif

} // namespace jfjoch
