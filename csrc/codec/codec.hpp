// Bitshuffle chunk codec: the HDF5 filter 32008 (bitshuffle) chunk format with LZ4 (mode 2) or Zstd (mode 3).
//
// Chunk layout (as returned by H5Dread_chunk / h5py's read_direct_chunk):
//   uint64 BE  total uncompressed size in bytes
//   uint32 BE  block size in BYTES (0 = default: 8192 bytes / elem_size, a multiple of 8 elements, >= 128)
//   per block: uint32 BE compressed size, then the LZ4 block / Zstd frame of the bit-shuffled block.
// Blocks hold block_size elements; a last partial block holds (n % block_size) rounded down to a multiple of
// 8 elements; the remaining (n % 8) elements are appended uncompressed and not shuffled.
//
// Thread safety: all functions are re-entrant (no shared mutable state). They do not allocate inside the
// per-block loop; one scratch block buffer is allocated per call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace jfjoch::codec {

enum class Compression : int { LZ4 = 2, Zstd = 3 };

/// Thrown for any malformed chunk (bad header, truncated block, size mismatch, decompressor error).
class CorruptChunk : public std::runtime_error {
  public:
    explicit CorruptChunk(const std::string& what) : std::runtime_error(what) {}
};

/// Settings of the encoder.
struct EncodeSettings {
    Compression compression = Compression::LZ4;
    int level = 0; ///< Zstd level (0 = zstd default 3); LZ4: acceleration (<= 1: LZ4_compress_default)
    std::size_t block_size = 0; ///< elements per block; 0 = the bitshuffle default for elem_size
};

/// Default bitshuffle block size in elements for an element size (bytes).
std::size_t default_block_size(std::size_t elem_size);

/// Uncompressed size in bytes stored in a chunk header (throws CorruptChunk if the header is short).
std::uint64_t chunk_uncompressed_size(const std::uint8_t* in, std::size_t in_size);

/// Decode one chunk into out (out_size bytes, must equal the header's size; a multiple of elem_size).
/// Throws CorruptChunk on malformed input; never reads or writes out of bounds.
void bitshuffle_decompress(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out,
                           std::size_t out_size, std::size_t elem_size, Compression compression);

/// Block-by-block decoding of one chunk: the same format and checks as bitshuffle_decompress(), for callers
/// that consume a frame while it is being decoded (csrc/frame). Each next() decodes the next bitshuffle
/// block (then the trailing uncompressed elements) to the caller's buffer. Not copyable; one per thread.
class ChunkDecoder {
  public:
    /// Checks the header (throws CorruptChunk / std::invalid_argument as bitshuffle_decompress does).
    ChunkDecoder(const std::uint8_t* in, std::size_t in_size, std::size_t out_size, std::size_t elem_size,
                 Compression compression);
    ~ChunkDecoder();
    ChunkDecoder(const ChunkDecoder&) = delete;
    ChunkDecoder& operator=(const ChunkDecoder&) = delete;

    std::size_t n_elements() const { return n_; }
    std::size_t elements_done() const { return done_; }
    /// The most elements one next() writes.
    std::size_t max_block_elements() const;
    /// Decode the next block to dst (room for max_block_elements()); returns the elements written, 0 once
    /// the chunk is complete. Throws CorruptChunk on malformed input.
    std::size_t next(std::uint8_t* dst);

  private:
    const std::uint8_t* in_;
    std::size_t in_size_, es_;
    Compression compression_;
    std::size_t bs_ = 0, n_ = 0, n_full_ = 0, last_ = 0, leftover_ = 0, block_bytes_ = 0;
    std::size_t pos_ = 0, done_ = 0, block_ = 0;
    std::unique_ptr<std::uint8_t[]> buf_;
    void* zstd_ = nullptr; // ZSTD_DCtx
};

/// Upper bound of the encoded size of n_elem elements of elem_size bytes.
std::size_t bitshuffle_compress_bound(std::size_t n_elem, std::size_t elem_size, const EncodeSettings& s);

/// Encode n_elem elements into out (capacity out_cap >= bitshuffle_compress_bound); returns the bytes
/// written.
std::size_t bitshuffle_compress(const std::uint8_t* in, std::size_t n_elem, std::size_t elem_size,
                                std::uint8_t* out, std::size_t out_cap, const EncodeSettings& s);

/// Bit transpositions of one block (n_elem a multiple of 8); scratch holds n_elem * elem_size bytes.
void bitshuffle_block(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* scratch, std::size_t n_elem,
                      std::size_t elem_size);
/// Inverse of bitshuffle_block; scratch must hold n_elem * elem_size bytes.
void bitunshuffle_block(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* scratch, std::size_t n_elem,
                        std::size_t elem_size);

} // namespace jfjoch::codec
