// Index files (index/<id>): JSON listing which pack holds which blob (restic-format.md §7).
//
//   {"supersedes":[...], "packs":[{"id":"<pack>","blobs":[{"id":..,"type":"data"|"tree",
//     "offset":N,"length":N,"uncompressed_length":N}, ...]}, ...]}
//   The pre-0.2 legacy form is a bare array of the pack objects.
//
// Thread contract: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "repo/core/error.h"
#include "repo/index/blob.h"

namespace coffer::repo {

struct IndexFile {
  std::vector<Id> supersedes;
  std::vector<PackedBlob> blobs;
};

// Parses the decoded JSON of an index file. Errors: kCorrupt with what was wrong.
Result<IndexFile> parse_index(std::string_view json);

// Serializes an index file as restic writes it (trailing newline). Blobs of one pack are
// grouped under that pack in first-appearance order.
std::string serialize_index(const IndexFile& index);

}  // namespace coffer::repo
