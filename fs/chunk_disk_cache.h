// DiskCache: the persistent on-disk chunk cache with a hard byte cap.
//
// Layout: one file per blob, `<dir>/<hh>/<blob id hex>` (hh = the first two hex digits),
// holding the blob's *encrypted* bytes exactly as they were fetched from the pack. Nothing
// here is trusted: the caller verifies every load (MAC, decompression, hash) with
// Repository::decode_blob and calls remove() when that fails. No plaintext rests on disk.
//
// Writes go to `<dir>/<hh>/tmp-XXXXXX` and are renamed into place (no fsync: a torn file
// fails verification and is refetched). open() deletes leftover `tmp*` files, rebuilds the
// accounting index by scanning (size, and mtime as the LRU order), and evicts down to the
// cap. Recency is persisted by touching a file's mtime when it is read.
//
// The cap is hard: space for a new file (temporary file included) is reserved, after
// evicting least-recently-used files (unlinked before the reservation is granted), before
// a byte is written, so the sum of the file sizes in the directory never exceeds the cap.
// When only files still being written stand in the way, store() waits for one of them to
// finish rather than dropping the new chunk (a reader streaming ahead writes many at once).
// Sizes are file lengths, not allocated blocks. A directory shared by two live instances
// keeps each within its own accounting only.
//
// Thread contract: every method is safe to call concurrently; file IO of load/store runs
// outside the index mutex (eviction unlinks run under it, to keep the cap hard).
// Ownership: owns the directory's files below `dir`.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/id.h"

namespace coffer::fs {

class DiskCache {
 public:
  // Opens (creating) `dir` with a cap of `cap` bytes. Errors: kIo if the directory cannot
  // be created or read. REQUIRES: cap > 0.
  static repo::Result<std::unique_ptr<DiskCache>> open(const std::string& dir, std::uint64_t cap);

  // The stored bytes of `id`, or nullopt if absent or unreadable. Marks it recently used.
  std::optional<repo::Bytes> load(const repo::Id& id);
  // Stores `data` as `id`, evicting older files as needed. Best effort: a failure (or data
  // larger than the cap) leaves the cache without the file.
  void store(const repo::Id& id, repo::ByteSpan data);
  // Deletes the file of `id` (after it failed verification).
  void remove(const repo::Id& id);

  [[nodiscard]] std::uint64_t bytes() const;
  [[nodiscard]] std::uint64_t files() const;
  [[nodiscard]] std::uint64_t cap() const { return cap_; }

 private:
  struct Entry {
    repo::Id id;
    std::uint64_t size = 0;
    bool ready = false;  // false while its temporary file is being written
  };
  using List = std::list<Entry>;  // front = most recently used

  DiskCache(std::string dir, std::uint64_t cap) : dir_(std::move(dir)), cap_(cap) {}
  repo::Result<void> scan();
  void scan_subdir(const std::string& sub, std::list<std::pair<long long, Entry>>& found);
  [[nodiscard]] std::string path_of(const repo::Id& id) const;
  bool reserve(const repo::Id& id, std::uint64_t size);  // REQUIRES: mutex_ not held
  void evict_one();                                      // REQUIRES: mutex_ held
  void drop(const repo::Id& id, bool unlink_file);
  bool write_file(const repo::Id& id, repo::ByteSpan data) const;

  const std::string dir_;
  const std::uint64_t cap_;
  mutable std::mutex mutex_;         // guards lru_, map_, used_, writing_
  std::condition_variable written_;  // a write finished (or failed): space may be free
  unsigned writing_ = 0;             // entries reserved and not yet ready
  List lru_;
  std::unordered_map<repo::Id, List::iterator, repo::IdHash> map_;
  std::uint64_t used_ = 0;  // bytes of all entries, reserved ones included
};

}  // namespace coffer::fs
