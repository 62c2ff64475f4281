#include "fs/chunk_file.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

namespace coffer::fs {

using repo::Errc;

namespace {

// The kernel sends a sequential reader's read-ahead as several READs at once, which the
// FUSE workers may take in any order: a READ a few MiB behind or ahead of the furthest one
// seen is still the same stream (with 1 MiB behind, a mount over B2 sometimes saw a late
// READ as random, dropped its window and fell to 30-55 MB/s from ~85).
constexpr std::uint64_t kBackWindow = 4ULL << 20;
constexpr std::uint64_t kForwardWindow = 4ULL << 20;

}  // namespace

repo::Result<FileChunks> FileChunks::build(const repo::Repository& repo, const ZeroChunks& zeros,
                                           const std::vector<repo::Id>& content) {
  FileChunks f;
  f.chunks_.reserve(content.size());
  std::unordered_map<repo::Id, std::pair<std::uint32_t, bool>, repo::IdHash> seen;
  for (const repo::Id& id : content) {
    auto known = seen.find(id);
    if (known == seen.end()) {
      COFFER_ASSIGN_OR_RETURN(auto where, repo.lookup(repo::BlobHandle{id, repo::BlobType::kData}));
      if (!where)
        return repo::fail(Errc::kNotFound, "data blob " + id.hex() + " not found in index");
      known = seen.emplace(id, std::pair{where->plain_size(), zeros.is_zero(*where)}).first;
    }
    auto [size, zero] = known->second;
    f.chunks_.push_back(Chunk{id, f.size_, size, zero});
    if (size == 0)
      continue;
    if (f.extents_.empty() || f.extents_.back().data == zero)
      f.extents_.push_back(Extent{f.size_, !zero});
    f.size_ += size;
    f.allocated_ += zero ? 0 : size;
  }
  return f;
}

std::pair<std::size_t, std::size_t> FileChunks::chunk_range(std::uint64_t offset,
                                                            std::uint64_t len) const {
  if (len == 0 || offset >= size_)
    return {0, 0};
  std::uint64_t end = offset + std::min(len, size_ - offset);
  auto by_offset = [](std::uint64_t off, const Chunk& c) { return off < c.offset; };
  auto first = std::upper_bound(chunks_.begin(), chunks_.end(), offset, by_offset) - 1;
  auto last = std::lower_bound(chunks_.begin(), chunks_.end(), end,
                               [](const Chunk& c, std::uint64_t off) { return c.offset < off; });
  return {static_cast<std::size_t>(first - chunks_.begin()),
          static_cast<std::size_t>(last - chunks_.begin())};
}

std::size_t FileChunks::extent_at(std::uint64_t off) const {
  auto it = std::upper_bound(extents_.begin(), extents_.end(), off,
                             [](std::uint64_t o, const Extent& e) { return o < e.offset; });
  return static_cast<std::size_t>(it - extents_.begin()) - 1;
}

std::optional<std::uint64_t> FileChunks::next_data(std::uint64_t off) const {
  if (off >= size_)
    return std::nullopt;
  std::size_t e = extent_at(off);
  if (extents_[e].data)
    return off;
  if (e + 1 < extents_.size())
    return extents_[e + 1].offset;
  return std::nullopt;
}

std::optional<std::uint64_t> FileChunks::next_hole(std::uint64_t off) const {
  if (off >= size_)
    return std::nullopt;
  std::size_t e = extent_at(off);
  if (!extents_[e].data)
    return off;
  return e + 1 < extents_.size() ? extents_[e + 1].offset : size_;
}

ReadStream::Plan ReadStream::on_read(const FileChunks& file, std::uint64_t offset,
                                     std::uint64_t len, std::size_t last,
                                     std::uint64_t max_ahead_bytes) {
  std::scoped_lock lock(mutex_);
  std::uint64_t end = offset + len;
  bool sequential = has_last_
                        ? offset + kBackWindow >= last_end_ && offset <= last_end_ + kForwardWindow
                        : offset == 0;
  if (sequential) {
    // A read from the very start (cp, cat, dd) opens a long pass more often than not: start
    // with a wider window than a read that merely lands near the previous one.
    std::size_t first = has_last_ ? 1 : std::min(policy_.first_chunks, policy_.max_chunks);
    depth_ = depth_ == 0 ? first : std::min(depth_ * 2, policy_.max_chunks);
    last_end_ = has_last_ ? std::max(last_end_, end) : end;
  } else {
    depth_ = 0;
    issued_until_ = 0;
    last_end_ = end;
  }
  has_last_ = true;
  Plan plan;
  plan.touch = depth_ > 0 ? Touch::kScan : Touch::kReuse;
  if (depth_ == 0)
    return plan;
  std::size_t target = last;
  std::uint64_t bytes = 0;
  std::uint64_t max_bytes = std::min(policy_.max_bytes, max_ahead_bytes);
  while (target < file.chunk_count() && target - last < depth_ &&
         bytes + file.chunk(target).size <= max_bytes) {
    bytes += file.chunk(target).size;
    ++target;
  }
  // Refill only when less than three quarters of the window are still outstanding (or the
  // window reaches EOF and cannot grow), so prefetches are issued in batches that coalesce
  // into few ranged reads, while the reader stays far enough behind the fetches. (Refilling
  // at half left a remote mount, 30 ms a request, at 75 MB/s; at three quarters, 82-94.)
  std::size_t from = std::max(last, issued_until_);
  bool refill = (from - last) * 4 < (target - last) * 3 || target == file.chunk_count();
  if (target > from && refill) {
    plan.ahead_first = from;
    plan.ahead_last = target;
    issued_until_ = target;
  }
  return plan;
}

std::size_t ReadStream::depth() const {
  std::scoped_lock lock(mutex_);
  return depth_;
}

namespace {

// Zeros for the holes of read segments: a FUSE read is at most a few MiB, so a hole is
// described by pieces of this buffer.
constexpr std::size_t kZeroSpan = 1U << 20;
alignas(4096) std::byte kZeros[kZeroSpan];  // .bss: never written

void add_zeros(std::vector<ReadSegment>& out, std::uint64_t n) {
  while (n > 0) {
    auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(n, kZeroSpan));
    out.push_back(ReadSegment{nullptr, kZeros, piece});
    n -= piece;
  }
}

}  // namespace

repo::Result<std::uint64_t> read_file_segments(ChunkStore& store, const FileChunks& file,
                                               ReadStream& stream, std::uint64_t offset,
                                               std::uint64_t size, std::vector<ReadSegment>& out,
                                               std::vector<FetchedChunk>* fetched) {
  if (offset >= file.size() || size == 0)
    return 0;
  std::uint64_t len = std::min<std::uint64_t>(size, file.size() - offset);
  auto [first, last] = file.chunk_range(offset, len);
  ReadStream::Plan plan = stream.on_read(file, offset, len, last, store.options().prefetch_budget);
  std::vector<repo::Id> needed;
  std::vector<repo::Id> ahead;
  for (std::size_t i = first; i < last; ++i) {
    if (!file.chunk(i).zero)
      needed.push_back(file.chunk(i).id);
  }
  for (std::size_t i = plan.ahead_first; i < plan.ahead_last; ++i) {
    if (!file.chunk(i).zero)
      ahead.push_back(file.chunk(i).id);
  }
  if (needed.size() > 1 || !ahead.empty())
    store.schedule(needed, ahead);
  for (std::size_t i = first; i < last; ++i) {
    const FileChunks::Chunk& c = file.chunk(i);
    std::uint64_t lo = std::max(offset, c.offset);
    std::uint64_t hi = std::min(offset + len, c.offset + c.size);
    if (c.zero) {
      add_zeros(out, hi - lo);
      continue;
    }
    COFFER_ASSIGN_OR_RETURN(ChunkRef data, store.get(c.id, plan.touch));
    if (data->size() != c.size) {
      return repo::fail(Errc::kCorrupt, fmt::format("blob {}: {} bytes, index says {}",
                                                    c.id.short_hex(), data->size(), c.size));
    }
    const std::byte* at = data->data() + (lo - c.offset);
    // A random read reaches the daemon only when the kernel lacks its page: give it the
    // whole chunk, whether it came from the RAM cache or was fetched.
    if (fetched != nullptr && plan.touch == Touch::kReuse)
      fetched->push_back(FetchedChunk{c.offset, data});
    out.push_back(ReadSegment{std::move(data), at, static_cast<std::size_t>(hi - lo)});
  }
  return len;
}

repo::Result<std::size_t> read_file(ChunkStore& store, const FileChunks& file, ReadStream& stream,
                                    std::uint64_t offset, std::span<std::byte> out,
                                    std::vector<FetchedChunk>* fetched) {
  std::vector<ReadSegment> segments;
  COFFER_ASSIGN_OR_RETURN(std::uint64_t n, read_file_segments(store, file, stream, offset,
                                                              out.size(), segments, fetched));
  std::byte* dst = out.data();
  for (const ReadSegment& s : segments) {
    std::memcpy(dst, s.data, s.size);
    dst += s.size;
  }
  return static_cast<std::size_t>(n);
}

}  // namespace coffer::fs
