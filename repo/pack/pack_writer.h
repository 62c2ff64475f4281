// PackWriter: builds one pack file (restic-format.md §6); does no IO itself.
//
// Blobs arrive already encrypted (IV ‖ ct ‖ MAC) and are emitted in file order, either into
// a buffer in memory or, streaming, to a caller's sink (RepositoryWriter's temporary pack
// file), while a running SHA-256 names the file. finish() seals the header and emits it and
// the length trailer:
//
//   EncBlob_1 ‖ … ‖ EncBlob_n ‖ seal(entry_1 ‖ … ‖ entry_n) ‖ u32le(len(EncHeader))
//
// The file size is always Σ len(EncBlob) + Σ entry sizes + 32 + 4, which is what restic's
// check recomputes from the index. The builder accepts both blob types; the caller keeps
// data and tree blobs in separate packs. A streaming writer holds only the header entries
// (37/41 bytes per blob) and the hash state, never the blobs.
//
// Thread contract: a PackWriter is a plain object; callers serialize access to one. The
// sink is called only from add() and finish(), in the calling thread.
// Ownership: owns its buffer (in memory) or its sink; finish() moves the buffer into the
// FinishedPack.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/sha256.h"
#include "repo/crypto/crypto.h"
#include "repo/index/blob.h"

namespace coffer::repo {

// A completed pack: its name, one entry per blob (pack = id), its size, and (in memory
// only) the exact file bytes.
struct FinishedPack {
  Id id;
  Bytes data;  // empty for a streaming writer
  std::vector<PackedBlob> blobs;
  std::uint64_t size = 0;  // file size in bytes
};

// Receives a pack's bytes in file order. An error aborts the pack.
using PackSink = std::function<Result<void>(ByteSpan)>;

class PackWriter {
 public:
  // In memory; `reserve` = bytes to reserve for the blob area (it grows past it if needed).
  explicit PackWriter(std::size_t reserve = 0);
  // Streaming: each byte goes to `sink` as soon as it is added (REQUIRES: sink != nullptr).
  explicit PackWriter(PackSink sink);

  // True when a blob of `sealed_size` encrypted bytes (compressed or not) still fits:
  // offsets stay 32-bit and the encrypted header stays <= kPackMaxHeaderSize.
  [[nodiscard]] bool fits(std::uint64_t sealed_size, bool compressed) const;

  // Appends one encrypted blob; `uncompressed_length` != 0 marks a zstd blob of that
  // plaintext size. REQUIRES: sealed.size() >= kCryptoOverhead.
  // Errors: kInvalidArgument when the blob does not fit (see fits()); the sink's error,
  // after which the writer is broken (every later add and finish fails with kIo).
  Result<void> add(BlobType type, const Id& id, ByteSpan sealed, std::uint32_t uncompressed_length);

  // Size the file would have if finished now (0 blobs: 36).
  [[nodiscard]] std::uint64_t file_size() const;
  [[nodiscard]] std::size_t count() const { return blobs_.size(); }
  [[nodiscard]] bool empty() const { return blobs_.empty(); }
  // Encrypted bytes of the blobs appended so far.
  [[nodiscard]] std::uint64_t blob_bytes() const { return blob_bytes_; }

  // Seals the header, emits it and the trailer, and returns the pack. The writer is left
  // empty (a streaming writer keeps its sink: the caller normally starts a new one).
  // Errors: kInvalidArgument (no blobs), kIo (RNG failure while sealing, a broken writer),
  // the sink's error (the writer is then broken).
  Result<FinishedPack> finish(const MasterKey& key);

 private:
  Result<void> emit(ByteSpan bytes);  // to the buffer or the sink, and into the hash

  PackSink sink_;  // empty: in memory
  Bytes data_;     // in memory only
  Sha256 hash_;    // of every byte emitted
  std::vector<PackedBlob> blobs_;
  std::uint64_t blob_bytes_ = 0;   // encrypted blob bytes emitted
  std::uint64_t header_size_ = 0;  // plaintext header bytes (sum of entry sizes)
  bool broken_ = false;            // a sink write failed
};

}  // namespace coffer::repo
