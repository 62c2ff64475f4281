// Snapshot JSON <-> Snapshot (restic-format.md §8), as restic's json.Marshal writes it.
#include "repo/snapshot/snapshot.h"

#include <array>
#include <utility>

#include "repo/tree/go_json.h"
#include "repo/tree/go_text.h"

namespace coffer::repo {
namespace {

using detail::append_key;
using detail::Json;

constexpr std::array<std::string_view, 13> kSnapshotKeys = {
    "time", "parent",   "tree", "paths",    "hostname",        "username", "uid",
    "gid",  "excludes", "tags", "original", "program_version", "summary"};

constexpr std::pair<std::string_view, std::string Snapshot::*> kStringFields[] = {
    {"hostname", &Snapshot::hostname},
    {"username", &Snapshot::username},
    {"program_version", &Snapshot::program_version}};
constexpr std::pair<std::string_view, std::vector<std::string> Snapshot::*> kListFields[] = {
    {"paths", &Snapshot::paths}, {"excludes", &Snapshot::excludes}, {"tags", &Snapshot::tags}};
constexpr std::pair<std::string_view, std::optional<Id> Snapshot::*> kOptionalIdFields[] = {
    {"parent", &Snapshot::parent}, {"original", &Snapshot::original}};

struct SnapshotParse {
  Snapshot snap;
  bool has_time = false;
  bool has_tree = false;
  Json unknown = Json::object();
};

Result<void> set_other_field(SnapshotParse& p, const std::string& key, const Json& v) {
  Snapshot& s = p.snap;
  if (key == "time") {
    if (v.is_null())
      return fail(Errc::kCorrupt, "time is null");
    COFFER_ASSIGN_OR_RETURN(s.time, detail::json_to_time(v));
    p.has_time = true;
  } else if (key == "tree") {
    COFFER_ASSIGN_OR_RETURN(s.tree, detail::json_to_id(v));
    p.has_tree = true;
  } else if (key == "uid" || key == "gid") {
    COFFER_ASSIGN_OR_RETURN(auto n, detail::json_to_uint(v, UINT32_MAX));
    (key == "uid" ? s.uid : s.gid) = static_cast<std::uint32_t>(n);
  } else if (key == "summary") {
    COFFER_ASSIGN_OR_RETURN(s.summary_json, detail::json_object_text(v, false));
  } else {
    p.unknown[key] = v;
  }
  return {};
}

Result<void> set_field(SnapshotParse& p, const std::string& key, const Json& v) {
  for (const auto& [k, member] : kStringFields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.snap.*member, detail::json_to_string(v));
    return {};
  }
  for (const auto& [k, member] : kListFields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.snap.*member, detail::json_to_strings(v));
    return {};
  }
  for (const auto& [k, member] : kOptionalIdFields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.snap.*member, detail::json_to_optional_id(v));
    return {};
  }
  return set_other_field(p, key, v);
}

void append_strings(std::string& out, const std::vector<std::string>& list) {
  out.push_back('[');
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    detail::append_go_json_string(out, list[i]);
  }
  out.push_back(']');
}

void next_key(std::string& out, std::string_view key) {
  out.push_back(',');
  append_key(out, key);
}

void append_string_if(std::string& out, std::string_view key, std::string_view v) {
  if (v.empty())
    return;
  next_key(out, key);
  detail::append_go_json_string(out, v);
}

void append_list_if(std::string& out, std::string_view key, const std::vector<std::string>& v) {
  if (v.empty())
    return;
  next_key(out, key);
  append_strings(out, v);
}

void append_uint_if(std::string& out, std::string_view key, std::uint32_t v) {
  if (v == 0)
    return;
  next_key(out, key);
  out += std::to_string(v);
}

}  // namespace

Result<Snapshot> parse_snapshot(std::string_view json) {
  COFFER_ASSIGN_OR_RETURN(Json j, detail::parse_json(json, "snapshot"));
  if (!j.is_object())
    return fail(Errc::kCorrupt, "snapshot: not a JSON object");
  SnapshotParse p;
  for (const auto& [key, value] : j.items()) {
    COFFER_TRY_CTX(set_field(p, key, value), "snapshot: field \"" + key + "\"");
  }
  if (!p.has_time)
    return fail(Errc::kCorrupt, "snapshot: missing \"time\"");
  if (!p.has_tree)
    return fail(Errc::kCorrupt, "snapshot: missing \"tree\"");
  COFFER_ASSIGN_OR_RETURN(p.snap.unknown_fields_json, detail::json_object_text(p.unknown, false));
  return std::move(p.snap);
}

std::string serialize_snapshot(const Snapshot& s) {
  std::string out = "{";
  append_key(out, "time");
  detail::append_go_json_string(out, format_go_time(s.time));
  if (s.parent)
    append_string_if(out, "parent", s.parent->hex());
  append_string_if(out, "tree", s.tree.hex());
  next_key(out, "paths");
  if (s.paths.empty()) {
    out += "null";  // Go nil slice
  } else {
    append_strings(out, s.paths);
  }
  append_string_if(out, "hostname", s.hostname);
  append_string_if(out, "username", s.username);
  append_uint_if(out, "uid", s.uid);
  append_uint_if(out, "gid", s.gid);
  append_list_if(out, "excludes", s.excludes);
  append_list_if(out, "tags", s.tags);
  if (s.original)
    append_string_if(out, "original", s.original->hex());
  append_string_if(out, "program_version", s.program_version);
  if (auto summary = detail::canonical_object_text(s.summary_json, false); !summary.empty()) {
    next_key(out, "summary");
    out += summary;
  }
  detail::append_unknown_fields(out, s.unknown_fields_json, kSnapshotKeys);
  out.push_back('}');
  return out;
}

}  // namespace coffer::repo
