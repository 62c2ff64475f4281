#include <catch2/catch.hpp>

#include "repo/compress/zstd.h"
#include "repo/index/index_file.h"
#include "repo/pack/pack_format.h"

using namespace coffer::repo;

namespace {

PackedBlob blob(char seed, BlobType type, std::uint32_t offset, std::uint32_t length,
                std::uint32_t ulen, const Id& pack) {
  return PackedBlob{Id::hash(as_bytes(std::string(1, seed))), type, pack, offset, length, ulen};
}

}  // namespace

TEST_CASE("pack header entries round-trip with implied offsets", "[pack]") {
  Id pack = Id::hash(as_bytes("pack"));
  std::vector<PackedBlob> blobs = {blob('a', BlobType::kData, 0, 100, 0, pack),
                                   blob('b', BlobType::kTree, 100, 50, 200, pack),
                                   blob('c', BlobType::kData, 150, 40, 9, pack)};
  Bytes header = serialize_pack_header(blobs);
  REQUIRE(header.size() == 37 + 41 + 41);
  auto parsed = parse_pack_header(header, pack);
  REQUIRE(parsed);
  REQUIRE(*parsed == blobs);
}

TEST_CASE("pack header parser rejects bad types and truncation", "[pack]") {
  Id pack = Id::hash(as_bytes("pack"));
  Bytes header = serialize_pack_header({blob('a', BlobType::kData, 0, 100, 0, pack)});
  SECTION("truncated") {
    header.pop_back();
    REQUIRE(parse_pack_header(header, pack).error().code == Errc::kCorrupt);
  }
  SECTION("invalid type") {
    header[0] = std::byte{7};
    REQUIRE(parse_pack_header(header, pack).error().code == Errc::kCorrupt);
  }
  SECTION("length below the crypto overhead") {
    store_le32(header.data() + 1, 10);
    REQUIRE_FALSE(parse_pack_header(header, pack));
  }
}

TEST_CASE("index files parse, including the legacy array form", "[index]") {
  Id pack = Id::hash(as_bytes("p"));
  IndexFile f;
  f.supersedes.push_back(Id::hash(as_bytes("old")));
  f.blobs = {blob('a', BlobType::kData, 0, 100, 0, pack),
             blob('b', BlobType::kTree, 100, 60, 90, pack)};
  std::string text = serialize_index(f);
  REQUIRE(text.back() == '\n');
  auto parsed = parse_index(text);
  REQUIRE(parsed);
  REQUIRE(parsed->blobs == f.blobs);
  REQUIRE(parsed->supersedes == f.supersedes);
  std::string legacy = "[{\"id\":\"" + pack.hex() + "\",\"blobs\":[{\"id\":\"" +
                       f.blobs[0].id.hex() + "\",\"type\":\"data\",\"offset\":0,\"length\":100}]}]";
  auto old = parse_index(legacy);
  REQUIRE(old);
  REQUIRE(old->blobs.size() == 1);
}

TEST_CASE("index parser reports malformed input as corrupt", "[index]") {
  auto bad = GENERATE(
      std::string("{\"packs\":[{\"id\":\"zz\"}]}"), std::string("{\"packs\":"), std::string("{}"),
      std::string("{\"packs\":[{\"id\":\"") + std::string(64, 'a') + "\",\"blobs\":[{\"id\":\"" +
          std::string(64, 'b') + "\",\"type\":\"blob\",\"offset\":0,\"length\":40}]}]}",
      std::string("{\"packs\":[{\"id\":\"") + std::string(64, 'a') + "\",\"blobs\":[{\"id\":\"" +
          std::string(64, 'b') + "\",\"type\":\"data\",\"offset\":-1,\"length\":40}]}]}");
  auto r = parse_index(bad);
  REQUIRE_FALSE(r);
  REQUIRE(r.error().code == Errc::kCorrupt);
}

TEST_CASE("unpacked files: v2 framing with 0x02 + zstd, raw JSON accepted", "[compress]") {
  std::string json = "{\"a\":1}";
  auto frame = zstd_compress(as_bytes(json));
  REQUIRE(frame);
  Bytes framed{std::byte{2}};
  framed.insert(framed.end(), frame->begin(), frame->end());
  REQUIRE(to_string(*decode_unpacked(2, framed)) == json);
  REQUIRE(to_string(*decode_unpacked(2, to_bytes(json))) == json);
  REQUIRE(to_string(*decode_unpacked(1, to_bytes(json))) == json);
  Bytes junk{std::byte{9}, std::byte{1}};
  REQUIRE(decode_unpacked(2, junk).error().code == Errc::kCorrupt);
  Bytes truncated(framed.begin(), framed.end() - 3);
  REQUIRE_FALSE(decode_unpacked(2, truncated));
}

TEST_CASE("zstd decompression checks the expected size", "[compress]") {
  std::string data(5000, 'z');
  auto frame = zstd_compress(as_bytes(data));
  REQUIRE(frame);
  REQUIRE(zstd_decompress(*frame, 5000)->size() == 5000);
  REQUIRE_FALSE(zstd_decompress(*frame, 4999));
  REQUIRE_FALSE(zstd_decompress(*frame, 5001));
}
