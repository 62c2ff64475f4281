// RepoAccess: everything the mounted tree needs from a repository, behind one narrow seam.
//
// SnapshotFs reads snapshots, trees and file data only through this interface, so tests can
// serve a hand-made tree without a repository. RepositoryAccess is the real implementation
// over a repo::Repository and the chunk engine (fs/chunk_store.h, fs/chunk_file.h):
//   - trees are cached (LRU with a byte budget, sizes estimated);
//   - a blob or tree whose pack vanished, or that no index lists (kNotFound), makes it
//     reload the index from scratch and retry once (at most one reload per interval);
//     a second miss is the caller's error (EIO for that read only);
//   - refresh_index() adds index files written since the mount (new snapshots).
// Index reloads hold the access gate exclusively; every repository look-up (here and in
// the chunk store) holds it shared, because Repository::load_index/reload_index must not
// race with look-ups.
//
// Thread contract: every method is safe to call concurrently.
// Ownership: RepositoryAccess borrows the Repository (it must outlive it) and owns its
// ChunkStore.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <vector>

#include "fs/chunk_file.h"
#include "fs/chunk_store.h"
#include "fs/lru_cache.h"
#include "repo/repository.h"

namespace coffer::fs {

using TreePtr = std::shared_ptr<const repo::Tree>;
using ChunksPtr = std::shared_ptr<const FileChunks>;

class RepoAccess {
 public:
  virtual ~RepoAccess() = default;

  // Ids of every snapshot file, sorted. Errors: kIo.
  virtual repo::Result<std::vector<repo::Id>> snapshot_ids() = 0;
  // One snapshot file. Errors: kNotFound, kCorrupt, kIo.
  virtual repo::Result<repo::Snapshot> load_snapshot(const repo::Id& id) = 0;
  // A tree blob. Errors: kNotFound, kCorrupt, kIo.
  virtual repo::Result<TreePtr> load_tree(const repo::Id& id) = 0;
  // Makes blobs of snapshots written since the last call visible. Errors: kIo, kCorrupt.
  virtual repo::Result<void> refresh_index() = 0;
  // The chunk table of a file with data blobs `content`. Errors: kNotFound (a blob is in no
  // index), kIo.
  virtual repo::Result<ChunksPtr> file_chunks(const std::vector<repo::Id>& content) = 0;
  // Reads [offset, offset + size) of a file, clipped at EOF, as pieces of its chunks
  // appended to `out` (read_file_segments in fs/chunk_file.h); returns the bytes read.
  // The chunks of a random read are appended to `fetched` when it is given.
  // Errors: kNotFound, kCorrupt, kIo, kCancelled.
  virtual repo::Result<std::uint64_t> read(const FileChunks& file, ReadStream& stream,
                                           std::uint64_t offset, std::uint64_t size,
                                           std::vector<ReadSegment>& out,
                                           std::vector<FetchedChunk>* fetched) = 0;
};

struct RepositoryAccessOptions {
  std::uint64_t tree_cache_bytes = 64ULL << 20;     // parsed trees kept in RAM
  std::chrono::milliseconds reload_interval{2000};  // least time between two index reloads
  ChunkStoreOptions chunks;  // reload_index and index_lock are filled in by open()
};

class RepositoryAccess final : public RepoAccess {
 public:
  // Starts the chunk store over `repo`. Errors: those of ChunkStore::open.
  static repo::Result<std::unique_ptr<RepositoryAccess>> open(
      repo::Repository& repo, const RepositoryAccessOptions& options);
  ~RepositoryAccess() override;

  repo::Result<std::vector<repo::Id>> snapshot_ids() override;
  repo::Result<repo::Snapshot> load_snapshot(const repo::Id& id) override;
  repo::Result<TreePtr> load_tree(const repo::Id& id) override;
  repo::Result<void> refresh_index() override;
  repo::Result<ChunksPtr> file_chunks(const std::vector<repo::Id>& content) override;
  repo::Result<std::uint64_t> read(const FileChunks& file, ReadStream& stream, std::uint64_t offset,
                                   std::uint64_t size, std::vector<ReadSegment>& out,
                                   std::vector<FetchedChunk>* fetched) override;

  [[nodiscard]] repo::Repository& repository() const { return repo_; }
  [[nodiscard]] ChunkStats chunk_stats() const { return store_->stats(); }
  void set_cache_random(bool on) { store_->set_cache_random(on); }

 private:
  RepositoryAccess(repo::Repository& repo, const RepositoryAccessOptions& options);
  template <class T>
  repo::Result<T> with_retry(const std::function<repo::Result<T>()>& fn);
  // Reloads the index unless one finished since `seen_generation` or within the interval.
  // Returns whether a retry may find more than before.
  bool reload_after_miss(std::uint64_t seen_generation);
  repo::Result<void> reload_now();  // REQUIRES: reload_mutex_ held

  repo::Repository& repo_;
  const std::chrono::milliseconds reload_interval_;
  std::shared_mutex gate_;        // exclusive for index (re)loads; shared for look-ups
  std::mutex reload_mutex_;       // serializes reloads; taken before gate_
  std::uint64_t generation_ = 0;  // written under reload_mutex_ + exclusive gate_
  std::chrono::steady_clock::time_point last_reload_{};  // guarded by reload_mutex_
  LruCache<repo::Tree> trees_;
  std::unique_ptr<ChunkStore> store_;  // after gate_: destroyed first
};

}  // namespace coffer::fs
