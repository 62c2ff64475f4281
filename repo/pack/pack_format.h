// Pack files (data/xx/<id>), restic-format.md §6.
//
//   +-----------+-----------+-----+-----------+--------------------+-----------------+
//   | EncBlob_1 | EncBlob_2 | ... | EncBlob_n | EncHeader          | HeaderLen u32LE |
//   +-----------+-----------+-----+-----------+--------------------+-----------------+
//   EncBlob_i = IV(16) ‖ AES-CTR(blob or zstd(blob)) ‖ MAC(16)
//   EncHeader = IV(16) ‖ AES-CTR(entries) ‖ MAC(16);  HeaderLen = len(EncHeader)
//
//   entry, type 0 (data) / 1 (tree):            type(1) ‖ len_enc u32LE ‖ id(32)            37 B
//   entry, type 2 (zstd data) / 3 (zstd tree):  type(1) ‖ len_enc u32LE ‖ len_plain u32LE ‖ id(32)
//   41 B
//
// Entries appear in blob order; offsets are the running sum of len_enc from 0.
//
// Thread contract: pure functions.
#pragma once

#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/index/blob.h"

namespace coffer::repo {

inline constexpr std::size_t kPackEntrySize = 37;
inline constexpr std::size_t kPackEntrySizeCompressed = 41;
inline constexpr std::size_t kPackMaxHeaderSize = 16 * 1024 * 1024;
// Bytes restic reads from a pack's end at once: enough for 15 compressed entries + trailer.
inline constexpr std::size_t kPackEagerTail = 15 * kPackEntrySizeCompressed + 36;

// Parses decrypted header entries of pack `pack_id`. Errors: kCorrupt.
Result<std::vector<PackedBlob>> parse_pack_header(ByteSpan plain, const Id& pack_id);

// Serializes entries (REQUIRES: blobs in offset order, offsets contiguous from 0).
Bytes serialize_pack_header(const std::vector<PackedBlob>& blobs);

}  // namespace coffer::repo
