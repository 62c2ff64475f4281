// ChunkStore: the data engine of the mount. Turns data blob ids into decoded plaintext.
//
// A get() is answered, in order, from:
//   1. the RAM cache of decoded chunks (fs/chunk_ram_cache.h: byte budget, scan-resistant);
//   2. the all-zero chunk of the blob's size, recognised by id (fs/chunk_zero.h), no IO;
//   3. the persistent on-disk cache of encrypted blobs (fs/chunk_disk_cache.h), verified
//      with Repository::decode_blob on every load; a file that fails is deleted, refetched;
//   4. the repository: a pool of fetch threads reads packs with ranged reads, coalescing
//      blobs of one pack that lie within `max_gap` of each other into one read of at most
//      `max_read` bytes, with bounded retries of retryable errors (fs/chunk_fetch.h).
// Decoding (MAC, decrypt, decompress, hash) runs as separate jobs on the same pool, at most
// one per core, demanded chunks first, otherwise in the order their bytes arrived.
// Every chunk has at most one fetch in flight however many threads want it (single-flight
// slots). Demand fetches jump the queue; prefetches are low priority, may use at most 3/4
// of the threads, and are dropped (never blocked on) when the bytes of prefetch reads queued,
// in flight or read but not yet decoded would exceed 5/4 of `prefetch_budget` (the margin is
// for reads still in flight behind the furthest READ, from which a reader's window is counted,
// and for the gaps inside ranged reads). Memory is bounded by the
// RAM budget, the prefetch budget, and the chunks callers hold.
//
// Errors of get(): kNotFound (the blob is in no index, or its pack vanished; after one
// index reload when `reload_index` is set), kCorrupt (verification failed: wrong bytes are
// never returned), kIo (backend failure after retries, or no answer within `deadline`).
// A failed kIo/kCorrupt fetch is remembered for `error_ttl` so a dead backend is not
// hammered; kNotFound is never remembered.
//
// Thread contract: every public method is safe to call concurrently from any number of
// threads; get() blocks the caller until the chunk is ready or the deadline passes.
// The destructor must not race with other calls; it joins the fetch threads (finishing the
// reads they are in) and drops queued jobs.
// Ownership: the Repository must outlive the store; the store owns its threads, caches and
// the files of its disk cache directory.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/chunk_disk_cache.h"
#include "fs/chunk_fetch.h"
#include "fs/chunk_ram_cache.h"
#include "fs/chunk_zero.h"
#include "repo/repository.h"

namespace coffer::fs {

inline constexpr std::uint64_t kAutoPrefetch = ~std::uint64_t{0};

struct ChunkStoreOptions {
  std::uint64_t mem_budget = 96ULL << 20;  // --cache-mem: RAM cache of decoded chunks
  std::uint64_t disk_budget = 4ULL << 30;  // --cache-size: hard cap of the disk cache
  std::string disk_dir;                    // <cache base>/<repo id>/chunks; "" = none
  unsigned fetch_threads = 0;  // 0 = 2 × backend max_connections (local: 2 × cores, >= 4)
  std::chrono::milliseconds deadline{30000};  // per get(), retries included
  // Bytes of read-ahead a sequential reader may have queued or in flight, and how far ahead
  // of it the prefetch window reaches; 0 turns prefetching off. kAutoPrefetch: mem_budget /
  // 4, or / 2 over a backend that is not local. At most mem_budget / 2 (what the RAM cache
  // keeps of chunks fetched ahead) less two of the largest chunks (those being read); at
  // most mem_budget / 4 when mem_budget is 64 MiB or less.
  std::uint64_t prefetch_budget = kAutoPrefetch;
  std::uint64_t max_gap = 256ULL << 10;       // coalesce blobs at most this far apart
  std::uint64_t max_read = 16ULL << 20;       // longest single ranged read
  std::chrono::milliseconds error_ttl{1000};  // how long a failed fetch is remembered
  // Whether chunks fetched for random (non-sequential) readers enter the RAM cache. Off when
  // the FUSE layer hands such chunks to the kernel's page cache (fs/page_cache_fill.h),
  // which then answers the reads near them: a second copy here would only cost memory.
  // Random hits on chunks fetched for sequential readers then do not promote them either.
  bool cache_random = true;
  // Optional: reloads the repository index (e.g. after a prune). Called at most once per
  // `reload_interval` from a reader thread, when a blob is missing from the index or its
  // pack is gone; the blob is then looked up again. It must exclude concurrent
  // Repository::lookup() calls, e.g. by holding `index_lock` exclusively.
  std::function<repo::Result<void>()> reload_index;
  std::chrono::milliseconds reload_interval{5000};
  // Optional: when set, the store holds it shared around each Repository::lookup().
  std::shared_mutex* index_lock = nullptr;
};

// Counters since the store was opened (stats() takes a snapshot).
struct ChunkStats {
  std::uint64_t gets = 0;              // get() calls
  std::uint64_t ram_hits = 0;          // get()s answered from the RAM cache
  std::uint64_t zero_hits = 0;         // chunks recognised as all-zero (no IO)
  std::uint64_t disk_hits = 0;         // chunks loaded and verified from the disk cache
  std::uint64_t disk_rejected = 0;     // disk cache files that failed verification
  std::uint64_t fetches = 0;           // ranged reads planned (one per coalesced range)
  std::uint64_t backend_loads = 0;     // backend load() calls, retries included
  std::uint64_t retries = 0;           // load() calls that were retries
  std::uint64_t bytes_fetched = 0;     // bytes the backend returned
  std::uint64_t blobs_fetched = 0;     // blobs decoded from fetched bytes
  std::uint64_t corrupt = 0;           // fetched blobs that failed verification
  std::uint64_t prefetch_dropped = 0;  // prefetch reads dropped over budget
  std::uint64_t reloads = 0;           // index reloads requested
  std::uint64_t ram_bytes = 0;         // bytes held by the RAM cache now
  std::uint64_t disk_bytes = 0;        // bytes held by the disk cache now
};

class ChunkStore {
 public:
  // Starts the fetch threads and opens (scans) the disk cache.
  // Errors: kIo if the disk cache directory cannot be created or read.
  static repo::Result<std::unique_ptr<ChunkStore>> open(const repo::Repository& repo,
                                                        ChunkStoreOptions options);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // The decoded plaintext of data blob `blob`; blocks until available. `touch` tells the
  // RAM cache whether this access is a re-use (kReuse) or part of a sequential pass.
  repo::Result<ChunkRef> get(const repo::Id& blob, Touch touch = Touch::kReuse);

  // Starts fetches without waiting: `needed` at demand priority (never dropped), `ahead`
  // as prefetch (low priority, dropped over budget). Blobs already cached or in flight
  // are skipped; both lists are coalesced into ranged reads together.
  void schedule(std::span<const repo::Id> needed, std::span<const repo::Id> ahead);
  // Fire-and-forget prefetch of `blobs`.
  void prefetch(std::span<const repo::Id> blobs) { schedule({}, blobs); }

  [[nodiscard]] ChunkStats stats() const;
  [[nodiscard]] const ZeroChunks& zeros() const { return zeros_; }
  [[nodiscard]] const repo::Repository& repository() const { return repo_; }
  [[nodiscard]] const ChunkStoreOptions& options() const { return options_; }

  // Switches ChunkStoreOptions::cache_random (e.g. back on when the kernel refuses the page
  // cache stores that made it unnecessary). Safe from any thread.
  void set_cache_random(bool on) { cache_random_ = on; }

 private:
  struct Job;
  struct Slot;
  struct Batch;

  ChunkStore(const repo::Repository& repo, ChunkStoreOptions options);
  repo::Result<ChunkRef> get_once(const repo::Id& id, Touch touch);
  // The slot of `id`, new (its blob added to `batch`) or shared; nullptr when the RAM cache
  // has it. `random`: wanted by a reader outside a sequential stream.
  std::shared_ptr<Slot> admit(const repo::Id& id, bool demand, Batch& batch, bool random = false);
  std::shared_ptr<Slot> claim(const repo::Id& id, bool demand);  // REQUIRES: mutex_ held
  void promote(Slot& slot);                                      // REQUIRES: mutex_ held
  void enqueue(std::vector<repo::PackedBlob> blobs);
  repo::Result<ChunkRef> wait(const repo::Id& id, const std::shared_ptr<Slot>& slot);
  // Finishes `id`'s slot with `result`, cached unless !cache (in the RAM cache's scan
  // segment when no random reader waits for it).
  void complete(const repo::Id& id, repo::Result<ChunkRef> result, bool cache = true);
  void sweep_negatives();  // REQUIRES: mutex_ held
  repo::Result<std::optional<repo::PackedBlob>> lookup(const repo::Id& id) const;
  ChunkRef zero_buffer(std::uint64_t size);
  bool try_reload(std::uint64_t seen_generation);

  void worker();
  std::shared_ptr<Job> next_job();  // REQUIRES: mutex_ held
  void run(Job& job);
  // Moves up to `bytes` of `parent`'s prefetch budget to a decode job it queues (0 when
  // `parent` is not budgeted). REQUIRES: the caller runs `parent`.
  static std::uint64_t take_budget(Job& parent, std::uint64_t bytes);
  bool try_disk(Job& parent, const repo::PackedBlob& blob);
  void fetch(Job& parent, const PackRange& range, Clock::time_point deadline);
  void queue_decode(const repo::PackedBlob& blob, repo::SharedBytes loaded,
                    std::uint64_t loaded_offset, bool from_disk, std::uint64_t budget);
  void decode(const Job& job);
  void refetch(const repo::PackedBlob& blob);

  const repo::Repository& repo_;  // outlives the store
  const ChunkStoreOptions options_;
  std::atomic<bool> cache_random_;  // options_.cache_random, switchable
  ZeroChunks zeros_;
  RamCache ram_;
  std::unique_ptr<DiskCache> disk_;  // null when there is no disk cache
  LoadCounters load_counters_;
  struct Counters;
  std::unique_ptr<Counters> counters_;

  // Lock order: mutex_ before RamCache's and DiskCache's internal mutexes; zero_mutex_ and
  // reload_mutex_ are never held together with mutex_.
  mutable std::mutex mutex_;  // guards slots_, queues, Job/Slot fields, busy_low_, stop_
  std::unordered_map<repo::Id, std::shared_ptr<Slot>, repo::IdHash> slots_;
  std::deque<std::shared_ptr<Job>> urgent_queue_;
  std::deque<std::shared_ptr<Job>> low_queue_;
  std::deque<std::shared_ptr<Job>> decode_queue_;  // demanded ones at the front
  std::uint64_t prefetch_in_flight_ = 0;           // bytes of budgeted jobs queued or running
  unsigned busy_low_ = 0;                          // threads running low-priority jobs
  unsigned max_low_ = 1;
  unsigned busy_decode_ = 0;   // threads decoding
  unsigned max_decode_ = 1;    // one per core
  std::size_t negatives_ = 0;  // failed slots kept as negative entries (about)
  static constexpr std::size_t kNegativeSweep = 1024;
  bool stop_ = false;
  std::condition_variable work_cv_;
  std::vector<std::thread> threads_;

  std::mutex zero_mutex_;  // guards zero_chunk_
  ChunkRef zero_chunk_;

  std::mutex reload_mutex_;  // guards last_reload_; serialises reloads
  std::atomic<std::uint64_t> reload_generation_{0};
  Clock::time_point last_reload_{};
};

}  // namespace coffer::fs
