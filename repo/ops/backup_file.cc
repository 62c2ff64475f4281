// The archiver's file reading and chunk saving (see backup_archiver.h).
//
// A file is read in 1 MiB reads into a pooled buffer and scanned by the chunker as it
// arrives; at a cut the chunk's buffer goes to the blob pool and the bytes after the cut
// move to a fresh buffer. Possibly sparse files are walked with SEEK_DATA/SEEK_HOLE: holes
// are fed to the chunker as zero runs without being read, and a chunk that lies wholly in a
// hole is saved as a known zero chunk without hashing.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "repo/ops/backup_archiver.h"

namespace coffer::repo::detail {

namespace {

constexpr std::size_t kReadSize = 1U << 20;

// kChunkMaxSize zero bytes (calloc'd: untouched pages cost no memory).
ByteSpan zeros() {
  struct Free {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  static const std::unique_ptr<std::byte, Free> block(
      static_cast<std::byte*>(std::calloc(kChunkMaxSize, 1)));
  return {block.get(), kChunkMaxSize};
}

int open_for_reading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME | O_NONBLOCK);
  if (fd < 0 && errno == EPERM)  // O_NOATIME needs ownership (or CAP_FOWNER)
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  return fd;
}

bool same_content_stat(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
         a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

}  // namespace

void Archiver::read_file(const std::shared_ptr<FileJob>& job) {
  if (stopping())
    return (job->failed = true, chunk_done(job));
  {
    std::scoped_lock lock(mutex_);
    current_.push_back(job->path);
  }
  int fd = open_for_reading(job->path);
  struct stat before {};
  Result<void> r;
  if (fd < 0 || ::fstat(fd, &before) != 0) {
    r = fail(Errc::kIo, "open " + job->path + ": " + std::strerror(errno));
  } else if (!S_ISREG(before.st_mode)) {
    r = fail(Errc::kIo, job->path + ": no longer a regular file");
  } else {
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    auto size = static_cast<std::uint64_t>(before.st_size);
    bool sparse = static_cast<std::uint64_t>(before.st_blocks) * 512 < size;
    r = read_stream(job, fd, sparse ? std::optional<std::uint64_t>(size) : std::nullopt);
    struct stat after {};
    if (r && ::fstat(fd, &after) == 0 && !same_content_stat(before, after))
      warning("file changed while it was read: " + job->path);
  }
  if (fd >= 0)
    ::close(fd);
  {
    std::scoped_lock lock(mutex_);
    std::erase(current_, job->path);
  }
  if (!r) {
    if (r.error().code != Errc::kCancelled)
      error(r.error().message);
    job->failed = true;
  }
  chunk_done(job);  // the reader's hold
}

Result<void> Archiver::read_stream(const std::shared_ptr<FileJob>& job, int fd,
                                   std::optional<std::uint64_t> sparse_size) {
  Chunker chunker(polynomial_);
  auto buf = buffers_->acquire();
  std::uint64_t pos = 0;
  if (sparse_size) {
    const std::uint64_t size = *sparse_size;
    while (pos < size) {
      off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
      std::uint64_t data_at = data < 0 ? size : std::min<std::uint64_t>(data, size);
      if (data_at > pos)
        read_hole(job, data_at - pos, chunker, buf);
      pos = data_at;
      if (pos >= size)
        break;
      off_t hole = ::lseek(fd, static_cast<off_t>(pos), SEEK_HOLE);
      std::uint64_t end = hole < 0 ? size : std::min<std::uint64_t>(hole, size);
      COFFER_TRY(read_data(job, fd, pos, end, chunker, buf));
      pos = end;
    }
  } else {
    COFFER_TRY(read_data(job, fd, 0, UINT64_MAX, chunker, buf));
  }
  if (buf->size > 0)
    emit(job, std::move(buf));
  if (stopping())
    return fail(Errc::kCancelled, "backup cancelled");
  return {};
}

Result<void> Archiver::read_data(const std::shared_ptr<FileJob>& job, int fd, std::uint64_t offset,
                                 std::uint64_t end, Chunker& chunker,
                                 std::unique_ptr<PooledBuffer>& buf) {
  bool seekable = end != UINT64_MAX;
  while (offset < end) {
    if (stopping())
      return fail(Errc::kCancelled, "backup cancelled");
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadSize, end - offset));
    ssize_t n = seekable ? ::pread(fd, buf->data() + buf->size, want, static_cast<off_t>(offset))
                         : ::read(fd, buf->data() + buf->size, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(Errc::kIo, "read " + job->path + ": " + std::strerror(errno));
    if (n == 0)
      break;  // end of file (it may have shrunk)
    offset += static_cast<std::uint64_t>(n);
    bytes_done_ += static_cast<std::uint64_t>(n);
    job->bytes += static_cast<std::uint64_t>(n);
    std::size_t scan = buf->size;
    buf->size += static_cast<std::size_t>(n);
    while (scan < buf->size) {
      auto cut = chunker.find_boundary({buf->data() + scan, buf->size - scan});
      if (!cut)
        break;
      std::size_t chunk_end = scan + *cut;
      auto next = buffers_->acquire();
      next->size = buf->size - chunk_end;
      std::memcpy(next->data(), buf->data() + chunk_end, next->size);
      buf->size = chunk_end;
      emit(job, std::exchange(buf, std::move(next)));
      scan = 0;
    }
  }
  return {};
}

void Archiver::read_hole(const std::shared_ptr<FileJob>& job, std::uint64_t count, Chunker& chunker,
                         std::unique_ptr<PooledBuffer>& buf) {
  bytes_done_ += count;
  job->bytes += count;
  while (count > 0) {
    auto cut = chunker.find_boundary_in_zeros(count);
    std::uint64_t n = cut ? *cut : count;
    if (cut && buf->size == 0) {
      emit_zeros(job, n);  // a chunk wholly inside the hole
    } else {
      std::memset(buf->data() + buf->size, 0, static_cast<std::size_t>(n));
      buf->size += static_cast<std::size_t>(n);
      if (cut)
        emit(job, std::exchange(buf, buffers_->acquire()));
    }
    count -= n;
  }
}

void Archiver::emit(const std::shared_ptr<FileJob>& job, std::unique_ptr<PooledBuffer> chunk) {
  job->pending.fetch_add(1, std::memory_order_relaxed);
  Id* slot = &job->content.emplace_back();
  auto shared = std::shared_ptr<PooledBuffer>(std::move(chunk));
  blob_pool_->submit([this, job, slot, shared] {
    save_chunk(job, slot, {shared->data(), shared->size}, false);
  });
}

void Archiver::emit_zeros(const std::shared_ptr<FileJob>& job, std::uint64_t size) {
  job->pending.fetch_add(1, std::memory_order_relaxed);
  Id* slot = &job->content.emplace_back();
  bool known = size == kChunkMinSize;
  if (known)
    *slot = zero_chunk_id();
  blob_pool_->submit([this, job, slot, size, known] {
    save_chunk(job, slot, zeros().first(static_cast<std::size_t>(size)), known);
  });
}

void Archiver::save_chunk(const std::shared_ptr<FileJob>& job, Id* slot, ByteSpan data,
                          bool known_id) {
  if (!known_id)
    *slot = Id::hash(data);
  if (!stopping()) {
    auto r = store(BlobType::kData, *slot, data);
    if (!r)
      set_fatal(r.error().with_context("saving " + job->path));
  }
  chunk_done(job);
}

void Archiver::chunk_done(const std::shared_ptr<FileJob>& job) {
  if (job->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
    finish_file(job);
}

void Archiver::finish_file(const std::shared_ptr<FileJob>& job) {
  if (job->failed) {
    deliver(job->dir, job->slot, std::nullopt);
    return;
  }
  Node node = std::move(job->node);
  node.content.assign(job->content.begin(), job->content.end());
  node.size = job->bytes;  // what was read, should the file have changed meanwhile
  ++(job->had_old ? files_changed_ : files_new_);
  deliver(job->dir, job->slot, std::move(node));
}

}  // namespace coffer::repo::detail

namespace coffer::repo::detail {

Result<Id> Archiver::run_stream(int fd, Node node) {
  auto dir = std::make_shared<DirJob>();
  dir->children.resize(1);
  dir->pending += 1;
  auto job = std::make_shared<FileJob>();
  job->path = "/" + node.name;
  job->node = std::move(node);
  job->dir = dir;
  auto r = read_stream(job, fd, std::nullopt);
  if (!r) {
    set_fatal(r.error());
    job->failed = true;
  }
  chunk_done(job);
  release(dir);
  return finish_run();
}

}  // namespace coffer::repo::detail
