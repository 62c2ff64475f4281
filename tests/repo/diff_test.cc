// Tests for repo/ops/diff: restic 0.14's Node.Equals, and diff_trees on two snapshots made by
// run_backup (modifiers, order, counts, and the rule that a blob still referenced inside a
// subtree both snapshots share is not "removed"). Byte-for-byte agreement with restic's own
// output is tested in tests/tools/diff_test.py.
#include "repo/ops/diff.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "repo/init.h"
#include "repo/location.h"
#include "repo/ops/backup.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

constexpr const char* kPassword = "diff-test";

std::unique_ptr<Repository> open_repo(const std::string& path) {
  auto backend = open_backend(path);
  REQUIRE(backend);
  auto repo = Repository::open(std::move(*backend), kPassword, OpenOptions{"", true});
  REQUIRE(repo);
  REQUIRE((*repo)->load_index());
  return std::move(*repo);
}

void write_file(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

// Reads every file once, so that later backups see settled access times (relatime).
void settle(const std::string& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
  }
}

Id backup(const std::string& repo_path, const std::string& data, int n) {
  settle(data);
  auto repo = open_repo(repo_path);
  BackupOptions bo;
  bo.paths = {data};
  bo.hostname = "diff-host";
  bo.time = GoTime{1700000000 + n * 3600, 0, 0};
  auto r = run_backup(*repo, bo);
  REQUIRE(r);
  REQUIRE(r->snapshot_id);
  auto json = repo->load_unpacked(FileKind::kSnapshot, *r->snapshot_id);
  REQUIRE(json);
  auto s = parse_snapshot(as_chars(*json));
  REQUIRE(s);
  return s->tree;
}

Node file_node() {
  Node n;
  n.name = "f";
  n.mode = 0644;
  n.mtime = GoTime{1700000000, 5, 0};
  n.content = {Id::hash(as_bytes(std::string("x")))};
  n.xattrs = {{"user.a", Bytes(1, std::byte{1})}, {"user.b", Bytes(1, std::byte{2})}};
  return n;
}

}  // namespace

TEST_CASE("restic_node_equals is restic 0.14's Node.Equals", "[diff]") {
  Node a = file_node();
  Node b = a;
  CHECK(restic_node_equals(a, b));
  SECTION("times compare as instants, not as written") {
    b.mtime = GoTime{1700000000, 5, 3600};  // the same instant, written in UTC+1
    CHECK(restic_node_equals(a, b));
    b.mtime.nanos = 6;
    CHECK_FALSE(restic_node_equals(a, b));
  }
  SECTION("extended attributes compare as a set") {
    std::swap(b.xattrs[0], b.xattrs[1]);
    CHECK(restic_node_equals(a, b));
    b.xattrs[0].value = Bytes(1, std::byte{9});
    CHECK_FALSE(restic_node_equals(a, b));
  }
  SECTION("each stored attribute counts") {
    b.mode = 0600;
    CHECK_FALSE(restic_node_equals(a, b));
    b = a;
    b.inode = 7;
    CHECK_FALSE(restic_node_equals(a, b));
    b = a;
    b.content.push_back(a.content[0]);
    CHECK_FALSE(restic_node_equals(a, b));
  }
}

TEST_CASE("diff_trees reports changes and blobs as restic 0.14", "[diff]") {
  TempDir dir;
  std::string repo_path = dir.path() + "/repo";
  auto backend = open_backend(repo_path);
  REQUIRE(backend);
  InitOptions io;
  io.key.kdf = KdfParams{1024, 8, 1};
  REQUIRE(init_repository(**backend, kPassword, io));
  std::string data = dir.path() + "/data";
  write_file(data + "/keep/deep/same.txt", "shared content\n");
  write_file(data + "/dup.txt", "shared content\n");
  write_file(data + "/a.txt", "one\n");
  write_file(data + "/gone/g.txt", "gone\n");
  Id t1 = backup(repo_path, data, 0);
  std::filesystem::remove(data + "/dup.txt");
  std::filesystem::remove_all(data + "/gone");
  write_file(data + "/a.txt", "two\n");
  write_file(data + "/new/n.txt", "new\n");
  Id t2 = backup(repo_path, data, 1);

  auto repo = open_repo(repo_path);
  std::vector<std::string> lines;
  DiffOptions o;
  o.on_change = [&](const DiffChange& c) { lines.push_back(c.modifier + " " + c.path); };
  auto stats = diff_trees(*repo, t1, t2, o);
  REQUIRE(stats);
  std::string p = data + "/";
  CHECK(lines == std::vector<std::string>{"M " + p + "a.txt", "- " + p + "dup.txt",
                                          "- " + p + "gone/", "- " + p + "gone/g.txt",
                                          "+ " + p + "new/", "+ " + p + "new/n.txt"});
  CHECK(stats->changed_files == 1);
  CHECK(stats->removed.files == 2);
  CHECK(stats->removed.dirs == 1);
  CHECK(stats->added.files == 1);
  CHECK(stats->added.dirs == 1);
  // "one", "gone"; dup.txt's blob lives on in keep/deep/same.txt, which both share.
  CHECK(stats->removed.data_blobs == 2);
  CHECK(stats->added.data_blobs == 2);  // "two", "new"

  lines.clear();
  auto same = diff_trees(*repo, t2, t2, o);
  REQUIRE(same);
  CHECK(lines.empty());
  CHECK(same->added.data_blobs + same->removed.data_blobs + same->added.tree_blobs == 0);
}
