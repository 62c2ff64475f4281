// ObjectCache: local copies of the immutable repository objects that every command reads
// again, for remote backends: snapshot files and tree blobs, kept exactly as stored (still
// encrypted), so a nightly run over B2 downloads what is new instead of every snapshot and
// every tree of its parent (restic's cache keeps snapshots and tree packs for the same
// reason). Data blobs are not kept here (the mount has its own chunk cache).
//
// On disk, under the repository's cache directory: snapshots/<id> and trees/<xx>/<id>, files
// 0600 in directories 0700, each written to a temporary file and renamed into place. Callers
// verify what they read back (a snapshot file's hash, a tree blob's MAC and hash) and drop a
// bad entry with remove(); the cache itself trusts nothing and never fails a command: every
// error is a miss. Tree entries not read for 60 days are deleted (checked at most daily);
// snapshot entries follow the repository (retain()).
//
// Thread contract: every method is safe to call concurrently, also from several processes.
// Ownership: holds only its directory path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/id.h"

namespace coffer::repo {

enum class CachedKind { kSnapshot, kTree };

class ObjectCache {
 public:
  // Uses (and creates, 0700) directory `dir`. Errors: kIo when it cannot be created.
  static Result<std::unique_ptr<ObjectCache>> open(const std::string& dir);

  // The stored bytes of `id`, or nullopt (absent or unreadable). A tree hit refreshes the
  // entry's time, so trees in use are never expired.
  [[nodiscard]] std::optional<Bytes> get(CachedKind kind, const Id& id) const;
  // Stores `bytes` as `id` (best effort; an existing entry is replaced).
  void put(CachedKind kind, const Id& id, ByteSpan bytes) const;
  // Deletes the entry of `id` (e.g. after it failed verification).
  void remove(CachedKind kind, const Id& id) const;
  // Deletes the snapshot entries whose id is not in `live` (sorted).
  void retain_snapshots(const std::vector<Id>& live) const;

 private:
  explicit ObjectCache(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] std::string path(CachedKind kind, const Id& id) const;
  void expire_trees() const;

  std::string dir_;
};

}  // namespace coffer::repo
