// Tests for repo/ops/restore against the restic-made golden repository (tests/data/repos/v2):
// contents are checked against Repository::load_blob (an independent read path), metadata
// against the values the golden script set.
#include "repo/ops/restore.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/ops/restore_fs.h"
#include "repo/ops/walk.h"
#include "repo/repository.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_at_offset(const std::string& path, std::uint64_t offset, const std::string& data) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

struct Golden {
  TempDir tmp;
  FaultBackend* fault = nullptr;  // owned by repo
  std::unique_ptr<Repository> repo;
  Snapshot snap;

  Golden() {
    std::string path = coffer::test::copy_golden_repo(tmp, "v2");
    auto backend = std::make_unique<FaultBackend>(std::make_unique<LocalBackend>(path));
    fault = backend.get();
    OpenOptions o;
    o.no_cache = true;
    auto opened = Repository::open(std::move(backend), coffer::test::kGoldenPassword, o);
    REQUIRE(opened);
    repo = std::move(*opened);
    REQUIRE(repo->load_index());
    auto snaps = repo->list_snapshots();
    REQUIRE(snaps);
    snap = snaps->back().snapshot;
  }

  Node node(const std::string& path) const {
    auto n = find_node(*repo, root_node(snap), path);
    REQUIRE(n);
    return *n;
  }

  // The file's contents, blob by blob through Repository::load_blob.
  std::string content(const std::string& path) const {
    std::string out;
    for (const Id& id : node(path).content) {
      auto blob = repo->load_blob({id, BlobType::kData});
      REQUIRE(blob);
      out += to_string(*blob);
    }
    return out;
  }

  RestoreStats restore(RestoreOptions o) const {
    auto stats = restore_snapshot(*repo, snap, o);
    REQUIRE(stats);
    return *stats;
  }

  std::string target(const std::string& name) const { return tmp.path() + "/" + name; }
};

const char* const kFiles[] = {"/data/hello.txt", "/data/empty", "/data/text.txt",
                              "/data/sub dir/random.bin"};

}  // namespace

TEST_CASE("restore writes the snapshot's files, links and metadata", "[restore]") {
  Golden g;
  RestoreOptions o;
  o.target = g.target("out");
  o.verify = GENERATE(false, true);
  o.workers = GENERATE(1U, 0U);
  RestoreStats s = g.restore(o);
  CHECK(s.errors == 0);
  CHECK(s.files == 4);
  CHECK(s.files_skipped == 0);
  CHECK(s.others == 1);
  for (const char* f : kFiles) CHECK(read_file(o.target + f) == g.content(f));
  CHECK(read_file(o.target + "/data/hello.txt") == "hello coffer\n");
  struct stat st {};
  REQUIRE(::lstat((o.target + "/data/hello.txt").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == 1580702706);
  CHECK(st.st_mtim.tv_nsec == 123456789);
  Node dir = g.node("/data");
  REQUIRE(::lstat((o.target + "/data").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == dir.mtime.unix_seconds);
  CHECK((st.st_mode & 07777) == (dir.unix_mode() & 07777));
  CHECK(fs::read_symlink(o.target + "/data/link") == "hello.txt");
}

TEST_CASE("restore applies include and exclude patterns", "[restore]") {
  Golden g;
  RestoreOptions o;
  o.target = g.target("out");
  SECTION("include one file: its parents are created, nothing else") {
    o.includes = {"/data/hello.txt"};
    RestoreStats s = g.restore(o);
    CHECK(s.files == 1);
    CHECK(read_file(o.target + "/data/hello.txt") == "hello coffer\n");
    CHECK_FALSE(fs::exists(o.target + "/data/text.txt"));
    CHECK_FALSE(fs::exists(o.target + "/data/sub dir"));
  }
  SECTION("exclude by glob at any depth") {
    o.excludes = {"*.bin", "link"};
    RestoreStats s = g.restore(o);
    CHECK(s.files == 3);
    CHECK(fs::is_directory(o.target + "/data/sub dir"));
    CHECK_FALSE(fs::exists(o.target + "/data/sub dir/random.bin"));
    CHECK_FALSE(fs::is_symlink(o.target + "/data/link"));
    CHECK(fs::exists(o.target + "/data/text.txt"));
  }
  SECTION("a malformed pattern is refused before anything is written") {
    o.includes = {"[oops"};
    auto r = restore_snapshot(*g.repo, g.snap, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kInvalidArgument);
    CHECK_FALSE(fs::exists(o.target));
  }
}

TEST_CASE("restore of a subpath puts its contents into the target", "[restore]") {
  Golden g;
  RestoreOptions o;
  o.target = g.target("out");
  SECTION("a directory") {
    o.subpath = "/data/sub dir";
    g.restore(o);
    CHECK(read_file(o.target + "/random.bin") == g.content("/data/sub dir/random.bin"));
    CHECK_FALSE(fs::exists(o.target + "/data"));
  }
  SECTION("a single file") {
    o.subpath = "data/hello.txt";
    RestoreStats s = g.restore(o);
    CHECK(s.files == 1);
    CHECK(read_file(o.target + "/hello.txt") == "hello coffer\n");
  }
  SECTION("a missing path") {
    o.subpath = "/data/nope";
    auto r = restore_snapshot(*g.repo, g.snap, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kNotFound);
  }
}

TEST_CASE("restore over an earlier restore rewrites only what differs", "[restore]") {
  Golden g;
  RestoreOptions o;
  o.target = g.target("out");
  g.restore(o);
  const std::string text = o.target + "/data/text.txt";
  const std::string hello = o.target + "/data/hello.txt";
  struct stat before {};
  REQUIRE(::lstat(text.c_str(), &before) == 0);
  write_at_offset(text, 1000, "CHANGED");  // same size, mtime put back below
  const timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, text.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
  REQUIRE(::truncate(hello.c_str(), 3) == 0);
  REQUIRE(::chmod((o.target + "/data/sub dir/random.bin").c_str(), 0600) == 0);

  RestoreStats s = g.restore(o);
  CHECK(s.errors == 0);
  CHECK(s.files == 4);
  CHECK(s.files_skipped == 2);                                   // empty and random.bin
  CHECK(s.bytes_written <= g.node("/data/text.txt").size + 13);  // random.bin not rewritten
  for (const char* f : kFiles) CHECK(read_file(o.target + f) == g.content(f));
  struct stat st {};
  REQUIRE(::lstat((o.target + "/data/sub dir/random.bin").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (g.node("/data/sub dir/random.bin").unix_mode() & 0777));
}

TEST_CASE("a corrupt blob fails only its file, which is removed", "[restore]") {
  Golden g;
  Node victim = g.node("/data/sub dir/random.bin");
  REQUIRE_FALSE(victim.content.empty());
  auto where = g.repo->lookup({victim.content.front(), BlobType::kData});
  REQUIRE(where);
  REQUIRE(where->has_value());
  const PackedBlob& pb = **where;
  g.fault->corrupt_byte({FileKind::kPack, pb.pack.hex()}, pb.offset + pb.length / 2);
  std::vector<std::string> seen;
  RestoreOptions o;
  o.target = g.target("out");
  o.on_error = [&](const std::string& m) { seen.push_back(m); };
  RestoreStats s = g.restore(o);
  CHECK(s.errors >= 1);
  REQUIRE_FALSE(s.error_messages.empty());
  CHECK(seen == s.error_messages);
  const std::string& msg = s.error_messages.front();
  CHECK(msg.find("random.bin") != std::string::npos);
  CHECK(msg.find(pb.pack.hex()) != std::string::npos);
  CHECK(msg.find(pb.id.hex()) != std::string::npos);
  CHECK_FALSE(fs::exists(o.target + "/data/sub dir/random.bin"));
  CHECK(read_file(o.target + "/data/hello.txt") == "hello coffer\n");
}

TEST_CASE("a pack that cannot be read fails its files but not the restore", "[restore]") {
  Golden g;
  auto where = g.repo->lookup({g.node("/data/text.txt").content.front(), BlobType::kData});
  REQUIRE(where);
  REQUIRE(where->has_value());
  g.fault->break_file({FileKind::kPack, (*where)->pack.hex()});
  RestoreOptions o;
  o.target = g.target("out");
  RestoreStats s = g.restore(o);
  CHECK(s.errors >= 1);
  CHECK_FALSE(fs::exists(o.target + "/data/text.txt"));
}

TEST_CASE("a cancelled restore reports kCancelled", "[restore]") {
  Golden g;
  std::atomic<bool> cancel{true};
  RestoreOptions o;
  o.target = g.target("out");
  o.cancel = &cancel;
  auto r = restore_snapshot(*g.repo, g.snap, o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kCancelled);
}

TEST_CASE("restore_fs helpers replace what is in the way and keep holes", "[restore]") {
  using namespace coffer::repo::restore_detail;
  TempDir tmp;
  const std::string p = tmp.path() + "/f";
  REQUIRE(::symlink("/etc/passwd", p.c_str()) == 0);
  auto fd = create_file(p, /*absent=*/true);  // must replace the symlink, not follow it
  REQUIRE(fd);
  CHECK_FALSE(fs::is_symlink(p));
  REQUIRE(write_at(fd->get(), as_bytes("abc"), 5000, p));
  Node file;
  file.size = 1 << 20;
  file.mode = 0640;
  file.mtime = GoTime{1234567890, 5, 0};
  file.uid = ::geteuid();
  file.gid = ::getegid();
  CHECK(finalize_file(fd->get(), p, file).empty());
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK(st.st_size == (1 << 20));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_sec == 1234567890);
  CHECK(st.st_mtim.tv_nsec == 5);
  CHECK(read_file(p).substr(4999, 5) == std::string("\0abc\0", 5));
  REQUIRE(zero_range(fd->get(), 0, 1 << 20, p));
  std::string data = read_file(p);
  CHECK(data.size() == (1U << 20));
  CHECK(data.find_first_not_of('\0') == std::string::npos);
  Node link;
  link.type = NodeType::kSymlink;
  link.linktarget = std::string("raw\xff\xfe", 5);
  REQUIRE(create_special(p, link));
  CHECK(fs::read_symlink(p).string() == link.linktarget);
  CHECK(is_all_zero(as_bytes(std::string(100, '\0'))));
  CHECK_FALSE(is_all_zero(as_bytes(std::string(99, '\0') + "x")));
}
