// Pack range planning and the bounded-retry ranged read: the IO half of the chunk engine.
//
// plan_ranges() turns a set of blobs into ranged reads: blobs of one pack whose byte ranges
// are at most `max_gap` apart share one read, and no read spans more than `max_length`
// bytes (a single larger blob gets a read of its own). load_range() performs one read with
// retries of retryable errors (jittered exponential backoff) until a deadline.
//
// Thread contract: pure functions; load_range() calls the backend, which is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "repo/backend/backend.h"
#include "repo/index/blob.h"

namespace coffer::fs {

using Clock = std::chrono::steady_clock;

// One ranged read of a pack and the blobs it covers (sorted by offset).
struct PackRange {
  repo::Id pack;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::vector<repo::PackedBlob> blobs;
};

// Groups `blobs` (any order, any packs; duplicates are dropped) into ranged reads.
std::vector<PackRange> plan_ranges(std::vector<repo::PackedBlob> blobs, std::uint64_t max_gap,
                                   std::uint64_t max_length);

// Counters that load_range() bumps.
struct LoadCounters {
  std::atomic<std::uint64_t> calls{0};    // backend load() calls, retries included
  std::atomic<std::uint64_t> retries{0};  // calls that were retries
  std::atomic<std::uint64_t> bytes{0};    // bytes returned by the backend
};

// Reads `range` from its pack. Retries retryable errors with backoff (50 ms doubling to
// 1 s, ±25 % jitter) while the next attempt can start before `deadline`; always makes at
// least one attempt. Errors: the backend's last error with the pack named (kNotFound when
// the pack is gone), kCorrupt for a short read.
repo::Result<repo::SharedBytes> load_range(repo::ReadBackend& backend, const PackRange& range,
                                           Clock::time_point deadline, LoadCounters& counters);

}  // namespace coffer::fs
