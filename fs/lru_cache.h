// LruCache: a small id-keyed least-recently-used cache with a weight budget.
//
// Values are shared pointers to immutable data, so a hit hands out a reference that stays
// valid after eviction.
//
// Thread contract: internally locked; every method is safe to call concurrently.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "repo/core/id.h"

namespace coffer::fs {

template <class V>
class LruCache {
 public:
  explicit LruCache(std::uint64_t budget) : budget_(budget) {}

  // The value for `id`, or null. A hit makes the entry the most recent one.
  std::shared_ptr<const V> get(const repo::Id& id) {
    std::scoped_lock lock(mutex_);
    auto it = map_.find(id);
    if (it == map_.end())
      return nullptr;
    order_.splice(order_.begin(), order_, it->second.pos);
    return it->second.value;
  }

  // Inserts (or replaces) `id` with `weight`, evicting the least recent entries over budget.
  void put(const repo::Id& id, std::shared_ptr<const V> value, std::uint64_t weight) {
    std::scoped_lock lock(mutex_);
    if (weight > budget_)
      return;
    if (auto it = map_.find(id); it != map_.end())
      erase(it);
    order_.push_front(id);
    map_.emplace(id, Slot{order_.begin(), std::move(value), weight});
    used_ += weight;
    while (used_ > budget_ && !order_.empty()) erase(map_.find(order_.back()));
  }

 private:
  struct Slot {
    typename std::list<repo::Id>::iterator pos;
    std::shared_ptr<const V> value;
    std::uint64_t weight = 0;
  };
  using Map = std::unordered_map<repo::Id, Slot, repo::IdHash>;

  void erase(typename Map::iterator it) {
    used_ -= it->second.weight;
    order_.erase(it->second.pos);
    map_.erase(it);
  }

  std::mutex mutex_;  // guards everything below
  std::uint64_t budget_;
  std::uint64_t used_ = 0;
  std::list<repo::Id> order_;  // most recent first
  Map map_;
};

}  // namespace coffer::fs
