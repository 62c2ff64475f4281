// RamCache: a byte-bounded, scan-resistant cache of decoded chunks (segmented LRU).
//
// New chunks enter the probation segment. A chunk found again by a "reuse" access (not the
// first access after it arrived, and not a sequential stream slicing its current chunk)
// moves to the protected segment, which holds at most 3/4 of the budget; its overflow is
// demoted to probation, and eviction takes probation's oldest entry first. So one
// sequential pass over a huge file cycles through probation and leaves the hot set alone.
//
// The budget bounds the bytes the cache references. Readers hold ChunkRefs (shared_ptr):
// an evicted chunk lives on until its last reader drops it. A chunk larger than the whole
// budget is not cached.
//
// Thread contract: every method is safe to call concurrently (one mutex; all operations
// are O(1) list splices and hash look-ups, never IO).
// Ownership: shares ownership of the cached buffers with readers.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "repo/core/bytes.h"
#include "repo/core/id.h"

namespace coffer::fs {

using ChunkRef = std::shared_ptr<const repo::Bytes>;

// How a look-up counts for the replacement policy.
enum class Touch {
  kReuse,  // a genuine re-use: may promote the chunk to the protected segment
  kScan,   // part of a sequential pass: refresh recency only, never promote
};

class RamCache {
 public:
  explicit RamCache(std::uint64_t budget);

  // The cached chunk, or nullptr.
  ChunkRef find(const repo::Id& id, Touch touch);
  // True if cached; does not count as an access.
  bool contains(const repo::Id& id) const;
  // Caches `chunk` (no-op if present or larger than the budget), evicting as needed.
  void insert(const repo::Id& id, ChunkRef chunk);

  [[nodiscard]] std::uint64_t bytes() const;
  [[nodiscard]] std::uint64_t budget() const { return budget_; }

 private:
  struct Entry {
    repo::Id id;
    ChunkRef chunk;
    bool is_protected = false;
    bool seen = false;  // accessed at least once since it arrived
  };
  using List = std::list<Entry>;

  void promote(List::iterator it);
  void evict_to_budget();

  const std::uint64_t budget_;
  const std::uint64_t protected_cap_;
  mutable std::mutex mutex_;  // guards everything below
  List probation_;            // front = most recent
  List protected_;            // front = most recent
  std::uint64_t probation_bytes_ = 0;
  std::uint64_t protected_bytes_ = 0;
  std::unordered_map<repo::Id, List::iterator, repo::IdHash> map_;
};

}  // namespace coffer::fs
