// FileChunks, ReadStream and read_file over real restic-made repositories, the zero-chunk
// ids against OpenSSL's SHA-256, and a throughput figure with 20 ms of injected latency.
#include "fs/chunk_file.h"

#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include "repo/backend/local/local_backend.h"
#include "tests/fs/chunk_fixture.h"

using namespace coffer;
using coffer::fs::ChunkStore;
using coffer::fs::ChunkStoreOptions;
using coffer::fs::FileChunks;
using coffer::fs::ReadStream;
using coffer::test::chunk_repo;
using coffer::test::content_of;
using coffer::test::open_faulty;

namespace {

std::unique_ptr<ChunkStore> make_store(const repo::Repository& repo, ChunkStoreOptions o = {}) {
  auto s = ChunkStore::open(repo, std::move(o));
  REQUIRE(s);
  return std::move(*s);
}

FileChunks build(const ChunkStore& store, const std::vector<repo::Id>& content) {
  auto f = FileChunks::build(store.repository(), store.zeros(), content);
  REQUIRE(f);
  return std::move(*f);
}

bool all_zero(const repo::Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

}  // namespace

TEST_CASE("zero chunk ids equal the SHA-256 of zero bytes", "[chunk_file][zero]") {
  fs::ZeroChunks zeros;
  std::vector<std::uint64_t> sizes{0,     1,      55,     56,     63,      64,      65,
                                   119,   120,    127,    128,    8191,    8192,    8193,
                                   65536, 100000, 524288, 524289, 1048575, 3 << 20, 8 << 20};
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i)
    sizes.push_back(std::uniform_int_distribution<std::uint64_t>(1, 9 << 20)(rng));
  for (std::uint64_t n : sizes) {
    INFO("size " << n);
    CHECK(zeros.id_for(n) == repo::Id::hash(repo::Bytes(n)));
  }
  CHECK(zeros.id_for(4) != zeros.id_for(5));
}

TEST_CASE("read_file returns exactly the file's bytes at random offsets", "[chunk_file]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  for (const auto& [name, data] : chunk_repo().files) {
    INFO(name);
    FileChunks f = build(*store, content_of(*r.repo, name));
    REQUIRE(f.size() == data.size());
    std::mt19937_64 rng(std::hash<std::string>{}(name));
    ReadStream stream;
    for (int i = 0; i < 60; ++i) {
      std::uint64_t off = rng() % (data.size() + 10);
      std::size_t len = rng() % (i % 3 == 0 ? 4096 : 3 << 20);
      repo::Bytes out(len, std::byte{0x77});
      auto n = fs::read_file(*store, f, stream, off, out);
      REQUIRE(n);
      std::size_t expect = off >= data.size() ? 0 : std::min<std::uint64_t>(len, data.size() - off);
      REQUIRE(*n == expect);
      REQUIRE(std::equal(out.begin(), out.begin() + *n, data.begin() + std::min(off, data.size())));
    }
  }
}

TEST_CASE("read_file is correct with several threads on one stream", "[chunk_file]") {
  auto r = open_faulty(chunk_repo().path);
  ChunkStoreOptions o;
  o.mem_budget = 8 << 20;
  auto store = make_store(*r.repo, o);
  const repo::Bytes& data = chunk_repo().files.at("big.bin");
  FileChunks f = build(*store, content_of(*r.repo, "big.bin"));
  ReadStream stream;
  std::atomic<int> bad{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(t);
        repo::Bytes out(256 << 10);
        for (int i = 0; i < 40; ++i) {
          std::uint64_t off = t % 2 == 0 ? rng() % data.size() : (i * out.size()) % data.size();
          auto n = fs::read_file(*store, f, stream, off, out);
          if (!n || !std::equal(out.begin(), out.begin() + *n, data.begin() + off))
            ++bad;
        }
      });
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("read_file reads golden restic repositories like load_blob", "[chunk_file]") {
  test::TempDir tmp;
  auto version = GENERATE(1U, 2U);
  auto opened =
      repo::Repository::open(std::make_unique<repo::LocalBackend>(
                                 test::copy_golden_repo(tmp, "v" + std::to_string(version))),
                             test::kGoldenPassword, repo::OpenOptions{tmp.path() + "/cache", true});
  REQUIRE(opened);
  repo::Repository& repo = **opened;
  REQUIRE(repo.load_index());
  auto store = make_store(repo);
  auto snaps = repo.list_snapshots();
  REQUIRE(snaps);
  for (const char* path :
       {"/data/hello.txt", "/data/sub dir/random.bin", "/data/text.txt", "/data/empty"}) {
    INFO(path);
    auto node = repo::find_node(repo, repo::root_node(snaps->back().snapshot), path);
    REQUIRE(node);
    repo::Bytes expect;
    for (const repo::Id& id : node->content) {
      auto b = repo.load_blob(repo::BlobHandle{id, repo::BlobType::kData});
      REQUIRE(b);
      expect.insert(expect.end(), b->begin(), b->end());
    }
    FileChunks f = build(*store, node->content);
    CHECK(f.size() == node->size);
    repo::Bytes out(f.size() + 100);
    ReadStream stream;
    auto n = fs::read_file(*store, f, stream, 0, out);
    REQUIRE(n);
    out.resize(*n);
    CHECK(out == expect);
  }
}

TEST_CASE("data and hole maps follow the all-zero chunks", "[chunk_file][holes]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  SECTION("a zero file is one hole") {
    FileChunks f = build(*store, content_of(*r.repo, "zero.bin"));
    CHECK(f.allocated_bytes() == 0);
    CHECK(!f.next_data(0));
    CHECK(f.next_hole(0) == 0);
    CHECK(f.next_hole(12345) == 12345);
    CHECK(!f.next_hole(f.size()));
  }
  SECTION("a random file is all data") {
    FileChunks f = build(*store, content_of(*r.repo, "big.bin"));
    CHECK(f.allocated_bytes() == f.size());
    CHECK(f.next_data(777) == 777);
    CHECK(f.next_hole(0) == f.size());
    CHECK(!f.next_data(f.size()));
  }
  SECTION("a mixed file matches the chunks' real contents") {
    FileChunks f = build(*store, content_of(*r.repo, "mixed.bin"));
    std::vector<bool> zero;  // oracle: decode each chunk and look at its bytes
    std::uint64_t holes = 0;
    for (std::size_t i = 0; i < f.chunk_count(); ++i) {
      auto b = r.repo->load_blob(repo::BlobHandle{f.chunk(i).id, repo::BlobType::kData});
      REQUIRE(b);
      zero.push_back(all_zero(*b));
      holes += zero.back() ? b->size() : 0;
    }
    REQUIRE(holes >= (2 << 20));  // the chunker left whole zero chunks in both runs
    CHECK(f.allocated_bytes() == f.size() - holes);
    for (std::uint64_t off = 0; off < f.size(); off += 97 * 1024 + 13) {
      auto [i, end] = f.chunk_range(off, 1);
      REQUIRE(end == i + 1);
      std::size_t d = i;
      while (d < zero.size() && zero[d]) ++d;
      std::size_t h = i;
      while (h < zero.size() && !zero[h]) ++h;
      std::optional<std::uint64_t> data = d == i            ? std::optional(off)
                                          : d < zero.size() ? std::optional(f.chunk(d).offset)
                                                            : std::nullopt;
      std::uint64_t hole = h == i ? off : h < zero.size() ? f.chunk(h).offset : f.size();
      INFO("offset " << off);
      CHECK(f.next_data(off) == data);
      CHECK(f.next_hole(off) == hole);
    }
  }
}

TEST_CASE("chunk ranges and stream detection", "[chunk_file]") {
  auto r = open_faulty(chunk_repo().path);
  auto store = make_store(*r.repo);
  FileChunks f = build(*store, content_of(*r.repo, "big.bin"));
  const auto& c1 = f.chunk(1);
  CHECK(f.chunk_range(0, 1) == std::pair<std::size_t, std::size_t>{0, 1});
  CHECK(f.chunk_range(c1.offset - 1, 2) == std::pair<std::size_t, std::size_t>{0, 2});
  CHECK(f.chunk_range(c1.offset, c1.size) == std::pair<std::size_t, std::size_t>{1, 2});
  CHECK(f.chunk_range(f.size() - 1, 100).second == f.chunk_count());
  CHECK(f.chunk_range(f.size(), 100).first == f.chunk_range(f.size(), 100).second);
  ReadStream s;
  std::vector<std::size_t> depths;
  for (std::uint64_t off = 0; off < 7 * 65536; off += 65536) {
    s.on_read(f, off, 65536, f.chunk_range(off, 65536).second);
    depths.push_back(s.depth());
  }
  CHECK(depths == std::vector<std::size_t>{4, 8, 16, 32, 32, 32, 32});
  auto plan = s.on_read(f, 15 << 20, 4096, f.chunk_range(15 << 20, 4096).second);
  CHECK(s.depth() == 0);
  CHECK(plan.touch == fs::Touch::kReuse);
  CHECK(plan.ahead_first == plan.ahead_last);
}

TEST_CASE("throughput with 20 ms latency: read_file vs one blob at a time", "[chunk_file][bench]") {
  auto r = open_faulty(chunk_repo().path);
  auto ids = content_of(*r.repo, "big.bin");
  const repo::Bytes& data = chunk_repo().files.at("big.bin");
  r.fault->set_latency(std::chrono::milliseconds(20));
  auto start = fs::Clock::now();
  repo::Bytes naive;
  for (const repo::Id& id : ids) {
    auto b = r.repo->load_blob(repo::BlobHandle{id, repo::BlobType::kData});
    REQUIRE(b);
    naive.insert(naive.end(), b->begin(), b->end());
  }
  double naive_s = std::chrono::duration<double>(fs::Clock::now() - start).count();
  REQUIRE(naive == data);
  auto store = make_store(*r.repo);
  FileChunks f = build(*store, ids);
  std::uint64_t loads = r.fault->load_calls();
  start = fs::Clock::now();
  ReadStream stream;
  repo::Bytes out(f.size());
  for (std::uint64_t off = 0; off < f.size(); off += 128 << 10) {
    std::size_t n = std::min<std::uint64_t>(128 << 10, f.size() - off);
    REQUIRE(fs::read_file(*store, f, stream, off, std::span(out).subspan(off, n)));
  }
  double seq_s = std::chrono::duration<double>(fs::Clock::now() - start).count();
  REQUIRE(out == data);
  double mib = static_cast<double>(data.size()) / (1 << 20);
  WARN("20 MiB, " << ids.size() << " chunks, 20 ms latency: one blob at a time " << mib / naive_s
                  << " MiB/s (" << ids.size() << " loads); sequential read_file " << mib / seq_s
                  << " MiB/s (" << r.fault->load_calls() - loads << " loads), x"
                  << naive_s / seq_s);
}
