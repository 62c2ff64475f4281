#include "repo/lock.h"

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "repo/backend/local/local_backend.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;

namespace {

int lock_files(const std::string& repo) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(repo + "/locks")) {
    if (e.path().filename().string().size() == 64)
      ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("lock JSON round-trips in restic's shape", "[lock]") {
  LockInfo l{GoTime{1700000000, 5, 0}, true, "host", "user", 42, 0, 7};
  std::string json = serialize_lock(l);
  REQUIRE(
      json ==
      R"({"time":"2023-11-14T22:13:20.000000005Z","exclusive":true,"hostname":"host","username":"user","pid":42,"gid":7})");
  auto back = parse_lock(json);
  REQUIRE(back);
  REQUIRE(back->exclusive);
  REQUIRE(back->pid == 42);
  REQUIRE(back->gid == 7);
  REQUIRE_FALSE(parse_lock("{}"));
}

TEST_CASE("locks exclude each other as restic's do and are removed on release", "[lock]") {
  coffer::test::TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::filesystem::create_directories(path + "/locks");
  auto repo =
      Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword, {});
  REQUIRE(repo);
  {
    auto shared1 = RepoLock::acquire(**repo, false);
    REQUIRE(shared1);
    auto shared2 = RepoLock::acquire(**repo, false);
    REQUIRE(shared2);
    REQUIRE(lock_files(path) == 2);
    auto exclusive = RepoLock::acquire(**repo, true);
    REQUIRE_FALSE(exclusive);
    REQUIRE(exclusive.error().code == Errc::kLocked);
    REQUIRE(exclusive.error().message.find("PID") != std::string::npos);
    REQUIRE(lock_files(path) == 2);  // the refused lock's own file is gone again
  }
  REQUIRE(lock_files(path) == 0);
  {
    auto exclusive = RepoLock::acquire(**repo, true);
    REQUIRE(exclusive);
    auto shared = RepoLock::acquire(**repo, false);
    REQUIRE_FALSE(shared);
    REQUIRE(shared.error().code == Errc::kLocked);
    REQUIRE(shared.error().message.find("exclusively") != std::string::npos);
    REQUIRE(lock_files(path) == 1);
  }
  REQUIRE(lock_files(path) == 0);
}

TEST_CASE("an empty lock file blocks nothing, as in restic 0.15.1+", "[lock]") {
  coffer::test::TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::filesystem::create_directories(path + "/locks");
  const std::string empty = path + "/locks/" + std::string(64, 'a');
  { std::ofstream(empty).flush(); }
  auto repo =
      Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword, {});
  REQUIRE(repo);
  {
    auto exclusive = RepoLock::acquire(**repo, true);
    REQUIRE(exclusive);
    REQUIRE(lock_files(path) == 2);
  }
  REQUIRE(lock_files(path) == 1);  // the empty one, left alone
}
