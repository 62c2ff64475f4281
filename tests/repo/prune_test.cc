// Tests of prune (repo/ops/prune.h): restic 0.14's planning rules (unused, partly used,
// small, duplicate, unindexed and missing packs, --max-unused, --max-repack-size,
// --repack-cacheable-only, --repack-small) on repositories written with RepositoryWriter in
// a temporary directory, and that executing a plan keeps every blob the snapshots need.
#include "repo/ops/prune.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "repo/backend/local/local_backend.h"
#include "repo/core/size.h"
#include "repo/init.h"
#include "repo/ops/forget.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;
namespace stdfs = std::filesystem;

namespace {

constexpr const char* kPassword = "prune-test";

GoTime test_time() { return GoTime{1700000000, 0, 0}; }

// Options with the writer's 4 MiB packs as the target size (small packs: below 160 KiB).
PruneOptions opts() {
  PruneOptions o;
  o.pack_size = kMinPackSize;
  return o;
}

Bytes pattern(std::size_t n, unsigned seed) {
  Bytes b(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (auto& v : b) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<std::byte>(x);
  }
  return b;
}

// A repository in a temp dir; snapshots are made of one file per data blob.
struct Fixture {
  TempDir tmp;
  std::string path = tmp.path() + "/repo";
  std::unique_ptr<Repository> repo;

  explicit Fixture(unsigned version = 2) {
    LocalBackend backend(path);
    InitOptions o;
    o.version = version;
    o.key.kdf.n = 1024;  // fast
    REQUIRE(init_repository(backend, kPassword, o));
    reopen();
  }

  void reopen() {
    OpenOptions o;
    o.no_cache = true;
    auto r = Repository::open(std::make_unique<LocalBackend>(path), kPassword, o);
    REQUIRE(r);
    repo = std::move(*r);
    REQUIRE(repo->load_index());
  }

  std::unique_ptr<RepositoryWriter> writer(bool duplicates = false) {
    WriterOptions o;
    o.pack_size = kMinPackSize;
    o.store_duplicates = duplicates;
    auto w = RepositoryWriter::create(*repo, o);
    REQUIRE(w);
    return std::move(*w);
  }

  // Saves `blobs` as data and a tree naming them (plus `missing` ids); no flush.
  Id tree(RepositoryWriter& w, const std::vector<Bytes>& blobs, const std::vector<Id>& missing) {
    Tree tree;
    std::vector<Id> ids;
    for (const Bytes& b : blobs) {
      ids.push_back(Id::hash(b));
      REQUIRE(w.save_blob(BlobType::kData, ids.back(), b));
    }
    ids.insert(ids.end(), missing.begin(), missing.end());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      Node n;
      n.name = "f" + std::to_string(1000 + i);
      n.type = NodeType::kFile;
      n.mode = 0644;
      n.mtime = n.atime = n.ctime = test_time();
      n.content = {ids[i]};
      tree.nodes.push_back(n);
    }
    std::string text = serialize_tree(tree);
    Id tree_id = Id::hash(as_bytes(text));
    REQUIRE(w.save_blob(BlobType::kTree, tree_id, as_bytes(text)));
    return tree_id;
  }

  // Stores a snapshot of `tree_id`. REQUIRES: its tree was flushed.
  Id commit(RepositoryWriter& w, const Id& tree_id) {
    Snapshot s;
    s.time = test_time();
    s.tree = tree_id;
    s.paths = {"/p" + tree_id.short_hex()};
    s.hostname = "h";
    auto id = w.save_unpacked(FileKind::kSnapshot, serialize_snapshot(s));
    REQUIRE(id);
    return *id;
  }

  // Saves `blobs` as data, a tree naming them (plus `missing` ids), and a snapshot.
  Id snapshot(RepositoryWriter& w, const std::vector<Bytes>& blobs,
              const std::vector<Id>& missing = {}) {
    Id t = tree(w, blobs, missing);
    REQUIRE(w.flush());
    return commit(w, t);
  }

  // One writer session: its own packs and index file.
  Id session(const std::vector<Bytes>& blobs) {
    auto w = writer();
    Id id = snapshot(*w, blobs);
    REQUIRE(repo->load_index());
    return id;
  }

  std::set<std::string> files(const std::string& dir) const {
    std::set<std::string> out;
    for (const auto& e : stdfs::recursive_directory_iterator(path + "/" + dir))
      if (e.is_regular_file())
        out.insert(stdfs::relative(e.path(), path).string());
    return out;
  }

  std::size_t count(const std::string& dir) const { return files(dir).size(); }

  PrunePlan plan(const PruneOptions& o = opts()) {
    auto p = plan_prune(*repo, o, {});
    INFO((p ? "" : p.error().message));
    REQUIRE(p);
    return std::move(*p);
  }

  void prune(const PruneOptions& o = opts()) {
    PrunePlan p = plan(o);
    auto done = execute_prune(*repo, p, o, {});
    INFO((done ? "" : done.error().message));
    REQUIRE(done);
    reopen();
  }

  // Every blob of every snapshot loads and hashes right.
  void verify() {
    auto snaps = repo->list_snapshots();
    REQUIRE(snaps);
    for (const auto& e : *snaps) {
      auto tree = repo->load_tree(e.snapshot.tree);
      REQUIRE(tree);
      for (const Node& n : tree->nodes)
        for (const Id& c : n.content) REQUIRE(repo->load_blob(BlobHandle{c, BlobType::kData}));
    }
  }
};

std::vector<Bytes> blobs(unsigned first, unsigned n, std::size_t size = 20000) {
  std::vector<Bytes> out;
  for (unsigned i = 0; i < n; ++i) out.push_back(pattern(size, first + i));
  return out;
}

}  // namespace

TEST_CASE("prune parses --max-unused and sizes as restic", "[prune]") {
  CHECK(*parse_size("100") == 100);
  CHECK(*parse_size("5k") == 5 * 1024);
  CHECK(*parse_size("2M") == 2ULL << 20);
  CHECK(*parse_size("3g") == 3ULL << 30);
  CHECK(*parse_size("1T") == 1ULL << 40);
  CHECK(*parse_size("7b") == 7);
  for (const char* bad : {"", "x", "1x", "-5", "1.5M", "M"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad));
  }
  auto m = parse_max_unused("5%");
  REQUIRE(m);
  CHECK(m->kind == MaxUnused::Kind::kPercent);
  CHECK(m->limit(950) == 50);  // 5 / 95 * used
  CHECK(parse_max_unused(" 0% ")->limit(1000) == 0);
  CHECK(parse_max_unused("unlimited")->limit(1) == UINT64_MAX);
  CHECK(parse_max_unused("10M")->limit(1) == 10ULL << 20);
  CHECK(parse_max_unused("12.5%")->percent == 12.5);
  CHECK(parse_max_unused("100%").error().message ==
        "percentage for --max-unused must be below 100%");
  CHECK(parse_max_unused("-1%").error().message == "percentage for --max-unused must be positive");
  CHECK(parse_max_unused("abc").error().message.rfind("invalid number of bytes \"abc\"", 0) == 0);
  CHECK_FALSE(parse_max_unused("x%"));
  CHECK_FALSE(parse_max_unused(""));
}

TEST_CASE("prune deletes packs without used blobs and rewrites the index", "[prune]") {
  Fixture f;
  Id a = f.session(blobs(1, 3));
  f.session(blobs(10, 2));
  REQUIRE(remove_snapshot(*f.repo, a));
  PrunePlan p = f.plan();
  CHECK(p.remove.size() == 2);  // a's data pack and tree pack
  CHECK(p.repack.empty());
  CHECK(p.remove_first.empty());
  CHECK(p.stats.snapshots == 1);
  CHECK(p.stats.blobs.used == 3);  // 2 data + 1 tree
  CHECK(p.stats.blobs.unused == 4);
  CHECK(p.stats.blobs.remove == 4);
  CHECK(p.stats.packs.used == 2);
  CHECK(p.stats.packs.unused == 2);
  CHECK(p.stats.packs.keep == 2);
  auto old_index = f.files("index");
  f.prune();
  CHECK(f.count("data") == 2);
  auto new_index = f.files("index");
  REQUIRE(new_index.size() == 1);
  CHECK(old_index.count(*new_index.begin()) == 0);
  f.verify();
  PrunePlan again = f.plan();
  CHECK(again.remove.empty());
  CHECK(again.stats.blobs.unused == 0);
}

TEST_CASE("prune repacks partly used packs by --max-unused", "[prune]") {
  Fixture f;
  auto w = f.writer();
  Id gone = f.snapshot(*w, blobs(1, 6, 40000));  // a 240 KB data pack: not small
  REQUIRE(f.repo->load_index());
  auto w2 = f.writer();
  f.snapshot(*w2, {pattern(40000, 1), pattern(40000, 2)});  // shares two blobs
  REQUIRE(f.repo->load_index());
  REQUIRE(remove_snapshot(*f.repo, gone));

  SECTION("default 5%: the data pack and the tree pack are repacked") {
    PrunePlan p = f.plan();
    CHECK(p.stats.packs.partly_used == 1);  // data pack: 2 of 6 used
    CHECK(p.repack.size() == 1);
    CHECK(p.remove.size() == 1);  // the first tree pack
    CHECK(p.keep.size() == 2);
    CHECK(p.stats.blobs.repackrm == 4);
    f.prune();
    f.verify();
    PrunePlan again = f.plan();
    CHECK(again.stats.blobs.unused == 0);
    CHECK(again.repack.empty());
  }
  SECTION("unlimited keeps a partly used data pack") {
    PruneOptions o = opts();
    o.max_unused = *parse_max_unused("unlimited");
    PrunePlan p = f.plan(o);
    CHECK(p.repack.empty());
    CHECK(p.stats.packs.keep >= 1);
  }
  SECTION("an absolute limit above the unused size keeps it too") {
    PruneOptions o = opts();
    o.max_unused = *parse_max_unused("1M");
    CHECK(f.plan(o).repack.empty());
  }
  SECTION("--max-repack-size 0 repacks nothing") {
    PruneOptions o = opts();
    o.max_repack_bytes = 0;
    CHECK(f.plan(o).repack.empty());
  }
  SECTION("--repack-cacheable-only leaves data packs alone") {
    PruneOptions o = opts();
    o.repack_cacheable_only = true;
    CHECK(f.plan(o).repack.empty());
  }
  SECTION("--dry-run changes nothing") {
    auto before = f.files("");
    PruneOptions o = opts();
    o.dry_run = true;
    PrunePlan p = f.plan(o);
    CHECK(p.repack.size() == 1);
    REQUIRE(execute_prune(*f.repo, p, o, {}));
    CHECK(f.files("") == before);
  }
}

TEST_CASE("prune always repacks partly used tree packs", "[prune]") {
  Fixture f;
  auto w = f.writer();
  Id t1 = f.tree(*w, blobs(1, 2), {});
  Id t2 = f.tree(*w, blobs(3, 2), {});  // one flush: both trees share one tree pack
  REQUIRE(w->flush());
  Id first = f.commit(*w, t1);
  f.commit(*w, t2);
  REQUIRE(f.repo->load_index());
  REQUIRE(remove_snapshot(*f.repo, first));
  PruneOptions o = opts();
  o.max_unused = *parse_max_unused("unlimited");
  o.repack_cacheable_only = true;
  PrunePlan p = f.plan(o);
  REQUIRE(p.repack.size() == 1);  // the tree pack
  REQUIRE(p.keep.size() == 1);
  CHECK(p.keep[0].type == BlobType::kTree);
  f.prune(o);
  f.verify();
}

TEST_CASE("prune keeps one copy of a duplicate blob", "[prune]") {
  Fixture f;
  std::vector<Bytes> data = blobs(1, 3);
  f.session(data);
  {
    auto w = f.writer(true);  // stores the same blobs again: duplicates
    f.snapshot(*w, {data[0]});
    REQUIRE(f.repo->load_index());
  }
  PrunePlan p = f.plan();
  CHECK(p.stats.blobs.duplicate == 1);
  CHECK(p.remove.size() == 1);  // the pack holding only the second copy
  f.prune();
  f.verify();
  CHECK(f.plan().stats.blobs.duplicate == 0);
}

TEST_CASE("prune deletes unindexed packs and leftover temporary files", "[prune]") {
  Fixture f;
  f.session(blobs(1, 2));
  Bytes junk = pattern(5000, 77);
  std::string name = Id::hash(junk).hex();
  std::string pack = f.path + "/data/" + name.substr(0, 2) + "/" + name;
  std::ofstream(pack, std::ios::binary).write(reinterpret_cast<const char*>(junk.data()), 5000);
  std::ofstream(f.path + "/data/pending-tmp-0123abcd") << "partial pack";
  PrunePlan p = f.plan();
  REQUIRE(p.remove_first.size() == 1);
  CHECK(p.remove_first[0].hex() == name);
  CHECK(p.stats.size_unref == 5000);
  CHECK(p.temp_files == std::vector<std::string>{"data/pending-tmp-0123abcd"});
  f.prune();
  CHECK_FALSE(stdfs::exists(pack));
  CHECK_FALSE(stdfs::exists(f.path + "/data/pending-tmp-0123abcd"));
  f.verify();
}

TEST_CASE("prune refuses when data a snapshot needs is missing", "[prune]") {
  Fixture f;
  f.session(blobs(1, 2));
  SECTION("a needed pack is missing from the backend") {
    auto data = f.files("data");
    for (const auto& file : data) {  // remove the data pack (the larger file)
      if (stdfs::file_size(f.path + "/" + file) > 30000)
        stdfs::remove(f.path + "/" + file);
    }
    auto before = f.files("");
    auto p = plan_prune(*f.repo, opts(), {});
    REQUIRE_FALSE(p);
    CHECK(p.error().code == Errc::kCorrupt);
    CHECK(p.error().message.find("packs from index missing in repo") != std::string::npos);
    CHECK(f.files("") == before);
  }
  SECTION("a blob is in no index") {
    auto w = f.writer();
    f.snapshot(*w, blobs(20, 1), {Id::hash(as_bytes(std::string("never stored")))});
    REQUIRE(f.repo->load_index());
    auto p = plan_prune(*f.repo, opts(), {});
    REQUIRE_FALSE(p);
    CHECK(p.error().message.find("index is not complete") != std::string::npos);
  }
}

TEST_CASE("prune forgets missing packs nobody needs", "[prune]") {
  Fixture f;
  Id a = f.session(blobs(1, 2));
  f.session(blobs(5, 2));
  auto before = f.files("data");
  REQUIRE(remove_snapshot(*f.repo, a));
  PrunePlan probe = f.plan();
  REQUIRE(probe.remove.size() == 2);
  Handle h{FileKind::kPack, probe.remove[0].hex()};
  REQUIRE(f.repo->write_backend()->remove(h));
  PrunePlan p = f.plan();
  CHECK(p.ignore == std::vector<Id>{probe.remove[0]});
  CHECK(p.remove.size() == 1);
  f.prune();
  f.verify();
  CHECK(f.plan().ignore.empty());
}

TEST_CASE("prune repacks small packs only with ten or more of them", "[prune]") {
  Fixture f;
  for (unsigned i = 0; i < 4; ++i) f.session(blobs(100 * i, 1, 5000));
  PruneOptions o = opts();
  CHECK(f.plan(o).repack.empty());  // 8 small, fully used packs (4 data, 4 tree)
  for (unsigned i = 4; i < 11; ++i) f.session(blobs(100 * i, 1, 5000));
  PrunePlan p = f.plan(o);
  CHECK(p.repack.size() == 22);  // 11 data + 11 tree packs, all far below 16 MiB / 25
  f.prune(o);
  CHECK(f.count("data") == 2);  // one data pack, one tree pack
  f.verify();
  o.repack_small = true;
  CHECK(f.plan(o).repack.empty());  // two small packs are fewer than ten
}

TEST_CASE("prune ignores the given snapshots (forget --prune --dry-run)", "[prune]") {
  Fixture f;
  Id a = f.session(blobs(1, 2));
  f.session(blobs(5, 2));
  PruneOptions o = opts();
  o.ignore_snapshots = {a};
  PrunePlan p = f.plan(o);
  CHECK(p.stats.snapshots == 1);
  CHECK(p.remove.size() == 2);
}

TEST_CASE("prune works on a version 1 repository", "[prune]") {
  Fixture f(1);
  Id a = f.session(blobs(1, 3));
  f.session(blobs(1, 1));
  REQUIRE(remove_snapshot(*f.repo, a));
  f.prune();
  f.verify();
  CHECK(f.plan().stats.blobs.unused == 0);
}
