// ObjectCache (repo/cache/object_cache.h) on a real directory: round trips, permissions,
// retention of snapshots, expiry of unread trees.
#include "repo/cache/object_cache.h"

#include <algorithm>
#include <ctime>
#include <fstream>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

Bytes bytes_of(std::string_view s) { return Bytes(as_bytes(s).begin(), as_bytes(s).end()); }

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("ObjectCache stores, returns and removes objects privately", "[object_cache]") {
  TempDir tmp;
  std::string dir = tmp.path() + "/objects";
  auto cache = ObjectCache::open(dir);
  REQUIRE(cache);
  Id a = Id::hash(as_bytes("tree a")), s = Id::hash(as_bytes("snapshot s"));
  CHECK_FALSE((*cache)->get(CachedKind::kTree, a));
  (*cache)->put(CachedKind::kTree, a, bytes_of("sealed tree a"));
  (*cache)->put(CachedKind::kSnapshot, s, bytes_of("sealed snapshot s"));
  CHECK((*cache)->get(CachedKind::kTree, a) == bytes_of("sealed tree a"));
  CHECK((*cache)->get(CachedKind::kSnapshot, s) == bytes_of("sealed snapshot s"));
  CHECK_FALSE((*cache)->get(CachedKind::kSnapshot, a));  // kinds are separate
  std::string tree_file = dir + "/trees/" + a.hex().substr(0, 2) + "/" + a.hex();
  CHECK(mode_of(tree_file) == 0600);
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(dir + "/trees/" + a.hex().substr(0, 2)) == 0700);
  (*cache)->put(CachedKind::kTree, a, bytes_of("replaced"));
  CHECK((*cache)->get(CachedKind::kTree, a) == bytes_of("replaced"));
  (*cache)->remove(CachedKind::kTree, a);
  CHECK_FALSE((*cache)->get(CachedKind::kTree, a));
}

TEST_CASE("ObjectCache keeps only the snapshots still in the repository", "[object_cache]") {
  TempDir tmp;
  auto cache = ObjectCache::open(tmp.path() + "/objects");
  REQUIRE(cache);
  std::vector<Id> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Id::hash(as_bytes("snapshot " + std::to_string(i))));
    (*cache)->put(CachedKind::kSnapshot, ids.back(), bytes_of("s" + std::to_string(i)));
  }
  std::vector<Id> live = {ids[1], ids[3]};
  std::sort(live.begin(), live.end());
  (*cache)->retain_snapshots(live);
  for (int i = 0; i < 5; ++i)
    CHECK((*cache)->get(CachedKind::kSnapshot, ids[i]).has_value() == (i == 1 || i == 3));
}

TEST_CASE("ObjectCache expires trees unread for 60 days, at most once a day", "[object_cache]") {
  TempDir tmp;
  std::string dir = tmp.path() + "/objects";
  Id old_tree = Id::hash(as_bytes("old")), fresh_tree = Id::hash(as_bytes("fresh"));
  {
    auto cache = ObjectCache::open(dir);
    REQUIRE(cache);
    (*cache)->put(CachedKind::kTree, old_tree, bytes_of("old"));
    (*cache)->put(CachedKind::kTree, fresh_tree, bytes_of("fresh"));
  }
  std::string old_file = dir + "/trees/" + old_tree.hex().substr(0, 2) + "/" + old_tree.hex();
  struct timespec times[2] = {{std::time(nullptr) - 61L * 24 * 3600, 0},
                              {std::time(nullptr) - 61L * 24 * 3600, 0}};
  REQUIRE(::utimensat(AT_FDCWD, old_file.c_str(), times, 0) == 0);
  {
    auto cache = ObjectCache::open(dir);  // expired less than a day ago: nothing happens
    REQUIRE(cache);
    CHECK(::access(old_file.c_str(), F_OK) == 0);
  }
  REQUIRE(::utimensat(AT_FDCWD, old_file.c_str(), times, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (dir + "/trees/expired").c_str(), times, 0) == 0);
  auto cache = ObjectCache::open(dir);
  REQUIRE(cache);
  CHECK_FALSE((*cache)->get(CachedKind::kTree, old_tree));
  CHECK((*cache)->get(CachedKind::kTree, fresh_tree) == bytes_of("fresh"));
}

TEST_CASE("ObjectCache reports a directory it cannot create", "[object_cache]") {
  TempDir tmp;
  std::ofstream(tmp.path() + "/file") << "x";
  auto cache = ObjectCache::open(tmp.path() + "/file/objects");
  REQUIRE_FALSE(cache);
  CHECK(cache.error().code == Errc::kIo);
}
