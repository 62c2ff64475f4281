// The rest: and rclone: backends: URL parsing and password redaction offline; then the backend
// contract (backend.h) of RestBackend against a real `rclone serve restic`, started by the
// rclone: backend itself. The commands over rest: and rclone: are tested end to end in
// tests/tools/rest_test.py.
#include "repo/backend/rest/rest_backend.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <unistd.h>

#include "repo/location.h"
#include "tests/support/temp_dir.h"

namespace coffer::repo {
namespace {

std::string id_of(char c) { return std::string(64, c); }

}  // namespace

TEST_CASE("rest URLs are parsed and their passwords redacted", "[rest]") {
  auto u = parse_rest_url("http://user:p%40ss@host:8000/some/path");
  REQUIRE(u);
  CHECK(u->base == "http://host:8000/some/path/");
  CHECK(u->username == "user");
  CHECK(u->password == "p@ss");
  CHECK(u->redacted == "rest:http://user:***@host:8000/some/path/");
  auto plain = parse_rest_url("https://host/");
  REQUIRE(plain);
  CHECK(plain->base == "https://host/");
  CHECK(plain->redacted == "rest:https://host/");
  CHECK(plain->password.empty());
  CHECK(parse_rest_url("ftp://host/").error().code == Errc::kInvalidArgument);
  CHECK(parse_rest_url("http://u:secret@/x").error().code == Errc::kInvalidArgument);
  CHECK(redact_location("rest:http://a:secret@h/") == "rest:http://a:***@h/");
  CHECK(redact_location("/srv/repo") == "/srv/repo");
}

TEST_CASE("rest backend options are checked", "[rest]") {
  CHECK(open_backend("rest:http://h/", {{"rest.connections", "0"}}).error().code ==
        Errc::kInvalidArgument);
  CHECK(open_backend("rest:http://h/", {{"rest.bogus", "1"}}).error().code ==
        Errc::kInvalidArgument);
  auto b = open_backend("rest:http://u:pw@h:1/r", {{"rest.connections", "7"}});
  REQUIRE(b);
  CHECK((*b)->location() == "rest:http://u:***@h:1/r/");
  CHECK((*b)->properties().max_connections == 7);
  CHECK(open_backend("rclone:x", {{"rclone.program", "/nonexistent"}}).error().code ==
        Errc::kInvalidArgument);
}

TEST_CASE("rest backend follows the backend contract against rclone serve restic", "[rest]") {
  if (::access("/usr/bin/rclone", X_OK) != 0) {
    WARN("rclone is not installed; skipped");
    return;
  }
  test::TempDir dir;
  auto opened = open_backend("rclone:" + dir.path() + "/repo");
  REQUIRE(opened);
  WriteBackend& b = **opened;
  REQUIRE(b.create());
  REQUIRE(b.save(Handle{FileKind::kConfig, "config"}, as_bytes("cfg")));
  CHECK(b.create().error().code == Errc::kInvalidArgument);

  Handle pack{FileKind::kPack, id_of('a')};
  Bytes data = to_bytes("0123456789abcdef");
  REQUIRE(b.save(pack, data));
  CHECK(b.save(pack, data).error().code == Errc::kInvalidArgument);
  CHECK(*b.stat(pack) == data.size());
  CHECK(*b.load(pack, 0, 0) == data);
  CHECK(*b.load(pack, 4, 3) == to_bytes("456"));
  CHECK(*b.load(pack, 10, 0) == to_bytes("abcdef"));
  CHECK(b.load(pack, 10, 100).error().code == Errc::kCorrupt);

  Handle missing{FileKind::kSnapshot, id_of('b')};
  CHECK(b.load(missing, 0, 0).error().code == Errc::kNotFound);
  CHECK(b.stat(missing).error().code == Errc::kNotFound);
  CHECK(b.remove(missing).error().code == Errc::kNotFound);

  REQUIRE(b.save(Handle{FileKind::kPack, id_of('c')}, as_bytes("")));
  std::vector<FileInfo> packs;
  REQUIRE(b.list(FileKind::kPack, [&](const FileInfo& f) -> Result<void> {
    packs.push_back(f);
    return {};
  }));
  REQUIRE(packs.size() == 2);
  std::vector<FileInfo> configs;
  REQUIRE(b.list(FileKind::kConfig, [&](const FileInfo& f) -> Result<void> {
    configs.push_back(f);
    return {};
  }));
  REQUIRE(configs.size() == 1);
  CHECK(configs[0].size == 3);
  REQUIRE(b.remove(pack));
  CHECK(b.stat(pack).error().code == Errc::kNotFound);
}

}  // namespace coffer::repo
