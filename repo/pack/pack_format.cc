#include "repo/pack/pack_format.h"

#include <string>

namespace coffer::repo {

Result<std::vector<PackedBlob>> parse_pack_header(ByteSpan plain, const Id& pack_id) {
  std::vector<PackedBlob> blobs;
  std::uint64_t offset = 0;
  std::size_t pos = 0;
  while (pos < plain.size()) {
    auto type = std::to_integer<unsigned>(plain[pos]);
    if (type > 3) {
      return fail(Errc::kCorrupt, "pack " + pack_id.short_hex() + ": invalid blob type " +
                                      std::to_string(type) + " in header");
    }
    bool compressed = type >= 2;
    std::size_t entry = compressed ? kPackEntrySizeCompressed : kPackEntrySize;
    if (plain.size() - pos < entry) {
      return fail(Errc::kCorrupt, "pack " + pack_id.short_hex() + ": truncated header entry");
    }
    PackedBlob b;
    b.type = (type & 1) != 0 ? BlobType::kTree : BlobType::kData;
    b.pack = pack_id;
    b.length = load_le32(plain.data() + pos + 1);
    b.uncompressed_length = compressed ? load_le32(plain.data() + pos + 5) : 0;
    b.id = Id::from_span(plain.subspan(pos + (compressed ? 9 : 5), Id::kSize));
    if (b.length < 32 || offset > 0xffffffffULL) {
      return fail(Errc::kCorrupt, "pack " + pack_id.short_hex() + ": invalid blob length");
    }
    b.offset = static_cast<std::uint32_t>(offset);
    offset += b.length;
    blobs.push_back(b);
    pos += entry;
  }
  return blobs;
}

Bytes serialize_pack_header(const std::vector<PackedBlob>& blobs) {
  Bytes out;
  for (const PackedBlob& b : blobs) {
    unsigned type = (b.type == BlobType::kTree ? 1 : 0) + (b.compressed() ? 2 : 0);
    std::size_t pos = out.size();
    out.resize(pos + (b.compressed() ? kPackEntrySizeCompressed : kPackEntrySize));
    out[pos] = static_cast<std::byte>(type);
    store_le32(out.data() + pos + 1, b.length);
    std::size_t id_pos = pos + 5;
    if (b.compressed()) {
      store_le32(out.data() + pos + 5, b.uncompressed_length);
      id_pos += 4;
    }
    std::copy(b.id.bytes().begin(), b.id.bytes().end(), out.begin() + static_cast<long>(id_pos));
  }
  return out;
}

}  // namespace coffer::repo
