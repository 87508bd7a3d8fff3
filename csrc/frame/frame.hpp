// The per-frame pass: decode + spot finder + azimuthal integration + pixel statistics of one frame in one
// sweep over its rows (docs/frame_pass.md). The results are those of the separate kernels (csrc/spots,
// csrc/azint): the same strong pixels, spots and image statistics bit for bit, the same azimuthal profile
// to double rounding (only the order of the additions differs), the same pixel counts per bin.
//
// CPU: a chunk is decoded block by block into a small staging buffer and each row is consumed while it
// is in cache (and streamed once to the caller's image): it is classified once (spot-finder validity,
// statistics), enters running column sums of the spot-finder window (value, valid count; value^2 where
// candidates are dense) and is integrated azimuthally; the strong-pixel test of row y runs as soon as row
// y + w is in. Per-experiment data are compact: runs of constant azimuthal bin and runs of constant
// spot-finder flags per row, plus one float32 weight per pixel.
//
// Thread safety: a FrameMap is read-only after frame_make_map(); every function is reentrant (each call
// owns its work buffers), so several threads may run frames against one map at the same time.
#pragma once
#include <cstdint>
#include <vector>

#include "codec/codec.hpp"
#include "core/backend.hpp"
#include "core/geometry.hpp"
#include "spots/spots.hpp"

namespace jfjoch {

/// Per-experiment map of the frame pass (fixes allocations; built once per geometry, mask and settings).
struct FrameMap {
    int64_t nx = 0, ny = 0;
    int32_t n_bins = 0;
    DetectorGeometry geom; ///< for the spots' resolution (as find_spots' geom)
    /// Runs of constant azimuthal bin: row y holds runs [bin_row[y], bin_row[y + 1]); run k covers
    /// x in [previous end (0 for the row's first), bin_end[k]) and has bin bin_id[k] (-1: not integrated).
    std::vector<int64_t> bin_row;
    std::vector<int32_t> bin_end;
    std::vector<int32_t> bin_id;
    /// Runs of constant spot-finder pixel flags (SpotPixelFlag bits), same layout.
    std::vector<int64_t> flag_row;
    std::vector<int32_t> flag_end;
    std::vector<uint8_t> flag_id;
    /// Correction weight per pixel (ny * nx, row-major), 0 where the pixel is not integrated.
    std::vector<float> weight;
};

/// The map from the separate kernels' per-pixel maps: spot_flags from spot_pixel_flags(), bin and weight
/// from azint_make_map() (ny * nx each). Throws std::invalid_argument on bad sizes or bins outside
/// [-1, n_bins).
FrameMap frame_make_map(const uint8_t* spot_flags, const int32_t* bin, const float* weight, int64_t nx,
                        int64_t ny, int32_t n_bins, const DetectorGeometry& geom);

/// Per-call settings.
struct FrameSettings {
    SpotFinderSettings spots;            ///< the spot finder's thresholds
    int32_t spot_saturation = INT32_MAX; ///< the spot finder's saturation (find_spots' argument)
    double azint_saturation = 0.0;       ///< the integrator's (azint_integrate's argument; <= 0: none)
};

/// Result of one frame.
struct FrameResult {
    SpotFinderResult spots;     ///< as find_spots()
    std::vector<double> mean;   ///< n_bins: as azint_integrate()'s mean_out (NaN in empty bins)
    std::vector<int64_t> count; ///< n_bins: valid pixels per bin
};

/// Stored pixel types the fused decode converts to int32 (the reader's rule, docs/io.md: the signed
/// type's minimum and the unsigned type's maximum are the error value INT32_MIN; uint32 above INT32_MAX
/// is clipped to INT32_MAX).
enum class PixelType : int { Int8, UInt8, Int16, UInt16, Int32, UInt32 };

/// Bytes per pixel of a stored type.
int pixel_type_size(PixelType t);

/// Spots, profile and statistics of one int32 image (ny * nx, row-major; error value INT32_MIN).
void frame_pass(const int32_t* image, const FrameMap& map, const FrameSettings& settings, FrameResult& out,
                Backend backend = Backend::Auto);

/// Decode one bitshuffle+LZ4/Zstd chunk of a frame of stored type `type` into image_out (int32, ny * nx)
/// and run the pass on it. The CPU backend consumes rows while they are being decoded; on the CUDA
/// backend the chunk is decoded on the host first. Throws codec::CorruptChunk on a malformed chunk (the
/// image is then incomplete and nothing is returned).
void frame_pass_chunk(const uint8_t* chunk, size_t chunk_size, codec::Compression compression, PixelType type,
                      int32_t* image_out, const FrameMap& map, const FrameSettings& settings,
                      FrameResult& out, Backend backend = Backend::Auto);

/// Backend-specific entry points (frame_cpu.cpp, frame_cuda.cu); use the dispatching functions above.
namespace frame_detail {
/// Supplies the rows of a frame to the CPU pass, in increasing order.
struct RowSource {
    virtual ~RowSource() = default;
    /// Row r (nx int32 values); valid until the next call.
    virtual const int32_t* row(int64_t r) = 0;
    /// Called after the last row.
    virtual void finish() {}
};
void validate(const FrameMap& map, const FrameSettings& settings);
/// CPU: strong pixels (with their window sums), statistics and per-bin sums/counts, in one sweep.
void pass_cpu(RowSource& rows, const FrameMap& map, const FrameSettings& settings,
              spots_detail::StrongPixels& sp, std::vector<double>& sum, std::vector<int64_t>& count);
/// CUDA: the strong-pixel map, statistics and per-bin sums/counts (only in a CUDA build).
void pass_cuda(const int32_t* image, const FrameMap& map, const FrameSettings& settings, uint8_t* map_out,
               spots_detail::StrongPixels& stats_out, std::vector<double>& sum, std::vector<int64_t>& count);
} // namespace frame_detail

} // namespace jfjoch
