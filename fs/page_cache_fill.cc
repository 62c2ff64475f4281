#include "fs/page_cache_fill.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <fuse3/fuse_lowlevel.h>

#include "repo/core/log.h"

namespace coffer::fs {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMaxStore = 1ULL << 20;  // bytes per notification
constexpr auto kStopGrace = std::chrono::seconds(2);
constexpr std::size_t kMaxEdges = 4096;  // half-filled shared pages kept (16 MiB at most)

}  // namespace

PageCacheFill::PageCacheFill(fuse_session* session, std::string abort_path,
                             std::uint64_t max_pending, std::function<void()> on_refused)
    : session_(session),
      abort_path_(std::move(abort_path)),
      max_pending_(max_pending),
      on_refused_(std::move(on_refused)),
      debug_refuse_(std::getenv("COFFER_DEBUG_REFUSE_STORE") != nullptr) {
  thread_ = std::thread([this] { run(); });
}

PageCacheFill::~PageCacheFill() {
  std::unique_lock lock(mutex_);
  stop_ = true;
  queue_.clear();
  pending_ = 0;
  cv_.notify_all();
  // A store that waits for the page of a READ nobody answers any more ends only when the
  // connection goes away.
  if (!cv_.wait_for(lock, kStopGrace, [&] { return idle_; }) && !abort_path_.empty()) {
    repo::log::debug("page cache fill: aborting the FUSE connection to stop");
    std::ofstream(abort_path_) << "1\n";
  }
  lock.unlock();
  thread_.join();
}

void PageCacheFill::push(std::uint64_t ino, std::uint64_t file_size,
                         std::vector<FetchedChunk> chunks) {
  {
    std::scoped_lock lock(mutex_);
    for (FetchedChunk& c : chunks) {
      std::uint64_t size = c.data->size();
      if (stop_ || stats_.off || pending_ + size > max_pending_) {
        stats_.dropped_bytes += size;
        continue;
      }
      pending_ += size;
      queue_.push_back(Item{ino, file_size, std::move(c)});
    }
  }
  cv_.notify_one();
}

PageCacheFill::Stats PageCacheFill::stats() const {
  std::scoped_lock lock(mutex_);
  return stats_;
}

void PageCacheFill::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_)
      break;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    pending_ -= item.chunk.data->size();
    idle_ = false;
    lock.unlock();
    auto started = std::chrono::steady_clock::now();
    store(item);
    item = Item{};  // drop the chunk outside the lock
    auto took = std::chrono::steady_clock::now() - started;
    lock.lock();
    stats_.busy_ms += std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
    idle_ = true;
    cv_.notify_all();
  }
}

bool PageCacheFill::send(std::uint64_t ino, std::uint64_t offset, const std::byte* data,
                         std::uint64_t size) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  // libfuse only reads from the buffer; its struct has no const member.
  buf.buf[0].mem = const_cast<std::byte*>(data);
  int rc = debug_refuse_ ? -ENOSYS
                         : fuse_lowlevel_notify_store(session_, ino, static_cast<off_t>(offset),
                                                      &buf, static_cast<fuse_buf_copy_flags>(0));
  std::unique_lock lock(mutex_);
  if (rc != 0) {
    ++stats_.failed;
    // ENOENT: the kernel forgot the inode (nothing to cache); anything else: no stores here.
    if (rc != -ENOENT && !stats_.off) {
      stats_.off = true;
      queue_.clear();
      pending_ = 0;
      lock.unlock();
      repo::log::info(fmt::format(
          "page cache fill: the kernel refused a store ({}); caching random reads in RAM",
          std::strerror(-rc)));
      if (on_refused_)
        on_refused_();
    }
    return false;
  }
  stats_.stored_bytes += size;
  return true;
}

void PageCacheFill::store(const Item& item) {
  const FetchedChunk& c = item.chunk;
  std::uint64_t chunk_end = std::min(c.offset + c.data->size(), item.file_size);
  std::uint64_t begin = (c.offset + kPage - 1) / kPage * kPage;
  std::uint64_t end = chunk_end == item.file_size ? chunk_end : chunk_end / kPage * kPage;
  for (std::uint64_t at = begin; at < end;) {
    std::uint64_t n = std::min(kMaxStore, end - at);
    if (!send(item.ino, at, c.data->data() + (at - c.offset), n))
      return;
    at += n;
  }
  // The pages a chunk shares with its neighbours: kept until the neighbour's part arrives.
  if (c.offset % kPage != 0)
    add_edge(item, c.offset, std::min(begin, chunk_end));
  if (end < chunk_end && end >= c.offset)
    add_edge(item, end, chunk_end);
}

void PageCacheFill::add_edge(const Item& item, std::uint64_t from, std::uint64_t to) {
  std::uint64_t page = from / kPage * kPage;
  std::uint64_t page_end = std::min(page + kPage, item.file_size);
  EdgeKey key{item.ino, page / kPage};
  auto it = edges_.find(key);
  if (it == edges_.end()) {
    if (edges_.size() >= kMaxEdges) {
      edges_.erase(edge_order_.front());
      edge_order_.pop_front();
    }
    it = edges_.emplace(key, Edge{}).first;
    it->second.begin = page_end;  // nothing filled yet: [end, end) and [page, page)
    it->second.end = page;
    edge_order_.push_back(key);
  }
  Edge& e = it->second;
  std::memcpy(e.bytes.data() + (from - page), item.chunk.data->data() + (from - item.chunk.offset),
              to - from);
  // Fragments start at the page's start or end at its end (or the file's): two halves.
  if (from == page)
    e.end = std::max(e.end, to);
  if (to == page_end)
    e.begin = std::min(e.begin, from);
  if (e.end < e.begin)
    return;
  send(item.ino, page, e.bytes.data(), page_end - page);
  edges_.erase(it);
  std::erase(edge_order_, key);
}

std::string fuse_abort_path(const std::string& device) {
  auto colon = device.find(':');
  if (colon == std::string::npos || device.substr(0, colon) != "0")
    return "";
  std::string minor = device.substr(colon + 1);
  if (minor.empty() || minor.find_first_not_of("0123456789") != std::string::npos)
    return "";
  return "/sys/fs/fuse/connections/" + minor + "/abort";
}

}  // namespace coffer::fs
