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
