// Tests for repo/ops/backup*: exclusion rules, the work pools, and run_backup end to end on a
// copy of a restic-made repository (the CLI and restic's own verdict are tested in
// tests/tools/backup_test.py).
#include "repo/ops/backup.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/backend/local/local_backend.h"
#include "repo/chunker/chunker.h"
#include "repo/location.h"
#include "repo/ops/backup_exclude.h"
#include "repo/ops/work_pool.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

void write_file(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st;
}

std::string random_bytes_string(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::unique_ptr<Repository> open_repo(const std::string& path) {
  auto backend = open_backend(path);
  REQUIRE(backend);
  auto repo = Repository::open(std::move(*backend), coffer::test::kGoldenPassword,
                               OpenOptions{.cache_dir = "", .no_cache = true});
  REQUIRE(repo);
  REQUIRE((*repo)->load_index());
  return std::move(*repo);
}

// The bytes of a file node, reassembled from its blobs.
std::string content_of(const Repository& repo, const Node& node) {
  std::string out;
  for (const Id& id : node.content) {
    auto blob = repo.load_blob({id, BlobType::kData});
    REQUIRE(blob);
    out += to_string(*blob);
  }
  return out;
}

const Node& child(const Tree& tree, const std::string& name) {
  for (const auto& n : tree.nodes)
    if (n.name == name)
      return n;
  FAIL("no node " << name);
  return tree.nodes.front();
}

}  // namespace

TEST_CASE("backup exclusions follow restic's options", "[backup]") {
  TempDir dir;
  const std::string& d = dir.path();
  write_file(d + "/a/keep.txt", "k");
  write_file(d + "/a/skip.tmp", "s");
  write_file(d + "/a/UPPER.LOG", "u");
  write_file(d + "/big.bin", std::string(5000, 'x'));
  write_file(d + "/cache/CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55 more");
  write_file(d + "/fake/CACHEDIR.TAG", "Signature: wrong");
  write_file(d + "/marked/.nobackup", "");
  write_file(d + "/header/.mark", "HEADER rest");
  write_file(d + "/noheader/.mark", "OTHER");

  ExcludeOptions o;
  o.excludes = {"*.tmp"};
  o.iexcludes = {"*.log"};
  o.exclude_larger_than = 4096;
  o.exclude_caches = true;
  o.exclude_if_present = {".nobackup", ".mark:HEADER"};
  auto ex = Excluder::create(o);
  REQUIRE(ex);
  CHECK_FALSE(ex->excluded(d + "/a/keep.txt", lstat_of(d + "/a/keep.txt")));
  CHECK(ex->excluded(d + "/a/skip.tmp", lstat_of(d + "/a/skip.tmp")));
  CHECK(ex->excluded(d + "/a/UPPER.LOG", lstat_of(d + "/a/UPPER.LOG")));
  CHECK(ex->excluded(d + "/big.bin", lstat_of(d + "/big.bin")));
  CHECK_FALSE(ex->excluded(d + "/a", lstat_of(d + "/a")));  // size limits apply to files only
  // A marked directory keeps only its marker file (restic's behaviour).
  auto kept = [&](const std::string& sub, std::vector<std::string> names) {
    ex->drop_marked(d + "/" + sub, names);
    return names;
  };
  using Names = std::vector<std::string>;
  CHECK(kept("cache", {"CACHEDIR.TAG", "blob"}) == Names{"CACHEDIR.TAG"});
  CHECK(kept("fake", {"CACHEDIR.TAG", "blob"}) == Names{"CACHEDIR.TAG", "blob"});
  CHECK(kept("marked", {".nobackup", "x"}) == Names{".nobackup"});
  CHECK(kept("header", {".mark", "x"}) == Names{".mark"});
  CHECK(kept("noheader", {".mark", "x"}) == Names{".mark", "x"});
  CHECK(kept("a", {"keep.txt"}) == Names{"keep.txt"});

  ExcludeOptions bad;
  bad.excludes = {"[x"};
  CHECK_FALSE(Excluder::create(bad));
}

TEST_CASE("work pool runs jobs that queue more jobs, and runs inline when full", "[backup]") {
  std::atomic<int> ran{0};
  {
    WorkPool pool(2, 1);
    std::function<void(int)> spawn = [&](int depth) {
      ++ran;
      if (depth < 6) {
        pool.submit_or_run([&, depth] { spawn(depth + 1); });
        pool.submit_or_run([&, depth] { spawn(depth + 1); });
      }
    };
    pool.submit([&] { spawn(0); });
    pool.join();
    CHECK(ran == 127);  // a full binary tree of depth 6
  }
  SECTION("buffer pool lends at most its count") {
    auto buffers = BufferPool::create(1024, 2);
    auto a = buffers->acquire();
    auto b = buffers->acquire();
    std::atomic<bool> got{false};
    std::jthread t([&] {
      auto c = buffers->acquire();
      got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(got);
    a.reset();
    t.join();
    CHECK(got);
  }
}

TEST_CASE("run_backup stores a tree that reads back, then skips unchanged files", "[backup]") {
  TempDir dir;
  std::string repo_path = coffer::test::copy_golden_repo(dir, "v2");
  std::string src = dir.path() + "/src";
  std::string big = random_bytes_string(3 * 1024 * 1024 + 777, 7);
  write_file(src + "/big.bin", big);
  write_file(src + "/sub/hello.txt", "hello\n");
  write_file(src + "/sub/skip.tmp", "no");
  REQUIRE(::symlink("sub/hello.txt", (src + "/link").c_str()) == 0);
  {  // 3 MiB with a 2 MiB hole in the middle
    int fd = ::open((src + "/sparse.img").c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "start", 5, 0) == 5);
    REQUIRE(::pwrite(fd, "end", 3, 3 * 1024 * 1024 - 3) == 3);
    ::close(fd);
  }

  auto repo = open_repo(repo_path);
  BackupOptions o;
  o.paths = {src};
  o.exclude.excludes = {"*.tmp"};
  o.tags = {"unit"};
  o.hostname = "unit-host";
  auto first = run_backup(*repo, o);
  REQUIRE(first);
  REQUIRE(first->snapshot_id);
  CHECK(first->errors.empty());
  CHECK(first->summary.files_new == 3);
  CHECK(first->summary.data_blobs > 3);

  repo = open_repo(repo_path);
  auto snaps = repo->list_snapshots();
  REQUIRE(snaps);
  const SnapshotEntry& s = snaps->back();
  CHECK(s.id == *first->snapshot_id);
  CHECK(s.snapshot.paths == std::vector<std::string>{src});
  CHECK(s.snapshot.tags == std::vector<std::string>{"unit"});
  CHECK(s.snapshot.hostname == "unit-host");
  CHECK_FALSE(s.snapshot.summary_json.empty());
  // The root tree mirrors the absolute path: tmp/.../src.
  auto tree = repo->load_tree(s.snapshot.tree);
  REQUIRE(tree);
  for (const auto& part : std::filesystem::path(src).relative_path()) {
    const Node& n = child(*tree, part.string());
    REQUIRE(n.subtree);
    tree = repo->load_tree(*n.subtree);
    REQUIRE(tree);
  }
  CHECK(content_of(*repo, child(*tree, "big.bin")) == big);
  CHECK(child(*tree, "link").linktarget == "sub/hello.txt");
  const Node& sparse = child(*tree, "sparse.img");
  std::string image = content_of(*repo, sparse);
  CHECK(image.size() == 3 * 1024 * 1024);
  CHECK(image.substr(0, 5) == "start");
  CHECK(image.substr(image.size() - 3) == "end");
  CHECK(std::count(sparse.content.begin(), sparse.content.end(), zero_chunk_id()) >= 1);
  auto sub = repo->load_tree(*child(*tree, "sub").subtree);
  REQUIRE(sub);
  REQUIRE(sub->nodes.size() == 1);  // skip.tmp excluded
  CHECK(content_of(*repo, sub->nodes[0]) == "hello\n");

  auto second = run_backup(*repo, o);
  REQUIRE(second);
  CHECK(second->parent_id == first->snapshot_id);
  CHECK(second->summary.files_unmodified == 3);
  CHECK(second->summary.files_new + second->summary.files_changed == 0);
  CHECK(second->summary.data_blobs == 0);

  o.dry_run = true;
  o.force = true;
  auto dry = run_backup(*repo, o);
  REQUIRE(dry);
  CHECK_FALSE(dry->snapshot_id);
  CHECK(dry->summary.files_new == 3);
  auto after = repo->list_ids(FileKind::kSnapshot);
  REQUIRE(after);
  CHECK(after->size() == snaps->size() + 1);  // the dry run stored no snapshot
}

TEST_CASE("run_backup refuses bad input", "[backup]") {
  TempDir dir;
  auto repo = open_repo(coffer::test::copy_golden_repo(dir, "v2"));
  BackupOptions o;
  CHECK(run_backup(*repo, o).error().code == Errc::kInvalidArgument);  // no paths
  o.paths = {dir.path() + "/missing"};
  CHECK(run_backup(*repo, o).error().code == Errc::kInvalidArgument);
  o.paths = {dir.path()};
  o.exclude.excludes = {"[bad"};
  CHECK(run_backup(*repo, o).error().code == Errc::kInvalidArgument);
}
