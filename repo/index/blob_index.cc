#include "repo/index/blob_index.h"

namespace coffer::repo {

void MemoryBlobIndex::add(const PackedBlob& blob) {
  auto& map = blob.type == BlobType::kData ? data_ : tree_;
  map.try_emplace(blob.id, Location{blob.pack, blob.offset, blob.length, blob.uncompressed_length});
}

Result<std::optional<PackedBlob>> MemoryBlobIndex::lookup(const BlobHandle& blob) const {
  const auto& map = blob.type == BlobType::kData ? data_ : tree_;
  auto it = map.find(blob.id);
  if (it == map.end())
    return std::optional<PackedBlob>{};
  const Location& l = it->second;
  return std::optional<PackedBlob>{
      PackedBlob{blob.id, blob.type, l.pack, l.offset, l.length, l.uncompressed_length}};
}

}  // namespace coffer::repo
