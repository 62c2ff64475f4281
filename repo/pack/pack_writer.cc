#include "repo/pack/pack_writer.h"

#include <limits>

#include "repo/pack/pack_format.h"

namespace coffer::repo {
namespace {

constexpr std::uint64_t kTrailerSize = 4;
constexpr std::uint64_t kMaxOffset = std::numeric_limits<std::uint32_t>::max();

}  // namespace

PackWriter::PackWriter(std::size_t reserve) { data_.reserve(reserve); }

PackWriter::PackWriter(Bytes buffer, std::size_t reserve) : data_(std::move(buffer)) {
  data_.clear();
  data_.reserve(reserve);
}

bool PackWriter::fits(std::uint64_t sealed_size, bool compressed) const {
  std::uint64_t entry = compressed ? kPackEntrySizeCompressed : kPackEntrySize;
  return sealed_size <= kMaxOffset && data_.size() + sealed_size <= kMaxOffset &&
         header_size_ + entry + kCryptoOverhead <= kPackMaxHeaderSize;
}

Result<void> PackWriter::add(BlobType type, const Id& id, ByteSpan sealed,
                             std::uint32_t uncompressed_length) {
  if (sealed.size() < kCryptoOverhead) {
    return fail(Errc::kInvalidArgument, "blob " + id.short_hex() + " is not encrypted");
  }
  bool compressed = uncompressed_length != 0;
  if (!fits(sealed.size(), compressed)) {
    return fail(Errc::kInvalidArgument, "blob " + id.short_hex() + " does not fit into the pack");
  }
  PackedBlob b;
  b.id = id;
  b.type = type;
  b.offset = static_cast<std::uint32_t>(data_.size());
  b.length = static_cast<std::uint32_t>(sealed.size());
  b.uncompressed_length = uncompressed_length;
  blobs_.push_back(b);
  header_size_ += compressed ? kPackEntrySizeCompressed : kPackEntrySize;
  data_.insert(data_.end(), sealed.begin(), sealed.end());  // one memmove, no zero-fill
  return {};
}

std::uint64_t PackWriter::file_size() const {
  return data_.size() + header_size_ + kCryptoOverhead + kTrailerSize;
}

Result<FinishedPack> PackWriter::finish(const MasterKey& key) {
  if (blobs_.empty())
    return fail(Errc::kInvalidArgument, "cannot finish an empty pack");
  COFFER_ASSIGN_OR_RETURN(Bytes header, seal(key, serialize_pack_header(blobs_)));
  FinishedPack out;
  out.data = std::move(data_);
  out.data.reserve(out.data.size() + header.size() + kTrailerSize);
  out.data.insert(out.data.end(), header.begin(), header.end());
  std::size_t at = out.data.size();
  out.data.resize(at + kTrailerSize);
  store_le32(out.data.data() + at, static_cast<std::uint32_t>(header.size()));
  out.id = Id::hash(out.data);
  out.blobs = std::move(blobs_);
  for (PackedBlob& b : out.blobs) b.pack = out.id;
  data_ = Bytes();
  blobs_.clear();
  header_size_ = 0;
  return out;
}

}  // namespace coffer::repo
