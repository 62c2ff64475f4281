// Internal to repo/tree and repo/snapshot: reading JSON values with Go's encoding/json
// semantics and writing them back the way Go's json.Marshal would.
//
// Reading follows Go's rules for the field types restic uses: `null` leaves the zero value,
// a wrong JSON type is an error (kCorrupt), integers must be non-negative and fit the field.
// Writing arbitrary values (unknown fields, generic_attributes, summary) is compact with Go
// string escaping; object keys keep their parsed order unless sorting is asked for (Go maps).
// Non-integer numbers are re-printed by nlohmann (e.g. `1e5` becomes `100000.0`), which is
// the one place where a kept value may differ in bytes from the input.
//
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/tree/node.h"

namespace coffer::repo::detail {

using Json = nlohmann::ordered_json;

// Non-throwing parse. kCorrupt naming `what` on malformed JSON.
Result<Json> parse_json(std::string_view text, std::string_view what);

// Field readers; `null` yields the zero value.
Result<std::string> json_to_string(const Json& v);
Result<std::uint64_t> json_to_uint(const Json& v, std::uint64_t max);
Result<Id> json_to_id(const Json& v);
Result<std::optional<Id>> json_to_optional_id(const Json& v);
Result<std::vector<Id>> json_to_ids(const Json& v);
Result<std::vector<std::string>> json_to_strings(const Json& v);
// A time; `null` gives Go's zero time 0001-01-01T00:00:00Z.
Result<GoTime> json_to_time(const Json& v);
// A JSON object re-encoded compactly (top-level keys sorted if `sort_keys`); "" for null or {}.
Result<std::string> json_object_text(const Json& v, bool sort_keys);

// Appends `v` compactly as Go's json.Marshal writes a json.RawMessage holding it.
void append_go_json(std::string& out, const Json& v);
// Appends `"key":` with Go escaping.
void append_key(std::string& out, std::string_view key);
// Re-encodes raw object text; "" when `text` is empty, not valid JSON, or not an object.
std::string canonical_object_text(std::string_view text, bool sort_keys);
// Appends `,"k":v` for each member of `object_text` whose key is not in `known`.
void append_unknown_fields(std::string& out, std::string_view object_text,
                           std::span<const std::string_view> known);

inline constexpr std::int64_t kGoZeroTimeUnix = -62135596800;  // 0001-01-01T00:00:00Z

}  // namespace coffer::repo::detail
