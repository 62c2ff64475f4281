#include <filesystem>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/backend/mem_backend.h"
#include "repo/core/id.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;

namespace {

struct MemFixture {
  std::unique_ptr<WriteBackend> backend = std::make_unique<MemBackend>();
};

struct LocalFixture {
  coffer::test::TempDir dir;
  std::unique_ptr<WriteBackend> backend = std::make_unique<LocalBackend>(dir.path() + "/repo");
};

std::string name_for(char c) { return Id::hash(as_bytes(std::string(1, c))).hex(); }

}  // namespace

TEMPLATE_TEST_CASE("backend conformance", "[backend]", MemFixture, LocalFixture) {
  TestType fx;
  WriteBackend& be = *fx.backend;
  REQUIRE(be.create());
  Handle pack{FileKind::kPack, name_for('p')};
  Bytes data = to_bytes("0123456789abcdef");
  REQUIRE(be.save(pack, data));

  SECTION("whole and ranged loads") {
    REQUIRE(*be.load(pack, 0, 0) == data);
    REQUIRE(to_string(*be.load(pack, 4, 3)) == "456");
    REQUIRE(to_string(*be.load(pack, 10, 0)) == "abcdef");
    REQUIRE(be.load(pack, 10, 10).error().code == Errc::kCorrupt);
  }
  SECTION("stat and missing files") {
    REQUIRE(*be.stat(pack) == data.size());
    Handle missing{FileKind::kPack, name_for('m')};
    REQUIRE(be.load(missing, 0, 0).error().code == Errc::kNotFound);
    REQUIRE(be.stat(missing).error().code == Errc::kNotFound);
  }
  SECTION("list sees each file of a kind once, with its size") {
    REQUIRE(be.save(Handle{FileKind::kPack, name_for('q')}, to_bytes("x")));
    REQUIRE(be.save(Handle{FileKind::kIndex, name_for('i')}, to_bytes("yy")));
    std::set<std::string> packs;
    REQUIRE(be.list(FileKind::kPack, [&](const FileInfo& f) -> Result<void> {
      packs.insert(f.name);
      return {};
    }));
    REQUIRE(packs == std::set<std::string>{name_for('p'), name_for('q')});
    std::uint64_t index_size = 0;
    REQUIRE(be.list(FileKind::kIndex, [&](const FileInfo& f) -> Result<void> {
      index_size = f.size;
      return {};
    }));
    REQUIRE(index_size == 2);
  }
  SECTION("remove") {
    REQUIRE(be.remove(pack));
    REQUIRE(be.stat(pack).error().code == Errc::kNotFound);
    REQUIRE(be.remove(pack).error().code == Errc::kNotFound);
  }
  SECTION("concurrent ranged reads return the right bytes") {
    std::atomic<int> wrong{0};
    std::vector<std::jthread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          std::uint64_t off = static_cast<std::uint64_t>((t + i) % 16);
          auto r = be.load(pack, off, 1);
          if (!r || (*r)[0] != data[off])
            ++wrong;
        }
      });
    }
    threads.clear();
    REQUIRE(wrong == 0);
  }
}

TEST_CASE("local backend writes read-only files and ignores junk names", "[backend]") {
  coffer::test::TempDir dir;
  LocalBackend be(dir.path() + "/repo");
  REQUIRE(be.create());
  Handle h{FileKind::kSnapshot, name_for('s')};
  REQUIRE(be.save(h, to_bytes("snap")));
  struct stat st {};
  REQUIRE(::stat((dir.path() + "/repo/snapshots/" + h.name).c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0400);
  FILE* junk = std::fopen((dir.path() + "/repo/snapshots/" + h.name + "-tmp-123").c_str(), "w");
  REQUIRE(junk != nullptr);
  std::fclose(junk);
  int count = 0;
  REQUIRE(be.list(FileKind::kSnapshot, [&](const FileInfo&) -> Result<void> {
    ++count;
    return {};
  }));
  REQUIRE(count == 1);
  REQUIRE(be.create());  // no config yet: creating again is harmless
  REQUIRE(be.save(Handle{FileKind::kConfig, "config"}, to_bytes("c")));
  REQUIRE(be.create().error().code == Errc::kInvalidArgument);
}

TEST_CASE("fault backend injects failures and flipped bytes", "[backend]") {
  auto mem = std::make_unique<MemBackend>();
  Handle h{FileKind::kPack, name_for('f')};
  REQUIRE(mem->save(h, to_bytes("abcdef")));
  FaultBackend fb(std::move(mem));
  fb.fail_next_loads(1);
  auto first = fb.load(h, 0, 0);
  REQUIRE_FALSE(first);
  REQUIRE(first.error().retryable);
  REQUIRE(to_string(*fb.load(h, 0, 0)) == "abcdef");
  fb.corrupt_byte(h, 2);
  REQUIRE(to_string(*fb.load(h, 1, 3)) == "bbd");
  fb.clear_broken();
  fb.break_file(h);
  auto broken = fb.load(h, 0, 0);
  REQUIRE_FALSE(broken);
  REQUIRE_FALSE(broken.error().retryable);
  REQUIRE(fb.load_calls() == 4);
}

namespace {

// Names of the files under `dir` (recursively) that contain "-tmp-".
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().find("-tmp-") != std::string::npos)
      out.push_back(e.path().string());
  }
  return out;
}

Result<void> write_pieces(PendingFile& f, const std::vector<std::string>& pieces) {
  for (const std::string& p : pieces) COFFER_TRY(f.append(as_bytes(p)));
  return {};
}

std::vector<std::string> listed(WriteBackend& be, FileKind kind) {
  std::vector<std::string> names;
  REQUIRE(be.list(kind, [&](const FileInfo& f) -> Result<void> {
    names.push_back(f.name);
    return {};
  }));
  return names;
}

}  // namespace

TEST_CASE("local pending files stream into a hidden temporary file until commit",
          "[backend][pending]") {
  coffer::test::TempDir dir;
  std::string root = dir.path() + "/repo";
  LocalBackend be(root);
  REQUIRE(be.create());
  Handle h{FileKind::kPack, name_for('p')};
  auto file = be.begin_file(FileKind::kPack);
  REQUIRE(file);
  REQUIRE(write_pieces(**file, {"abc", "", "defgh"}));
  std::vector<std::string> tmp = temp_files(root);
  REQUIRE(tmp.size() == 1);
  struct stat st {};
  REQUIRE(::stat(tmp[0].c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_size == 8);
  CHECK(listed(be, FileKind::kPack).empty());  // list() skips the temporary file
  REQUIRE(be.stat(h).error().code == Errc::kNotFound);

  SECTION("commit renames it into place, read-only") {
    REQUIRE((*file)->commit(h));
    CHECK(to_string(*be.load(h, 0, 0)) == "abcdefgh");
    REQUIRE(::stat((root + "/" + h.path()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0400);
    CHECK(listed(be, FileKind::kPack) == std::vector<std::string>{h.name});
    CHECK((*file)->commit(h).error().code == Errc::kInvalidArgument);  // only once
    file->reset();
    CHECK(to_string(*be.load(h, 0, 0)) == "abcdefgh");  // destroying it keeps it
  }
  SECTION("destroying it uncommitted removes it") {
    file->reset();
    CHECK(listed(be, FileKind::kPack).empty());
  }
  SECTION("an existing name is refused and the existing file kept") {
    REQUIRE(be.save(h, to_bytes("old")));
    auto committed = (*file)->commit(h);
    REQUIRE_FALSE(committed);
    CHECK(committed.error().code == Errc::kInvalidArgument);
    CHECK_FALSE(committed.error().retryable);
    CHECK(to_string(*be.load(h, 0, 0)) == "old");
    CHECK((*file)->append(as_bytes("x")).error().code == Errc::kInvalidArgument);
  }
  SECTION("a commit of another kind is refused") {
    CHECK((*file)->commit(Handle{FileKind::kIndex, h.name}).error().code == Errc::kInvalidArgument);
    REQUIRE((*file)->commit(h));  // the file is still usable
  }
  CHECK(temp_files(root).empty());
}

TEST_CASE("local pending files of other kinds and many at once", "[backend][pending]") {
  coffer::test::TempDir dir;
  LocalBackend be(dir.path() + "/repo");
  REQUIRE(be.create());
  std::vector<std::unique_ptr<PendingFile>> files;
  for (char c : std::string("abcdef")) {
    auto f = be.begin_file(c < 'd' ? FileKind::kPack : FileKind::kIndex);
    REQUIRE(f);
    REQUIRE((*f)->append(as_bytes(std::string(1000, c))));
    files.push_back(std::move(*f));
  }
  REQUIRE(temp_files(dir.path()).size() == 6);
  REQUIRE(files[0]->commit(Handle{FileKind::kPack, name_for('a')}));
  REQUIRE(files[4]->commit(Handle{FileKind::kIndex, name_for('e')}));
  files.clear();
  CHECK(temp_files(dir.path()).empty());
  CHECK(to_string(*be.load(Handle{FileKind::kPack, name_for('a')}, 0, 1)) == "a");
  CHECK(to_string(*be.load(Handle{FileKind::kIndex, name_for('e')}, 999, 1)) == "e");
  CHECK(listed(be, FileKind::kPack).size() == 1);
  CHECK(listed(be, FileKind::kIndex).size() == 1);
}

TEST_CASE("the default pending file buffers in memory and saves at commit", "[backend][pending]") {
  MemBackend be;
  Handle h{FileKind::kSnapshot, name_for('s')};
  auto file = be.begin_file(FileKind::kSnapshot);
  REQUIRE(file);
  REQUIRE(write_pieces(**file, {"snap", "shot"}));
  CHECK(be.stat(h).error().code == Errc::kNotFound);
  SECTION("commit saves the concatenation, once") {
    REQUIRE((*file)->commit(h));
    CHECK(to_string(*be.load(h, 0, 0)) == "snapshot");
    CHECK((*file)->commit(h).error().code == Errc::kInvalidArgument);
    CHECK((*file)->append(as_bytes("x")).error().code == Errc::kInvalidArgument);
  }
  SECTION("abandoning stores nothing") {
    file->reset();
    CHECK(listed(be, FileKind::kSnapshot).empty());
  }
  SECTION("an existing name or another kind is refused") {
    REQUIRE(be.save(h, to_bytes("old")));
    CHECK((*file)->commit(Handle{FileKind::kIndex, name_for('i')}).error().code ==
          Errc::kInvalidArgument);
    CHECK((*file)->commit(h).error().code == Errc::kInvalidArgument);
    CHECK(to_string(*be.load(h, 0, 0)) == "old");
  }
}

TEST_CASE("fault backend applies save failures to pending-file commits", "[backend][pending]") {
  coffer::test::TempDir dir;
  auto local = std::make_unique<LocalBackend>(dir.path() + "/repo");
  REQUIRE(local->create());
  FaultBackend fb(std::move(local));
  Handle h{FileKind::kPack, name_for('f')};
  auto file = fb.begin_file(FileKind::kPack);
  REQUIRE(file);
  REQUIRE((*file)->append(as_bytes("pack bytes")));
  SECTION("a retryable failure keeps the data for another commit") {
    fb.fail_saves(FileKind::kPack, 0, 1, true);
    auto first = (*file)->commit(h);
    REQUIRE_FALSE(first);
    CHECK(first.error().retryable);
    CHECK(temp_files(dir.path()).size() == 1);
    REQUIRE((*file)->commit(h));
    CHECK(to_string(*fb.load(h, 0, 0)) == "pack bytes");
  }
  SECTION("a permanent failure abandons the file") {
    fb.fail_saves(FileKind::kPack, 0, 1, false);
    auto first = (*file)->commit(h);
    REQUIRE_FALSE(first);
    CHECK_FALSE(first.error().retryable);
    CHECK(temp_files(dir.path()).empty());
    CHECK_FALSE((*file)->commit(h));
    CHECK(fb.stat(h).error().code == Errc::kNotFound);
  }
  file->reset();
  CHECK(temp_files(dir.path()).empty());
}
