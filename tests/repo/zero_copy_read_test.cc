// Tests for the read path that avoids copies and zero-fills: LocalBackend::load_shared
// (O_DIRECT for ranges the page cache does not hold), ReadBackend's default load_shared, and
// decoding into caller buffers (open_sealed_into, zstd_decompress_into,
// Repository::decode_blob_into) against the buffered, allocating versions on restic-made
// repositories.
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/backend/mem_backend.h"
#include "repo/compress/zstd.h"
#include "repo/crypto/crypto.h"
#include "repo/pack/pack_format.h"
#include "repo/repository.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::kGoldenPassword;
using coffer::test::TempDir;

namespace {

Bytes noise(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng());
  return b;
}

std::size_t resident_pages(const std::string& path, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  REQUIRE(map != MAP_FAILED);
  std::vector<unsigned char> resident((size + 4095) / 4096);
  REQUIRE(::mincore(map, size, resident.data()) == 0);
  ::munmap(map, size);
  ::close(fd);
  std::size_t n = 0;
  for (unsigned char r : resident) n += r & 1;
  return n;
}

// Drops the file's clean pages from the page cache; false if some stay resident (a file
// system whose pages cannot be dropped, such as tmpfs).
bool drop_cached(const std::string& path, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return resident_pages(path, size) == 0;
}

std::unique_ptr<Repository> open_golden(const TempDir& dir, const std::string& name) {
  OpenOptions o;
  o.no_cache = true;
  auto r =
      Repository::open(std::make_unique<LocalBackend>(coffer::test::copy_golden_repo(dir, name)),
                       kGoldenPassword, o);
  REQUIRE(r);
  REQUIRE((*r)->load_index());
  return std::move(*r);
}

}  // namespace

TEST_CASE("load_shared returns the same bytes as load, cached or not", "[backend][direct]") {
  TempDir dir;
  LocalBackend backend(dir.path() + "/repo");
  REQUIRE(backend.create());
  // Not a multiple of 4096: the last aligned block runs past the end of the file.
  const std::size_t size = (3 << 20) + 1234;
  Bytes data = noise(size, 7);
  Handle h{FileKind::kPack, Id::hash(data).hex()};
  REQUIRE(backend.save(h, data));
  std::string path = dir.path() + "/repo/" + h.path();

  struct Range {
    std::uint64_t offset, length;
  };
  const std::vector<Range> ranges = {
      {0, size},              // the whole file
      {1, 300000},            // unaligned start
      {4096, 1 << 20},        // aligned
      {12345, size - 12345},  // up to the unaligned end
      {size - 262144, 262144},
      {100, 1000},  // small: the buffered path
  };
  for (bool cold : {true, false}) {
    for (const Range& r : ranges) {
      CAPTURE(cold, r.offset, r.length);
      bool dropped = cold && drop_cached(path, size);
      struct statfs fs {};
      REQUIRE(::statfs(path.c_str(), &fs) == 0);
      if (cold && fs.f_type != TMPFS_MAGIC)
        REQUIRE(dropped);  // a disk file system lets clean pages go
      auto got = backend.load_shared(h, r.offset, r.length);
      REQUIRE(got);
      REQUIRE(got->owner);
      REQUIRE(got->bytes.size() == r.length);
      CHECK(std::equal(got->bytes.begin(), got->bytes.end(), data.begin() + r.offset));
      if (dropped && r.length >= (256 << 10)) {
        // Read with O_DIRECT: the page cache did not fill with the pack's pages.
        CHECK(resident_pages(path, size) == 0);
      }
    }
  }
}

TEST_CASE("load_shared reports missing and short files like load", "[backend][direct]") {
  TempDir dir;
  LocalBackend backend(dir.path() + "/repo");
  REQUIRE(backend.create());
  Bytes data = noise(1 << 20, 9);
  Handle h{FileKind::kPack, Id::hash(data).hex()};
  REQUIRE(backend.save(h, data));
  drop_cached(dir.path() + "/repo/" + h.path(), data.size());
  auto past = backend.load_shared(h, 4096, data.size());  // runs 4096 bytes past the end
  REQUIRE_FALSE(past);
  CHECK(past.error().code == Errc::kCorrupt);
  auto missing = backend.load_shared(Handle{FileKind::kPack, std::string(64, 'a')}, 0, 1 << 20);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::kNotFound);
}

TEST_CASE("the default load_shared wraps load", "[backend][direct]") {
  MemBackend backend;
  Bytes data = noise(5000, 3);
  Handle h{FileKind::kPack, Id::hash(data).hex()};
  REQUIRE(backend.save(h, data));
  auto got = backend.load_shared(h, 10, 4000);
  REQUIRE(got);
  CHECK(std::equal(got->bytes.begin(), got->bytes.end(), data.begin() + 10));
  CHECK(got->bytes.size() == 4000);
  CHECK_FALSE(backend.load_shared(Handle{FileKind::kPack, std::string(64, 'b')}, 0, 1));
}

TEST_CASE("open_sealed_into and zstd_decompress_into check sizes and bytes", "[crypto][direct]") {
  MasterKey key;
  for (std::size_t i = 0; i < 32; ++i) key.encrypt[i] = std::byte(i * 7 + 1);
  for (std::size_t i = 0; i < 16; ++i) key.mac_k[i] = std::byte(0x21 + i);
  for (std::size_t i = 0; i < 16; ++i) key.mac_r[i] = std::byte(0x93 + i);
  Bytes plain = noise(10000, 5);
  auto sealed = seal(key, plain);
  REQUIRE(sealed);
  Bytes out(plain.size());
  REQUIRE(open_sealed_into(key, *sealed, out));
  CHECK(out == plain);
  Bytes wrong(plain.size() + 1);
  auto r = open_sealed_into(key, *sealed, wrong);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kInvalidArgument);
  (*sealed)[30] ^= std::byte{4};
  Bytes untouched(plain.size(), std::byte{0x5a});
  r = open_sealed_into(key, *sealed, untouched);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kCorrupt);
  CHECK(std::all_of(untouched.begin(), untouched.end(),
                    [](std::byte b) { return b == std::byte{0x5a}; }));

  auto frame = zstd_compress(plain);
  REQUIRE(frame);
  Bytes z(plain.size());
  REQUIRE(zstd_decompress_into(*frame, z));
  CHECK(z == plain);
  Bytes small(plain.size() - 1), large(plain.size() + 1);
  CHECK(zstd_decompress_into(*frame, small).error().code == Errc::kCorrupt);
  CHECK(zstd_decompress_into(*frame, large).error().code == Errc::kCorrupt);
  CHECK(zstd_decompress_into(ByteSpan(*frame).first(frame->size() - 3), z).error().code ==
        Errc::kCorrupt);
}

TEST_CASE("decode_blob_into equals decode_blob on every blob of restic's repositories",
          "[repository][direct]") {
  for (const char* name : {"v1", "v2"}) {
    CAPTURE(name);
    TempDir dir;
    auto repo = open_golden(dir, name);
    auto packs = repo->list_ids(FileKind::kPack);
    REQUIRE(packs);
    REQUIRE_FALSE(packs->empty());
    std::size_t compressed = 0, blobs = 0;
    for (const Id& pack : *packs) {
      auto data = repo->backend().load(Handle{FileKind::kPack, pack.hex()}, 0, 0);
      REQUIRE(data);
      std::uint32_t hlen = load_le32(data->data() + data->size() - 4);
      auto header =
          open_sealed(repo->key(), ByteSpan(*data).subspan(data->size() - 4 - hlen, hlen));
      REQUIRE(header);
      auto parsed = parse_pack_header(*header, pack);
      REQUIRE(parsed);
      for (const PackedBlob& b : *parsed) {
        ByteSpan sealed = ByteSpan(*data).subspan(b.offset, b.length);
        auto want = repo->decode_blob(b, sealed);
        REQUIRE(want);
        Bytes got(b.plain_size());
        REQUIRE(repo->decode_blob_into(b, sealed, got));
        CHECK(got == *want);
        ++blobs;
        compressed += b.compressed() ? 1 : 0;
        Bytes wrong(b.plain_size() + 1);
        CHECK(repo->decode_blob_into(b, sealed, wrong).error().code == Errc::kInvalidArgument);
        Bytes flipped(sealed.begin(), sealed.end());
        flipped[flipped.size() / 2] ^= std::byte{1};
        CHECK(repo->decode_blob_into(b, flipped, got).error().code == Errc::kCorrupt);
        PackedBlob other = b;  // the right bytes under another id: the hash check catches it
        other.id = Id::hash(as_bytes("not this blob"));
        CHECK(repo->decode_blob_into(other, sealed, got).error().code == Errc::kCorrupt);
      }
    }
    CHECK(blobs > 0);
    if (std::string(name) == "v2")
      CHECK(compressed > 0);
  }
}

TEST_CASE("the fault backend's load_shared injects the same faults as load, once per call",
          "[backend][direct][fault]") {
  TempDir dir;
  auto local = std::make_unique<LocalBackend>(dir.path() + "/repo");
  REQUIRE(local->create());
  Bytes data = noise(1 << 20, 11);
  Handle h{FileKind::kPack, Id::hash(data).hex()};
  REQUIRE(local->save(h, data));
  FaultBackend fault(std::move(local));
  auto clean = fault.load_shared(h, 4096, 512 << 10);
  REQUIRE(clean);
  CHECK(std::equal(clean->bytes.begin(), clean->bytes.end(), data.begin() + 4096));
  CHECK(fault.load_calls() == 1);
  fault.corrupt_byte(h, 5000);
  auto flipped = fault.load_shared(h, 4096, 512 << 10);
  REQUIRE(flipped);
  CHECK(fault.load_calls() == 2);
  CHECK(flipped->bytes[5000 - 4096] == (data[5000] ^ std::byte{0x01}));
  CHECK(std::equal(flipped->bytes.begin() + 1000, flipped->bytes.end(), data.begin() + 5096));
  fault.fail_next_loads(1);
  auto failed = fault.load_shared(h, 0, 300000);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().retryable);
  fault.break_file(h);
  CHECK_FALSE(fault.load_shared(h, 0, 300000));
  CHECK(fault.load_calls() == 4);
}
