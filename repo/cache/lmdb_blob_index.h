// LmdbBlobIndex: the on-disk blob index cache. It maps (blob type, blob id) to the blob's place
// in a pack and records which index files it was built from, so a repository with millions of
// blobs can be served without holding its index in memory. Rebuildable from the index files.
//
// On disk: an LMDB environment in directory `dir` (data.mdb, lock.mdb), format version 1:
//   "meta"  "format" -> u32 LE format version;  "repo" -> 32-byte repository config id
//   "blobs" type byte (0 data, 1 tree) || blob id (32)  ->
//           pack id (32) || offset || length || uncompressed_length || check   (u32 LE each)
//           check = FNV-1a 32 over the 33 key bytes then the 44 value bytes before it
//   "files" index file id (32) -> empty
// Trust: open() deletes and recreates the files when LMDB rejects them, when the data file is
// shorter than its last page, or when the format or repository id differ. A damaged entry is
// caught on lookup by its check (kCorrupt). Damage inside LMDB's own page structure beyond
// that is not detected on open; LMDB reports some of it as kCorrupt.
// Durability: MDB_NOMETASYNC. A commit flushes the data pages before it writes the meta page,
// so an OS crash can lose the last commits but cannot leave a meta page pointing at unwritten
// pages; a killed process loses at most the transaction in flight. An index file id is
// written in the same transaction as its blobs, so a half-added file is never recorded.
//
// Thread contract: every method is safe to call concurrently from any thread. Lookups use
// one short read transaction each and never block; writers are serialized by LMDB.
// Ownership: the object owns its LMDB environment. At most one LmdbBlobIndex per directory
// exists in a process at a time. Do not carry one across fork().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "repo/cache/lmdb_handles.h"
#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/index/blob.h"
#include "repo/index/blob_index.h"

namespace coffer::repo {

class LmdbBlobIndex final : public BlobIndex {
  struct Private {
    explicit Private() = default;
  };

 public:
  static constexpr std::uint32_t kFormatVersion = 1;

  // Opens or creates the cache in directory `dir` (created with mode 0700 if missing) for the
  // repository whose config id is `repo_id`. Damaged files, files of another format version
  // and files of another repository are deleted and an empty cache is created.
  // Errors: kIo (also when `dir` is already open in this process).
  static Result<std::unique_ptr<LmdbBlobIndex>> open(const std::string& dir, const Id& repo_id);

  // The ids of the index files whose entries are in the cache. Errors: kIo, kCorrupt.
  Result<std::vector<Id>> index_files() const;

  // Adds all blobs of one index file and records the file, in one write transaction (all or
  // nothing). The first copy of a blob wins. Errors: kIo, kCorrupt (damaged cache).
  Result<void> add_index_file(const Id& index_id, std::span<const PackedBlob> blobs);

  // Removes every entry and every recorded index file, in one transaction. Errors: kIo.
  Result<void> clear();

  // Errors: kCorrupt "index cache damaged" when the entry fails its check, kIo.
  Result<std::optional<PackedBlob>> lookup(const BlobHandle& blob) const override;

  // Number of distinct (type, id) entries; 0 if the cache cannot be read.
  [[nodiscard]] std::uint64_t size() const override;

  LmdbBlobIndex(Private, DirClaim claim, MdbEnv env);
  LmdbBlobIndex(const LmdbBlobIndex&) = delete;
  LmdbBlobIndex& operator=(const LmdbBlobIndex&) = delete;
  ~LmdbBlobIndex() override = default;

 private:
  static Result<std::unique_ptr<LmdbBlobIndex>> try_open(const std::string& dir, const Id& repo_id,
                                                         DirClaim claim);
  Result<void> init_databases(const Id& repo_id);
  Result<bool> check_meta(const LmdbTxn& txn, const Id& repo_id) const;
  Result<void> write_meta(const LmdbTxn& txn, const Id& repo_id) const;
  Result<void> put_blobs(const LmdbTxn& txn, std::span<const PackedBlob> blobs) const;

  // Destroyed after env_, so the directory stays claimed until the environment is closed.
  DirClaim claim_;
  MdbEnv env_;
  unsigned blobs_dbi_ = 0;  // MDB_dbi handles, valid for the life of env_
  unsigned files_dbi_ = 0;
  unsigned meta_dbi_ = 0;
};

}  // namespace coffer::repo
