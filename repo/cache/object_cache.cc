// The sealed-object cache of remote repositories (see object_cache.h).
#include "repo/cache/object_cache.h"

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace coffer::repo {
namespace {

constexpr std::time_t kTreeLifetime = 60L * 24 * 3600;  // unread for this long: deleted
constexpr std::time_t kExpireEvery = 24L * 3600;

bool make_dir(const std::string& path) {
  return ::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST;
}

// Reads the whole regular file at `path`; nullopt on any error.
std::optional<Bytes> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  struct stat st {};
  std::optional<Bytes> out;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    Bytes data(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::read(fd, data.data() + done, data.size() - done);
      if (n <= 0)
        break;
      done += static_cast<std::size_t>(n);
    }
    if (done == data.size())
      out = std::move(data);
  }
  ::close(fd);
  return out;
}

// Writes `bytes` to a temporary file beside `path`, then renames it into place.
void write_file(const std::string& path, ByteSpan bytes) {
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0)
    return;
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  bool ok = done == bytes.size();
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    ::unlink(tmp.c_str());
}

// Calls fn(name) for every entry of directory `dir` but "." and "..".
template <class Fn>
void for_each_entry(const std::string& dir, Fn fn) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..")
      fn(name);
  }
  ::closedir(d);
}

}  // namespace

Result<std::unique_ptr<ObjectCache>> ObjectCache::open(const std::string& dir) {
  for (const std::string& d : {dir, dir + "/snapshots", dir + "/trees"}) {
    if (!make_dir(d))
      return fail(Errc::kIo, "cannot create cache directory " + d);
  }
  std::unique_ptr<ObjectCache> cache(new ObjectCache(dir));
  cache->expire_trees();
  return cache;
}

std::string ObjectCache::path(CachedKind kind, const Id& id) const {
  std::string hex = id.hex();
  if (kind == CachedKind::kSnapshot)
    return dir_ + "/snapshots/" + hex;
  return dir_ + "/trees/" + hex.substr(0, 2) + "/" + hex;
}

std::optional<Bytes> ObjectCache::get(CachedKind kind, const Id& id) const {
  std::string p = path(kind, id);
  auto data = read_file(p);
  if (data && kind == CachedKind::kTree)
    ::utimensat(AT_FDCWD, p.c_str(), nullptr, 0);  // in use: not expired
  return data;
}

void ObjectCache::put(CachedKind kind, const Id& id, ByteSpan bytes) const {
  std::string p = path(kind, id);
  if (kind == CachedKind::kTree && !make_dir(p.substr(0, p.rfind('/'))))
    return;
  write_file(p, bytes);
}

void ObjectCache::remove(CachedKind kind, const Id& id) const { ::unlink(path(kind, id).c_str()); }

void ObjectCache::retain_snapshots(const std::vector<Id>& live) const {
  std::string dir = dir_ + "/snapshots";
  for_each_entry(dir, [&](const std::string& name) {
    auto id = Id::parse(name);
    if (!id || !std::binary_search(live.begin(), live.end(), *id))
      ::unlink((dir + "/" + name).c_str());
  });
}

// Deletes tree entries (and stale temporary files) unread for kTreeLifetime, at most once
// every kExpireEvery (the time of the marker file "trees/expired").
void ObjectCache::expire_trees() const {
  std::string trees = dir_ + "/trees";
  std::string marker = trees + "/expired";
  std::time_t now = std::time(nullptr);
  struct stat st {};
  if (::stat(marker.c_str(), &st) == 0 && now - st.st_mtime < kExpireEvery)
    return;
  int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::futimens(fd, nullptr);
    ::close(fd);
  }
  for_each_entry(trees, [&](const std::string& sub) {
    if (sub.size() != 2)
      return;
    std::string dir = trees + "/" + sub;
    for_each_entry(dir, [&](const std::string& name) {
      std::string p = dir + "/" + name;
      struct stat entry {};
      if (::stat(p.c_str(), &entry) == 0 && now - entry.st_mtime > kTreeLifetime)
        ::unlink(p.c_str());
    });
  });
}

}  // namespace coffer::repo
