// Tree blobs and their nodes, in restic's JSON encoding (restic-format.md §9).
//
// A tree blob is `{"nodes":[...]}` plus one '\n'; its id is the SHA-256 of exactly those
// bytes. Node names are raw bytes (they may be invalid UTF-8); on the wire they are
// Go-quoted (strconv.Quote) and then JSON-encoded. Fields this version does not know are
// kept verbatim in `unknown_fields` and written back when the node is re-serialized.
//
// Thread contract: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/id.h"

namespace coffer::repo {

// A point in time as restic stores it: seconds and nanoseconds since the Unix epoch,
// plus the UTC offset of the zone it was written in (kept so it round-trips).
struct GoTime {
  std::int64_t unix_seconds = 0;
  std::uint32_t nanos = 0;
  std::int32_t offset_seconds = 0;  // east of UTC

  bool operator==(const GoTime&) const = default;
  auto operator<=>(const GoTime& o) const {
    if (auto c = unix_seconds <=> o.unix_seconds; c != 0)
      return c;
    return nanos <=> o.nanos;
  }
};

// Parses RFC 3339 with 0-9 fractional digits and 'Z' or ±HH:MM. kCorrupt on bad input.
Result<GoTime> parse_go_time(std::string_view text);
// Formats as Go's RFC3339Nano (trailing zeros of the fraction removed, 'Z' for offset 0).
std::string format_go_time(const GoTime& t);

enum class NodeType { kFile, kDir, kSymlink, kDev, kCharDev, kFifo, kSocket, kIrregular };

const char* node_type_name(NodeType t);

struct ExtendedAttribute {
  std::string name;
  Bytes value;
  bool operator==(const ExtendedAttribute&) const = default;
};

struct Node {
  std::string name;  // raw bytes
  NodeType type = NodeType::kFile;
  std::uint32_t mode = 0;  // Go os.FileMode bits
  GoTime mtime, atime, ctime;
  std::uint32_t uid = 0, gid = 0;
  std::string user, group;
  std::uint64_t inode = 0;
  std::uint64_t device_id = 0;
  std::uint64_t size = 0;
  std::uint64_t links = 0;
  std::string linktarget;           // raw bytes (from linktarget_raw when present)
  bool has_linktarget_raw = false;  // linktarget came from (or must be written as) linktarget_raw
  std::vector<ExtendedAttribute> xattrs;
  std::uint64_t device = 0;             // st_rdev
  std::vector<Id> content;              // data blobs, file order (files only)
  std::optional<Id> subtree;            // dirs only
  std::string generic_attributes_json;  // raw JSON object text, "" when absent
  std::string unknown_fields_json;      // raw JSON object text of unknown keys, "" when none

  // POSIX mode bits (S_IFxxx | perms | suid/sgid/sticky) derived from `type` and `mode`.
  [[nodiscard]] std::uint32_t unix_mode() const;
  bool operator==(const Node&) const = default;
};

// Converts POSIX st_mode to Go os.FileMode bits, as restic stores them.
std::uint32_t go_mode_from_unix(std::uint32_t st_mode);

struct Tree {
  std::vector<Node> nodes;  // sorted by raw name bytes, unique
};

// Parses a tree blob. kCorrupt on malformed JSON, unknown node type, bad names, bad ids.
Result<Tree> parse_tree(ByteSpan blob);
// Serializes a tree blob byte-for-byte as restic 0.14 would (trailing '\n' included).
std::string serialize_tree(const Tree& tree);

// Go strconv.Quote of raw bytes, without the surrounding quotes.
std::string go_quote(std::string_view raw);
// Inverse of go_quote (accepts everything strconv.Unquote accepts inside "...").
Result<std::string> go_unquote(std::string_view quoted);
// Go encoding/json string encoding of raw bytes, with the surrounding quotes.
std::string go_json_string(std::string_view raw);

}  // namespace coffer::repo
