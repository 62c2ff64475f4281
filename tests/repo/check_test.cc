// Tests of repo/ops/check* and repo/ops/stats: the --read-data-subset rules, and run_check on
// coffer-made repositories, clean and with each kind of damage made with real bytes on disk. The
// CLI and restic's own verdict on the same damage are tested in tests/tools/check_stats_test.py.
#include "repo/ops/check.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>

#include "repo/compress/zstd.h"
#include "repo/crypto/crypto.h"
#include "repo/index/index_file.h"
#include "repo/init.h"
#include "repo/location.h"
#include "repo/ops/backup.h"
#include "repo/ops/stats.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPassword = "check-test";

std::unique_ptr<Repository> open_repo(const std::string& path) {
  auto backend = open_backend(path);
  REQUIRE(backend);
  auto repo = Repository::open(std::move(*backend), kPassword,
                               OpenOptions{.cache_dir = "", .no_cache = true});
  REQUIRE(repo);
  return std::move(*repo);
}

struct Outcome {
  CheckSummary summary;
  std::vector<std::string> errors, hints, infos;

  [[nodiscard]] bool error_with(const std::string& a, const std::string& b = "") const {
    return std::any_of(errors.begin(), errors.end(), [&](const std::string& e) {
      return e.find(a) != std::string::npos && e.find(b) != std::string::npos;
    });
  }
};

Outcome check(const Repository& repo, ReadDataSubset subset = {}) {
  Outcome out;
  CheckOptions o;
  o.read_data = subset;
  o.report = [&](const CheckMessage& m) {
    auto& list = m.severity == CheckSeverity::kError  ? out.errors
                 : m.severity == CheckSeverity::kHint ? out.hints
                                                      : out.infos;
    list.push_back(m.text);
  };
  auto s = run_check(repo, o);
  REQUIRE(s);
  out.summary = *s;
  for (const auto& e : out.errors) UNSCOPED_INFO(e);
  return out;
}

ReadDataSubset all_data() {
  ReadDataSubset s;
  s.kind = ReadDataSubset::Kind::kAll;
  return s;
}

std::string pack_path(const std::string& repo, const Id& pack) {
  return repo + "/data/" + pack.hex().substr(0, 2) + "/" + pack.hex();
}

// Every index entry of the repository at `path`, with the index file it came from.
std::vector<std::pair<Id, PackedBlob>> index_entries(const Repository& repo) {
  std::vector<std::pair<Id, PackedBlob>> out;
  auto files = repo.list_ids(FileKind::kIndex);
  REQUIRE(files);
  for (const Id& f : *files) {
    auto json = repo.load_unpacked(FileKind::kIndex, f);
    REQUIRE(json);
    auto parsed = parse_index(as_chars(*json));
    REQUIRE(parsed);
    for (const auto& b : parsed->blobs) out.emplace_back(f, b);
  }
  return out;
}

// The largest data blob of the repository (its pack holds file content).
PackedBlob big_data_blob(const Repository& repo) {
  PackedBlob best;
  for (const auto& [file, b] : index_entries(repo))
    if (b.type == BlobType::kData && b.length > best.length)
      best = b;
  REQUIRE(best.length > 0);
  return best;
}

void flip_byte(const std::string& file, std::uint64_t offset) {
  fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x01));
}

// A fresh repository (cheap key derivation) with two coffer-made snapshots.
std::string test_repo(const TempDir& dir) {
  std::string path = dir.path() + "/repo";
  auto backend = open_backend(path);
  REQUIRE(backend);
  InitOptions init;
  init.key.kdf = KdfParams{1024, 8, 1};
  REQUIRE(init_repository(**backend, kPassword, init));
  std::string src = dir.path() + "/src";
  fs::create_directories(src + "/sub");
  std::mt19937_64 rng(5);
  std::string big(2 * 1024 * 1024, '\0');
  for (auto& c : big) c = static_cast<char>(rng());
  std::ofstream(src + "/big.bin", std::ios::binary) << big;
  std::ofstream(src + "/sub/a.txt") << "hello";
  auto repo = open_repo(path);
  BackupOptions o;
  o.paths = {src};
  o.hostname = "unit";
  for (int i = 0; i < 2; ++i) {
    REQUIRE(repo->load_index());
    REQUIRE(run_backup(*repo, o));
    fs::copy_file(src + "/big.bin", src + "/sub/copy.bin", fs::copy_options::overwrite_existing);
    std::ofstream(src + "/sub/b.txt") << "world";
  }
  return path;
}

}  // namespace

TEST_CASE("read-data-subset arguments parse as restic 0.14's", "[check]") {
  auto b = parse_read_data_subset("2/5");
  REQUIRE(b);
  CHECK((b->kind == ReadDataSubset::Kind::kBucket && b->n == 2 && b->t == 5));
  auto p = parse_read_data_subset("2.5%");
  REQUIRE(p);
  CHECK((p->kind == ReadDataSubset::Kind::kPercent && p->percent == 2.5));
  auto s = parse_read_data_subset("500M");
  REQUIRE(s);
  CHECK((s->kind == ReadDataSubset::Kind::kSize && s->bytes == 500ULL << 20));
  CHECK(parse_read_data_subset("3k")->bytes == 3072);
  CHECK(parse_read_data_subset("10b")->bytes == 10);
  for (const char* bad : {"0/5", "6/5", "1/300", "1/2/3", "5", "0%", "101%", "x%", "", "1.5G"}) {
    INFO(bad);
    auto r = parse_read_data_subset(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kInvalidArgument);
  }
  CHECK(parse_read_data_subset("1/300").error().message.find("at most 256") != std::string::npos);
}

TEST_CASE("pack subsets n/t partition the packs by first byte; x% and sizes pick at random",
          "[check]") {
  std::map<Id, std::uint64_t> packs;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 300; ++i) {
    std::array<std::byte, 32> b{};
    for (auto& x : b) x = static_cast<std::byte>(rng());
    packs.emplace(Id(b), 1000);
  }
  for (unsigned t : {1U, 3U, 5U, 256U}) {
    std::map<Id, int> seen;
    for (unsigned n = 1; n <= t; ++n) {
      ReadDataSubset s{ReadDataSubset::Kind::kBucket, n, t, 0, 0};
      for (const Id& id : select_packs(packs, s, rng)) {
        ++seen[id];
        CHECK(std::to_integer<unsigned>(id.bytes()[0]) % t == n - 1);
      }
    }
    CHECK(seen.size() == packs.size());
    CHECK(std::all_of(seen.begin(), seen.end(), [](const auto& e) { return e.second == 1; }));
  }
  ReadDataSubset pct{ReadDataSubset::Kind::kPercent, 0, 0, 10.0, 0};
  CHECK(select_packs(packs, pct, rng).size() == 30);
  pct.percent = 0.01;  // rounds to 0 packs: restic reads one
  CHECK(select_packs(packs, pct, rng).size() == 1);
  ReadDataSubset size{ReadDataSubset::Kind::kSize, 0, 0, 0, 60000};  // 20 % of 300 000 bytes
  CHECK(select_packs(packs, size, rng).size() == 60);
  size.bytes = 1ULL << 40;  // more than everything
  CHECK(select_packs(packs, size, rng).size() == packs.size());
}

TEST_CASE("check passes a clean repository, also reading all data", "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  Outcome o = check(*repo, all_data());
  CHECK(o.errors.empty());
  CHECK(o.infos.empty());
  CHECK(o.summary.snapshots == 2);
  CHECK(o.summary.packs > 2);
  CHECK(o.summary.packs_read == o.summary.packs);
  CHECK(o.summary.trees >= 3);
}

TEST_CASE("check --read-data finds a flipped byte inside a blob and names pack and blob",
          "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  PackedBlob victim = big_data_blob(*repo);
  flip_byte(pack_path(path, victim.pack), victim.offset + 100);
  Outcome structural = check(*repo);
  CHECK(structural.errors.empty());  // sizes and headers are intact
  Outcome read = check(*repo, all_data());
  CHECK(read.error_with(victim.pack.hex(), "Pack ID does not match"));
  CHECK(read.error_with(victim.pack.hex(), victim.id.hex()));
  CHECK(read.errors.size() == 2);
}

TEST_CASE("check names missing, truncated and unreferenced packs", "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  PackedBlob victim = big_data_blob(*repo);
  std::string file = pack_path(path, victim.pack);
  SECTION("missing") {
    fs::remove(file);
    Outcome o = check(*repo, all_data());
    CHECK(o.error_with("pack " + victim.pack.hex() + ": does not exist"));
    CHECK(o.errors.size() == 1);
  }
  SECTION("truncated") {
    fs::resize_file(file, fs::file_size(file) - 5);
    Outcome o = check(*repo);
    CHECK(o.error_with("pack " + victim.pack.hex() + ": unexpected file size"));
    CHECK(o.error_with(victim.pack.hex(), "header"));  // the trailer moved
  }
  SECTION("unreferenced: a note, not an error") {
    std::string other(64, 'e');
    fs::create_directories(path + "/data/ee");
    fs::copy_file(file, path + "/data/ee/" + other);
    Outcome o = check(*repo, all_data());
    CHECK(o.errors.empty());
    REQUIRE(o.infos.size() == 1);
    CHECK(o.infos[0] == "pack " + other + ": not referenced in any index");
    CHECK(o.summary.orphaned_packs == 1);
  }
}

TEST_CASE("check names a damaged index file and a damaged snapshot, and goes on", "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  auto entries = index_entries(*repo);
  SECTION("truncated index file") {
    Id file = entries.front().first;
    std::string f = path + "/index/" + file.hex();
    fs::permissions(f, fs::perms::owner_write, fs::perm_options::add);
    fs::resize_file(f, 100);
    Outcome o = check(*repo);
    CHECK(o.error_with("error loading index " + file.hex()));
    CHECK(o.summary.snapshots == 2);  // the other phases still ran
    CHECK(o.errors.size() > 1);       // trees and packs it named are now missing
  }
  SECTION("snapshot") {
    auto snaps = repo->list_ids(FileKind::kSnapshot);
    REQUIRE(snaps);
    std::string f = path + "/snapshots/" + snaps->front().hex();
    flip_byte(f, 40);
    Outcome o = check(*repo);
    CHECK(o.error_with("snapshot " + snaps->front().hex()));
  }
}

TEST_CASE("check names an index entry that disagrees with the pack header", "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  PackedBlob victim = big_data_blob(*repo);
  auto entries = index_entries(*repo);
  Id file;
  for (const auto& [f, b] : entries)
    if (b == victim)
      file = f;
  auto json = repo->load_unpacked(FileKind::kIndex, file);
  REQUIRE(json);
  auto parsed = parse_index(as_chars(*json));
  REQUIRE(parsed);
  Id fake = Id::hash(as_bytes(std::string_view("not a blob")));
  for (auto& b : parsed->blobs)
    if (b == victim)
      b.id = fake;  // the index now claims another blob at the victim's place
  auto encoded = encode_unpacked(2, as_bytes(std::string_view(serialize_index(*parsed))));
  REQUIRE(encoded);
  auto sealed = seal(repo->key(), *encoded);
  REQUIRE(sealed);
  REQUIRE(repo->write_backend()->save(Handle{FileKind::kIndex, Id::hash(*sealed).hex()}, *sealed));
  REQUIRE(repo->write_backend()->remove(Handle{FileKind::kIndex, file.hex()}));

  Outcome o = check(*repo);
  CHECK(o.error_with(victim.id.hex(), "in the pack header but not in the index"));
  CHECK(o.error_with(fake.hex(), "in the index but not in the pack header"));
  CHECK(o.error_with(victim.id.hex(), "not found in index"));  // the file that uses it
  Outcome read = check(*repo, all_data());
  CHECK(read.error_with(fake.hex(), "hash mismatch"));
}

TEST_CASE("stats counts as restic 0.14 does", "[check][stats]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  REQUIRE(repo->load_index());
  auto snaps = repo->list_snapshots();
  REQUIRE(snaps);
  auto restore = compute_stats(*repo, *snaps, StatsMode::kRestoreSize);
  auto contents = compute_stats(*repo, *snaps, StatsMode::kFilesByContents);
  auto raw = compute_stats(*repo, *snaps, StatsMode::kRawData);
  auto per_file = compute_stats(*repo, *snaps, StatsMode::kBlobsPerFile);
  REQUIRE((restore && contents && raw && per_file));
  const std::uint64_t big = 2 * 1024 * 1024;
  // Nodes: snapshot 1 has the path's directories, big.bin, sub, a.txt; snapshot 2 adds
  // b.txt and copy.bin. Directories count as files (restic's rule).
  // The root tree holds the path to src/: one directory per '/' of dir, plus src itself.
  auto depth =
      static_cast<std::uint64_t>(std::count(dir.path().begin(), dir.path().end(), '/')) + 1;
  CHECK(restore->snapshots_count == 2);
  CHECK(restore->total_file_count == 2 * depth + 3 + 5);
  CHECK(restore->total_size == 2 * (big + 5) + big + 5);
  // Distinct contents: one empty list (the directories), big, "hello", "world".
  CHECK(contents->total_file_count == 4);
  CHECK(contents->total_size == big + 10);
  CHECK(per_file->total_file_count == 3);  // copy.bin has big.bin's content: not counted
  CHECK(per_file->total_size == big + 10);
  CHECK(raw->total_blob_count == repo->index_size());  // every blob is used
  CHECK(raw->restore_size == restore->total_size);
  CHECK(parse_stats_mode("raw-data").value() == StatsMode::kRawData);
  CHECK_FALSE(parse_stats_mode("bogus"));
}

TEST_CASE("check reports blobs stored twice as a hint, not an error", "[check]") {
  TempDir dir;
  std::string path = test_repo(dir);
  auto repo = open_repo(path);
  REQUIRE(repo->load_index());
  BackupOptions o;
  o.paths = {dir.path() + "/src"};
  o.force = true;
  o.writer.store_duplicates = true;  // every blob again, in new packs
  REQUIRE(run_backup(*repo, o));
  Outcome c = check(*repo, all_data());
  CHECK(c.errors.empty());
  REQUIRE(c.hints.size() == 1);
  CHECK(c.hints[0].find("blobs are stored in more than one pack") != std::string::npos);
}
