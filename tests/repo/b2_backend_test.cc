// The B2 backend: b2: locations and -o options, file-name encoding and SHA-1 offline; then
// B2Backend itself against the B2 emulator (python3 tests/support/b2emu) on loopback: ranges,
// versions, listing, many threads, the hide fallback, a wrong key. Faults and the commands are
// tested end to end in tests/tools/b2_test.py.
#include "repo/backend/b2/b2_backend.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "repo/backend/b2/b2_api.h"
#include "repo/location.h"
#include "tests/support/temp_dir.h"

namespace coffer::repo {
namespace {

// Sets B2 credentials for the scope of a test (and removes them afterwards).
struct Credentials {
  Credentials() {
    ::setenv("B2_ACCOUNT_ID", "key-id", 1);
    ::setenv("B2_ACCOUNT_KEY", "s3cret-key", 1);
  }
  ~Credentials() {
    ::unsetenv("B2_ACCOUNT_ID");
    ::unsetenv("B2_ACCOUNT_KEY");
  }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;
};

TEST_CASE("b2 locations parse bucket and prefix", "[b2]") {
  Credentials creds;
  auto plain = open_backend("b2:bucket-one");
  REQUIRE(plain);
  CHECK((*plain)->location() == "b2:bucket-one");
  CHECK_FALSE((*plain)->properties().local);
  auto nested = open_backend("b2:bucket-one:/some/repo/");
  REQUIRE(nested);
  CHECK((*nested)->location() == "b2:bucket-one:some/repo");
  CHECK((*nested)->properties().max_connections == 10);
  for (const char* bad : {"b2:", "b2:short", "b2:bad_name!", "b2:bucket-one:a//b",
                          "b2:bucket-one:../x", "b2:bucket-one:a/./b"}) {
    auto r = open_backend(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kInvalidArgument);
  }
}

TEST_CASE("b2 options are checked and the key never shows", "[b2]") {
  Credentials creds;
  BackendOptions o;
  REQUIRE(add_backend_option(o, "b2.connections=3"));
  REQUIRE_FALSE(add_backend_option(o, "novalue"));
  auto b = open_backend("b2:bucket-one:p", o);
  REQUIRE(b);
  CHECK((*b)->properties().max_connections == 3);
  for (const char* bad : {"b2.connections=0", "b2.connections=x", "b2.retries=1000", "b2.bogus=1",
                          "b2.endpoint=ftp://host"}) {
    BackendOptions wrong;
    REQUIRE(add_backend_option(wrong, bad));
    auto r = open_backend("b2:bucket-one:p", wrong);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("s3cret-key") == std::string::npos);
  }
  BackendOptions foreign;  // another backend's namespace is not ours to judge
  REQUIRE(add_backend_option(foreign, "s3.region=x"));
  CHECK(open_backend("b2:bucket-one:p", foreign));
}

TEST_CASE("b2 without credentials is a clear error", "[b2]") {
  ::unsetenv("B2_ACCOUNT_ID");
  ::unsetenv("COFFER_B2_ACCOUNT_ID");
  auto r = open_backend("b2:bucket-one:p");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("B2_ACCOUNT_ID") != std::string::npos);
}

TEST_CASE("b2 file names are percent-encoded and hashed with SHA-1", "[b2]") {
  CHECK(b2::encode_name("data/3f/3fab") == "data/3f/3fab");
  CHECK(b2::encode_name("a b+c%d") == "a%20b%2Bc%25d");
  CHECK(b2::encode_name("\xc3\xa9") == "%C3%A9");
  CHECK(b2::sha1_hex(as_bytes(std::string_view("hello"))) ==
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
}

}  // namespace
}  // namespace coffer::repo

namespace coffer::repo {
namespace {

// The B2 emulator (tests/support/b2emu) as a child process on a loopback port, with an account
// (acc-unit / unit-master-key), the bucket "unit-bucket" and a key without deleteFiles.
class Emulator {
 public:
  Emulator() : accounts_(dir_.path() + "/accounts.json") {
    std::FILE* f = std::fopen(accounts_.c_str(), "w");
    std::fputs(R"({"accounts": [{"accountId": "acc-unit", "masterKey": "unit-master-key",
      "buckets": [{"bucketName": "unit-bucket"}],
      "keys": [{"keyId": "nodelete", "key": "nodelete-key", "bucketName": "unit-bucket",
                "capabilities": ["listBuckets", "listFiles", "readFiles", "writeFiles"]}]}]})",
               f);
    std::fclose(f);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string script = std::string(COFFER_SOURCE_DIR) + "/tests/support/b2emu/b2emu.py";
    std::vector<std::string> args = {"python3", script, "--port", "0", "--accounts", accounts_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    std::string line;
    char c = 0;
    while (::read(fds[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(fds[0]);
    auto port_at = line.find("\"port\": ");
    REQUIRE(port_at != std::string::npos);
    url_ = "http://127.0.0.1:" + std::to_string(std::atoi(line.c_str() + port_at + 8));
  }
  ~Emulator() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  [[nodiscard]] B2Options options(std::string key_id = "acc-unit",
                                  std::string key = "unit-master-key") const {
    B2Options o;
    o.bucket = "unit-bucket";
    o.prefix = "unit/repo";
    o.key_id = std::move(key_id);
    o.key = std::move(key);
    o.endpoint = url_;
    o.endpoint_overridden = true;
    o.backoff = std::chrono::milliseconds(10);
    o.connections = 4;
    return o;
  }

 private:
  test::TempDir dir_;
  std::string accounts_;
  std::string url_;
  pid_t pid_ = -1;
};

Bytes pattern(std::size_t n, int seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return b;
}

std::string id_for(int i) { return std::string(62, 'a') + (i < 10 ? "0" : "") + std::to_string(i); }

TEST_CASE("b2 backend stores, reads ranges, lists and deletes every version", "[b2]") {
  Emulator emu;
  B2Backend b2(emu.options());
  REQUIRE(b2.create());
  Handle pack{FileKind::kPack, id_for(1)};
  Bytes data = pattern(300000, 1);
  REQUIRE(b2.save(pack, data));
  REQUIRE(b2.save(pack, data));  // a second version of the same name
  CHECK(*b2.stat(pack) == data.size());
  CHECK(*b2.load(pack, 0, 0) == data);
  auto part = b2.load(pack, 1000, 5000);
  REQUIRE(part);
  CHECK(*part == Bytes(data.begin() + 1000, data.begin() + 6000));
  auto beyond = b2.load(pack, data.size() - 10, 20);
  REQUIRE_FALSE(beyond);
  CHECK(beyond.error().code == Errc::kCorrupt);
  REQUIRE(b2.save(Handle{FileKind::kConfig, "config"}, pattern(10, 2)));
  REQUIRE(b2.save(Handle{FileKind::kKey, id_for(2)}, Bytes()));
  CHECK(b2.load(Handle{FileKind::kKey, id_for(2)}, 0, 0)->empty());
  std::vector<std::string> packs;
  REQUIRE(b2.list(FileKind::kPack, [&](const FileInfo& f) -> Result<void> {
    packs.push_back(f.name);
    CHECK(f.size == data.size());
    return {};
  }));
  CHECK(packs == std::vector<std::string>{id_for(1)});
  REQUIRE(b2.remove(pack));
  CHECK(b2.stat(pack).error().code == Errc::kNotFound);  // no older version resurfaced
  CHECK(b2.remove(pack).error().code == Errc::kNotFound);
  CHECK(b2.create().error().code == Errc::kInvalidArgument);  // config exists
  B2Counters c = b2.counters();
  CHECK(c.class_a >= 4);
  CHECK(c.bytes_up == 2 * data.size() + 10);
  CHECK(c.bytes_down >= data.size() + 5000);
}

TEST_CASE("b2 backend serves many threads and hides when it may not delete", "[b2]") {
  Emulator emu;
  B2Backend b2(emu.options());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&b2, t] {
      for (int i = 0; i < 4; ++i) {
        Handle h{FileKind::kSnapshot, id_for(t * 4 + i)};
        CHECK(b2.save(h, pattern(1000 + t, t)));
        CHECK(*b2.load(h, 0, 0) == pattern(1000 + t, t));
      }
    });
  }
  for (auto& th : threads) th.join();
  int n = 0;
  REQUIRE(b2.list(FileKind::kSnapshot, [&](const FileInfo&) -> Result<void> {
    ++n;
    return {};
  }));
  CHECK(n == 32);
  CHECK(b2.counters().reauthorizations == 0);
  B2Backend limited(emu.options("nodelete", "nodelete-key"));
  Handle h{FileKind::kSnapshot, id_for(0)};
  REQUIRE(limited.remove(h));
  CHECK(limited.stat(h).error().code == Errc::kNotFound);
  CHECK(b2.stat(h).error().code == Errc::kNotFound);
}

TEST_CASE("b2 backend reports a wrong key once, without retrying", "[b2]") {
  Emulator emu;
  B2Backend b2(emu.options("acc-unit", "wrong"));
  auto first = b2.stat(Handle{FileKind::kConfig, "config"});
  REQUIRE_FALSE(first);
  CHECK(first.error().code == Errc::kAccessDenied);
  CHECK(first.error().message.find("wrong") == std::string::npos);
  CHECK_FALSE(b2.list(FileKind::kKey, [](const FileInfo&) -> Result<void> { return {}; }));
  CHECK(b2.counters().requests == 1);
}

}  // namespace
}  // namespace coffer::repo
