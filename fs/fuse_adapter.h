// The libfuse low-level callback table over SnapshotFs (fs/fuse_adapter.cc).
//
// Each callback decodes the request, calls SnapshotFs, and replies; none throws (an
// unexpected exception becomes EIO). The session's userdata must be a FuseContext*.
//
// Thread contract: callbacks run concurrently on libfuse's worker threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

struct fuse_lowlevel_ops;

namespace coffer::fs {

class SnapshotFs;
class DirHandle;
class FileHandle;
class PageCacheFill;

// Handles given to the kernel as fi->fh, kept here until release. The kernel may never
// send a release (the loop ends on a signal with files still open); whatever is left is
// freed when the set goes. Thread-safe.
template <class T>
class HandleSet {
 public:
  // Takes `handle` and returns the number to hand to the kernel.
  std::uint64_t add(std::shared_ptr<T> handle) {
    auto holder = std::make_unique<std::shared_ptr<T>>(std::move(handle));
    auto key = reinterpret_cast<std::uint64_t>(holder.get());
    std::scoped_lock lock(mutex_);
    items_.emplace(key, std::move(holder));
    return key;
  }
  // The handle behind `key`; valid until remove(key).
  static T& get(std::uint64_t key) { return **reinterpret_cast<std::shared_ptr<T>*>(key); }
  void remove(std::uint64_t key) {
    std::unique_ptr<std::shared_ptr<T>> dead;  // destroyed outside the lock
    std::scoped_lock lock(mutex_);
    auto it = items_.find(key);
    if (it == items_.end())
      return;
    dead = std::move(it->second);
    items_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::unique_ptr<std::shared_ptr<T>>> items_;
};

// What the session's userdata points to. Must outlive the FUSE session.
struct FuseContext {
  explicit FuseContext(SnapshotFs& filesystem) : fs(filesystem) {}
  SnapshotFs& fs;
  HandleSet<DirHandle> dirs;
  HandleSet<FileHandle> files;
  // When set (before the loop starts), chunks that random reads fetched go to the kernel's
  // page cache through it.
  PageCacheFill* fill = nullptr;
};

// The operations table (static storage).
const fuse_lowlevel_ops& fuse_operations();

}  // namespace coffer::fs
