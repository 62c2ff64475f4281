#include "repo/init.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "repo/backend/local/local_backend.h"
#include "repo/backend/mem_backend.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
namespace fs = std::filesystem;

namespace {

constexpr KdfParams kFastKdf{1024, 8, 1};  // keeps the tests quick; real keys use the default

KeyOptions fast_key(std::string user = "", std::string host = "") {
  return KeyOptions{std::move(user), std::move(host), kFastKdf};
}

MasterKey test_master_key() {
  MasterKey k;
  for (std::size_t i = 0; i < k.encrypt.size(); ++i) k.encrypt[i] = std::byte(i + 1);
  for (std::size_t i = 0; i < k.mac_k.size(); ++i) k.mac_k[i] = std::byte(0x40 + i);
  for (std::size_t i = 0; i < k.mac_r.size(); ++i) k.mac_r[i] = std::byte(0x80 + i);
  return k;
}

bool same_key(const MasterKey& a, const MasterKey& b) {
  return a.encrypt == b.encrypt && a.mac_k == b.mac_k && a.mac_r == b.mac_r;
}

// Every file and directory below `root`: relative path -> mode and content.
std::map<std::string, std::pair<unsigned, std::string>> snapshot_tree(const std::string& root) {
  std::map<std::string, std::pair<unsigned, std::string>> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    std::string content;
    if (e.is_regular_file()) {
      std::ifstream f(e.path(), std::ios::binary);
      content.assign(std::istreambuf_iterator<char>(f), {});
    }
    out[fs::relative(e.path(), root).string()] = {st.st_mode, content};
  }
  return out;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

Result<std::unique_ptr<Repository>> open_local(const std::string& path, std::string_view pw) {
  OpenOptions o;
  o.no_cache = true;
  return Repository::open(std::make_unique<LocalBackend>(path), pw, o);
}

}  // namespace

TEST_CASE("a new key file serializes as restic writes it and opens with its password", "[init]") {
  MasterKey master = test_master_key();
  auto made = make_key_file(master, "secret", kFastKdf);
  REQUIRE(made);
  REQUIRE(made->salt.size() == 64);
  made->created = "2026-11-26T08:19:22.387195005+05:30";
  made->username = "u&ser";
  made->hostname = "h<o>st";
  std::string json = serialize_key_file(*made);
  REQUIRE(
      json.rfind(R"({"created":"2026-11-26T08:19:22.387195005+05:30","username":"u\u0026ser",)"
                 R"("hostname":"h\u003co\u003est","kdf":"scrypt","N":1024,"r":8,"p":1,"salt":")",
                 0) == 0);
  REQUIRE(json.find("\",\"data\":\"") != std::string::npos);
  REQUIRE(json.back() == '}');  // no trailing newline

  auto parsed = parse_key_file(json);
  REQUIRE(parsed);
  CHECK(parsed->created == made->created);
  CHECK(parsed->username == "u&ser");
  CHECK(parsed->hostname == "h<o>st");
  CHECK(parsed->n == 1024);
  CHECK(parsed->r == 8);
  CHECK(parsed->p == 1);
  CHECK(parsed->salt == made->salt);
  CHECK(parsed->data == made->data);
  CHECK(serialize_key_file(*parsed) == json);

  auto opened = open_key_file(*parsed, "secret");
  REQUIRE(opened);
  CHECK(same_key(*opened, master));
  auto wrong = open_key_file(*parsed, "Secret");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == Errc::kAuth);
}

TEST_CASE("two key files for the same password differ in salt and data", "[init]") {
  MasterKey master = test_master_key();
  auto a = make_key_file(master, "pw", kFastKdf);
  auto b = make_key_file(master, "pw", kFastKdf);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->salt != b->salt);
  CHECK(a->data != b->data);
  REQUIRE_FALSE(make_key_file(master, "pw", KdfParams{1000, 8, 1}));  // N not a power of two
}

TEST_CASE("config JSON is byte-exact", "[init]") {
  Config c;
  c.version = 2;
  c.id = *Id::parse("8c484116d0b5b9c9af189a5adf8ae2f0f31c517cf288f6a5ff0a4162a3e86e69");
  c.chunker_polynomial = 0x2a49b78b0ec9d7;
  CHECK(serialize_config(c) ==
        R"({"version":2,"id":"8c484116d0b5b9c9af189a5adf8ae2f0f31c517cf288f6a5ff0a4162a3e86e69",)"
        R"("chunker_polynomial":"2a49b78b0ec9d7"})");
  c.version = 1;
  c.chunker_polynomial = 0x3DA3358B4DC173;
  CHECK(serialize_config(c).find(R"("version":1,)") != std::string::npos);
  CHECK(serialize_config(c).find(R"("chunker_polynomial":"3da3358b4dc173"})") != std::string::npos);
}

TEST_CASE("init creates a repository that opens with its password only", "[init]") {
  unsigned version = GENERATE(1U, 2U);
  coffer::test::TempDir tmp;
  std::string path = tmp.path() + "/repo";
  LocalBackend backend(path);
  InitOptions o;
  o.version = version;
  o.key = fast_key("alice", "box");
  auto config = init_repository(backend, "pw-1", o);
  REQUIRE(config);
  CHECK(config->version == version);
  CHECK(polynomial_degree(config->chunker_polynomial) == 53);
  CHECK(polynomial_irreducible(config->chunker_polynomial));

  for (const char* d :
       {"", "/data", "/data/00", "/data/ff", "/keys", "/index", "/snapshots", "/locks"}) {
    CHECK(mode_of(path + d) == 0700);
  }
  CHECK(mode_of(path + "/config") == 0400);
  CHECK(fs::file_size(path + "/config") == 155);  // 123 bytes of JSON + IV + MAC

  auto repo = open_local(path, "pw-1");
  REQUIRE(repo);
  CHECK((*repo)->config().id == config->id);
  CHECK((*repo)->config().version == version);
  CHECK((*repo)->config().chunker_polynomial == config->chunker_polynomial);
  auto keys = list_keys(**repo);
  REQUIRE(keys);
  REQUIRE(keys->size() == 1);
  CHECK(keys->front().current);
  CHECK(keys->front().username == "alice");
  CHECK(keys->front().hostname == "box");
  CHECK(mode_of(path + "/keys/" + keys->front().id.hex()) == 0400);

  auto wrong = open_local(path, "pw-2");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == Errc::kAuth);
}

TEST_CASE("init keeps a given polynomial and refuses a reducible one", "[init]") {
  MemBackend backend;
  InitOptions o;
  o.key = fast_key();
  o.polynomial = 0x3DA3358B4DC173;  // restic's test polynomial (irreducible, degree 53)
  auto config = init_repository(backend, "pw", o);
  REQUIRE(config);
  CHECK(config->chunker_polynomial == 0x3DA3358B4DC173);

  MemBackend other;
  o.polynomial = 0x3DA3358B4DC172;  // degree 53 but divisible by x
  auto bad = init_repository(other, "pw", o);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::kInvalidArgument);
}

TEST_CASE("init refuses bad options and writes nothing", "[init]") {
  coffer::test::TempDir tmp;
  std::string path = tmp.path() + "/repo";
  LocalBackend backend(path);
  InitOptions o;
  o.key = fast_key();
  o.version = 3;
  REQUIRE_FALSE(init_repository(backend, "pw", o));
  o.version = 2;
  auto empty = init_repository(backend, "", o);
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code == Errc::kInvalidArgument);
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("a second init is refused and changes nothing", "[init]") {
  coffer::test::TempDir tmp;
  SECTION("a repository coffer made") {
    std::string path = tmp.path() + "/repo";
    LocalBackend backend(path);
    InitOptions o;
    o.key = fast_key();
    REQUIRE(init_repository(backend, "pw", o));
    auto before = snapshot_tree(path);
    auto again = init_repository(backend, "pw", o);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::kInvalidArgument);
    CHECK(again.error().message.find("already exists") != std::string::npos);
    CHECK(snapshot_tree(path) == before);
  }
  SECTION("a repository restic made") {
    std::string path = coffer::test::copy_golden_repo(tmp, "v1");
    auto before = snapshot_tree(path);
    LocalBackend backend(path);
    InitOptions o;
    o.key = fast_key();
    REQUIRE_FALSE(init_repository(backend, "other", o));
    CHECK(snapshot_tree(path) == before);
  }
}

TEST_CASE("keys are added, listed, removed and changed", "[init]") {
  coffer::test::TempDir tmp;
  std::string path = tmp.path() + "/repo";
  LocalBackend backend(path);
  InitOptions o;
  o.key = fast_key("first", "h1");
  REQUIRE(init_repository(backend, "old", o));
  auto repo = open_local(path, "old");
  REQUIRE(repo);
  Id first = (*repo)->key_id();

  auto added = add_key(**repo, "new", fast_key("second", "h2"));
  REQUIRE(added);
  auto keys = list_keys(**repo);
  REQUIRE(keys);
  REQUIRE(keys->size() == 2);
  CHECK(keys->at(0).id == first);  // oldest first
  CHECK(keys->at(0).current);
  CHECK(keys->at(1).id == *added);
  CHECK_FALSE(keys->at(1).current);
  CHECK(keys->at(1).username == "second");
  REQUIRE(open_local(path, "new"));
  CHECK((*open_local(path, "new"))->key_id() == *added);
  REQUIRE_FALSE(add_key(**repo, "", fast_key()));

  auto refused = remove_key(**repo, first);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == Errc::kInvalidArgument);
  auto missing = remove_key(**repo, Id::hash(as_bytes("nope")));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::kNotFound);
  REQUIRE(remove_key(**repo, *added));
  REQUIRE_FALSE(open_local(path, "new"));

  auto changed = change_password(**repo, "newer", fast_key());
  REQUIRE(changed);
  auto old = open_local(path, "old");
  REQUIRE_FALSE(old);
  CHECK(old.error().code == Errc::kAuth);
  auto reopened = open_local(path, "newer");
  REQUIRE(reopened);
  CHECK((*reopened)->key_id() == *changed);
  auto left = list_keys(**reopened);
  REQUIRE(left);
  REQUIRE(left->size() == 1);
  CHECK(left->front().current);
}
