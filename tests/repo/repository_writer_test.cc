// Tests for repo/repository_writer: blobs written into copies of the restic-made golden
// repositories are read back through the reader (pack headers, index files, decode_blob),
// and a repository made by the real `restic init` passes `restic check --read-data`.
#include "repo/repository_writer.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/pack/pack_format.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::kGoldenPassword;
using coffer::test::TempDir;

namespace {

constexpr std::uint64_t kSmallPack = kMinPackSize;

struct Opened {
  std::unique_ptr<Repository> repo;
  FaultBackend* fault = nullptr;
};

Opened open_repo(const std::string& path, std::string_view password = kGoldenPassword) {
  auto fault = std::make_unique<FaultBackend>(std::make_unique<LocalBackend>(path));
  FaultBackend* raw = fault.get();
  OpenOptions o;
  o.no_cache = true;
  auto r = Repository::open(std::move(fault), password, o);
  REQUIRE(r);
  REQUIRE((*r)->load_index());
  return {std::move(*r), raw};
}

std::unique_ptr<RepositoryWriter> make_writer(Repository& repo, Compression c,
                                              unsigned uploads = 0) {
  WriterOptions o;
  o.pack_size = kSmallPack;
  o.compression = c;
  o.uploads = uploads;
  auto w = RepositoryWriter::create(repo, o);
  REQUIRE(w);
  return std::move(*w);
}

Bytes random_bytes_of(std::size_t n, std::mt19937_64& rng) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng());
  return b;
}

std::string fmt_line(std::uint64_t seed, std::uint64_t i) {
  return "line " + std::to_string(i) + " of some text, value " +
         std::to_string((seed + i * 7919) % 1000) + "\n";
}

// Compressible text; REQUIRES n >= 1000 so that zstd output is always smaller.
Bytes text_bytes(std::size_t n, std::mt19937_64& rng) {
  std::string s;
  std::uint64_t seed = rng();
  for (std::uint64_t i = 0; s.size() < n; ++i) s += fmt_line(seed, i);
  s.resize(n);
  return to_bytes(s);
}

struct Blob {
  BlobType type;
  Bytes plain;
  bool compressible;
  [[nodiscard]] Id id() const { return Id::hash(plain); }
};

// A mix of incompressible and compressible data blobs (sizes up to `max`) and tree-like blobs.
std::vector<Blob> make_blobs(std::size_t data, std::size_t trees, std::size_t max,
                             std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Blob> out;
  for (std::size_t i = 0; i < data; ++i) {
    bool text = i % 3 == 0;
    std::size_t n = rng() % max + (text ? 1000 : 0);
    out.push_back({BlobType::kData, text ? text_bytes(n, rng) : random_bytes_of(n, rng), text});
  }
  for (std::size_t i = 0; i < trees; ++i) {
    out.push_back({BlobType::kTree, text_bytes(200 + rng() % 5000, rng), true});
  }
  return out;
}

// Files of `kind` in the repository that are not in `before`.
std::vector<Id> new_files(const Repository& repo, FileKind kind, const std::vector<Id>& before) {
  auto now = repo.list_ids(kind);
  REQUIRE(now);
  std::vector<Id> out;
  std::set_difference(now->begin(), now->end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

// Loads pack `id`, checks name = hash and restic's exact size rule, returns the header.
std::vector<PackedBlob> read_pack(const Repository& repo, const Id& id) {
  auto data = repo.backend().load(Handle{FileKind::kPack, id.hex()}, 0, 0);
  REQUIRE(data);
  REQUIRE(Id::hash(*data) == id);
  std::uint32_t hlen = load_le32(data->data() + data->size() - 4);
  REQUIRE(hlen + 4 <= data->size());
  auto header = open_sealed(repo.key(), ByteSpan(*data).subspan(data->size() - 4 - hlen, hlen));
  REQUIRE(header);
  auto blobs = parse_pack_header(*header, id);
  REQUIRE(blobs);
  std::uint64_t expected = 36;
  for (const PackedBlob& b : *blobs) expected += b.length + (b.compressed() ? 41 : 37);
  REQUIRE(data->size() == expected);
  for (const PackedBlob& b : *blobs) {
    REQUIRE(repo.decode_blob(b, ByteSpan(*data).subspan(b.offset, b.length)));
  }
  return *blobs;
}

std::vector<PackedBlob> read_index_files(const Repository& repo, const std::vector<Id>& ids) {
  std::vector<PackedBlob> out;
  for (const Id& id : ids) {
    auto json = repo.load_unpacked(FileKind::kIndex, id);
    REQUIRE(json);
    auto parsed = parse_index(as_chars(*json));
    REQUIRE(parsed);
    out.insert(out.end(), parsed->blobs.begin(), parsed->blobs.end());
  }
  return out;
}

std::map<Id, PackedBlob> by_id(const std::vector<PackedBlob>& blobs) {
  std::map<Id, PackedBlob> out;
  for (const PackedBlob& b : blobs) REQUIRE(out.emplace(b.id, b).second);  // each stored once
  return out;
}

// Reads `packs`, checks that none mixes blob types and that only the last pack of each type
// is below the target size; returns their blobs by id (each must appear once).
std::map<Id, PackedBlob> check_packs(const Repository& repo, const std::vector<Id>& packs) {
  std::vector<PackedBlob> all;
  std::map<BlobType, int> small_packs;
  for (const Id& p : packs) {
    std::vector<PackedBlob> header = read_pack(repo, p);
    for (const PackedBlob& b : header) REQUIRE(b.type == header.front().type);
    auto size = repo.backend().stat(Handle{FileKind::kPack, p.hex()});
    REQUIRE(size);
    if (*size < kSmallPack)
      ++small_packs[header.front().type];
    all.insert(all.end(), header.begin(), header.end());
  }
  CHECK(small_packs[BlobType::kData] <= 1);
  CHECK(small_packs[BlobType::kTree] <= 1);
  return by_id(all);
}

bool expect_compressed(const Blob& b, unsigned version, Compression c) {
  if (version < 2 || b.plain.empty())
    return false;
  if (b.type == BlobType::kTree)
    return true;
  return c != Compression::kOff && b.compressible;
}

}  // namespace

TEST_CASE("writer packs blobs by type, compresses per mode, and indexes every pack", "[writer]") {
  TempDir tmp;
  unsigned version = GENERATE(1U, 2U);
  Compression mode = GENERATE(Compression::kAuto, Compression::kMax, Compression::kOff);
  std::string path = coffer::test::copy_golden_repo(tmp, "v" + std::to_string(version));
  std::unique_ptr<Repository> repo = open_repo(path).repo;
  auto packs_before = repo->list_ids(FileKind::kPack);
  auto index_before = repo->list_ids(FileKind::kIndex);
  std::vector<Blob> blobs = make_blobs(60, 12, 300 << 10, version * 10 + static_cast<int>(mode));
  blobs.push_back({BlobType::kData, Bytes(), false});
  auto writer = make_writer(*repo, mode);
  std::uint64_t plain_total = 0;
  for (const Blob& b : blobs) {
    REQUIRE(writer->save_blob(b.type, b.id(), b.plain) == true);
    REQUIRE(writer->has_blob(b.type, b.id()) == true);
    plain_total += b.plain.size();
  }
  for (const Blob& b : blobs) REQUIRE(writer->save_blob(b.type, b.id(), b.plain) == false);
  Bytes hello = to_bytes("hello coffer\n");  // already in the golden repository
  REQUIRE(writer->save_blob(BlobType::kData, Id::hash(hello), hello) == false);
  REQUIRE(writer->flush());

  std::vector<Id> packs = new_files(*repo, FileKind::kPack, *packs_before);
  std::map<Id, PackedBlob> stored = check_packs(*repo, packs);
  REQUIRE(stored.size() == blobs.size());
  std::vector<Id> index_files = new_files(*repo, FileKind::kIndex, *index_before);
  REQUIRE(index_files.size() == 1);
  REQUIRE(by_id(read_index_files(*repo, index_files)) == stored);
  std::uint64_t packed_total = 0;
  for (const Blob& b : blobs) {
    const PackedBlob& p = stored.at(b.id());
    CHECK(p.type == b.type);
    CHECK(p.compressed() == expect_compressed(b, version, mode));
    packed_total += p.length + (p.compressed() ? 41 : 37);
  }
  WriterStats st = writer->stats();
  CHECK(st.data_blobs == 61);
  CHECK(st.tree_blobs == 12);
  CHECK(st.data_added == plain_total);
  CHECK(st.data_added_packed == packed_total);
  CHECK(st.packs == packs.size());
  CHECK(st.index_files == 1);
  writer.reset();
  auto reopened = open_repo(path);
  for (const Blob& b : blobs) {
    auto loaded = reopened.repo->load_blob(BlobHandle{b.id(), b.type});
    REQUIRE(loaded);
    REQUIRE(*loaded == b.plain);
  }
}

TEST_CASE("concurrent savers of overlapping blobs store each blob once", "[writer][dedup]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::unique_ptr<Repository> repo = open_repo(path).repo;
  auto packs_before = repo->list_ids(FileKind::kPack);
  std::vector<Blob> blobs = make_blobs(300, 0, 40 << 10, 99);
  auto writer = make_writer(*repo, Compression::kAuto);
  constexpr unsigned kThreads = 8;
  std::atomic<int> added{0}, failed{0};
  {
    std::vector<std::jthread> threads;
    for (unsigned t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (std::size_t i = 0; i < blobs.size(); ++i) {
          const Blob& b = blobs[(i + t * 37) % blobs.size()];
          auto r = writer->save_blob(b.type, b.id(), b.plain);
          if (!r)
            ++failed;
          else if (*r)
            ++added;
        }
      });
    }
  }
  REQUIRE(failed == 0);
  REQUIRE(added == static_cast<int>(blobs.size()));
  REQUIRE(writer->stats().data_blobs == blobs.size());
  REQUIRE(writer->flush());
  std::vector<PackedBlob> stored;
  for (const Id& p : new_files(*repo, FileKind::kPack, *packs_before)) {
    auto header = read_pack(*repo, p);
    stored.insert(stored.end(), header.begin(), header.end());
  }
  REQUIRE(by_id(stored).size() == blobs.size());  // by_id fails on a duplicate
}

TEST_CASE("a failed pack upload is reported and no index names a missing pack", "[writer][fault]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  auto [repo, fault] = open_repo(path);
  auto packs_before = repo->list_ids(FileKind::kPack);
  auto index_before = repo->list_ids(FileKind::kIndex);
  fault->fail_saves(FileKind::kPack, 1, 1000, false);  // the second pack fails for good
  std::vector<Blob> blobs = make_blobs(80, 0, 400 << 10, 5);
  auto writer = make_writer(*repo, Compression::kOff, 1);
  Result<bool> saved = true;
  for (const Blob& b : blobs) {
    saved = writer->save_blob(b.type, b.id(), b.plain);
    if (!saved)
      break;
  }
  auto flushed = writer->flush();
  REQUIRE_FALSE(flushed);
  CHECK(flushed.error().code == Errc::kIo);
  CHECK(flushed.error().message.find("injected save failure") != std::string::npos);
  if (!saved)
    CHECK(saved.error().code == Errc::kIo);
  REQUIRE_FALSE(writer->save_blob(BlobType::kData, Id::hash(as_bytes("x")), as_bytes("x")));
  std::vector<Id> packs = new_files(*repo, FileKind::kPack, *packs_before);
  REQUIRE(packs.size() == 1);
  std::set<Id> named;
  for (const PackedBlob& b :
       read_index_files(*repo, new_files(*repo, FileKind::kIndex, *index_before)))
    named.insert(b.pack);
  for (const Id& p : named) REQUIRE(repo->backend().stat(Handle{FileKind::kPack, p.hex()}));
  CHECK(named == std::set<Id>(packs.begin(), packs.end()));  // the stored pack is indexed
  for (const auto& e : std::filesystem::recursive_directory_iterator(path))  // none left
    REQUIRE(e.path().filename().string().find("-tmp-") == std::string::npos);
}

TEST_CASE("transient upload failures are retried", "[writer][fault]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v1");
  auto [repo, fault] = open_repo(path);
  FileKind kind = GENERATE(FileKind::kPack, FileKind::kIndex);
  fault->fail_saves(kind, 0, 2, true);
  std::vector<Blob> blobs = make_blobs(40, 3, 200 << 10, 11);
  auto writer = make_writer(*repo, Compression::kAuto);
  for (const Blob& b : blobs) REQUIRE(writer->save_blob(b.type, b.id(), b.plain));
  REQUIRE(writer->flush());
  writer.reset();
  auto reopened = open_repo(path);
  for (const Blob& b : blobs)
    REQUIRE(reopened.repo->load_blob(BlobHandle{b.id(), b.type}) == b.plain);
}

TEST_CASE("a writer destroyed without flush leaves no partial files and no index", "[writer]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::unique_ptr<Repository> repo = open_repo(path).repo;
  auto packs_before = repo->list_ids(FileKind::kPack);
  auto index_before = repo->list_ids(FileKind::kIndex);
  {
    auto writer = make_writer(*repo, Compression::kOff, 2);
    for (const Blob& b : make_blobs(60, 2, 400 << 10, 3))
      REQUIRE(writer->save_blob(b.type, b.id(), b.plain));
  }
  CHECK(new_files(*repo, FileKind::kIndex, *index_before).empty());
  for (const Id& p : new_files(*repo, FileKind::kPack, *packs_before)) read_pack(*repo, p);
  for (const auto& e : std::filesystem::recursive_directory_iterator(path))
    REQUIRE(e.path().filename().string().find("-tmp-") == std::string::npos);
}

TEST_CASE("unpacked files are framed per repository version and named by their hash", "[writer]") {
  TempDir tmp;
  unsigned version = GENERATE(1U, 2U);
  std::string path = coffer::test::copy_golden_repo(tmp, "v" + std::to_string(version));
  std::unique_ptr<Repository> repo = open_repo(path).repo;
  auto writer = make_writer(*repo, Compression::kOff);
  std::string json =
      R"({"time":"2024-01-02T03:04:05Z","tree":")" + std::string(64, 'a') + R"(","paths":["/x"]})";
  auto id = writer->save_unpacked(FileKind::kSnapshot, json);
  REQUIRE(id);
  auto sealed = repo->backend().load(Handle{FileKind::kSnapshot, id->hex()}, 0, 0);
  REQUIRE(sealed);
  REQUIRE(Id::hash(*sealed) == *id);
  auto plain = open_sealed(repo->key(), *sealed);
  REQUIRE(plain);
  CHECK(std::to_integer<int>(plain->at(0)) == (version == 2 ? 2 : '{'));
  REQUIRE(to_string(*repo->load_unpacked(FileKind::kSnapshot, *id)) == json);
}

TEST_CASE("an index file is written whenever 50000 blobs are pending", "[writer][index]") {
  TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v1");
  std::unique_ptr<Repository> repo = open_repo(path).repo;
  auto index_before = repo->list_ids(FileKind::kIndex);
  auto writer = make_writer(*repo, Compression::kAuto);
  constexpr std::uint64_t kBlobs = 60000;  // 77 bytes each in a pack: 4 MiB holds ~54 000
  for (std::uint64_t i = 0; i < kBlobs; ++i) {
    Bytes plain(8);
    store_le64(plain.data(), i);
    REQUIRE(writer->save_blob(BlobType::kData, Id::hash(plain), plain));
  }
  REQUIRE(writer->flush());
  std::vector<Id> files = new_files(*repo, FileKind::kIndex, *index_before);
  REQUIRE(files.size() == 2);
  REQUIRE(writer->stats().index_files == 2);
  std::vector<std::size_t> sizes;
  for (const Id& f : files) sizes.push_back(read_index_files(*repo, {f}).size());
  std::sort(sizes.begin(), sizes.end());
  CHECK(sizes.back() >= 50000);
  CHECK(sizes.front() + sizes.back() == kBlobs);
}

namespace {

struct RunResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout (and stderr unless `redirect` says otherwise).
RunResult run(const std::string& command, const std::string& redirect = "2>&1") {
  RunResult r;
  FILE* p = ::popen((command + " " + redirect).c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// restic with the password in a file (never in argv) and no cache.
std::string restic(const TempDir& tmp, const std::string& args) {
  return "RESTIC_PASSWORD_FILE='" + tmp.path() + "/pw' restic --no-cache -r '" + tmp.path() +
         "/repo' " + args;
}

GoTime test_time() { return GoTime{1700000000, 123456789, 0}; }

Node file_node(const std::string& name, const std::vector<Blob>& blobs) {
  Node n;
  n.name = name;
  n.type = NodeType::kFile;
  n.mode = 0644;
  n.mtime = n.atime = n.ctime = test_time();
  for (const Blob& b : blobs) {
    if (b.type == BlobType::kData) {
      n.content.push_back(b.id());
      n.size += b.plain.size();
    }
  }
  return n;
}

Node dir_node(const std::string& name, const Id& subtree) {
  Node n;
  n.name = name;
  n.type = NodeType::kDir;
  n.mode = 0x80000000U | 0755;
  n.mtime = n.atime = n.ctime = test_time();
  n.subtree = subtree;
  return n;
}

// Saves a tree blob made of `nodes` (sorted by name by the caller).
Id save_tree(RepositoryWriter& w, std::vector<Node> nodes) {
  std::string text = serialize_tree(Tree{std::move(nodes)});
  Id id = Id::hash(as_bytes(text));
  REQUIRE(w.save_blob(BlobType::kTree, id, as_bytes(text)));
  return id;
}

Bytes concat_data(const std::vector<Blob>& blobs) {
  Bytes out;
  for (const Blob& b : blobs) {
    if (b.type == BlobType::kData)
      out.insert(out.end(), b.plain.begin(), b.plain.end());
  }
  return out;
}

// One writer per compression mode, each storing ~9 MiB of blobs in 4 MiB packs plus a
// directory "auto"/"max"/"off" holding one file of them; returns the root tree's nodes.
std::vector<Node> write_sessions(Repository& repo, std::vector<std::vector<Blob>>& sessions) {
  const Compression modes[] = {Compression::kAuto, Compression::kMax, Compression::kOff};
  const char* names[] = {"auto", "max", "off"};
  std::vector<Node> root;
  Bytes shared = to_bytes(std::string(3000, 's'));  // saved in every session, stored once
  for (int m = 0; m < 3; ++m) {
    sessions.push_back(make_blobs(120, 4, 160 << 10, 1000 + m));
    auto writer = make_writer(repo, modes[m]);
    for (const Blob& b : sessions[m]) REQUIRE(writer->save_blob(b.type, b.id(), b.plain));
    REQUIRE(writer->save_blob(BlobType::kData, Id::hash(shared), shared) == (m == 0));
    sessions[m].push_back({BlobType::kData, shared, true});
    root.push_back(dir_node(names[m], save_tree(*writer, {file_node("file", sessions[m])})));
    REQUIRE(writer->flush());
    REQUIRE(repo.load_index());  // the next session dedups against this one
  }
  return root;
}

}  // namespace

TEST_CASE("restic check --read-data accepts what the writer stored", "[writer][restic]") {
  if (::access("/usr/bin/restic", X_OK) != 0 && run("command -v restic").status != 0) {
    WARN("restic is not installed; skipping");
    return;
  }
  TempDir tmp;
  unsigned version = GENERATE(1U, 2U);
  { std::ofstream(tmp.path() + "/pw") << "writer-test-password"; }
  auto init = run(restic(tmp, "init --repository-version " + std::to_string(version)));
  INFO(init.out);
  REQUIRE(init.status == 0);
  std::unique_ptr<Repository> repo = open_repo(tmp.path() + "/repo", "writer-test-password").repo;
  std::vector<std::vector<Blob>> sessions;
  std::vector<Node> root = write_sessions(*repo, sessions);
  auto writer = make_writer(*repo, Compression::kAuto);
  Snapshot snap;
  snap.time = test_time();
  snap.tree = save_tree(*writer, root);
  snap.paths = {"/writer-test"};
  snap.hostname = "coffer-test";
  REQUIRE(writer->flush());
  REQUIRE(writer->save_unpacked(FileKind::kSnapshot, serialize_snapshot(snap)));

  auto check = run(restic(tmp, "check --read-data"));
  INFO(check.out);
  CHECK(check.status == 0);
  CHECK(check.out.find("no errors were found") != std::string::npos);
  for (const Blob& b : {sessions[0][1], sessions[1][0], sessions[2][2]}) {
    auto cat = run(restic(tmp, "cat blob " + b.id().hex()), "2>/dev/null");
    REQUIRE(cat.status == 0);
    REQUIRE(cat.out == to_string(b.plain));
  }
  auto dump = run(restic(tmp, "dump latest /max/file"), "2>/dev/null");
  REQUIRE(dump.status == 0);
  REQUIRE(Id::hash(as_bytes(dump.out)) == Id::hash(concat_data(sessions[1])));
}
