#include "repo/index/index_file.h"

#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace coffer::repo {
namespace {

using nlohmann::json;

Result<Id> json_id(const json& j, const char* what) {
  if (!j.is_string())
    return fail(Errc::kCorrupt, fmt::format("{} is not a string", what));
  auto id = Id::parse(j.get_ref<const std::string&>());
  if (!id)
    return fail(Errc::kCorrupt, fmt::format("{}: {}", what, id.error().message));
  return *id;
}

Result<std::uint32_t> json_u32(const json& j, const char* key, bool optional) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (optional)
      return 0U;
    return fail(Errc::kCorrupt, fmt::format("blob entry without \"{}\"", key));
  }
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() > 0xffffffffULL) {
    return fail(Errc::kCorrupt, fmt::format("blob \"{}\" is not a 32-bit unsigned number", key));
  }
  return static_cast<std::uint32_t>(it->get<std::uint64_t>());
}

Result<PackedBlob> parse_blob(const json& jb, const Id& pack) {
  if (!jb.is_object())
    return fail(Errc::kCorrupt, "blob entry is not an object");
  PackedBlob b;
  b.pack = pack;
  auto idit = jb.find("id");
  if (idit == jb.end())
    return fail(Errc::kCorrupt, "blob entry without id");
  COFFER_ASSIGN_OR_RETURN(b.id, json_id(*idit, "blob id"));
  auto t = jb.find("type");
  if (t == jb.end() || !t->is_string())
    return fail(Errc::kCorrupt, "blob entry without type");
  if (*t == "data") {
    b.type = BlobType::kData;
  } else if (*t == "tree") {
    b.type = BlobType::kTree;
  } else {
    return fail(Errc::kCorrupt, "invalid blob type " + t->dump());
  }
  COFFER_ASSIGN_OR_RETURN(b.offset, json_u32(jb, "offset", false));
  COFFER_ASSIGN_OR_RETURN(b.length, json_u32(jb, "length", false));
  COFFER_ASSIGN_OR_RETURN(b.uncompressed_length, json_u32(jb, "uncompressed_length", true));
  if (b.length < 32)
    return fail(Errc::kCorrupt, "blob length below 32 bytes");
  return b;
}

Result<void> parse_packs(const json& packs, IndexFile& out) {
  if (!packs.is_array())
    return fail(Errc::kCorrupt, "\"packs\" is not a list");
  for (const json& jp : packs) {
    if (!jp.is_object() || !jp.contains("id"))
      return fail(Errc::kCorrupt, "pack entry without id");
    COFFER_ASSIGN_OR_RETURN(Id pack, json_id(jp["id"], "pack id"));
    auto blobs = jp.find("blobs");
    if (blobs == jp.end() || blobs->is_null())
      continue;
    if (!blobs->is_array())
      return fail(Errc::kCorrupt, "\"blobs\" is not a list");
    for (const json& jb : *blobs) {
      COFFER_ASSIGN_OR_RETURN(PackedBlob b, parse_blob(jb, pack));
      out.blobs.push_back(b);
    }
  }
  return {};
}

}  // namespace

Result<IndexFile> parse_index(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded())
    return fail(Errc::kCorrupt, "index is not valid JSON");
  IndexFile out;
  if (j.is_array()) {
    COFFER_TRY(parse_packs(j, out));
    return out;
  }
  if (!j.is_object())
    return fail(Errc::kCorrupt, "index is not a JSON object");
  if (auto s = j.find("supersedes"); s != j.end() && s->is_array()) {
    for (const json& e : *s) {
      COFFER_ASSIGN_OR_RETURN(Id id, json_id(e, "supersedes entry"));
      out.supersedes.push_back(id);
    }
  }
  auto packs = j.find("packs");
  if (packs == j.end())
    return fail(Errc::kCorrupt, "index without \"packs\"");
  if (!packs->is_null())
    COFFER_TRY(parse_packs(*packs, out));
  return out;
}

std::string serialize_index(const IndexFile& index) {
  std::string out = "{";
  if (!index.supersedes.empty()) {
    out += "\"supersedes\":[";
    for (std::size_t i = 0; i < index.supersedes.size(); ++i) {
      out += fmt::format("{}\"{}\"", i ? "," : "", index.supersedes[i].hex());
    }
    out += "],";
  }
  std::vector<Id> order;
  std::map<Id, std::vector<const PackedBlob*>> by_pack;
  for (const PackedBlob& b : index.blobs) {
    auto [it, inserted] = by_pack.try_emplace(b.pack);
    if (inserted)
      order.push_back(b.pack);
    it->second.push_back(&b);
  }
  out += "\"packs\":[";
  for (std::size_t p = 0; p < order.size(); ++p) {
    out += fmt::format("{}{{\"id\":\"{}\",\"blobs\":[", p ? "," : "", order[p].hex());
    const auto& blobs = by_pack[order[p]];
    for (std::size_t i = 0; i < blobs.size(); ++i) {
      const PackedBlob& b = *blobs[i];
      out += fmt::format("{}{{\"id\":\"{}\",\"type\":\"{}\",\"offset\":{},\"length\":{}",
                         i ? "," : "", b.id.hex(), blob_type_name(b.type), b.offset, b.length);
      if (b.compressed())
        out += fmt::format(",\"uncompressed_length\":{}", b.uncompressed_length);
      out += "}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace coffer::repo
