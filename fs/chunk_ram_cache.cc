#include "fs/chunk_ram_cache.h"

namespace coffer::fs {

RamCache::RamCache(std::uint64_t budget) : budget_(budget), protected_cap_(budget / 4 * 3) {}

ChunkRef RamCache::find(const repo::Id& id, Touch touch) {
  std::scoped_lock lock(mutex_);
  auto found = map_.find(id);
  if (found == map_.end())
    return nullptr;
  List::iterator it = found->second;
  ChunkRef chunk = it->chunk;
  if (it->is_protected) {
    protected_.splice(protected_.begin(), protected_, it);
  } else if (touch == Touch::kReuse && it->seen) {
    promote(it);
  } else {
    it->seen = true;
    probation_.splice(probation_.begin(), probation_, it);
  }
  return chunk;
}

bool RamCache::contains(const repo::Id& id) const {
  std::scoped_lock lock(mutex_);
  return map_.count(id) != 0;
}

void RamCache::insert(const repo::Id& id, ChunkRef chunk) {
  if (!chunk || chunk->size() > budget_)
    return;
  std::scoped_lock lock(mutex_);
  if (map_.count(id) != 0)
    return;
  probation_bytes_ += chunk->size();
  probation_.push_front(Entry{id, std::move(chunk)});
  map_.emplace(id, probation_.begin());
  evict_to_budget();
}

std::uint64_t RamCache::bytes() const {
  std::scoped_lock lock(mutex_);
  return probation_bytes_ + protected_bytes_;
}

void RamCache::promote(List::iterator it) {
  std::uint64_t size = it->chunk->size();
  it->is_protected = true;
  protected_.splice(protected_.begin(), probation_, it);
  probation_bytes_ -= size;
  protected_bytes_ += size;
  while (protected_bytes_ > protected_cap_ && protected_.size() > 1) {
    auto last = std::prev(protected_.end());
    std::uint64_t n = last->chunk->size();
    last->is_protected = false;
    probation_.splice(probation_.begin(), protected_, last);
    protected_bytes_ -= n;
    probation_bytes_ += n;
  }
}

void RamCache::evict_to_budget() {
  while (probation_bytes_ + protected_bytes_ > budget_) {
    List& from = probation_.empty() ? protected_ : probation_;
    std::uint64_t& bytes = probation_.empty() ? protected_bytes_ : probation_bytes_;
    auto last = std::prev(from.end());
    bytes -= last->chunk->size();
    map_.erase(last->id);
    from.erase(last);
  }
}

}  // namespace coffer::fs
