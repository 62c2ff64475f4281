// Repository: the facade over one restic-format repository, opened with a password.
//
// It finds the key that the password opens, reads the config, builds the blob index
// (in the LMDB cache, or in memory with no_cache), and loads blobs, trees and snapshots with
// every MAC, length and hash checked. fs/ and tools/ see only this class and repo/ops/.
//
// Thread contract: after open() and load_index() return, every const method and load_*
// method is safe to call concurrently. load_index() itself must not race with lookups.
// Ownership: the Repository owns its backend and its index.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "repo/backend/backend.h"
#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/crypto/crypto.h"
#include "repo/index/blob.h"
#include "repo/index/index_file.h"
#include "repo/snapshot/snapshot.h"
#include "repo/tree/node.h"

namespace coffer::repo {

struct Config {
  unsigned version = 2;
  Id id;
  std::uint64_t chunker_polynomial = 0;
};

struct OpenOptions {
  std::string cache_dir;  // base cache directory; "" = $XDG_CACHE_HOME/coffer or ~/.cache/coffer
  bool no_cache = false;  // keep the index in memory only
  // The command will write (a lock at least): the backend prepares while the key is derived
  // (WriteBackend::prepare_writes).
  bool prepare_writes = false;
};

struct SnapshotEntry {
  Id id;
  Snapshot snapshot;
};

class BlobIndex;    // repo/index/blob_index.h
class ObjectCache;  // repo/cache/object_cache.h

class Repository {
 public:
  // Opens the repository behind `backend`: finds a key that `password` opens and reads
  // the config. Errors: kNoRepository (no config), kAuth (no key matches), kCorrupt.
  static Result<std::unique_ptr<Repository>> open(std::unique_ptr<ReadBackend> backend,
                                                  std::string_view password,
                                                  const OpenOptions& options);
  ~Repository();
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;

  [[nodiscard]] const Config& config() const { return config_; }
  [[nodiscard]] const MasterKey& key() const { return key_; }
  [[nodiscard]] const Id& key_id() const { return key_id_; }
  [[nodiscard]] ReadBackend& backend() const { return *backend_; }
  // The same backend when it can be written to, else nullptr.
  [[nodiscard]] WriteBackend* write_backend() const { return writable_; }

  // Loads every index file into the blob index (incrementally via the LMDB cache).
  // Errors: kCorrupt naming the index file, kIo.
  Result<void> load_index();

  // Where a blob lives, or std::nullopt if no index lists it. REQUIRES: load_index().
  Result<std::optional<PackedBlob>> lookup(const BlobHandle& blob) const;

  // Decrypts, decompresses and hash-checks the encrypted bytes of `blob`.
  // Errors: kCorrupt naming the pack and blob.
  Result<Bytes> decode_blob(const PackedBlob& blob, ByteSpan encrypted) const;

  // As decode_blob, into `out`, which must hold exactly blob.plain_size() bytes; nothing is
  // zero-filled on the way. `out` holds garbage after a failure. Errors: as decode_blob, and
  // kInvalidArgument for a wrongly sized `out`.
  Result<void> decode_blob_into(const PackedBlob& blob, ByteSpan encrypted,
                                std::span<std::byte> out) const;

  // Looks up and loads one blob. Errors: kNotFound, kCorrupt, kIo.
  Result<Bytes> load_blob(const BlobHandle& blob) const;

  // Loads and parses a tree blob. Errors as load_blob, plus kCorrupt for bad JSON.
  Result<Tree> load_tree(const Id& id) const;

  // Loads, decrypts and (v2) decompresses an index, snapshot or lock file.
  Result<Bytes> load_unpacked(FileKind kind, const Id& id) const;

  // Every snapshot, sorted by time (oldest first). Unreadable ones are an error.
  Result<std::vector<SnapshotEntry>> list_snapshots() const;

  // Resolves a full id or unique prefix of a file of `kind`.
  // Errors: kNotFound, kInvalidArgument (ambiguous prefix).
  Result<Id> resolve(FileKind kind, std::string_view prefix) const;

  // Ids of all files of `kind`, sorted. Names that are not ids are skipped.
  Result<std::vector<Id>> list_ids(FileKind kind) const;

  // Number of blobs in the index. REQUIRES: load_index().
  [[nodiscard]] std::uint64_t index_size() const;

  // Re-reads the index from scratch, ignoring (and rebuilding) any cache. Used when a
  // blob could not be found where the index said.
  Result<void> reload_index();

  // Remote backends keep snapshot files and tree blobs in a local cache (object_cache.h);
  // a writer hands each tree blob it stores (`sealed`, as in the pack) to it here, so the
  // next run finds its parent's trees locally. A no-op without that cache.
  void remember_tree(const Id& id, ByteSpan sealed) const;

 private:
  Repository() = default;
  Result<void> open_key(std::string_view password);
  Result<void> load_index_into_memory(const std::vector<Id>& files);
  Result<std::unique_ptr<BlobIndex>> build_memory_index(const std::vector<Id>& files) const;
  Result<void> use_fallback_index(const Error& cause) const;
  Result<void> load_index_into_cache(const std::vector<Id>& files, bool force_rebuild);
  Result<IndexFile> load_index_file(const Id& id) const;
  Result<void> ensure_cache_dir(const std::string& base, const std::string& dir) const;
  void open_object_cache();
  Result<Bytes> load_sealed_blob(const BlobHandle& blob, const PackedBlob& where) const;

  std::unique_ptr<ReadBackend> backend_;
  WriteBackend* writable_ = nullptr;  // backend_ itself when writable
  OpenOptions options_;
  Config config_;
  MasterKey key_;
  Id key_id_;
  std::unique_ptr<BlobIndex> index_;
  std::unique_ptr<ObjectCache> objects_;  // remote backends only, unless no_cache
  // Set when the cache reported damage: lookups then use fallback_ (built once, under
  // fallback_mutex_), and damaged_marker_ makes the next open rebuild the cache.
  std::string damaged_marker_;
  mutable std::mutex fallback_mutex_;
  mutable std::atomic<bool> fallback_ready_{false};
  mutable std::unique_ptr<BlobIndex> fallback_;
};

}  // namespace coffer::repo
