// Tests of the snapshot JSON codec: golden snapshot files decrypted from a restic 0.14
// repository (tests/data/snapshots, made by tests/data/make_golden.sh) and newer fields.
#include "repo/snapshot/snapshot.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

using namespace coffer::repo;

namespace {

std::filesystem::path data_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> read_manifest(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  std::istringstream lines(read_file(dir / "MANIFEST"));
  std::string file, id;
  while (lines >> file >> id) out[file] = id;
  return out;
}

Snapshot load(const std::string& file) {
  auto s = parse_snapshot(read_file(data_dir() / "snapshots" / file));
  REQUIRE(s);
  return *s;
}

std::string id_hex(char c) { return std::string(64, c); }

}  // namespace

TEST_CASE("golden restic snapshots round-trip byte for byte", "[snapshot][golden]") {
  auto manifest = read_manifest(data_dir() / "snapshots");
  REQUIRE(manifest.size() == 3);
  for (const auto& [file, id] : manifest) {
    INFO(file);
    std::string text = read_file(data_dir() / "snapshots" / file);
    CHECK(text.back() == '}');  // json.Marshal: no trailing newline
    auto s = parse_snapshot(text);
    REQUIRE(s);
    CHECK(serialize_snapshot(*s) == text);
    CHECK(s->unknown_fields_json.empty());
  }
}

TEST_CASE("golden snapshots: field values", "[snapshot][golden]") {
  auto snaps = read_manifest(data_dir() / "snapshots");
  auto trees = read_manifest(data_dir() / "trees");
  Snapshot s0 = load("snapshot0.json");
  Snapshot s1 = load("snapshot1.json");
  Snapshot s2 = load("snapshot2.json");

  CHECK(s0.tree.hex() == trees.at("s0_root.json"));
  CHECK(s1.tree.hex() == trees.at("s1_root.json"));
  CHECK(s2.tree == s1.tree);
  CHECK(s0.hostname == "goldenhost");
  CHECK(s0.username == "root");
  CHECK(s0.uid == 0);
  REQUIRE(s0.paths.size() == 1);
  CHECK(s0.paths[0] == "/dev/shm/coffer-golden/src/data");
  CHECK(s0.tags == std::vector<std::string>{"alpha", "b<&>\"", "retagged"});
  CHECK(s0.excludes.empty());
  CHECK_FALSE(s0.parent);
  REQUIRE(s0.original);  // rewritten by `restic tag`
  CHECK(s0.time.offset_seconds == 3600);

  REQUIRE(s1.parent);
  CHECK(*s1.parent == *s0.original);  // the parent was the snapshot before tagging
  CHECK(s1.excludes == std::vector<std::string>{"*.tmp"});
  CHECK(s1.time.offset_seconds == 0);
  REQUIRE(s2.parent);
  CHECK(s2.parent->hex() == snaps.at("snapshot1.json"));
  CHECK(s0.time < s1.time);
  CHECK(s1.time < s2.time);
}

TEST_CASE("snapshot with newer and unknown fields round-trips", "[snapshot]") {
  const std::string text =
      R"({"time":"2024-01-01T00:30:00.5+02:00","parent":")" + id_hex('1') + R"(","tree":")" +
      id_hex('2') +
      R"(","paths":["/a\u003cb","/\u00e9t\u00e9"],"hostname":"h",)"
      R"("username":"u","uid":1000,"gid":100,"excludes":["*.o"],"tags":["t1",""],)"
      R"("original":")" +
      id_hex('3') +
      R"(","program_version":"restic 0.17.3","summary":{"backup_start":)"
      R"("2024-01-01T00:29:00+02:00","files_new":1,"data_added":12345},)"
      R"("zfuture":{"k":[1,2,{"z":null,"a":false}]}})";
  auto s = parse_snapshot(text);
  REQUIRE(s);
  CHECK(s->uid == 1000);
  CHECK(s->gid == 100);
  CHECK(s->paths[0] == "/a<b");
  CHECK(s->tags == std::vector<std::string>{"t1", ""});
  CHECK(s->program_version == "restic 0.17.3");
  CHECK(s->summary_json ==
        R"({"backup_start":"2024-01-01T00:29:00+02:00","files_new":1,"data_added":12345})");
  CHECK(s->unknown_fields_json == R"({"zfuture":{"k":[1,2,{"z":null,"a":false}]}})");
  // Go writes \u00e9 as the literal UTF-8 character.
  std::string expected = text;
  expected.replace(expected.find("\\u00e9t\\u00e9"), 13, "été");
  CHECK(serialize_snapshot(*s) == expected);
}

TEST_CASE("serialize_snapshot omits empty fields like json.Marshal", "[snapshot]") {
  Snapshot s;
  s.time = GoTime{1700000000, 0, 0};
  s.tree = *Id::parse(id_hex('a'));
  CHECK(serialize_snapshot(s) ==
        R"({"time":"2023-11-14T22:13:20Z","tree":")" + id_hex('a') + R"(","paths":null})");
  s.paths = {"/x"};
  s.gid = 5;
  s.tags = {"a&b"};
  s.unknown_fields_json = R"({"tree":"ignored duplicate","extra":1})";
  CHECK(serialize_snapshot(s) == R"({"time":"2023-11-14T22:13:20Z","tree":")" + id_hex('a') +
                                     R"(","paths":["/x"],"gid":5,"tags":["a\u0026b"],"extra":1})");
  auto back = parse_snapshot(serialize_snapshot(s));
  REQUIRE(back);
  CHECK(back->gid == 5);
  CHECK(back->unknown_fields_json == R"({"extra":1})");
}

TEST_CASE("malformed snapshots are kCorrupt", "[snapshot]") {
  const std::string t = R"("time":"2024-01-01T00:00:00Z")";
  const std::string tree = R"("tree":")" + id_hex('b') + "\"";
  const std::string bad[] = {
      "",
      "[]",
      "{" + t,
      "{" + t + "}",     // no tree
      "{" + tree + "}",  // no time
      "{" + t + R"(,"tree":null})",
      "{" + t + R"(,"tree":"abc"})",
      "{" + t + R"(,"tree":)" + "\"" + id_hex('x') + "\"}",
      std::string("{") + R"("time":null,)" + tree + "}",
      std::string("{") + R"("time":"2024-01-01",)" + tree + "}",
      std::string("{") + R"("time":5,)" + tree + "}",
      "{" + t + "," + tree + R"(,"paths":"/x"})",
      "{" + t + "," + tree + R"(,"tags":[1]})",
      "{" + t + "," + tree + R"(,"uid":-1})",
      "{" + t + "," + tree + R"(,"gid":4294967296})",
      "{" + t + "," + tree + R"(,"parent":"zz"})",
      "{" + t + "," + tree + R"(,"summary":[]})",
      "{" + t + "," + tree + R"(,"hostname":{}})",
  };
  for (const auto& s : bad) {
    INFO(s);
    auto r = parse_snapshot(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kCorrupt);
  }
}
