// Shared fixture of the chunk store tests: a restic-made repository (made once per test
// process with the real `restic` binary) holding a 20 MiB random file, a 16 MiB zero file,
// a file mixing data and zero runs, and small files; opened through a FaultBackend.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "repo/backend/fault_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/ops/walk.h"
#include "repo/repository.h"
#include "tests/support/temp_dir.h"

namespace coffer::test {

inline repo::Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  repo::Bytes b(n);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < n; ++j)
      b[i + j] = static_cast<std::byte>(v >> (8 * j));
  }
  return b;
}

inline void write_file(const std::string& path, const repo::Bytes& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

struct ChunkRepo {
  TempDir dir;
  std::string path;                          // the repository
  std::map<std::string, repo::Bytes> files;  // name (below /src) → contents
};

// The repository, made on first use.
inline const ChunkRepo& chunk_repo() {
  static const std::unique_ptr<ChunkRepo> made = [] {
    auto r = std::make_unique<ChunkRepo>();
    std::string src = r->dir.path() + "/src";
    std::filesystem::create_directories(src);
    r->files["big.bin"] = random_bytes(20 << 20, 1);
    r->files["zero.bin"] = repo::Bytes(16 << 20);
    repo::Bytes mixed = random_bytes(1536 << 10, 2);
    mixed.resize(mixed.size() + (3 << 20));
    repo::Bytes tail = random_bytes(1 << 20, 3);
    mixed.insert(mixed.end(), tail.begin(), tail.end());
    mixed.resize(mixed.size() + (2 << 20) + 12345);
    r->files["mixed.bin"] = std::move(mixed);
    for (int i = 0; i < 6; ++i)
      r->files["small" + std::to_string(i)] = random_bytes(1000 + 7000 * i, 10 + i);
    for (const auto& [name, data] : r->files) write_file(src + "/" + name, data);
    r->path = r->dir.path() + "/repo";
    // big.bin first, alone and with one Go thread, so its chunks sit in file order in the
    // packs (restic's parallel blob savers permute them otherwise).
    std::string restic =
        "RESTIC_PASSWORD=" + std::string(kGoldenPassword) + " restic -q -r '" + r->path + "' ";
    std::string cmd = "cd '" + r->dir.path() + "' && " + restic +
                      "init >/dev/null && GOMAXPROCS=1 " + restic +
                      "backup --host chunks src/big.bin >/dev/null && " + restic +
                      "backup --host chunks src >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return r;
  }();
  return *made;
}

// A repository opened through a FaultBackend (which it owns; `fault` points into it).
struct OpenedRepo {
  repo::FaultBackend* fault = nullptr;
  std::unique_ptr<repo::Repository> repo;
};

inline OpenedRepo open_faulty(const std::string& path) {
  auto backend = std::make_unique<repo::FaultBackend>(std::make_unique<repo::LocalBackend>(path));
  OpenedRepo o;
  o.fault = backend.get();
  repo::OpenOptions options;
  options.no_cache = true;
  auto r = repo::Repository::open(std::move(backend), kGoldenPassword, options);
  REQUIRE(r);
  REQUIRE((*r)->load_index());
  o.repo = std::move(*r);
  return o;
}

// The content ids of /src/<name> in the latest snapshot.
inline std::vector<repo::Id> content_of(const repo::Repository& repo, const std::string& name) {
  auto snaps = repo.list_snapshots();
  REQUIRE(snaps);
  REQUIRE(!snaps->empty());
  auto node = repo::find_node(repo, repo::root_node(snaps->back().snapshot), "/src/" + name);
  REQUIRE(node);
  return node->content;
}

inline repo::PackedBlob where_is(const repo::Repository& repo, const repo::Id& id) {
  auto w = repo.lookup(repo::BlobHandle{id, repo::BlobType::kData});
  REQUIRE(w);
  REQUIRE(w->has_value());
  return **w;
}

}  // namespace coffer::test
