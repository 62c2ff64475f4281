// Tests for repo/ops/copy: restic 0.14's already-copied rule, and copy_snapshots between real
// repositories in temp dirs (sources made by init_repository + run_backup, destinations of the
// other version with another password and polynomial). restic's own verdict on the result is
// tested in tests/tools/copy_test.py.
#include "repo/ops/copy.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <catch2/catch.hpp>

#include "repo/init.h"
#include "repo/location.h"
#include "repo/ops/backup.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

constexpr const char* kSrcPassword = "copy-source";
constexpr const char* kDstPassword = "copy-destination";

std::unique_ptr<Repository> open_repo(const std::string& path, std::string_view password) {
  auto backend = open_backend(path);
  REQUIRE(backend);
  auto repo = Repository::open(std::move(*backend), password, OpenOptions{"", true});
  REQUIRE(repo);
  REQUIRE((*repo)->load_index());
  return std::move(*repo);
}

// A fresh repository of `version` at dir/name, with a cheap key derivation.
std::string init_repo(const TempDir& dir, const std::string& name, unsigned version,
                      std::string_view password = kDstPassword) {
  std::string path = dir.path() + "/" + name;
  auto backend = open_backend(path);
  REQUIRE(backend);
  InitOptions o;
  o.version = version;
  o.key.kdf = KdfParams{1024, 8, 1};
  REQUIRE(init_repository(**backend, password, o));
  return path;
}

void write_file(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string random_string(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A source repository of `version` at dir/src with three snapshots of dir/data (the second
// adds a file, the third changes nothing), made by run_backup.
std::string make_source(const TempDir& dir, unsigned version) {
  std::string path = init_repo(dir, "src", version, kSrcPassword);
  std::string data = dir.path() + "/data";
  write_file(data + "/big.bin", random_string(2 * 1024 * 1024 + 99, 3));
  write_file(data + "/sub/small.txt", "small\n");
  BackupOptions bo;
  bo.paths = {data};
  bo.hostname = "copy-host";
  for (int i = 0; i < 3; ++i) {
    if (i == 1)
      write_file(data + "/sub/more.bin", random_string(700 * 1024, 4));
    auto repo = open_repo(path, kSrcPassword);
    bo.time = GoTime{1700000000 + i * 3600, 0, 0};
    REQUIRE(run_backup(*repo, bo));
  }
  return path;
}

// Every blob reachable from `tree` (trees and data), by walking with `repo`.
void reachable(const Repository& repo, const Id& tree, std::set<Id>& trees, std::set<Id>& data) {
  if (!trees.insert(tree).second)
    return;
  auto t = repo.load_tree(tree);
  REQUIRE(t);
  for (const auto& n : t->nodes) {
    data.insert(n.content.begin(), n.content.end());
    if (n.subtree)
      reachable(repo, *n.subtree, trees, data);
  }
}

// Packs in data/ that no index names.
std::size_t unindexed_packs(const Repository& repo) {
  auto packs = repo.list_ids(FileKind::kPack);
  REQUIRE(packs);
  std::set<Id> indexed;
  auto files = repo.list_ids(FileKind::kIndex);
  REQUIRE(files);
  for (const Id& f : *files) {
    auto json = repo.load_unpacked(FileKind::kIndex, f);
    REQUIRE(json);
    auto index = parse_index(as_chars(*json));
    REQUIRE(index);
    for (const auto& b : index->blobs) indexed.insert(b.pack);
  }
  return static_cast<std::size_t>(std::count_if(
      packs->begin(), packs->end(), [&](const Id& p) { return indexed.count(p) == 0; }));
}

Snapshot base_snapshot() {
  Snapshot s;
  s.time = GoTime{1700000000, 5, 0};
  s.tree = Id::hash(as_bytes(std::string("tree")));
  s.paths = {"/a", "/b"};
  s.hostname = "h";
  s.username = "u";
  s.tags = {"x", "y"};
  s.excludes = {"*.o", "*.tmp"};
  return s;
}

}  // namespace

TEST_CASE("similar_snapshots is restic 0.14's rule", "[copy]") {
  Snapshot a = base_snapshot();
  Snapshot b = a;
  CHECK(similar_snapshots(a, b));
  b.parent = Id::hash(as_bytes(std::string("p")));
  b.original = Id::hash(as_bytes(std::string("o")));
  b.program_version = "restic 0.18.1";
  b.summary_json = R"({"files_new":1})";
  CHECK(similar_snapshots(a, b));  // ignored fields
  b.time.offset_seconds = 3600;
  b.time.unix_seconds += 0;
  CHECK(similar_snapshots(a, b));  // the same instant in another zone
  b.paths = {"/b", "/a"};
  b.tags = {"y", "x"};
  CHECK(similar_snapshots(a, b));  // paths and tags as sets
  b.excludes = {"*.tmp", "*.o"};
  CHECK_FALSE(similar_snapshots(a, b));  // excludes in order
  auto differs = [&](auto change) {
    Snapshot c = a;
    change(c);
    return !similar_snapshots(a, c) && !similar_snapshots(c, a);
  };
  CHECK(differs([](Snapshot& c) { c.time.nanos++; }));
  CHECK(differs([](Snapshot& c) { c.tree = Id::hash(as_bytes(std::string("other"))); }));
  CHECK(differs([](Snapshot& c) { c.hostname = "g"; }));
  CHECK(differs([](Snapshot& c) { c.username = "v"; }));
  CHECK(differs([](Snapshot& c) { c.uid = 7; }));
  CHECK(differs([](Snapshot& c) { c.gid = 7; }));
  CHECK(differs([](Snapshot& c) { c.paths.push_back("/c"); }));
  CHECK(differs([](Snapshot& c) { c.paths = {"/a", "/c"}; }));
  CHECK(differs([](Snapshot& c) { c.tags = {"x"}; }));
  CHECK(differs([](Snapshot& c) { c.tags = {"x", "z"}; }));
  CHECK(differs([](Snapshot& c) { c.excludes.clear(); }));
}

TEST_CASE("find_copy matches by id or original, and copied_snapshot sets them", "[copy]") {
  Id src_id = Id::hash(as_bytes(std::string("src")));
  Id other = Id::hash(as_bytes(std::string("other")));
  SnapshotEntry src{src_id, base_snapshot()};
  src.snapshot.parent = other;
  Snapshot copy = copied_snapshot(src);
  CHECK_FALSE(copy.parent);
  CHECK(copy.original == src_id);
  Id copy_id = Id::hash(as_bytes(std::string("copy")));
  CHECK(find_copy({SnapshotEntry{copy_id, copy}}, src) == copy_id);
  CHECK(find_copy({SnapshotEntry{src_id, src.snapshot}}, src) == src_id);  // the same file
  Snapshot changed = copy;
  changed.hostname = "elsewhere";  // same origin, but not similar
  CHECK_FALSE(find_copy({SnapshotEntry{copy_id, changed}}, src));
  Snapshot unrelated = src.snapshot;  // similar, but no link by id or original
  CHECK_FALSE(find_copy({SnapshotEntry{other, unrelated}}, src));
  // A source that is itself a copy is matched through its original, which stays.
  SnapshotEntry second{copy_id, copy};
  CHECK(copied_snapshot(second).original == src_id);
  CHECK(find_copy({SnapshotEntry{other, copied_snapshot(second)}}, second) == other);
}

TEST_CASE("copy_snapshots copies v1 into v2 with blob ids kept, then skips", "[copy]") {
  TempDir dir;
  auto src = open_repo(make_source(dir, 1), kSrcPassword);
  auto chosen = src->list_snapshots();
  REQUIRE(chosen);
  REQUIRE(chosen->size() >= 2);

  auto dst = open_repo(init_repo(dir, "dst", 2), kDstPassword);
  CHECK(dst->config().chunker_polynomial != src->config().chunker_polynomial);
  std::vector<std::string> events;
  CopyEvents ev;
  ev.on_snapshot = [&](const SnapshotEntry& e) { events.push_back("snap " + e.id.short_hex()); };
  ev.on_copy_started = [&](const SnapshotEntry&) { events.emplace_back("start"); };
  ev.on_saved = [&](const SnapshotEntry&, const Id&) { events.emplace_back("saved"); };
  ev.on_skipped = [&](const SnapshotEntry&, const Id&) { events.emplace_back("skipped"); };
  auto result = copy_snapshots(*src, *dst, *chosen, {}, CopyOptions{}, ev);
  REQUIRE(result);
  CHECK(result->copied == chosen->size());
  CHECK(result->skipped == 0);
  CHECK(events.size() == 3 * chosen->size());
  CHECK(events[1] == "start");

  dst = open_repo(dir.path() + "/dst", kDstPassword);
  auto copies = dst->list_snapshots();
  REQUIRE(copies);
  REQUIRE(copies->size() == chosen->size());
  for (const auto& s : *chosen) {
    auto found = find_copy(*copies, s);
    REQUIRE(found);
    auto it = std::find_if(copies->begin(), copies->end(),
                           [&](const SnapshotEntry& c) { return c.id == *found; });
    CHECK(it->snapshot.original == s.snapshot.original.value_or(s.id));
    CHECK_FALSE(it->snapshot.parent);
    CHECK(it->snapshot.tree == s.snapshot.tree);
    std::set<Id> trees, data;
    reachable(*src, s.snapshot.tree, trees, data);
    for (const Id& t : trees) {  // byte-identical trees, compressed in v2
      auto where = dst->lookup(BlobHandle{t, BlobType::kTree});
      REQUIRE(where);
      REQUIRE(*where);
      CHECK((*where)->compressed());
      CHECK(*dst->load_blob({t, BlobType::kTree}) == *src->load_blob({t, BlobType::kTree}));
    }
    for (const Id& d : data)
      CHECK(*dst->load_blob({d, BlobType::kData}) == *src->load_blob({d, BlobType::kData}));
  }
  CHECK(unindexed_packs(*dst) == 0);

  // A second run copies nothing and writes nothing.
  auto packs_before = *dst->list_ids(FileKind::kPack);
  auto again = copy_snapshots(*src, *dst, *chosen, *copies, CopyOptions{});
  REQUIRE(again);
  CHECK(again->copied == 0);
  CHECK(again->skipped == chosen->size());
  CHECK(again->written.data_blobs + again->written.tree_blobs == 0);
  CHECK(*dst->list_ids(FileKind::kPack) == packs_before);
  CHECK(dst->list_ids(FileKind::kSnapshot)->size() == chosen->size());
}

TEST_CASE("copy_snapshots stores only blobs the destination lacks", "[copy]") {
  TempDir dir;
  auto src = open_repo(make_source(dir, 2), kSrcPassword);
  auto all = src->list_snapshots();
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  auto dst = open_repo(init_repo(dir, "dst", 1), kDstPassword);
  auto first = copy_snapshots(*src, *dst, {all->front()}, {}, CopyOptions{});
  REQUIRE(first);
  CHECK(first->copied == 1);
  std::set<Id> trees, data;
  reachable(*src, all->front().snapshot.tree, trees, data);
  CHECK(first->written.tree_blobs == trees.size());
  CHECK(first->written.data_blobs == data.size());

  // The rest: blobs shared with the first snapshot are not stored again (v1: uncompressed).
  dst = open_repo(dir.path() + "/dst", kDstPassword);
  std::vector<SnapshotEntry> rest(all->begin() + 1, all->end());
  auto second = copy_snapshots(*src, *dst, rest, {}, CopyOptions{});
  REQUIRE(second);
  std::set<Id> trees2, data2;
  for (const auto& s : rest) reachable(*src, s.snapshot.tree, trees2, data2);
  std::size_t new_trees = 0, new_data = 0;
  for (const Id& t : trees2) new_trees += trees.count(t) == 0 ? 1 : 0;
  for (const Id& d : data2) new_data += data.count(d) == 0 ? 1 : 0;
  CHECK(second->written.tree_blobs == new_trees);
  CHECK(second->written.data_blobs == new_data);
  dst = open_repo(dir.path() + "/dst", kDstPassword);
  for (const Id& d : data2) {
    auto where = dst->lookup(BlobHandle{d, BlobType::kData});
    REQUIRE(where);
    REQUIRE(*where);
    CHECK_FALSE((*where)->compressed());
  }
}

TEST_CASE("a corrupt source pack fails its snapshot, which is not saved", "[copy]") {
  TempDir dir;
  std::string src_path = make_source(dir, 2);
  auto src = open_repo(src_path, kSrcPassword);
  auto all = src->list_snapshots();
  REQUIRE(all);
  const SnapshotEntry& victim = all->back();
  std::set<Id> trees, data;
  reachable(*src, victim.snapshot.tree, trees, data);
  REQUIRE_FALSE(data.empty());
  auto where = src->lookup(BlobHandle{*data.begin(), BlobType::kData});
  REQUIRE(where);
  REQUIRE(*where);
  std::string pack = (*where)->pack.hex();
  std::string pack_path = src_path + "/data/" + pack.substr(0, 2) + "/" + pack;
  std::filesystem::permissions(pack_path, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  {
    std::fstream f(pack_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((*where)->offset + 20);
    f.write("XXXX", 4);
  }
  auto dst = open_repo(init_repo(dir, "dst", 2), kDstPassword);
  auto result = copy_snapshots(*src, *dst, {victim}, {}, CopyOptions{});
  REQUIRE_FALSE(result);
  CHECK(result.error().code == Errc::kCorrupt);
  CHECK(result.error().message.find(pack) != std::string::npos);
  CHECK(result.error().message.find("snapshot " + victim.id.short_hex()) == 0);
  CHECK(dst->list_ids(FileKind::kSnapshot)->empty());
  CHECK(unindexed_packs(*dst) == 0);  // what was stored is indexed
}

TEST_CASE("copy_snapshots stops when cancelled", "[copy]") {
  TempDir dir;
  auto src = open_repo(make_source(dir, 2), kSrcPassword);
  auto all = src->list_snapshots();
  REQUIRE(all);
  auto dst = open_repo(init_repo(dir, "dst", 2), kDstPassword);
  std::atomic<bool> cancel{true};
  CopyOptions o;
  o.cancel = &cancel;
  auto result = copy_snapshots(*src, *dst, *all, {}, o);
  REQUIRE_FALSE(result);
  CHECK(result.error().code == Errc::kCancelled);
  CHECK(dst->list_ids(FileKind::kSnapshot)->empty());
}
