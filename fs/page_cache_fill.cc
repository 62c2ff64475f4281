#include "fs/page_cache_fill.h"

#include <cerrno>
#include <chrono>
#include <fstream>

#include <fuse3/fuse_lowlevel.h>

#include "repo/core/log.h"

namespace coffer::fs {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMaxStore = 1ULL << 20;  // bytes per notification
constexpr auto kStopGrace = std::chrono::seconds(2);

}  // namespace

PageCacheFill::PageCacheFill(fuse_session* session, std::string abort_path,
                             std::uint64_t max_pending)
    : session_(session), abort_path_(std::move(abort_path)), max_pending_(max_pending) {
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
      if (stop_ || pending_ + size > max_pending_) {
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
    store(item);
    item = Item{};  // drop the chunk outside the lock
    lock.lock();
    idle_ = true;
    cv_.notify_all();
  }
}

void PageCacheFill::store(const Item& item) {
  const FetchedChunk& c = item.chunk;
  std::uint64_t chunk_end = std::min(c.offset + c.data->size(), item.file_size);
  std::uint64_t begin = (c.offset + kPage - 1) / kPage * kPage;
  std::uint64_t end = chunk_end == item.file_size ? chunk_end : chunk_end / kPage * kPage;
  std::uint64_t stored = 0;
  for (std::uint64_t at = begin; at < end;) {
    std::uint64_t n = std::min(kMaxStore, end - at);
    fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
    // libfuse only reads from the buffer; its struct has no const member.
    buf.buf[0].mem = const_cast<std::byte*>(c.data->data() + (at - c.offset));
    int rc = fuse_lowlevel_notify_store(session_, item.ino, static_cast<off_t>(at), &buf,
                                        static_cast<fuse_buf_copy_flags>(0));
    if (rc != 0) {
      std::scoped_lock lock(mutex_);
      ++stats_.failed;
      break;
    }
    stored += n;
    at += n;
  }
  std::scoped_lock lock(mutex_);
  stats_.stored_bytes += stored;
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
