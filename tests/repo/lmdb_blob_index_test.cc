// Tests of the LMDB index cache against real LMDB files in temporary directories.
#include "repo/cache/lmdb_blob_index.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace coffer::repo;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "coffer-lmdb-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  // A not yet existing directory below the temp dir, for open() to create.
  [[nodiscard]] std::string cache() const { return path_ + "/c/index"; }
  [[nodiscard]] std::string data_file() const { return cache() + "/data.mdb"; }

 private:
  std::string path_;
};

// Deterministic pseudo-random ids (splitmix64), distinct for distinct seeds in practice.
Id test_id(std::uint64_t seed) {
  std::array<std::byte, Id::kSize> b{};
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 0x1234567ULL;
  for (std::size_t i = 0; i < Id::kSize; i += 8) {
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    store_le64(b.data() + i, z ^ (z >> 31));
  }
  return Id(b);
}

PackedBlob test_blob(std::uint64_t n, BlobType type = BlobType::kData) {
  auto u = static_cast<std::uint32_t>(n);
  return PackedBlob{test_id(n),
                    type,
                    test_id((1ULL << 40) + n / 100),
                    u * 7919u % (1u << 24),
                    100 + u % 5000,
                    u % 3 == 0 ? 0 : 200 + u % 7000};
}

std::vector<PackedBlob> test_blobs(std::uint64_t first, std::size_t count) {
  std::vector<PackedBlob> v;
  v.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    v.push_back(test_blob(first + i, i % 4 == 0 ? BlobType::kTree : BlobType::kData));
  }
  return v;
}

std::unique_ptr<LmdbBlobIndex> open_cache(const std::string& dir, const Id& repo) {
  auto r = LmdbBlobIndex::open(dir, repo);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
  return std::move(*r);
}

std::optional<PackedBlob> find(const LmdbBlobIndex& index, const Id& id, BlobType type) {
  auto r = index.lookup(BlobHandle{id, type});
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
  return *r;
}

void add(LmdbBlobIndex& index, const Id& file, const std::vector<PackedBlob>& blobs) {
  auto r = index.add_index_file(file, blobs);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
}

std::vector<Id> files_of(const LmdbBlobIndex& index) {
  auto r = index.index_files();
  REQUIRE(r);
  std::vector<Id> ids = *r;
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

const Id kRepo = test_id(424242);

}  // namespace

TEST_CASE("lmdb cache keeps data and tree blobs with the same id apart", "[lmdb]") {
  TempDir tmp;
  auto index = open_cache(tmp.cache(), kRepo);
  struct stat st {};
  REQUIRE(::stat(tmp.cache().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(index->size() == 0);

  PackedBlob data = test_blob(1, BlobType::kData);
  PackedBlob tree = test_blob(2, BlobType::kTree);
  tree.id = data.id;
  add(*index, test_id(900), {data, tree});

  CHECK(index->size() == 2);
  CHECK(find(*index, data.id, BlobType::kData) == data);
  CHECK(find(*index, data.id, BlobType::kTree) == tree);
  CHECK(find(*index, test_id(3), BlobType::kData) == std::nullopt);
  CHECK(files_of(*index) == std::vector<Id>{test_id(900)});
}

TEST_CASE("lmdb cache keeps the first copy of a blob", "[lmdb]") {
  TempDir tmp;
  auto index = open_cache(tmp.cache(), kRepo);
  PackedBlob first = test_blob(10);
  PackedBlob second = first;
  second.pack = test_id(11);
  second.offset = 4242;
  PackedBlob third = first;
  third.pack = test_id(12);

  SECTION("within one index file") { add(*index, test_id(1), {test_blob(5), first, second}); }
  SECTION("across index files") {
    add(*index, test_id(1), {test_blob(5), first});
    add(*index, test_id(2), {second, test_blob(6)});
    CHECK(find(*index, test_blob(6).id, BlobType::kData) == test_blob(6));
  }
  add(*index, test_id(3), {third});
  CHECK(find(*index, first.id, BlobType::kData) == first);
  CHECK(find(*index, test_blob(5).id, BlobType::kData) == test_blob(5));
}

TEST_CASE("lmdb cache survives reopening, and clear empties it", "[lmdb]") {
  TempDir tmp;
  auto a = test_blobs(0, 3000);
  auto b = test_blobs(3000, 500);
  {
    auto index = open_cache(tmp.cache(), kRepo);
    add(*index, test_id(1), a);
    add(*index, test_id(2), b);
  }
  auto index = open_cache(tmp.cache(), kRepo);
  CHECK(index->size() == 3500);
  CHECK(files_of(*index) ==
        std::vector<Id>{std::min(test_id(1), test_id(2)), std::max(test_id(1), test_id(2))});
  for (const auto& blob : {a[0], a[1234], a[2999], b[0], b[499]}) {
    CHECK(find(*index, blob.id, blob.type) == blob);
  }
  REQUIRE(index->clear());
  CHECK(index->size() == 0);
  CHECK(files_of(*index).empty());
  CHECK(find(*index, a[0].id, a[0].type) == std::nullopt);
  add(*index, test_id(3), b);
  index.reset();
  index = open_cache(tmp.cache(), kRepo);
  CHECK(index->size() == 500);
  CHECK(files_of(*index) == std::vector<Id>{test_id(3)});
}

TEST_CASE("lmdb cache is opened once per directory per process", "[lmdb]") {
  TempDir tmp;
  auto index = open_cache(tmp.cache(), kRepo);
  auto again = LmdbBlobIndex::open(tmp.cache() + "/.", kRepo);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == Errc::kIo);
  index.reset();
  CHECK(LmdbBlobIndex::open(tmp.cache(), kRepo));
}

TEST_CASE("lmdb cache of another repository or format version is wiped", "[lmdb]") {
  TempDir tmp;
  {
    auto index = open_cache(tmp.cache(), kRepo);
    add(*index, test_id(1), test_blobs(0, 100));
  }
  SECTION("another repository") {
    auto index = open_cache(tmp.cache(), test_id(7));
    CHECK(index->size() == 0);
    CHECK(files_of(*index).empty());
    index.reset();
    CHECK(open_cache(tmp.cache(), kRepo)->size() == 0);
  }
  SECTION("another format version") {
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    MDB_dbi dbi = 0;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_maxdbs(env, 3) == 0);
    REQUIRE(mdb_env_open(env, tmp.cache().c_str(), 0, 0600) == 0);
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
    std::array<std::byte, 4> version{};
    store_le32(version.data(), LmdbBlobIndex::kFormatVersion + 1);
    MDB_val k{6, const_cast<char*>("format")};
    MDB_val v{4, version.data()};
    REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    CHECK(open_cache(tmp.cache(), kRepo)->size() == 0);
  }
}

TEST_CASE("lmdb cache with a damaged or truncated data file is recreated empty", "[lmdb]") {
  TempDir tmp;
  auto blobs = test_blobs(0, 5000);
  {
    auto index = open_cache(tmp.cache(), kRepo);
    add(*index, test_id(1), blobs);
  }
  std::vector<char> bytes = read_file(tmp.data_file());
  REQUIRE(bytes.size() > 100'000);
  std::mt19937 rng(7);
  SECTION("garbage over the whole file") {
    std::generate(bytes.begin(), bytes.end(), [&] { return static_cast<char>(rng()); });
  }
  SECTION("garbage over the first 8 KiB") {
    std::generate_n(bytes.begin(), 8192, [&] { return static_cast<char>(rng()); });
  }
  SECTION("truncated to half") { bytes.resize(bytes.size() / 2); }
  SECTION("truncated to 100 bytes") { bytes.resize(100); }
  write_file(tmp.data_file(), bytes);

  auto index = open_cache(tmp.cache(), kRepo);
  CHECK(index->size() == 0);
  CHECK(files_of(*index).empty());
  CHECK(find(*index, blobs[7].id, blobs[7].type) == std::nullopt);
  add(*index, test_id(2), {blobs[7]});
  CHECK(find(*index, blobs[7].id, blobs[7].type) == blobs[7]);
}

TEST_CASE("lmdb cache reports a flipped byte in a stored entry as corrupt", "[lmdb]") {
  TempDir tmp;
  PackedBlob victim = test_blob(77);
  victim.pack = test_id(5555);  // the only entry in this pack, so its bytes are findable
  auto others = test_blobs(1000, 2000);
  auto all = others;
  all.insert(all.begin() + 1000, victim);
  {
    auto index = open_cache(tmp.cache(), kRepo);
    add(*index, test_id(1), all);
  }
  std::vector<char> bytes = read_file(tmp.data_file());
  auto pack = victim.pack.span();
  auto pos = std::search(bytes.begin(), bytes.end(), pack.begin(), pack.end(),
                         [](char c, std::byte b) { return static_cast<std::byte>(c) == b; });
  REQUIRE(pos != bytes.end());
  REQUIRE(std::search(pos + 1, bytes.end(), pack.begin(), pack.end(), [](char c, std::byte b) {
            return static_cast<std::byte>(c) == b;
          }) == bytes.end());
  // The value is pack id (0..31), offset, length, raw length (32..43), check (44..47).
  const int at = GENERATE(0, 17, 32, 36, 41, 44, 47);
  pos[at] = static_cast<char>(pos[at] ^ 0x10);
  write_file(tmp.data_file(), bytes);

  auto index = open_cache(tmp.cache(), kRepo);
  CHECK(index->size() == all.size());
  auto r = index->lookup(BlobHandle{victim.id, victim.type});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kCorrupt);
  CHECK_THAT(r.error().message, Catch::Contains("index cache damaged"));
  CHECK(find(*index, others[0].id, others[0].type) == others[0]);
  CHECK(find(*index, others[1999].id, others[1999].type) == others[1999]);
}

TEST_CASE("lmdb cache serves concurrent lookups during a write", "[lmdb]") {
  TempDir tmp;
  auto index = open_cache(tmp.cache(), kRepo);
  auto blobs = test_blobs(0, 20'000);
  add(*index, test_id(1), blobs);
  auto later = test_blobs(50'000, 20'000);

  std::atomic<int> wrong{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  for (std::size_t t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      for (std::size_t i = 0; i < blobs.size(); ++i) {
        const PackedBlob& b = blobs[(i * 7 + t * 2503) % blobs.size()];
        auto r = index->lookup(BlobHandle{b.id, b.type});
        if (!r) {
          ++errors;
        } else if (*r != b) {
          ++wrong;
        }
      }
    });
  }
  auto written = index->add_index_file(test_id(2), later);
  for (auto& t : readers) t.join();
  REQUIRE(written);
  CHECK(errors == 0);
  CHECK(wrong == 0);
  CHECK(index->size() == 40'000);
  CHECK(find(*index, later[123].id, later[123].type) == later[123]);
}

namespace {

// Forks a child that adds `files` one by one (file f has id test_id(f)) and kills it with
// SIGKILL `delay_ms` after it has added the first file.
void write_until_killed(const std::string& dir, const std::vector<std::vector<PackedBlob>>& files,
                        int delay_ms) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // child: no Catch2 here, and _exit so the parent's TempDir survives
    ::close(fds[0]);
    auto index = LmdbBlobIndex::open(dir, kRepo);
    if (!index || !(*index)->add_index_file(test_id(0), files[0]))
      ::_exit(2);
    if (::write(fds[1], "x", 1) != 1)
      ::_exit(3);
    for (std::size_t f = 1; f < files.size(); ++f) {
      if (!(*index)->add_index_file(test_id(f), files[f]))
        ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  char c = 0;
  auto got = ::read(fds[0], &c, 1);
  ::close(fds[0]);
  if (got == 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(got == 1);
}

}  // namespace

TEST_CASE("lmdb cache never records a half-added index file after kill -9", "[lmdb]") {
  const std::vector<std::vector<PackedBlob>> files = {
      test_blobs(0, 1000), test_blobs(10'000, 150'000), test_blobs(500'000, 150'000)};
  std::string outcomes;
  for (int delay : {0, 2, 10, 40, 100, 250, 600}) {
    TempDir tmp;
    write_until_killed(tmp.cache(), files, delay);
    auto index = open_cache(tmp.cache(), kRepo);
    auto recorded = files_of(*index);
    std::uint64_t expected_size = 0;
    for (std::size_t f = 0; f < files.size(); ++f) {
      bool is_recorded = std::binary_search(recorded.begin(), recorded.end(), test_id(f));
      if (f == 0)
        CHECK(is_recorded);
      if (is_recorded)
        expected_size += files[f].size();
      for (std::size_t i = 0; i < files[f].size(); i += 997) {  // all in or all out
        const PackedBlob& b = files[f][i];
        CHECK(find(*index, b.id, b.type) == (is_recorded ? std::optional(b) : std::nullopt));
      }
    }
    CHECK(index->size() == expected_size);
    outcomes += " " + std::to_string(delay) + "ms:" + std::to_string(recorded.size());
  }
  SUCCEED("files recorded after kill at" << outcomes);
}

namespace {

// Runs `f` and returns "<wall> ms wall, <cpu> ms cpu" (cpu: this process, all threads).
template <class F>
std::string timed(F&& f) {
  auto wall0 = std::chrono::steady_clock::now();
  std::clock_t cpu0 = std::clock();
  f();
  std::clock_t cpu1 = std::clock();
  auto wall1 = std::chrono::steady_clock::now();
  auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wall1 - wall0).count();
  auto cpu_ms = static_cast<long>(1000.0 * static_cast<double>(cpu1 - cpu0) / CLOCKS_PER_SEC);
  return std::to_string(wall_ms) + " ms wall, " + std::to_string(cpu_ms) + " ms cpu";
}

}  // namespace

TEST_CASE("lmdb cache adds and looks up 200k blobs quickly", "[lmdb][timing]") {
  TempDir tmp;
  auto index = open_cache(tmp.cache(), kRepo);
  auto first = test_blobs(0, 200'000);
  auto second = test_blobs(1'000'000, 200'000);
  std::vector<std::size_t> order(first.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(1));

  std::string add_empty = timed([&] { add(*index, test_id(1), first); });
  std::string add_more = timed([&] { add(*index, test_id(2), second); });
  std::size_t wrong = 0;
  std::string lookups = timed([&] {
    for (std::size_t i : order) {
      auto r = index->lookup(BlobHandle{first[i].id, first[i].type});
      if (!r || *r != first[i])
        ++wrong;
    }
  });
  CHECK(wrong == 0);
  CHECK(index->size() == 400'000);
  WARN("lmdb cache: add 200k into empty: " << add_empty << "; add 200k into 200k: " << add_more
                                           << "; 200k random lookups: " << lookups << "; data.mdb "
                                           << fs::file_size(tmp.data_file()) / 1024 << " KiB");
}
