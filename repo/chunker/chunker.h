// Content-defined chunking exactly as restic's (Rabin fingerprint over a 64-byte window,
// restic-format.md §10): the same polynomial gives the same chunk boundaries, so data
// deduplicates across restic and coffer.
//
//   chunk = [start, cut) where cut is the first i with i-start >= kChunkMinSize and
//   (H(i) & 0xFFFFF) == 0, or i-start == kChunkMaxSize, or end of input.
//
// Usage: one Chunker per file being read (state never carries across files). Feed the file
// in order, in buffers of any size, through find_boundary (real bytes) or
// find_boundary_in_zeros (a hole, without materialising it). The caller ends the last chunk
// at end of file.
//
// Speed: the first MinSize-64 bytes of each chunk are skipped unhashed (as restic does), and
// long buffers are hashed in 4 independent lanes: ~2 GB/s of input per core on random data.
//
// Thread contract: a Chunker is used by one thread at a time. Its tables are immutable and
// shared by every Chunker of the same polynomial (built once per process and polynomial,
// under a mutex). zero_chunk_id() is safe to call from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "repo/chunker/polynomial.h"
#include "repo/core/bytes.h"
#include "repo/core/id.h"

namespace coffer::repo {

inline constexpr std::size_t kChunkMinSize = 512 * 1024;
inline constexpr std::size_t kChunkMaxSize = 8 * 1024 * 1024;

struct ChunkerTables;  // chunker.cc

class Chunker {
 public:
  // REQUIRES: `polynomial` is the repository config's (restic draws an irreducible one of
  // degree 53). Terminates the process if its degree is outside 8..53, where restic panics.
  explicit Chunker(Polynomial polynomial);

  // Starts a new file: the next byte fed begins a chunk.
  void reset();

  // Feeds `data`, which continues the current chunk. If a boundary falls inside `data`,
  // returns how many leading bytes of `data` end the current chunk; the chunker has then
  // started the next chunk, and the caller feeds the rest of `data` again. Otherwise
  // consumes all of `data` and returns std::nullopt.
  std::optional<std::size_t> find_boundary(ByteSpan data);

  // As find_boundary for `count` zero bytes (a hole of a sparse file), without touching
  // memory: at most 64 byte steps per call, whatever `count` is.
  std::optional<std::uint64_t> find_boundary_in_zeros(std::uint64_t count);

  // Bytes fed into the current chunk so far.
  [[nodiscard]] std::uint64_t chunk_size() const { return size_; }

 private:
  // One byte through the window: slides out the oldest byte, updates digest_ and size_.
  // True when the chunk ends after this byte.
  bool slide_byte(std::uint8_t c);
  // Bulk part of find_boundary: bytes data[from, to) whose 64 predecessors are all in
  // `data` and all hashed. Returns the cut offset, or nullopt after consuming them all.
  std::optional<std::size_t> scan_in_place(ByteSpan data, std::size_t from, std::size_t to);

  std::shared_ptr<const ChunkerTables> tables_;  // shared, immutable
  // The last 64 bytes slid in, as a ring: window_[wpos_] is the oldest. Right after a
  // chunk starts it holds 63 zeros and the 0x01 restic slides in, and digest_ is 1.
  std::array<std::uint8_t, 64> window_{};
  unsigned wpos_ = 0;
  std::uint64_t digest_ = 0;  // the window's polynomial mod P
  std::uint64_t size_ = 0;    // bytes of the current chunk fed so far
};

// Id (SHA-256) of a chunk of kChunkMinSize zero bytes: what every full chunk of a hole is.
const Id& zero_chunk_id();

}  // namespace coffer::repo
