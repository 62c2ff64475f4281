// Snapshot files: the JSON restic stores in snapshots/<id> (restic-format.md §8).
//
// Thread contract: value types and pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/tree/node.h"

namespace coffer::repo {

struct Snapshot {
  GoTime time;
  std::optional<Id> parent;
  Id tree;
  std::vector<std::string> paths;
  std::string hostname;
  std::string username;
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::string> excludes;
  std::vector<std::string> tags;
  std::optional<Id> original;
  std::string program_version;
  std::string summary_json;         // raw JSON object text, "" when absent
  std::string unknown_fields_json;  // raw JSON object text of unknown keys, "" when none
};

// Parses the decrypted, decompressed JSON of a snapshot file. kCorrupt on bad input
// (missing or invalid "tree" or "time").
Result<Snapshot> parse_snapshot(std::string_view json);
// Serializes as restic's json.Marshal would (no trailing newline); unknown fields kept.
std::string serialize_snapshot(const Snapshot& s);

}  // namespace coffer::repo
