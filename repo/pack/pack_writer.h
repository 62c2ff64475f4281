// PackWriter: builds one pack file in memory (restic-format.md §6); no IO.
//
// Blobs arrive already encrypted (IV ‖ ct ‖ MAC) and are appended back to back to one
// buffer reserved up front, so a pack is built with a single copy per blob. finish() seals
// the header, appends it and the length trailer, and names the file by its SHA-256:
//
//   EncBlob_1 ‖ … ‖ EncBlob_n ‖ seal(entry_1 ‖ … ‖ entry_n) ‖ u32le(len(EncHeader))
//
// The file size is always Σ len(EncBlob) + Σ entry sizes + 32 + 4, which is what restic's
// check recomputes from the index. The builder accepts both blob types; the caller keeps
// data and tree blobs in separate packs.
//
// Thread contract: a PackWriter is a plain value; callers serialize access to one.
// Ownership: owns its buffer; finish() moves it into the FinishedPack.
#pragma once

#include <cstdint>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/crypto/crypto.h"
#include "repo/index/blob.h"

namespace coffer::repo {

// A completed pack: the exact file bytes, its name, and one entry per blob (pack = id).
struct FinishedPack {
  Id id;
  Bytes data;
  std::vector<PackedBlob> blobs;
};

class PackWriter {
 public:
  // `reserve` = bytes to reserve for the blob area (the buffer grows past it if needed).
  explicit PackWriter(std::size_t reserve = 0);
  // Reuses the memory of `buffer` (e.g. the data of an uploaded FinishedPack); its content
  // is discarded.
  PackWriter(Bytes buffer, std::size_t reserve);

  // True when a blob of `sealed_size` encrypted bytes (compressed or not) still fits:
  // offsets stay 32-bit and the encrypted header stays <= kPackMaxHeaderSize.
  [[nodiscard]] bool fits(std::uint64_t sealed_size, bool compressed) const;

  // Appends one encrypted blob; `uncompressed_length` != 0 marks a zstd blob of that
  // plaintext size. REQUIRES: sealed.size() >= kCryptoOverhead.
  // Errors: kInvalidArgument when the blob does not fit (see fits()).
  Result<void> add(BlobType type, const Id& id, ByteSpan sealed, std::uint32_t uncompressed_length);

  // Size the file would have if finished now (0 blobs: 36).
  [[nodiscard]] std::uint64_t file_size() const;
  [[nodiscard]] std::size_t count() const { return blobs_.size(); }
  [[nodiscard]] bool empty() const { return blobs_.empty(); }
  // Encrypted bytes of the blobs appended so far.
  [[nodiscard]] std::uint64_t blob_bytes() const { return data_.size(); }

  // Seals the header and returns the finished file. The writer is left empty.
  // Errors: kInvalidArgument (no blobs), kIo (RNG failure while sealing).
  Result<FinishedPack> finish(const MasterKey& key);

 private:
  Bytes data_;
  std::vector<PackedBlob> blobs_;
  std::uint64_t header_size_ = 0;  // plaintext header bytes (sum of entry sizes)
};

}  // namespace coffer::repo
