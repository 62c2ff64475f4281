// InodeTable: the mount's node ids (the kernel's handles) and their lookup counts.
//
// Every inode has a stable identity string (its key, see snapshot_fs.cc) and a node id that
// is unique for the life of the mount and never reused. A lookup of a key whose inode is
// still live returns the same node id and adds one lookup; forget() subtracts and erases the
// inode at zero (passthrough_hp's rule: re-find by id under the lock, erase only at zero).
// The root (node id 1) is never erased.
//
// Thread contract: every method is safe to call concurrently (one mutex, O(1) work inside).
// Ownership: the table shares ownership of inodes with callers holding a found pointer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace coffer::fs {

inline constexpr std::uint64_t kRootNodeId = 1;

template <class Inode>
class InodeTable {
 public:
  using Ptr = std::shared_ptr<const Inode>;

  explicit InodeTable(Ptr root) { nodes_.emplace(kRootNodeId, Slot{std::move(root), "", 1}); }

  // The inode of `key` with one more lookup, created by `make` if it is not live.
  std::pair<std::uint64_t, Ptr> acquire(const std::string& key, const std::function<Ptr()>& make) {
    {
      std::scoped_lock lock(mutex_);
      if (auto it = ids_.find(key); it != ids_.end()) {
        Slot& slot = nodes_.at(it->second);
        ++slot.lookups;
        return {it->second, slot.inode};
      }
    }
    Ptr fresh = make();  // outside the lock: may be slow-ish (allocations)
    std::scoped_lock lock(mutex_);
    auto [it, inserted] = ids_.emplace(key, next_id_);
    if (inserted)
      nodes_.emplace(next_id_++, Slot{std::move(fresh), key, 0});
    Slot& slot = nodes_.at(it->second);
    ++slot.lookups;
    return {it->second, slot.inode};
  }

  // The live inode with node id `id`, or null.
  Ptr find(std::uint64_t id) const {
    std::scoped_lock lock(mutex_);
    auto it = nodes_.find(id);
    return it == nodes_.end() ? nullptr : it->second.inode;
  }

  // Drops `n` lookups of `id`; erases the inode when none are left (never the root).
  void forget(std::uint64_t id, std::uint64_t n) {
    std::scoped_lock lock(mutex_);
    auto it = nodes_.find(id);
    if (it == nodes_.end() || id == kRootNodeId)
      return;
    Slot& slot = it->second;
    slot.lookups = n >= slot.lookups ? 0 : slot.lookups - n;
    if (slot.lookups == 0) {
      ids_.erase(slot.key);
      nodes_.erase(it);
    }
  }

  [[nodiscard]] std::size_t size() const {
    std::scoped_lock lock(mutex_);
    return nodes_.size();
  }

 private:
  struct Slot {
    Ptr inode;
    std::string key;
    std::uint64_t lookups = 0;
  };

  mutable std::mutex mutex_;  // guards everything below
  std::unordered_map<std::uint64_t, Slot> nodes_;
  std::unordered_map<std::string, std::uint64_t> ids_;
  std::uint64_t next_id_ = kRootNodeId + 1;
};

}  // namespace coffer::fs
