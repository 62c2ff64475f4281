// Per-file read planning on top of ChunkStore: the chunk map of one file, the data/hole
// map, sequential-stream detection with growing prefetch, and read_file().
//
// FileChunks is built once per file from its content ids (sizes come from the index) and
// answers "which chunks cover [offset, offset+len)" by binary search over cumulative
// offsets. Chunks whose id is the all-zero chunk of their size are holes: they count for
// SEEK_DATA/SEEK_HOLE and st_blocks, and read_file() fills them with zeros without IO.
//
// ReadStream is the state of one open file (or inode): a read starting within
// [last_end − 4 MiB, last_end + 4 MiB] of the previous one is sequential, and each
// sequential read doubles the prefetch depth 1 → 2 → 4 … (4 → 8 … for a stream that starts
// at offset 0) up to `max_chunks` chunks or
// `max_bytes` ahead; any other read resets it. The first read at offset 0 counts as
// sequential. The window is refilled only when less than three quarters of it are still
// outstanding, so prefetches come in batches (and coalesce into few ranged reads).
//
// Thread contract: FileChunks is immutable after build() and safe to share. ReadStream is
// safe to use from several threads at once (an internal mutex guards its state; it is not
// held while reading). read_file() is safe to call concurrently.
// Ownership: FileChunks owns its table; read_file() borrows everything it is given.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "fs/chunk_store.h"

namespace coffer::fs {

class FileChunks {
 public:
  struct Chunk {
    repo::Id id;
    std::uint64_t offset = 0;  // in the file
    std::uint32_t size = 0;    // plaintext bytes
    bool zero = false;         // the all-zero chunk of its size (a hole)
  };

  // Looks up the size of every chunk of `content` (data blob ids, in file order).
  // Errors: kNotFound if a blob is in no index (reload the index and retry), lookup errors.
  static repo::Result<FileChunks> build(const repo::Repository& repo, const ZeroChunks& zeros,
                                        const std::vector<repo::Id>& content);

  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] std::size_t chunk_count() const { return chunks_.size(); }
  [[nodiscard]] const Chunk& chunk(std::size_t i) const { return chunks_[i]; }
  // Indices [first, last) of the chunks overlapping [offset, offset+len), clipped to EOF;
  // empty (first == last) when len == 0 or offset >= size().
  [[nodiscard]] std::pair<std::size_t, std::size_t> chunk_range(std::uint64_t offset,
                                                                std::uint64_t len) const;
  // SEEK_DATA: the first offset >= off inside data, or nullopt (ENXIO) when none.
  [[nodiscard]] std::optional<std::uint64_t> next_data(std::uint64_t off) const;
  // SEEK_HOLE: the first offset >= off inside a hole or at EOF, or nullopt (ENXIO) when
  // off >= size().
  [[nodiscard]] std::optional<std::uint64_t> next_hole(std::uint64_t off) const;
  // Bytes in non-hole chunks (st_blocks = ceil(allocated_bytes / 512)).
  [[nodiscard]] std::uint64_t allocated_bytes() const { return allocated_; }

 private:
  struct Extent {  // a maximal run of data or of holes
    std::uint64_t offset;
    bool data;
  };
  [[nodiscard]] std::size_t extent_at(std::uint64_t off) const;  // REQUIRES: off < size_

  std::vector<Chunk> chunks_;
  std::vector<Extent> extents_;  // sorted, alternating data/hole, covering [0, size_)
  std::uint64_t size_ = 0;
  std::uint64_t allocated_ = 0;
};

struct PrefetchPolicy {
  std::size_t first_chunks = 4;  // the window of a stream that starts at offset 0
  std::size_t max_chunks = 32;
  std::uint64_t max_bytes = 64ULL << 20;
};

class ReadStream {
 public:
  explicit ReadStream(PrefetchPolicy policy = {}) : policy_(policy) {}
  ReadStream(const ReadStream&) = delete;
  ReadStream& operator=(const ReadStream&) = delete;

  // What one read should do: how to count its cache hits and which chunks to prefetch.
  struct Plan {
    Touch touch = Touch::kReuse;
    std::size_t ahead_first = 0;
    std::size_t ahead_last = 0;  // exclusive
  };
  // Records a read of [offset, offset+len) whose chunks end (exclusive) at index `last` of
  // `file`. The prefetch window is also capped at `max_ahead_bytes`.
  Plan on_read(const FileChunks& file, std::uint64_t offset, std::uint64_t len, std::size_t last,
               std::uint64_t max_ahead_bytes = UINT64_MAX);

  // Current prefetch depth in chunks (0 = random access), for tests.
  [[nodiscard]] std::size_t depth() const;

 private:
  const PrefetchPolicy policy_;
  mutable std::mutex mutex_;  // guards the fields below
  bool has_last_ = false;
  std::uint64_t last_end_ = 0;
  std::size_t depth_ = 0;
  std::size_t issued_until_ = 0;  // chunk index below which prefetches were issued
};

// A whole chunk that a random (non-sequential) read used: where it lies in the file, and its
// verified plaintext. The FUSE layer hands these to the kernel's page
// cache so later reads anywhere in the chunk cost no round trip (fs/page_cache_fill.h).
struct FetchedChunk {
  std::uint64_t offset = 0;  // in the file
  ChunkRef data;
};

// A piece of a read's answer: `size` bytes at `data`, which lie inside `owner`'s buffer (kept
// alive by it), or in a static buffer of zeros when `owner` is null.
struct ReadSegment {
  ChunkRef owner;
  const std::byte* data = nullptr;
  std::size_t size = 0;
};

// Reads [offset, offset + size) of `file`, clipped at EOF, without copying: appends pieces of
// the chunks (and of a zero buffer for holes) to `out`, in file order, and returns the bytes
// they add up to (0 at or past EOF). Drives `stream`'s sequential detection and prefetch (its
// window capped at the store's prefetch budget). When `fetched` is given, the chunks of a
// random read are appended to it. Errors: those of ChunkStore::get(),
// and kCorrupt if a chunk's size differs from the index. REQUIRES: `file` was built from the
// store's repository.
repo::Result<std::uint64_t> read_file_segments(ChunkStore& store, const FileChunks& file,
                                               ReadStream& stream, std::uint64_t offset,
                                               std::uint64_t size, std::vector<ReadSegment>& out,
                                               std::vector<FetchedChunk>* fetched = nullptr);

// As read_file_segments, copied into `out` (exactly out.size() bytes unless EOF comes first).
repo::Result<std::size_t> read_file(ChunkStore& store, const FileChunks& file, ReadStream& stream,
                                    std::uint64_t offset, std::span<std::byte> out,
                                    std::vector<FetchedChunk>* fetched = nullptr);

}  // namespace coffer::fs
