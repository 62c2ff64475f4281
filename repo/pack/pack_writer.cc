#include "repo/pack/pack_writer.h"

#include <limits>

#include "repo/pack/pack_format.h"

namespace coffer::repo {
namespace {

constexpr std::uint64_t kTrailerSize = 4;
constexpr std::uint64_t kMaxOffset = std::numeric_limits<std::uint32_t>::max();

}  // namespace

PackWriter::PackWriter(std::size_t reserve) { data_.reserve(reserve); }

PackWriter::PackWriter(PackSink sink) : sink_(std::move(sink)) {}

bool PackWriter::fits(std::uint64_t sealed_size, bool compressed) const {
  std::uint64_t entry = compressed ? kPackEntrySizeCompressed : kPackEntrySize;
  return sealed_size <= kMaxOffset && blob_bytes_ + sealed_size <= kMaxOffset &&
         header_size_ + entry + kCryptoOverhead <= kPackMaxHeaderSize;
}

Result<void> PackWriter::emit(ByteSpan bytes) {
  if (broken_)
    return fail(Errc::kIo, "the pack is unusable after a failed write");
  if (sink_) {
    auto written = sink_(bytes);
    if (!written) {
      broken_ = true;
      return written;
    }
  } else {
    data_.insert(data_.end(), bytes.begin(), bytes.end());  // one memmove, no zero-fill
  }
  hash_.update(bytes);
  return {};
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
  COFFER_TRY(emit(sealed));
  PackedBlob b;
  b.id = id;
  b.type = type;
  b.offset = static_cast<std::uint32_t>(blob_bytes_);
  b.length = static_cast<std::uint32_t>(sealed.size());
  b.uncompressed_length = uncompressed_length;
  blobs_.push_back(b);
  blob_bytes_ += sealed.size();
  header_size_ += compressed ? kPackEntrySizeCompressed : kPackEntrySize;
  return {};
}

std::uint64_t PackWriter::file_size() const {
  return blob_bytes_ + header_size_ + kCryptoOverhead + kTrailerSize;
}

Result<FinishedPack> PackWriter::finish(const MasterKey& key) {
  if (blobs_.empty())
    return fail(Errc::kInvalidArgument, "cannot finish an empty pack");
  COFFER_ASSIGN_OR_RETURN(Bytes tail, seal(key, serialize_pack_header(blobs_)));
  std::size_t at = tail.size();
  tail.resize(at + kTrailerSize);
  store_le32(tail.data() + at, static_cast<std::uint32_t>(at));
  FinishedPack out;
  out.size = file_size();
  COFFER_TRY(emit(tail));
  out.id = hash_.finish();
  out.data = std::move(data_);
  out.blobs = std::move(blobs_);
  for (PackedBlob& b : out.blobs) b.pack = out.id;
  data_ = Bytes();
  blobs_.clear();
  blob_bytes_ = 0;
  header_size_ = 0;
  return out;
}

}  // namespace coffer::repo
