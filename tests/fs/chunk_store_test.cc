// ChunkStore against a real restic-made repository behind a FaultBackend: single-flight,
// coalescing, zero chunks, RAM budget and scan resistance, the disk cache (persistence, cap,
// corrupted files), corruption in packs, retries, deadlines, and vanished packs.
#include "fs/chunk_store.h"

#include <atomic>
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "fs/chunk_file.h"
#include "tests/fs/chunk_fixture.h"

using namespace coffer;
using coffer::fs::ChunkStore;
using coffer::fs::ChunkStoreOptions;
using coffer::fs::FileChunks;
using coffer::fs::ReadStream;
using coffer::test::chunk_repo;
using coffer::test::content_of;
using coffer::test::open_faulty;
using coffer::test::where_is;

namespace {

std::unique_ptr<ChunkStore> make_store(const repo::Repository& repo, ChunkStoreOptions o = {}) {
  auto s = ChunkStore::open(repo, std::move(o));
  REQUIRE(s);
  return std::move(*s);
}

FileChunks chunks_of(const ChunkStore& store, const std::string& name) {
  auto f =
      FileChunks::build(store.repository(), store.zeros(), content_of(store.repository(), name));
  REQUIRE(f);
  return std::move(*f);
}

// Reads the whole file in `step`-byte reads, as FUSE does.
repo::Bytes read_all(ChunkStore& store, const FileChunks& f, std::size_t step = 128 << 10) {
  ReadStream stream;
  repo::Bytes out(f.size());
  for (std::uint64_t off = 0; off < f.size(); off += step) {
    std::size_t n = std::min<std::uint64_t>(step, f.size() - off);
    auto got = fs::read_file(store, f, stream, off, std::span(out).subspan(off, n));
    REQUIRE(got);
    REQUIRE(*got == n);
  }
  return out;
}

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t sum = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2))
      sum += it->file_size(ec2);
  }
  return sum;
}

// A non-zero blob of big.bin with a neighbour in the same pack.
std::pair<repo::PackedBlob, repo::PackedBlob> two_neighbours(const repo::Repository& repo) {
  auto ids = content_of(repo, "big.bin");
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    auto a = where_is(repo, ids[i]);
    auto b = where_is(repo, ids[i + 1]);
    if (a.pack == b.pack)
      return {a, b};
  }
  FAIL("no two chunks of big.bin share a pack");
  return {};
}

}  // namespace

TEST_CASE("chunk store: eight readers of one chunk cause one backend load", "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  repo::Id id = content_of(*r.repo, "big.bin").at(3);
  r.fault->set_latency(std::chrono::milliseconds(100));
  std::uint64_t before = r.fault->load_calls();
  std::vector<fs::ChunkRef> got(8);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        auto c = store->get(id);
        if (c)
          got[t] = *c;
      });
    }
  }
  CHECK(r.fault->load_calls() - before == 1);
  for (const auto& c : got) {
    REQUIRE(c);
    CHECK(repo::Id::hash(*c) == id);
  }
  CHECK(store->stats().blobs_fetched == 1);
}

TEST_CASE("chunk store: without cache_random, random readers leave the RAM cache alone",
          "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.cache_random = false;
  auto store = make_store(*r.repo, o);
  std::vector<repo::Id> ids = content_of(*r.repo, "big.bin");
  REQUIRE(ids.size() >= 4);
  // Random reads: fetched, verified and returned, but not kept.
  for (int round = 0; round < 2; ++round) {
    auto c = store->get(ids.at(1), fs::Touch::kReuse);
    REQUIRE(c);
    CHECK(repo::Id::hash(**c) == ids.at(1));
  }
  CHECK(store->stats().blobs_fetched == 2);
  CHECK(store->stats().ram_bytes == 0);
  // A sequential reader's chunk is kept (scan segment), and a random hit on it is served.
  REQUIRE(store->get(ids.at(2), fs::Touch::kScan));
  std::uint64_t kept = store->stats().ram_bytes;
  CHECK(kept > 0);
  REQUIRE(store->get(ids.at(2), fs::Touch::kReuse));
  CHECK(store->stats().blobs_fetched == 3);
  CHECK(store->stats().ram_bytes == kept);
}

TEST_CASE("chunk store: a sequential read coalesces chunks into few ranged reads",
          "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  FileChunks f = chunks_of(*store, "big.bin");
  std::uint64_t before = r.fault->load_calls();
  repo::Bytes bytes = read_all(*store, f);
  std::uint64_t loads = r.fault->load_calls() - before;
  CHECK(bytes == chunk_repo().files.at("big.bin"));
  // The fewest ranged reads the pack layout allows, if the whole file were asked at once.
  std::vector<repo::PackedBlob> blobs;
  for (std::size_t i = 0; i < f.chunk_count(); ++i)
    blobs.push_back(where_is(*r.repo, f.chunk(i).id));
  std::size_t fewest =
      fs::plan_ranges(blobs, store->options().max_gap, store->options().max_read).size();
  INFO("chunks " << f.chunk_count() << ", loads " << loads << ", fewest possible " << fewest);
  CHECK(f.chunk_count() >= 8);
  CHECK(loads < f.chunk_count());
  CHECK(loads <= fewest + 5);  // prefetch windows ramp up 1, 2, 4, 8, 16, 32 chunks
  CHECK(store->stats().blobs_fetched == f.chunk_count());
}

TEST_CASE("chunk store: all-zero chunks are served without IO", "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  FileChunks f = chunks_of(*store, "zero.bin");
  std::uint64_t before = r.fault->load_calls();
  auto c = store->get(f.chunk(0).id);
  REQUIRE(c);
  CHECK((*c)->size() == f.chunk(0).size);
  CHECK(std::all_of((*c)->begin(), (*c)->end(), [](std::byte b) { return b == std::byte{0}; }));
  CHECK(store->stats().zero_hits == 1);
  CHECK(read_all(*store, f) == chunk_repo().files.at("zero.bin"));
  CHECK(r.fault->load_calls() == before);
}

TEST_CASE("chunk store: the RAM budget holds and a sequential pass keeps the hot set",
          "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.mem_budget = 6 << 20;
  auto store = make_store(*r.repo, o);
  std::vector<repo::Id> hot;
  for (int i = 0; i < 6; ++i) {
    for (const repo::Id& id : content_of(*r.repo, "small" + std::to_string(i))) hot.push_back(id);
  }
  for (int round = 0; round < 3; ++round) {
    for (const repo::Id& id : hot) REQUIRE(store->get(id));
  }
  FileChunks f = chunks_of(*store, "big.bin");
  ReadStream stream;
  repo::Bytes buf(128 << 10);
  std::uint64_t peak = 0;
  for (std::uint64_t off = 0; off < f.size(); off += buf.size()) {
    REQUIRE(fs::read_file(*store, f, stream, off, buf));
    peak = std::max(peak, store->stats().ram_bytes);
  }
  CHECK(peak <= o.mem_budget);
  CHECK(peak > o.mem_budget / 4);  // the pass did use the cache
  std::uint64_t loads = r.fault->load_calls();
  std::uint64_t hits = store->stats().ram_hits;
  for (const repo::Id& id : hot) REQUIRE(store->get(id));
  CHECK(r.fault->load_calls() == loads);
  CHECK(store->stats().ram_hits - hits == hot.size());
}

TEST_CASE("chunk store: the disk cache survives a new store instance", "[chunk_store][disk]") {
  test::TempDir cache;
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.disk_dir = cache.path() + "/chunks";
  FileChunks f = chunks_of(*make_store(*r.repo, o), "big.bin");
  {
    auto store = make_store(*r.repo, o);
    REQUIRE(read_all(*store, f) == chunk_repo().files.at("big.bin"));
  }
  std::filesystem::create_directories(o.disk_dir + "/ab");
  test::write_file(o.disk_dir + "/ab/tmp-leftover", repo::Bytes(100));
  auto store = make_store(*r.repo, o);
  CHECK(!std::filesystem::exists(o.disk_dir + "/ab/tmp-leftover"));
  std::uint64_t before = r.fault->load_calls();
  CHECK(read_all(*store, f) == chunk_repo().files.at("big.bin"));
  CHECK(r.fault->load_calls() == before);
  CHECK(store->stats().disk_hits == f.chunk_count());
  CHECK(store->stats().disk_bytes == dir_bytes(o.disk_dir));
}

TEST_CASE("chunk store: the disk cache never exceeds its cap", "[chunk_store][disk]") {
  test::TempDir cache;
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.disk_dir = cache.path() + "/chunks";
  o.disk_budget = 5 << 20;
  o.mem_budget = 4 << 20;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> peak{0};
  std::jthread sampler([&] {
    while (!done) {
      peak = std::max<std::uint64_t>(peak, dir_bytes(o.disk_dir));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  {
    auto store = make_store(*r.repo, o);
    FileChunks f = chunks_of(*store, "big.bin");
    CHECK(read_all(*store, f) == chunk_repo().files.at("big.bin"));
    CHECK(store->stats().disk_bytes <= o.disk_budget);
  }
  done = true;
  sampler.join();
  CHECK(peak <= o.disk_budget);
  CHECK(dir_bytes(o.disk_dir) > o.disk_budget / 4);
  o.disk_budget = 2 << 20;  // a smaller cap on the next start evicts down to it
  auto store = make_store(*r.repo, o);
  CHECK(dir_bytes(o.disk_dir) <= o.disk_budget);
  CHECK(store->stats().disk_bytes == dir_bytes(o.disk_dir));
}

TEST_CASE("chunk store: a corrupted disk cache file is deleted and refetched",
          "[chunk_store][disk]") {
  test::TempDir cache;
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.disk_dir = cache.path() + "/chunks";
  repo::Id id = content_of(*r.repo, "small3").at(0);
  std::string file = o.disk_dir + "/" + id.hex().substr(0, 2) + "/" + id.hex();
  REQUIRE(make_store(*r.repo, o)->get(id));
  REQUIRE(std::filesystem::exists(file));
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x55');
  }
  auto store = make_store(*r.repo, o);
  std::uint64_t before = r.fault->load_calls();
  auto c = store->get(id);
  REQUIRE(c);
  CHECK(repo::Id::hash(**c) == id);
  CHECK(store->stats().disk_rejected == 1);
  CHECK(r.fault->load_calls() - before == 1);
  store.reset();
  auto again = make_store(*r.repo, o);  // the refetched copy was written back, and is good
  REQUIRE(again->get(id));
  CHECK(again->stats().disk_hits == 1);
  CHECK(again->stats().disk_rejected == 0);
}

TEST_CASE("chunk store: a flipped byte in a pack fails only that chunk", "[chunk_store]") {
  test::TempDir cache;
  auto r = open_faulty(chunk_repo().path);
  auto [bad, good] = two_neighbours(*r.repo);
  r.fault->corrupt_byte(repo::Handle{repo::FileKind::kPack, bad.pack.hex()}, bad.offset + 40);
  ChunkStoreOptions o;
  o.disk_dir = cache.path() + "/chunks";
  auto store = make_store(*r.repo, o);
  std::vector<repo::Id> both{bad.id, good.id};
  store->schedule(both, {});
  auto b = store->get(bad.id);
  auto g = store->get(good.id);
  REQUIRE(!b);
  CHECK(b.error().code == repo::Errc::kCorrupt);
  REQUIRE(g);
  CHECK(repo::Id::hash(**g) == good.id);
  CHECK(store->stats().corrupt == 1);
  CHECK(
      !std::filesystem::exists(o.disk_dir + "/" + bad.id.hex().substr(0, 2) + "/" + bad.id.hex()));
}

TEST_CASE("chunk store: transient errors are retried", "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  repo::Id id = content_of(*r.repo, "big.bin").at(1);
  r.fault->fail_next_loads(3);
  auto c = store->get(id);
  REQUIRE(c);
  CHECK(repo::Id::hash(**c) == id);
  CHECK(store->stats().retries == 3);
}

TEST_CASE("chunk store: a broken or hung backend gives an error within the deadline",
          "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  repo::Id id = content_of(*r.repo, "big.bin").at(2);
  repo::Handle pack{repo::FileKind::kPack, where_is(*r.repo, id).pack.hex()};
  ChunkStoreOptions o;
  o.deadline = std::chrono::milliseconds(400);
  SECTION("permanent failure") {
    r.fault->break_file(pack);
    auto store = make_store(*r.repo, o);
    auto start = fs::Clock::now();
    auto c = store->get(id);
    REQUIRE(!c);
    CHECK(c.error().code == repo::Errc::kIo);
    CHECK(fs::Clock::now() - start < std::chrono::seconds(2));
    std::uint64_t loads = r.fault->load_calls();
    CHECK(!store->get(id));  // remembered for error_ttl: no new load
    CHECK(r.fault->load_calls() == loads);
  }
  SECTION("endless transient failures") {
    r.fault->fail_next_loads(1000000);
    auto store = make_store(*r.repo, o);
    auto start = fs::Clock::now();
    auto c = store->get(id);
    REQUIRE(!c);
    CHECK(c.error().code == repo::Errc::kIo);
    CHECK(fs::Clock::now() - start < std::chrono::seconds(2));
    r.fault->fail_next_loads(0);
  }
  SECTION("a backend that hangs") {
    auto store = make_store(*r.repo, o);
    r.fault->set_latency(std::chrono::milliseconds(1500));
    auto start = fs::Clock::now();
    auto c = store->get(id);
    REQUIRE(!c);
    CHECK(c.error().code == repo::Errc::kIo);
    CHECK(fs::Clock::now() - start < std::chrono::milliseconds(1200));
  }
}

TEST_CASE("chunk store: a vanished pack is kNotFound, and a reload hook gets one retry",
          "[chunk_store]") {
  test::TempDir tmp;
  std::filesystem::copy(chunk_repo().path, tmp.path() + "/repo",
                        std::filesystem::copy_options::recursive);
  auto r = open_faulty(tmp.path() + "/repo");
  repo::Id id = content_of(*r.repo, "small2").at(0);
  std::string pack = where_is(*r.repo, id).pack.hex();
  std::string file = tmp.path() + "/repo/data/" + pack.substr(0, 2) + "/" + pack;
  std::filesystem::rename(file, file + ".away");
  SECTION("without a hook") {
    auto store = make_store(*r.repo);
    auto c = store->get(id);
    REQUIRE(!c);
    CHECK(c.error().code == repo::Errc::kNotFound);
  }
  SECTION("with a hook that brings it back") {
    ChunkStoreOptions o;
    int reloads = 0;
    o.reload_index = [&]() -> repo::Result<void> {
      ++reloads;
      std::filesystem::rename(file + ".away", file);
      return {};
    };
    auto store = make_store(*r.repo, o);
    auto c = store->get(id);
    REQUIRE(c);
    CHECK(repo::Id::hash(**c) == id);
    CHECK(reloads == 1);
  }
}

TEST_CASE("chunk store: prefetch fills the cache and respects its budget", "[chunk_store]") {
  auto r = open_faulty(chunk_repo().path);
  std::vector<repo::Id> ids = content_of(*r.repo, "big.bin");
  SECTION("within budget") {
    auto store = make_store(*r.repo);
    store->prefetch(ids);
    for (const repo::Id& id : ids) REQUIRE(store->get(id));
    CHECK(store->stats().blobs_fetched == ids.size());
    CHECK(store->stats().fetches < ids.size());
  }
  SECTION("over budget: dropped, not blocked") {
    ChunkStoreOptions o;
    o.prefetch_budget = 1;
    auto store = make_store(*r.repo, o);
    std::uint64_t before = r.fault->load_calls();
    store->prefetch(ids);
    CHECK(store->stats().prefetch_dropped > 0);
    CHECK(r.fault->load_calls() == before);
    REQUIRE(store->get(ids.at(0)));  // demand still works
  }
}
