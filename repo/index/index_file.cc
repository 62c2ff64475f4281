#include "repo/index/index_file.h"

#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace coffer::repo {

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
