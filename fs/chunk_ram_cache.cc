#include "fs/chunk_ram_cache.h"

namespace coffer::fs {

RamCache::RamCache(std::uint64_t budget)
    : budget_(budget), protected_cap_(budget / 4 * 3), scan_cap_(budget / 2) {}

RamCache::Segment& RamCache::segment(Kind kind) {
  switch (kind) {
    case Kind::kScan:
      return scan_;
    case Kind::kScanRead:
      return scan_read_;
    case Kind::kProbation:
      return probation_;
    case Kind::kProtected:
      break;
  }
  return protected_;
}

ChunkRef RamCache::find(const repo::Id& id, Touch touch) {
  std::scoped_lock lock(mutex_);
  auto found = map_.find(id);
  if (found == map_.end())
    return nullptr;
  List::iterator it = found->second;
  ChunkRef chunk = it->chunk;
  Segment& seg = segment(it->kind);
  if (it->kind != Kind::kProtected && touch == Touch::kReuse && it->seen) {
    move(it, Kind::kProtected);
    while (protected_.bytes > protected_cap_ && protected_.list.size() > 1)
      move(std::prev(protected_.list.end()), Kind::kProbation);
  } else if (it->kind == Kind::kScan) {
    it->seen = true;
    move(it, Kind::kScanRead);
  } else {
    it->seen = true;
    seg.list.splice(seg.list.begin(), seg.list, it);
  }
  return chunk;
}

bool RamCache::contains(const repo::Id& id) const {
  std::scoped_lock lock(mutex_);
  return map_.count(id) != 0;
}

void RamCache::insert(const repo::Id& id, ChunkRef chunk, bool scan) {
  if (!chunk || chunk->size() > budget_)
    return;
  std::scoped_lock lock(mutex_);
  if (map_.count(id) != 0)
    return;
  Kind kind = scan ? Kind::kScan : Kind::kProbation;
  Segment& seg = segment(kind);
  seg.bytes += chunk->size();
  seg.list.push_front(Entry{id, std::move(chunk), kind});
  map_.emplace(id, seg.list.begin());
  while (scan_.bytes + scan_read_.bytes > scan_cap_) {
    if (!scan_read_.list.empty())
      evict_last(scan_read_);
    else if (scan_.list.size() > 1)
      evict_last(scan_);
    else
      break;
  }
  while (bytes_locked() > budget_) {
    evict_last(!scan_read_.list.empty()   ? scan_read_
               : !scan_.list.empty()      ? scan_
               : !probation_.list.empty() ? probation_
                                          : protected_);
  }
}

std::uint64_t RamCache::bytes() const {
  std::scoped_lock lock(mutex_);
  return bytes_locked();
}

std::uint64_t RamCache::bytes_locked() const {
  return scan_.bytes + scan_read_.bytes + probation_.bytes + protected_.bytes;
}

void RamCache::move(List::iterator it, Kind to) {
  Segment& from = segment(it->kind);
  Segment& dest = segment(to);
  std::uint64_t size = it->chunk->size();
  from.bytes -= size;
  dest.bytes += size;
  it->kind = to;
  dest.list.splice(dest.list.begin(), from.list, it);
}

void RamCache::evict_last(Segment& seg) {
  auto last = std::prev(seg.list.end());
  seg.bytes -= last->chunk->size();
  map_.erase(last->id);
  seg.list.erase(last);
}

}  // namespace coffer::fs
