#include "fs/chunk_disk_cache.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/core/log.h"

namespace coffer::fs {
namespace {

bool write_all(int fd, repo::ByteSpan data) {
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<repo::Bytes> read_whole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  struct stat st {};
  std::optional<repo::Bytes> out;
  if (::fstat(fd, &st) == 0) {
    repo::Bytes data(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < data.size()) {
      ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += static_cast<std::size_t>(n);
    }
    if (got == data.size())
      out = std::move(data);
  }
  ::close(fd);
  return out;
}

}  // namespace

repo::Result<std::unique_ptr<DiskCache>> DiskCache::open(const std::string& dir,
                                                         std::uint64_t cap) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return repo::fail(repo::Errc::kIo, "creating chunk cache " + dir + ": " + ec.message());
  std::unique_ptr<DiskCache> cache(new DiskCache(dir, cap));
  COFFER_TRY(cache->scan());
  return cache;
}

repo::Result<void> DiskCache::scan() {
  std::list<std::pair<long long, Entry>> found;  // (mtime ns, entry)
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() == 2 && it->is_directory())
      scan_subdir(name, found);
  }
  if (ec)
    return repo::fail(repo::Errc::kIo, "scanning chunk cache " + dir_ + ": " + ec.message());
  found.sort([](const auto& a, const auto& b) { return a.first > b.first; });
  std::scoped_lock lock(mutex_);
  for (auto& [mtime, e] : found) {
    used_ += e.size;
    lru_.push_back(e);
    map_.emplace(e.id, std::prev(lru_.end()));
  }
  while (used_ > cap_ && !lru_.empty()) evict_one();
  return {};
}

void DiskCache::scan_subdir(const std::string& sub, std::list<std::pair<long long, Entry>>& found) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_ + "/" + sub, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::string path = it->path().string();
    if (name.rfind("tmp", 0) == 0) {
      ::unlink(path.c_str());
      continue;
    }
    auto id = repo::Id::parse(name);
    struct stat st {};
    if (!id || name.compare(0, 2, sub) != 0 || ::stat(path.c_str(), &st) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;
    }
    long long mtime = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    found.emplace_back(mtime, Entry{*id, static_cast<std::uint64_t>(st.st_size), true});
  }
}

std::string DiskCache::path_of(const repo::Id& id) const {
  std::string hex = id.hex();
  return dir_ + "/" + hex.substr(0, 2) + "/" + hex;
}

std::optional<repo::Bytes> DiskCache::load(const repo::Id& id) {
  {
    std::scoped_lock lock(mutex_);
    auto it = map_.find(id);
    if (it == map_.end() || !it->second->ready)
      return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  std::string path = path_of(id);
  auto data = read_whole(path);
  if (!data) {
    remove(id);
    return std::nullopt;
  }
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // persist recency for the next scan
  return data;
}

void DiskCache::store(const repo::Id& id, repo::ByteSpan data) {
  if (!reserve(id, data.size()))
    return;
  bool ok = write_file(id, data);
  std::scoped_lock lock(mutex_);
  --writing_;
  written_.notify_all();
  auto it = map_.find(id);
  if (it == map_.end())
    return;
  if (ok) {
    it->second->ready = true;
  } else {
    used_ -= it->second->size;
    lru_.erase(it->second);
    map_.erase(it);
  }
}

void DiskCache::remove(const repo::Id& id) {
  std::scoped_lock lock(mutex_);
  auto it = map_.find(id);
  if (it == map_.end() || !it->second->ready)
    return;
  ::unlink(path_of(id).c_str());
  used_ -= it->second->size;
  lru_.erase(it->second);
  map_.erase(it);
}

bool DiskCache::reserve(const repo::Id& id, std::uint64_t size) {
  if (size > cap_)
    return false;
  std::unique_lock lock(mutex_);
  if (map_.count(id) != 0)
    return false;
  while (used_ + size > cap_) {
    std::uint64_t before = used_;
    evict_one();
    if (used_ != before)
      continue;
    if (writing_ == 0)
      return false;       // cannot happen while size <= cap_; kept as a guard
    written_.wait(lock);  // only files being written are left: wait for one to finish
  }
  if (map_.count(id) != 0)
    return false;  // stored by another thread while this one waited
  lru_.push_front(Entry{id, size, false});
  map_.emplace(id, lru_.begin());
  used_ += size;
  ++writing_;
  return true;
}

void DiskCache::evict_one() {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if (!it->ready)
      continue;
    ::unlink(path_of(it->id).c_str());
    used_ -= it->size;
    map_.erase(it->id);
    lru_.erase(std::next(it).base());
    return;
  }
}

bool DiskCache::write_file(const repo::Id& id, repo::ByteSpan data) const {
  std::string final_path = path_of(id);
  std::string sub = final_path.substr(0, final_path.rfind('/'));
  if (::mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST)
    return false;
  std::string templ = sub + "/tmp-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0)
    return false;
  bool ok = write_all(fd, data);
  ok = (::close(fd) == 0) && ok;
  if (ok && ::rename(name.data(), final_path.c_str()) == 0)
    return true;
  repo::log::debug("chunk cache: cannot write " + final_path + ": " + std::strerror(errno));
  ::unlink(name.data());
  return false;
}

std::uint64_t DiskCache::bytes() const {
  std::scoped_lock lock(mutex_);
  return used_;
}

std::uint64_t DiskCache::files() const {
  std::scoped_lock lock(mutex_);
  return map_.size();
}

}  // namespace coffer::fs
