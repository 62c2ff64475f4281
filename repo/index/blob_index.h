// BlobIndex: answers "where is blob X?" for the whole repository.
//
// Two implementations: MemoryBlobIndex (here; for --no-cache and tests) and LmdbBlobIndex
// (repo/cache/), whose memory use does not grow with the repository.
//
// Thread contract: lookup() is safe to call concurrently once the index is built; adding
// entries must not race with lookups.
#pragma once

#include <optional>
#include <unordered_map>

#include "repo/core/error.h"
#include "repo/index/blob.h"

namespace coffer::repo {

class BlobIndex {
 public:
  virtual ~BlobIndex() = default;
  // Where `blob` lives (any copy when several packs hold it), or nullopt.
  // Errors: kIo or kCorrupt if the backing store fails.
  virtual Result<std::optional<PackedBlob>> lookup(const BlobHandle& blob) const = 0;
  // Number of distinct blobs indexed.
  [[nodiscard]] virtual std::uint64_t size() const = 0;
};

class MemoryBlobIndex final : public BlobIndex {
 public:
  // Adds `blob`; the first copy of a blob id+type wins.
  void add(const PackedBlob& blob);
  Result<std::optional<PackedBlob>> lookup(const BlobHandle& blob) const override;
  [[nodiscard]] std::uint64_t size() const override { return data_.size() + tree_.size(); }

 private:
  struct Location {
    Id pack;
    std::uint32_t offset, length, uncompressed_length;
  };
  std::unordered_map<Id, Location, IdHash> data_;
  std::unordered_map<Id, Location, IdHash> tree_;
};

}  // namespace coffer::repo
