// PageCacheFill: hands whole decoded chunks to the kernel's page cache of the file they were
// read for (FUSE_NOTIFY_STORE), so that later reads anywhere in such a chunk are answered by
// the kernel without a READ round trip. A random 4 KiB read has to fetch and verify its whole
// chunk (0.5-8 MiB) anyway; keeping all of it, as the kernel's own squashfs keeps a whole
// block on a miss, turns the next reads near it into page-cache hits. The kernel bounds and
// reclaims those pages under memory pressure; the daemon's memory does not grow.
//
// Only what the chunk store verified is ever stored (the FetchedChunk's plaintext), only
// whole pages inside the file (a page shared by two chunks is kept aside, up to a bound,
// until the other chunk's part arrives too), and only after the READ that fetched the chunk
// was answered: a store waits for the page locks of READs still in flight, which
// the libfuse workers answer independently of this thread, so it never blocks them.
//
// One thread does the stores. Queued bytes are bounded: push() drops chunks beyond the
// bound rather than wait. The destructor stops the thread; should a store still wait for a
// READ that no worker will answer any more (the loop has ended), the FUSE connection is
// aborted through /sys/fs/fuse/connections/<id>/abort so the thread can be joined.
//
// Should the kernel refuse a store for any reason other than a forgotten inode (a kernel or
// sandbox without FUSE_NOTIFY_STORE), the fill turns itself off: `on_refused` runs once, on
// the fill thread, so the caller can cache random chunks itself again, and push() drops
// everything from then on.
//
// Thread contract: push() and stats() are safe from any thread. Ownership: the session must
// outlive the object; queued chunks are shared with the RAM cache (ChunkRef).
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/chunk_file.h"

struct fuse_session;

namespace coffer::fs {

class PageCacheFill {
 public:
  struct Stats {
    std::uint64_t stored_bytes = 0;   // bytes the kernel accepted
    std::uint64_t dropped_bytes = 0;  // chunk bytes not queued (over the bound)
    std::uint64_t failed = 0;         // stores the kernel refused (inode forgotten, ...)
    bool off = false;                 // turned off after a refusal other than ENOENT
    std::uint64_t busy_ms = 0;        // time spent storing
  };

  // `abort_path`: the connection's abort file, "" when unknown. `max_pending`: queued bytes.
  PageCacheFill(fuse_session* session, std::string abort_path, std::uint64_t max_pending,
                std::function<void()> on_refused = {});
  ~PageCacheFill();
  PageCacheFill(const PageCacheFill&) = delete;
  PageCacheFill& operator=(const PageCacheFill&) = delete;

  // Queues `chunks` of the file with FUSE inode `ino` and `file_size` bytes.
  void push(std::uint64_t ino, std::uint64_t file_size, std::vector<FetchedChunk> chunks);

  [[nodiscard]] Stats stats() const;

 private:
  struct Item {
    std::uint64_t ino = 0;
    std::uint64_t file_size = 0;
    FetchedChunk chunk;
  };
  // A page shared by two chunks, filled as their parts arrive: bytes [page, end) and
  // [begin, page end) are known; complete once end >= begin.
  struct EdgeKey {
    std::uint64_t ino = 0;
    std::uint64_t page = 0;  // index
    bool operator==(const EdgeKey&) const = default;
  };
  struct EdgeHash {
    std::size_t operator()(const EdgeKey& k) const noexcept {
      return std::hash<std::uint64_t>()(k.ino * 0x9e3779b97f4a7c15ULL ^ k.page);
    }
  };
  struct Edge {
    std::array<std::byte, 4096> bytes{};
    std::uint64_t end = 0;    // [page, end) filled
    std::uint64_t begin = 0;  // [begin, page end) filled
  };

  void run();
  void store(const Item& item);
  // Adds bytes [from, to) of the item's chunk to their shared page; stores it when complete.
  void add_edge(const Item& item, std::uint64_t from, std::uint64_t to);
  // One FUSE_NOTIFY_STORE; false when the kernel refused it.
  bool send(std::uint64_t ino, std::uint64_t offset, const std::byte* data, std::uint64_t size);

  fuse_session* const session_;
  const std::string abort_path_;
  const std::uint64_t max_pending_;
  const std::function<void()> on_refused_;
  const bool debug_refuse_;   // COFFER_DEBUG_REFUSE_STORE: act as a kernel without the call
  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::uint64_t pending_ = 0;  // bytes in queue_
  bool stop_ = false;
  bool idle_ = true;  // the thread is not inside a store
  Stats stats_;
  // Used by the thread only.
  std::unordered_map<EdgeKey, Edge, EdgeHash> edges_;
  std::deque<EdgeKey> edge_order_;  // oldest first, for the bound
  std::thread thread_;              // last: started when the rest is ready
};

// The abort file of the FUSE connection whose device is `device` as /proc/self/mountinfo
// shows it ("0:53" -> "/sys/fs/fuse/connections/53/abort"); "" for anything else.
std::string fuse_abort_path(const std::string& device);

}  // namespace coffer::fs
