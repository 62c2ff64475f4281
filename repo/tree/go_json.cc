#include "repo/tree/go_json.h"

#include <algorithm>

#include "repo/tree/go_text.h"

namespace coffer::repo::detail {
namespace {

tl::unexpected<Error> wrong_type(const Json& v, std::string_view expected) {
  return fail(Errc::kCorrupt,
              "expected " + std::string(expected) + ", got " + std::string(v.type_name()));
}

void append_object(std::string& out, const Json& v, bool sort_keys) {
  std::vector<const Json::object_t::value_type*> members;
  members.reserve(v.size());
  for (const auto& kv : v.get_ref<const Json::object_t&>()) members.push_back(&kv);
  if (sort_keys) {
    std::stable_sort(members.begin(), members.end(),
                     [](const auto* a, const auto* b) { return a->first < b->first; });
  }
  out.push_back('{');
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    append_key(out, members[i]->first);
    append_go_json(out, members[i]->second);
  }
  out.push_back('}');
}

}  // namespace

Result<Json> parse_json(std::string_view text, std::string_view what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return fail(Errc::kCorrupt, std::string(what) + ": malformed JSON");
  return j;
}

Result<std::string> json_to_string(const Json& v) {
  if (v.is_null())
    return std::string();
  if (!v.is_string())
    return wrong_type(v, "string");
  return v.get<std::string>();
}

Result<std::uint64_t> json_to_uint(const Json& v, std::uint64_t max) {
  if (v.is_null())
    return std::uint64_t{0};
  if (!v.is_number_unsigned())
    return wrong_type(v, "unsigned integer");
  auto n = v.get<std::uint64_t>();
  if (n > max)
    return fail(Errc::kCorrupt, "number " + std::to_string(n) + " out of range");
  return n;
}

Result<Id> json_to_id(const Json& v) {
  if (!v.is_string())
    return wrong_type(v, "id string");
  auto id = Id::parse(v.get_ref<const std::string&>());
  if (!id)
    return fail(Errc::kCorrupt, id.error().message);
  return *id;
}

Result<std::optional<Id>> json_to_optional_id(const Json& v) {
  if (v.is_null())
    return std::optional<Id>();
  COFFER_ASSIGN_OR_RETURN(Id id, json_to_id(v));
  return std::optional<Id>(id);
}

Result<std::vector<Id>> json_to_ids(const Json& v) {
  std::vector<Id> ids;
  if (v.is_null())
    return ids;
  if (!v.is_array())
    return wrong_type(v, "list of ids");
  ids.reserve(v.size());
  for (const auto& e : v) {
    COFFER_ASSIGN_OR_RETURN(Id id, json_to_id(e));
    ids.push_back(id);
  }
  return ids;
}

Result<std::vector<std::string>> json_to_strings(const Json& v) {
  std::vector<std::string> out;
  if (v.is_null())
    return out;
  if (!v.is_array())
    return wrong_type(v, "list of strings");
  out.reserve(v.size());
  for (const auto& e : v) {
    COFFER_ASSIGN_OR_RETURN(std::string s, json_to_string(e));
    out.push_back(std::move(s));
  }
  return out;
}

Result<GoTime> json_to_time(const Json& v) {
  if (v.is_null())
    return GoTime{kGoZeroTimeUnix, 0, 0};
  if (!v.is_string())
    return wrong_type(v, "time string");
  return parse_go_time(v.get_ref<const std::string&>());
}

Result<std::string> json_object_text(const Json& v, bool sort_keys) {
  if (v.is_null() || (v.is_object() && v.empty()))
    return std::string();
  if (!v.is_object())
    return wrong_type(v, "object");
  std::string out;
  append_object(out, v, sort_keys);
  return out;
}

void append_key(std::string& out, std::string_view key) {
  append_go_json_string(out, key);
  out.push_back(':');
}

void append_go_json(std::string& out, const Json& v) {
  switch (v.type()) {
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::number_integer:
      out += std::to_string(v.get<std::int64_t>());
      return;
    case Json::value_t::number_unsigned:
      out += std::to_string(v.get<std::uint64_t>());
      return;
    case Json::value_t::number_float:
      out += v.dump();
      return;
    case Json::value_t::string:
      append_go_json_string(out, v.get_ref<const std::string&>());
      return;
    case Json::value_t::array:
      out.push_back('[');
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0)
          out.push_back(',');
        append_go_json(out, v[i]);
      }
      out.push_back(']');
      return;
    case Json::value_t::object:
      append_object(out, v, /*sort_keys=*/false);
      return;
    default:
      out += "null";
  }
}

std::string canonical_object_text(std::string_view text, bool sort_keys) {
  if (text.empty())
    return {};
  auto j = parse_json(text, "object");
  if (!j || !j->is_object())
    return {};
  auto out = json_object_text(*j, sort_keys);
  return out ? *out : std::string();
}

void append_unknown_fields(std::string& out, std::string_view object_text,
                           std::span<const std::string_view> known) {
  if (object_text.empty())
    return;
  auto j = parse_json(object_text, "unknown fields");
  if (!j || !j->is_object())
    return;
  for (const auto& [key, value] : j->items()) {
    if (std::find(known.begin(), known.end(), key) != known.end())
      continue;
    out.push_back(',');
    append_key(out, key);
    append_go_json(out, value);
  }
}

}  // namespace coffer::repo::detail
