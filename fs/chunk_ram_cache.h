// RamCache: a byte-bounded, scan-resistant cache of decoded chunks (segmented LRU).
//
// New chunks enter the probation segment, or the scan segment when a sequential stream
// fetched them ahead of its reader (the kernel's page cache keeps what such a reader read, so
// these need only outlive the read: the scan segment holds at most half the budget). Within
// the scan segment, chunks already read go first, least recently read first; chunks not yet
// read go only after them, oldest first. (Refreshing recency alone would evict the chunks a
// slow reader has not reached yet, which it then fetches again, one round trip each.) A
// chunk found again by a "reuse" access (not the first access after it arrived, and not a
// sequential stream slicing its current chunk) moves to the protected segment, which holds
// at most 3/4 of the budget; its overflow is demoted to probation. Eviction takes the scan
// segment's oldest entry first, then probation's. So one sequential pass over a huge file
// costs little memory and leaves the hot set alone.
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

#include "fs/chunk_bytes.h"
#include "repo/core/id.h"

namespace coffer::fs {

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
  // Caches `chunk` (no-op if present or larger than the budget), evicting as needed;
  // `scan`: fetched ahead for a sequential stream (the scan segment).
  void insert(const repo::Id& id, ChunkRef chunk, bool scan = false);

  [[nodiscard]] std::uint64_t bytes() const;
  [[nodiscard]] std::uint64_t budget() const { return budget_; }

 private:
  enum class Kind { kScan, kScanRead, kProbation, kProtected };
  struct Entry {
    repo::Id id;
    ChunkRef chunk;
    Kind kind = Kind::kProbation;
    bool seen = false;  // accessed at least once since it arrived
  };
  using List = std::list<Entry>;
  struct Segment {
    List list;  // front = most recent
    std::uint64_t bytes = 0;
  };

  Segment& segment(Kind kind);
  void move(List::iterator it, Kind to);  // to the front of segment `to`
  void evict_last(Segment& seg);
  [[nodiscard]] std::uint64_t bytes_locked() const;  // REQUIRES: mutex_ held

  const std::uint64_t budget_;
  const std::uint64_t protected_cap_;
  const std::uint64_t scan_cap_;
  mutable std::mutex mutex_;  // guards everything below
  // scan_: fetched ahead, not read yet; scan_read_: fetched ahead and read since. Together
  // they are the scan segment (at most scan_cap_ bytes).
  Segment scan_, scan_read_, probation_, protected_;
  std::unordered_map<repo::Id, List::iterator, repo::IdHash> map_;
};

}  // namespace coffer::fs
