#include "repo/repository.h"

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <unistd.h>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/ops/snapshot_filter.h"
#include "repo/ops/walk.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::kGoldenPassword;
using coffer::test::TempDir;

namespace {

// Counts loads per file kind, to prove what a cached open reads.
class CountingBackend final : public ReadBackend {
 public:
  explicit CountingBackend(std::unique_ptr<ReadBackend> inner) : inner_(std::move(inner)) {}
  Result<Bytes> load(const Handle& h, std::uint64_t o, std::uint64_t l) override {
    if (h.kind == FileKind::kIndex)
      ++*index_loads_;
    return inner_->load(h, o, l);
  }
  Result<std::uint64_t> stat(const Handle& h) override { return inner_->stat(h); }
  Result<void> list(FileKind k, const std::function<Result<void>(const FileInfo&)>& fn) override {
    return inner_->list(k, fn);
  }
  [[nodiscard]] std::string location() const override { return inner_->location(); }
  [[nodiscard]] BackendProperties properties() const override { return inner_->properties(); }
  std::shared_ptr<int> index_loads_ = std::make_shared<int>(0);

 private:
  std::unique_ptr<ReadBackend> inner_;
};

std::unique_ptr<Repository> open_repo(const std::string& path, const OpenOptions& o) {
  auto r = Repository::open(std::make_unique<LocalBackend>(path), kGoldenPassword, o);
  REQUIRE(r);
  REQUIRE((*r)->load_index());
  return std::move(*r);
}

std::string file_of(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) return e.path().string();
  return "";
}

}  // namespace

TEST_CASE("restic-made repositories open and their files read back", "[repository]") {
  TempDir tmp;
  auto version = GENERATE(1U, 2U);
  std::string path = coffer::test::copy_golden_repo(tmp, "v" + std::to_string(version));
  OpenOptions o;
  o.cache_dir = tmp.path() + "/cache";
  o.no_cache = GENERATE(false, true);
  auto repo = open_repo(path, o);
  REQUIRE(repo->config().version == version);
  auto snaps = repo->list_snapshots();
  REQUIRE(snaps);
  REQUIRE(snaps->size() == 2);
  REQUIRE(snaps->front().snapshot.hostname == "golden");
  REQUIRE(snaps->back().snapshot.tags == std::vector<std::string>{"two", "three"});
  Node root = root_node(snaps->back().snapshot);
  auto hello = find_node(*repo, root, "/data/hello.txt");
  REQUIRE(hello);
  REQUIRE(hello->size == 13);
  REQUIRE(hello->mtime.unix_seconds == 1580702706);
  REQUIRE(hello->mtime.nanos == 123456789);
  auto blob = repo->load_blob(BlobHandle{hello->content.at(0), BlobType::kData});
  REQUIRE(blob);
  REQUIRE(to_string(*blob) == "hello coffer\n");
  auto text = find_node(*repo, root, "/data/text.txt");
  REQUIRE(text);
  std::uint64_t total = 0;
  for (const Id& id : text->content)
    total += repo->load_blob(BlobHandle{id, BlobType::kData})->size();
  REQUIRE(total == 700000);
  REQUIRE(find_node(*repo, root, "/data/nope").error().code == Errc::kNotFound);
}

TEST_CASE("wrong password and missing repository are told apart", "[repository]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  auto wrong = Repository::open(std::make_unique<LocalBackend>(path), "not it", {});
  REQUIRE(wrong.error().code == Errc::kAuth);
  auto missing = Repository::open(std::make_unique<LocalBackend>(tmp.path() + "/none"), "x", {});
  REQUIRE(missing.error().code == Errc::kNoRepository);
}

TEST_CASE("a truncated key file is reported, not taken for a wrong password", "[repository]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::string key = file_of(path + "/keys");
  std::filesystem::resize_file(key, 40);
  auto r = Repository::open(std::make_unique<LocalBackend>(path), kGoldenPassword, {});
  REQUIRE_FALSE(r);
  REQUIRE(r.error().code == Errc::kCorrupt);
}

TEST_CASE("a second open of an unchanged repository reads no index file", "[repository][cache]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  OpenOptions o;
  o.cache_dir = tmp.path() + "/cache";
  int index_files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path + "/index"))
    ++index_files;
  REQUIRE(index_files > 0);
  for (int round = 0; round < 2; ++round) {
    auto counting = std::make_unique<CountingBackend>(std::make_unique<LocalBackend>(path));
    auto loads = counting->index_loads_;
    auto r = Repository::open(std::move(counting), kGoldenPassword, o);
    REQUIRE(r);
    REQUIRE((*r)->load_index());
    REQUIRE((*r)->index_size() > 0);
    REQUIRE(*loads == (round == 0 ? index_files : 0));
  }
}

TEST_CASE("a removed index file makes the cache rebuild", "[repository][cache]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  OpenOptions o;
  o.cache_dir = tmp.path() + "/cache";
  auto first = open_repo(path, o);
  std::uint64_t before = first->index_size();
  first.reset();
  std::vector<std::string> index_files;
  for (const auto& e : std::filesystem::directory_iterator(path + "/index"))
    index_files.push_back(e.path());
  std::filesystem::remove(index_files.at(0));
  auto second = open_repo(path, o);
  REQUIRE(second->index_size() < before);
}

TEST_CASE("corrupted pack bytes and index files give errors naming what is broken",
          "[repository]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  OpenOptions o;
  o.no_cache = true;
  SECTION("flipped byte inside a blob") {
    auto fault = std::make_unique<FaultBackend>(std::make_unique<LocalBackend>(path));
    FaultBackend* fb = fault.get();
    auto r = Repository::open(std::move(fault), kGoldenPassword, o);
    REQUIRE(r);
    REQUIRE((*r)->load_index());
    auto snaps = (*r)->list_snapshots();
    auto hello = find_node(**r, root_node(snaps->back().snapshot), "/data/hello.txt");
    REQUIRE(hello);
    auto where = (*r)->lookup(BlobHandle{hello->content[0], BlobType::kData});
    REQUIRE(where);
    fb->corrupt_byte(Handle{FileKind::kPack, (*where)->pack.hex()}, (*where)->offset + 20);
    auto blob = (*r)->load_blob(BlobHandle{hello->content[0], BlobType::kData});
    REQUIRE_FALSE(blob);
    REQUIRE(blob.error().code == Errc::kCorrupt);
    REQUIRE(blob.error().message.find((*where)->pack.hex()) != std::string::npos);
    REQUIRE(blob.error().message.find(hello->content[0].hex()) != std::string::npos);
  }
  SECTION("truncated index file") {
    std::string index = file_of(path + "/index");
    std::filesystem::permissions(index, std::filesystem::perms::owner_all);
    std::filesystem::resize_file(index, std::filesystem::file_size(index) / 2);
    auto r = Repository::open(std::make_unique<LocalBackend>(path), kGoldenPassword, o);
    REQUIRE(r);
    auto loaded = (*r)->load_index();
    REQUIRE_FALSE(loaded);
    REQUIRE(loaded.error().code == Errc::kCorrupt);
    REQUIRE(loaded.error().message.find("index/") != std::string::npos);
  }
}

TEST_CASE("snapshots resolve by prefix, latest and filters", "[repository]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v1");
  OpenOptions o;
  o.no_cache = true;
  auto repo = open_repo(path, o);
  auto all = repo->list_snapshots();
  REQUIRE(all);
  SnapshotFilter none;
  auto latest = find_snapshot(*repo, "latest", none);
  REQUIRE(latest);
  REQUIRE(latest->id == all->back().id);
  auto by_prefix = find_snapshot(*repo, all->front().id.hex().substr(0, 8), none);
  REQUIRE(by_prefix);
  REQUIRE(by_prefix->id == all->front().id);
  SnapshotFilter tag_one;
  tag_one.tags = {"one"};
  REQUIRE(find_snapshot(*repo, "latest", tag_one)->id == all->front().id);
  SnapshotFilter other_host;
  other_host.hosts = {"elsewhere"};
  REQUIRE(find_snapshot(*repo, "latest", other_host).error().code == Errc::kNotFound);
  REQUIRE(find_snapshot(*repo, "ffffffffffff", none).error().code == Errc::kNotFound);
}

TEST_CASE("a damaged index cache is detected, bypassed and rebuilt", "[repository][cache]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  OpenOptions o;
  o.cache_dir = tmp.path() + "/cache";
  auto first = open_repo(path, o);
  std::string cache_dir = o.cache_dir + "/" + first->config().id.hex();
  auto snaps = first->list_snapshots();
  REQUIRE(snaps);
  auto hello = find_node(*first, root_node(snaps->back().snapshot), "/data/hello.txt");
  REQUIRE(hello);
  auto where = first->lookup(BlobHandle{hello->content[0], BlobType::kData});
  REQUIRE(where);
  REQUIRE(where->has_value());
  first.reset();
  // Flip the byte right after the pack id inside the stored value of that blob.
  std::string mdb = cache_dir + "/index.lmdb/data.mdb";
  std::string bytes;
  {
    std::ifstream in(mdb, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string key(reinterpret_cast<const char*>(hello->content[0].bytes().data()), 32);
  std::string pack(reinterpret_cast<const char*>((*where)->pack.bytes().data()), 32);
  auto pos = bytes.find(pack);
  std::size_t flips = 0;
  while (pos != std::string::npos) {
    bytes[pos + 32] = static_cast<char>(bytes[pos + 32] ^ 0x55);
    ++flips;
    pos = bytes.find(pack, pos + 33);
  }
  REQUIRE(flips > 0);
  {
    std::ofstream out(mdb, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto second = open_repo(path, o);
  auto blob = second->load_blob(BlobHandle{hello->content[0], BlobType::kData});
  INFO((blob ? std::string() : blob.error().message));
  REQUIRE(blob);
  REQUIRE(to_string(*blob) == "hello coffer\n");
  REQUIRE(std::filesystem::exists(cache_dir + "/index-damaged"));
  second.reset();
  auto third = open_repo(path, o);
  REQUIRE_FALSE(std::filesystem::exists(cache_dir + "/index-damaged"));
  REQUIRE(to_string(*third->load_blob(BlobHandle{hello->content[0], BlobType::kData})) ==
          "hello coffer\n");
}
