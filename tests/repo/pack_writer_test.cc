// Tests for repo/pack/pack_writer: packs built in memory parse back with the reader's
// functions (parse_pack_header, open_sealed, zstd_decompress) and obey restic's size rule.
#include "repo/pack/pack_writer.h"

#include <random>

#include <catch2/catch.hpp>

#include "repo/compress/zstd.h"
#include "repo/pack/pack_format.h"

using namespace coffer::repo;

namespace {

MasterKey random_key() {
  MasterKey k;
  REQUIRE(random_bytes(k.encrypt));
  REQUIRE(random_bytes(k.mac_k));
  REQUIRE(random_bytes(k.mac_r));
  return k;
}

Bytes random_plain(std::size_t n, std::mt19937_64& rng) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng());
  return b;
}

struct Input {
  BlobType type;
  Bytes plain;
  bool compress;
};

// Reads a finished pack the way restic does: trailer, sealed header, entries.
std::vector<PackedBlob> read_header(const MasterKey& key, const FinishedPack& pack) {
  REQUIRE(pack.data.size() >= 36);
  std::uint32_t hlen = load_le32(pack.data.data() + pack.data.size() - 4);
  REQUIRE(hlen + 4 <= pack.data.size());
  ByteSpan sealed(pack.data.data() + pack.data.size() - 4 - hlen, hlen);
  auto plain = open_sealed(key, sealed);
  REQUIRE(plain);
  auto entries = parse_pack_header(*plain, pack.id);
  REQUIRE(entries);
  return *entries;
}

Bytes open_blob(const MasterKey& key, const FinishedPack& pack, const PackedBlob& b) {
  auto plain = open_sealed(key, ByteSpan(pack.data).subspan(b.offset, b.length));
  REQUIRE(plain);
  if (!b.compressed())
    return *plain;
  auto d = zstd_decompress(*plain, b.uncompressed_length);
  REQUIRE(d);
  return *d;
}

}  // namespace

TEST_CASE("pack writer output parses back blob for blob", "[pack][writer]") {
  MasterKey key = random_key();
  std::mt19937_64 rng(7);
  std::vector<Input> inputs;
  inputs.push_back({BlobType::kData, random_plain(1000, rng), false});
  inputs.push_back({BlobType::kData, Bytes(70000, std::byte{'a'}), true});
  inputs.push_back({BlobType::kData, Bytes(), false});  // the empty blob: 32 bytes stored
  inputs.push_back({BlobType::kTree, to_bytes("{\"nodes\":[]}\n"), false});
  inputs.push_back({BlobType::kTree, Bytes(5000, std::byte{'{'}), true});
  PackWriter w(1 << 20);
  std::uint64_t expected_size = 36;
  for (const Input& in : inputs) {
    Bytes stored = in.compress ? *zstd_compress(in.plain) : in.plain;
    auto sealed = seal(key, stored);
    REQUIRE(sealed);
    auto ulen = static_cast<std::uint32_t>(in.compress ? in.plain.size() : 0);
    REQUIRE(w.add(in.type, Id::hash(in.plain), *sealed, ulen));
    expected_size += sealed->size() + (in.compress ? 41 : 37);
    REQUIRE(w.file_size() == expected_size);
  }
  REQUIRE(w.count() == inputs.size());
  auto pack = w.finish(key);
  REQUIRE(pack);
  REQUIRE(w.empty());
  REQUIRE(pack->data.size() == expected_size);  // Σ len_enc + Σ entries + 32 + 4
  REQUIRE(pack->size == expected_size);
  REQUIRE(pack->id == Id::hash(pack->data));
  std::vector<PackedBlob> header = read_header(key, *pack);
  REQUIRE(header == pack->blobs);
  std::uint32_t offset = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const PackedBlob& b = header[i];
    CHECK(b.offset == offset);
    offset += b.length;
    CHECK(b.type == inputs[i].type);
    CHECK(b.compressed() == inputs[i].compress);
    CHECK(b.id == Id::hash(inputs[i].plain));
    CHECK(b.pack == pack->id);
    CHECK(open_blob(key, *pack, b) == inputs[i].plain);
  }
}

TEST_CASE("pack writer refuses an empty pack and starts over after finish", "[pack][writer]") {
  MasterKey key = random_key();
  PackWriter w;
  REQUIRE(w.file_size() == 36);
  REQUIRE(w.finish(key).error().code == Errc::kInvalidArgument);
  for (int round = 0; round < 2; ++round) {
    Bytes plain = to_bytes("blob " + std::to_string(round));
    REQUIRE(w.add(BlobType::kData, Id::hash(plain), *seal(key, plain), 0));
    auto pack = w.finish(key);
    REQUIRE(pack);
    REQUIRE(pack->blobs.size() == 1);
    REQUIRE(pack->blobs[0].offset == 0);
    REQUIRE(read_header(key, *pack) == pack->blobs);
  }
  Bytes short_blob(10);
  REQUIRE(w.add(BlobType::kData, Id(), short_blob, 0).error().code == Errc::kInvalidArgument);
}

TEST_CASE("pack writer keeps the encrypted header within 16 MiB", "[pack][writer]") {
  MasterKey key = random_key();
  Bytes empty_sealed = *seal(key, {});  // 32 bytes, the smallest blob
  PackWriter w;
  std::size_t n = 0;
  while (w.fits(empty_sealed.size(), false)) {
    Id id = Id::hash(as_bytes(std::to_string(n++)));
    if (!w.add(BlobType::kData, id, empty_sealed, 0))
      FAIL("add failed although fits() said yes");
  }
  REQUIRE(n == (kPackMaxHeaderSize - kCryptoOverhead) / kPackEntrySize);
  REQUIRE(w.add(BlobType::kData, Id(), empty_sealed, 0).error().code == Errc::kInvalidArgument);
  auto pack = w.finish(key);
  REQUIRE(pack);
  std::uint32_t hlen = load_le32(pack->data.data() + pack->data.size() - 4);
  REQUIRE(hlen <= kPackMaxHeaderSize);
  REQUIRE(read_header(key, *pack).size() == n);
}

TEST_CASE("a streaming pack writer emits the file bytes in order and keeps none",
          "[pack][writer]") {
  MasterKey key = random_key();
  std::mt19937_64 rng(11);
  Bytes streamed;
  int calls = 0;
  PackWriter w([&](ByteSpan b) -> Result<void> {
    ++calls;
    streamed.insert(streamed.end(), b.begin(), b.end());
    return {};
  });
  std::vector<Bytes> plains;
  for (std::size_t n : {0, 1, 5000, 70000}) plains.push_back(random_plain(n, rng));
  for (const Bytes& p : plains) {
    REQUIRE(w.add(BlobType::kData, Id::hash(p), *seal(key, p), 0));
    REQUIRE(streamed.size() == w.blob_bytes());  // each blob is emitted when added
  }
  auto pack = w.finish(key);
  REQUIRE(pack);
  CHECK(calls == 5);  // one call per blob, one for the header and trailer
  CHECK(pack->data.empty());
  REQUIRE(pack->size == streamed.size());
  REQUIRE(pack->id == Id::hash(streamed));
  FinishedPack as_file{pack->id, streamed, pack->blobs, pack->size};
  REQUIRE(read_header(key, as_file) == pack->blobs);
  for (std::size_t i = 0; i < plains.size(); ++i)
    CHECK(open_blob(key, as_file, pack->blobs[i]) == plains[i]);
}

TEST_CASE("a pack writer whose sink failed refuses further blobs", "[pack][writer]") {
  MasterKey key = random_key();
  int budget = 1;  // the sink accepts one write, then reports a full disk
  PackWriter w([&](ByteSpan) -> Result<void> {
    if (budget-- > 0)
      return {};
    return fail(Errc::kIo, "no space left");
  });
  Bytes sealed = *seal(key, to_bytes("blob"));
  REQUIRE(w.add(BlobType::kData, Id::hash(as_bytes("a")), sealed, 0));
  auto second = w.add(BlobType::kData, Id::hash(as_bytes("b")), sealed, 0);
  REQUIRE_FALSE(second);
  CHECK(second.error().message == "no space left");
  CHECK(w.count() == 1);
  CHECK(w.add(BlobType::kData, Id::hash(as_bytes("c")), sealed, 0).error().code == Errc::kIo);
  CHECK(w.finish(key).error().code == Errc::kIo);
}
