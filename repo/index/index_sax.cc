// Streaming (SAX) parser of index files: builds PackedBlobs directly from the token
// stream, so a 200,000-blob index costs its text plus the result, not a JSON DOM that is
// several times larger.
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "repo/index/index_file.h"

namespace coffer::repo {
namespace {

enum class Ctx { kTop, kSupersedes, kPacks, kPack, kBlobs, kBlob, kSkip };

class IndexSax {
 public:
  using json = nlohmann::json;
  explicit IndexSax(IndexFile& out) : out_(out) {}

  bool null() { return scalar(); }
  bool boolean(bool /*v*/) { return scalar(); }
  bool number_integer(json::number_integer_t v) {
    if (v < 0 && top() == Ctx::kBlob)
      return error("negative number in blob entry");
    return number(static_cast<std::uint64_t>(v));
  }
  bool number_unsigned(json::number_unsigned_t v) { return number(v); }
  bool number_float(json::number_float_t /*v*/, const std::string& /*s*/) {
    if (top() == Ctx::kBlob)
      return error("non-integer number in blob entry");
    return scalar();
  }
  bool binary(json::binary_t& /*b*/) { return scalar(); }
  bool string(std::string& s);
  bool start_object(std::size_t /*n*/);
  bool end_object();
  bool start_array(std::size_t /*n*/);
  bool end_array();
  bool key(std::string& k) {
    key_ = k;
    return true;
  }
  bool parse_error(std::size_t pos, const std::string& /*tok*/,
                   const nlohmann::detail::exception& /*e*/) {
    return error(fmt::format("index is not valid JSON (at byte {})", pos));
  }

  [[nodiscard]] const std::string& message() const { return message_; }
  bool saw_packs = false;

 private:
  Ctx top() const { return stack_.empty() ? Ctx::kTop : stack_.back(); }
  bool error(std::string m) {
    if (message_.empty())
      message_ = std::move(m);
    return false;
  }
  bool scalar() {
    Ctx c = top();
    if (c == Ctx::kPacks || c == Ctx::kBlobs || c == Ctx::kSupersedes) {
      return error("unexpected value in an index list");
    }
    if (c == Ctx::kTop && key_ == "packs") {
      saw_packs = true;  // "packs": null is an empty index
    }
    return true;
  }
  bool number(std::uint64_t v);
  bool finish_blob();

  IndexFile& out_;
  std::vector<Ctx> stack_;
  std::string key_;
  std::string message_;
  Id pack_;
  bool have_pack_ = false;
  std::size_t pack_first_blob_ = 0;
  PackedBlob blob_;
  unsigned blob_fields_ = 0;  // bit 0 id, 1 type, 2 offset, 3 length
};

bool IndexSax::number(std::uint64_t v) {
  if (top() != Ctx::kBlob)
    return scalar() && (top() != Ctx::kTop || key_ != "packs" || error("\"packs\" is not a list"));
  if (v > 0xffffffffULL)
    return error("blob \"" + key_ + "\" is not a 32-bit unsigned number");
  auto u = static_cast<std::uint32_t>(v);
  if (key_ == "offset") {
    blob_.offset = u;
    blob_fields_ |= 4;
  } else if (key_ == "length") {
    blob_.length = u;
    blob_fields_ |= 8;
  } else if (key_ == "uncompressed_length") {
    blob_.uncompressed_length = u;
  }
  return true;
}

bool IndexSax::string(std::string& s) {
  Ctx c = top();
  if (c == Ctx::kSupersedes) {
    auto id = Id::parse(s);
    if (!id)
      return error("supersedes entry: " + id.error().message);
    out_.supersedes.push_back(*id);
  } else if (c == Ctx::kPack && key_ == "id") {
    auto id = Id::parse(s);
    if (!id)
      return error("pack id: " + id.error().message);
    pack_ = *id;
    have_pack_ = true;
  } else if (c == Ctx::kBlob && key_ == "id") {
    auto id = Id::parse(s);
    if (!id)
      return error("blob id: " + id.error().message);
    blob_.id = *id;
    blob_fields_ |= 1;
  } else if (c == Ctx::kBlob && key_ == "type") {
    if (s == "data") {
      blob_.type = BlobType::kData;
    } else if (s == "tree") {
      blob_.type = BlobType::kTree;
    } else {
      return error("invalid blob type \"" + s + "\"");
    }
    blob_fields_ |= 2;
  } else if (c == Ctx::kBlob || c == Ctx::kBlobs || c == Ctx::kPacks ||
             (c == Ctx::kTop && key_ == "packs")) {
    return error("unexpected string in index");
  }
  return true;
}

bool IndexSax::start_object(std::size_t /*n*/) {
  Ctx c = top();
  if (stack_.empty()) {
    stack_.push_back(Ctx::kTop);
  } else if (c == Ctx::kPacks) {
    stack_.push_back(Ctx::kPack);
    have_pack_ = false;
    pack_first_blob_ = out_.blobs.size();
  } else if (c == Ctx::kBlobs) {
    stack_.push_back(Ctx::kBlob);
    blob_ = PackedBlob{};
    blob_fields_ = 0;
  } else if (c == Ctx::kSkip || c == Ctx::kTop || c == Ctx::kPack || c == Ctx::kBlob) {
    stack_.push_back(Ctx::kSkip);
  } else {
    return error("unexpected object in index");
  }
  return true;
}

bool IndexSax::end_object() {
  Ctx c = top();
  stack_.pop_back();
  if (c == Ctx::kBlob)
    return finish_blob();
  if (c == Ctx::kPack) {
    if (!have_pack_)
      return error("pack entry without id");
    for (std::size_t i = pack_first_blob_; i < out_.blobs.size(); ++i) out_.blobs[i].pack = pack_;
  }
  return true;
}

bool IndexSax::finish_blob() {
  if ((blob_fields_ & 1) == 0)
    return error("blob entry without id");
  if ((blob_fields_ & 2) == 0)
    return error("blob entry without type");
  if ((blob_fields_ & 4) == 0)
    return error("blob entry without \"offset\"");
  if ((blob_fields_ & 8) == 0)
    return error("blob entry without \"length\"");
  if (blob_.length < 32)
    return error("blob length below 32 bytes");
  out_.blobs.push_back(blob_);
  return true;
}

bool IndexSax::start_array(std::size_t /*n*/) {
  Ctx c = top();
  if (stack_.empty()) {
    saw_packs = true;
    stack_.push_back(Ctx::kPacks);  // legacy format: a bare array of packs
  } else if (c == Ctx::kTop && key_ == "packs") {
    saw_packs = true;
    stack_.push_back(Ctx::kPacks);
  } else if (c == Ctx::kTop && key_ == "supersedes") {
    stack_.push_back(Ctx::kSupersedes);
  } else if (c == Ctx::kPack && key_ == "blobs") {
    stack_.push_back(Ctx::kBlobs);
  } else if (c == Ctx::kPacks || c == Ctx::kBlobs || c == Ctx::kBlob) {
    return error("unexpected list in index");
  } else {
    stack_.push_back(Ctx::kSkip);
  }
  return true;
}

bool IndexSax::end_array() {
  stack_.pop_back();
  return true;
}

}  // namespace

Result<IndexFile> parse_index(std::string_view text) {
  IndexFile out;
  IndexSax sax(out);
  bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
  if (!ok)
    return fail(Errc::kCorrupt, sax.message().empty() ? "index is not valid JSON" : sax.message());
  if (!sax.saw_packs)
    return fail(Errc::kCorrupt, "index without \"packs\"");
  return out;
}

}  // namespace coffer::repo
