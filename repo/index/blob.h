// Blob identity and location: what an index entry says about one blob.
//
// Thread contract: value types.
#pragma once

#include <cstdint>

#include "repo/core/id.h"

namespace coffer::repo {

enum class BlobType : std::uint8_t { kData = 0, kTree = 1 };

inline const char* blob_type_name(BlobType t) { return t == BlobType::kData ? "data" : "tree"; }

struct BlobHandle {
  Id id;
  BlobType type = BlobType::kData;
  bool operator==(const BlobHandle&) const = default;
};

// Where a blob lives. `length` is the encrypted length (IV + ciphertext + MAC);
// `uncompressed_length` is 0 for a blob stored without compression.
struct PackedBlob {
  Id id;
  BlobType type = BlobType::kData;
  Id pack;
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  std::uint32_t uncompressed_length = 0;

  // Plaintext size of the blob.
  [[nodiscard]] std::uint32_t plain_size() const {
    return uncompressed_length != 0 ? uncompressed_length : length - 32;
  }
  [[nodiscard]] bool compressed() const { return uncompressed_length != 0; }
  bool operator==(const PackedBlob&) const = default;
};

}  // namespace coffer::repo
