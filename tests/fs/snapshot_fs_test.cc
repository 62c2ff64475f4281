// SnapshotFs without the kernel: on the restic-made golden repositories (real reads through
// the chunk store) and on a hand-made tree (hard links, xattrs, devices, views).
#include "fs/snapshot_fs.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>
#include <sys/sysmacros.h>

#include "fs/repo_access.h"
#include "repo/backend/local/local_backend.h"
#include "repo/ops/walk.h"
#include "tests/fs/snapshot_fs_helpers.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::fs::DirEntry;
using coffer::fs::Entry;
using coffer::fs::kRootNodeId;
using coffer::fs::RepositoryAccess;
using coffer::fs::RepositoryAccessOptions;
using coffer::fs::SnapshotFs;
using coffer::fs::SnapshotFsOptions;
using coffer::test::list;
using coffer::test::resolve;
using coffer::test::TempDir;

namespace {

struct Golden {
  TempDir tmp;
  std::string path;
  std::unique_ptr<Repository> repo;
  std::unique_ptr<RepositoryAccess> access;
  std::unique_ptr<SnapshotFs> fs;

  explicit Golden(const std::string& version, SnapshotFsOptions o = {}) {
    path = coffer::test::copy_golden_repo(tmp, version);
    OpenOptions open_options;
    open_options.cache_dir = tmp.path() + "/cache";
    auto r = Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword,
                              open_options);
    REQUIRE(r);
    repo = std::move(*r);
    REQUIRE(repo->load_index());
    RepositoryAccessOptions ao;
    ao.chunks.disk_dir = "";  // RAM only
    auto a = RepositoryAccess::open(*repo, ao);
    REQUIRE(a);
    access = std::move(*a);
    auto f = SnapshotFs::create(*access, o);
    REQUIRE(f);
    fs = std::move(*f);
  }
};

std::string read_all(SnapshotFs& fs, std::uint64_t nodeid, std::uint64_t offset = 0,
                     std::size_t size = 1 << 30) {
  auto file = fs.open(nodeid);
  REQUIRE(file);
  Bytes out;
  auto r = fs.read(**file, offset, size, out);
  REQUIRE(r);
  return to_string(out);
}

std::string latest_snapshot_dir(SnapshotFs& fs) {
  Entry link = resolve(fs, "/snapshots/latest");
  REQUIRE(S_ISLNK(link.attr.st_mode));
  auto target = fs.readlink(link.nodeid);
  REQUIRE(target);
  return "/snapshots/" + *target;
}

// The plaintext of a file node, assembled blob by blob through the repository.
std::string expected_content(const Repository& repo, const std::string& path) {
  auto snaps = repo.list_snapshots();
  REQUIRE(snaps);
  auto node = find_node(repo, root_node(snaps->back().snapshot), path);
  REQUIRE(node);
  std::string out;
  for (const Id& id : node->content) {
    auto blob = repo.load_blob(BlobHandle{id, BlobType::kData});
    REQUIRE(blob);
    out += to_string(*blob);
  }
  return out;
}

}  // namespace

TEST_CASE("the mount shows the layout and each snapshot's root tree", "[snapshot_fs]") {
  Golden g(GENERATE(std::string("v1"), std::string("v2")));
  CHECK(list(*g.fs, kRootNodeId) ==
        std::vector<std::string>{".", "..", "hosts", "ids", "snapshots", "tags"});
  auto snaps = g.repo->list_snapshots();
  REQUIRE(snaps);
  std::vector<std::string> ids = {snaps->front().id.short_hex(), snaps->back().id.short_hex()};
  std::sort(ids.begin(), ids.end());
  CHECK(list(*g.fs, resolve(*g.fs, "/ids").nodeid) ==
        std::vector<std::string>{".", "..", ids[0], ids[1]});
  CHECK(list(*g.fs, resolve(*g.fs, "/tags").nodeid) ==
        std::vector<std::string>{".", "..", "one", "three", "two"});
  std::string latest = latest_snapshot_dir(*g.fs);
  Entry snap_dir = resolve(*g.fs, latest);
  CHECK(S_ISDIR(snap_dir.attr.st_mode));
  CHECK(snap_dir.attr.st_mtim.tv_sec == snaps->back().snapshot.time.unix_seconds);
  CHECK(list(*g.fs, snap_dir.nodeid) == std::vector<std::string>{".", "..", "data"});
  CHECK(list(*g.fs, resolve(*g.fs, latest + "/data").nodeid) ==
        std::vector<std::string>{".", "..", "empty", "hello.txt", "link", "sub dir", "text.txt"});
  Entry link = resolve(*g.fs, latest + "/data/link");
  CHECK(S_ISLNK(link.attr.st_mode));
  CHECK(link.attr.st_size == 9);
  CHECK(*g.fs->readlink(link.nodeid) == "hello.txt");
  CHECK(resolve(*g.fs, "/hosts/golden/latest").attr.st_size ==
        resolve(*g.fs, "/snapshots/latest").attr.st_size);
}

TEST_CASE("files stat like their tree node and read back byte for byte", "[snapshot_fs]") {
  Golden g(GENERATE(std::string("v1"), std::string("v2")));
  std::string dir = latest_snapshot_dir(*g.fs) + "/data";
  Entry hello = resolve(*g.fs, dir + "/hello.txt");
  CHECK(S_ISREG(hello.attr.st_mode));
  CHECK(hello.attr.st_size == 13);
  CHECK(hello.attr.st_blocks == 1);
  CHECK(hello.attr.st_mtim.tv_sec == 1580702706);
  CHECK(hello.attr.st_mtim.tv_nsec == 123456789);
  CHECK(hello.attr.st_nlink == 1);
  CHECK(read_all(*g.fs, hello.nodeid) == "hello coffer\n");
  CHECK(read_all(*g.fs, hello.nodeid, 6, 3) == "cof");
  CHECK(read_all(*g.fs, hello.nodeid, 13, 10).empty());
  CHECK(read_all(*g.fs, hello.nodeid, 1000, 10).empty());
  CHECK(read_all(*g.fs, resolve(*g.fs, dir + "/empty").nodeid).empty());

  for (std::string name : {"/data/sub dir/random.bin", "/data/text.txt"}) {
    std::string want = expected_content(*g.repo, name);
    Entry e = resolve(*g.fs, latest_snapshot_dir(*g.fs) + name);
    CHECK(e.attr.st_size == static_cast<off_t>(want.size()));
    CHECK(read_all(*g.fs, e.nodeid) == want);
    auto file = g.fs->open(e.nodeid);
    REQUIRE(file);
    for (std::uint64_t off : {0UL, 1UL, 4095UL, 131072UL, want.size() / 2, want.size() - 7}) {
      for (std::size_t len : {1UL, 4096UL, 131072UL, 1048576UL}) {
        Bytes out;
        REQUIRE(g.fs->read(**file, off, len, out));
        CHECK(to_string(out) == want.substr(off, len));
      }
    }
  }
}

TEST_CASE("SEEK_DATA and SEEK_HOLE on a file without holes", "[snapshot_fs]") {
  Golden g("v2");
  Entry e = resolve(*g.fs, latest_snapshot_dir(*g.fs) + "/data/text.txt");
  auto file = g.fs->open(e.nodeid);
  REQUIRE(file);
  CHECK(*g.fs->lseek(**file, 0, SEEK_DATA) == 0U);
  CHECK(*g.fs->lseek(**file, 1000, SEEK_DATA) == 1000U);
  CHECK(*g.fs->lseek(**file, 0, SEEK_HOLE) == 700000U);
  CHECK(!*g.fs->lseek(**file, 700000, SEEK_DATA));
  CHECK(!*g.fs->lseek(**file, 700000, SEEK_HOLE));
  CHECK(!g.fs->lseek(**file, 0, SEEK_SET));
}

TEST_CASE("inode numbers are stable across mounts; node ids follow lookups", "[snapshot_fs]") {
  Golden g("v2");
  auto again = SnapshotFs::create(*g.access, {});
  REQUIRE(again);
  auto snaps = g.repo->list_snapshots();
  REQUIRE(snaps);
  std::string by_id = "/ids/" + snaps->back().id.short_hex();
  std::string by_time = latest_snapshot_dir(*g.fs);
  for (const std::string& p :
       std::vector<std::string>{by_id + "/data/hello.txt", by_id + "/data/sub dir", "/tags/two"})
    CHECK(resolve(*g.fs, p).attr.st_ino == resolve(**again, p).attr.st_ino);
  // One file has one node id in every view; a directory has one per view (one parent each).
  Entry f1 = resolve(*g.fs, by_id + "/data/hello.txt");
  Entry f2 = resolve(*g.fs, by_time + "/data/hello.txt");
  CHECK(f1.nodeid == f2.nodeid);
  Entry d1 = resolve(*g.fs, by_id + "/data");
  Entry d2 = resolve(*g.fs, by_time + "/data");
  CHECK(d1.nodeid != d2.nodeid);
  CHECK(d1.attr.st_ino != d2.attr.st_ino);
  // The same path in the older snapshot is another file.
  std::string older = "/ids/" + snaps->front().id.short_hex() + "/data/hello.txt";
  CHECK(resolve(*g.fs, older).attr.st_ino != f1.attr.st_ino);

  std::size_t live = g.fs->live_inodes();
  g.fs->forget(f1.nodeid, 2);  // looked up three times: still live
  CHECK(g.fs->getattr(f1.nodeid));
  g.fs->forget(f1.nodeid, 1);
  CHECK(g.fs->live_inodes() == live - 1);
  auto gone = g.fs->getattr(f1.nodeid);
  REQUIRE(!gone);
  CHECK(gone.error().code == Errc::kNotFound);
  Entry f3 = resolve(*g.fs, by_id + "/data/hello.txt");
  CHECK(f3.nodeid > f1.nodeid);  // never reused
  CHECK(f3.attr.st_ino == f1.attr.st_ino);
}

TEST_CASE("readdir resumes at offsets; readdirplus counts only entries that fit", "[snapshot_fs]") {
  Golden g("v2");
  Entry dir = resolve(*g.fs, latest_snapshot_dir(*g.fs) + "/data");
  std::vector<std::string> all = list(*g.fs, dir.nodeid);
  REQUIRE(all.size() == 7);
  for (std::uint64_t off = 0; off <= all.size(); ++off)
    CHECK(list(*g.fs, dir.nodeid, off) == std::vector<std::string>(all.begin() + off, all.end()));

  auto handle = g.fs->opendir(dir.nodeid);
  REQUIRE(handle);
  CHECK(SnapshotFs::cacheable(**handle));
  CHECK_FALSE(SnapshotFs::cacheable(**g.fs->opendir(kRootNodeId)));
  std::size_t before = g.fs->live_inodes();
  std::vector<std::uint64_t> next_offsets;
  REQUIRE(g.fs->readdirplus(**handle, 0, [&](const DirEntry& e, const Entry& entry) {
    if (e.name == "link")
      return false;  // no room from here on
    next_offsets.push_back(e.next_offset);
    if (e.name != "." && e.name != "..") {
      CHECK(entry.nodeid != 0);
      CHECK(entry.attr.st_ino == e.ino);
    }
    return true;
  }));
  CHECK(next_offsets == std::vector<std::uint64_t>{1, 2, 3, 4});
  CHECK(g.fs->live_inodes() == before + 2);  // empty, hello.txt; not the refused link
}

TEST_CASE("negative lookups: cached long inside snapshots, briefly in the layout",
          "[snapshot_fs]") {
  SnapshotFsOptions o;
  o.dynamic_timeout = 0.5;
  Golden g("v2", o);
  auto missing = g.fs->lookup(resolve(*g.fs, latest_snapshot_dir(*g.fs)).nodeid, "nope");
  REQUIRE(missing);
  CHECK(missing->nodeid == 0);
  CHECK(missing->entry_timeout >= 1e6);
  auto meta = g.fs->lookup(resolve(*g.fs, "/snapshots").nodeid, "nope");
  REQUIRE(meta);
  CHECK(meta->nodeid == 0);
  CHECK(meta->entry_timeout == 0.5);
  CHECK(resolve(*g.fs, "/snapshots").attr_timeout == 0.5);
  CHECK(resolve(*g.fs, latest_snapshot_dir(*g.fs) + "/data").attr_timeout >= 1e6);
  auto not_dir = g.fs->lookup(resolve(*g.fs, "/snapshots/latest").nodeid, "x");
  REQUIRE(!not_dir);
  CHECK(not_dir.error().code == Errc::kInvalidArgument);
}

TEST_CASE("a forgotten snapshot disappears on the next refresh", "[snapshot_fs]") {
  SnapshotFsOptions o;
  o.refresh_interval = std::chrono::milliseconds(0);
  Golden g("v2", o);
  auto snaps = g.repo->list_snapshots();
  REQUIRE(snaps);
  CHECK(list(*g.fs, resolve(*g.fs, "/ids").nodeid).size() == 4);
  std::filesystem::remove(g.path + "/snapshots/" + snaps->front().id.hex());
  CHECK(list(*g.fs, resolve(*g.fs, "/ids").nodeid) ==
        std::vector<std::string>{".", "..", snaps->back().id.short_hex()});
  CHECK(list(*g.fs, resolve(*g.fs, "/tags").nodeid) ==
        std::vector<std::string>{".", "..", "three", "two"});
}

namespace {

// The pack holding the first data blob of `path` in the latest snapshot.
PackedBlob first_blob(const Repository& repo, const std::string& path) {
  auto snaps = repo.list_snapshots();
  REQUIRE(snaps);
  auto node = find_node(repo, root_node(snaps->back().snapshot), path);
  REQUIRE(node);
  auto where = repo.lookup(BlobHandle{node->content.at(0), BlobType::kData});
  REQUIRE(where);
  REQUIRE(*where);
  return **where;
}

}  // namespace

TEST_CASE("damaged or vanished packs fail only the reads that need them", "[snapshot_fs]") {
  Golden g("v2");
  std::string dir = latest_snapshot_dir(*g.fs) + "/data";
  Entry random = resolve(*g.fs, dir + "/sub dir/random.bin");
  Entry hello = resolve(*g.fs, dir + "/hello.txt");
  PackedBlob blob = first_blob(*g.repo, "/data/sub dir/random.bin");
  bool shared_pack = first_blob(*g.repo, "/data/hello.txt").pack == blob.pack;
  std::string pack = g.path + "/data/" + blob.pack.hex().substr(0, 2) + "/" + blob.pack.hex();
  bool vanished = false;
  SECTION("a flipped byte is an I/O error, never wrong bytes") {
    std::fstream f(pack, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    char c = 0;
    f.seekg(blob.offset + blob.length / 2);
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(blob.offset + blob.length / 2);
    f.write(&c, 1);
  }
  SECTION("a vanished pack is an I/O error, not 'no such file'") {
    std::filesystem::remove(pack);
    vanished = true;
  }
  auto file = g.fs->open(random.nodeid);
  REQUIRE(file);
  Bytes out;
  auto r = g.fs->read(**file, 0, 4096, out);
  REQUIRE(!r);
  CHECK(r.error().code != Errc::kNotFound);  // ENOENT would be wrong for contents
  if (!vanished || !shared_pack)
    CHECK(read_all(*g.fs, hello.nodeid) == "hello coffer\n");
}
