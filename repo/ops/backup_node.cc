// Filesystem metadata -> tree Node (see backup_node.h).
#include "repo/ops/backup_node.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include <grp.h>
#include <pwd.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "repo/tree/go_text.h"

namespace coffer::repo {

namespace {

bool valid_utf8(std::string_view s) {
  for (std::size_t pos = 0; pos < s.size();) {
    auto r = detail::decode_rune(s, pos);
    if (!r.valid)
      return false;
    pos += r.width;
  }
  return true;
}

std::string lookup_user(std::uint32_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* out = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) != 0 || out == nullptr)
    return "";
  return out->pw_name;
}

std::string lookup_group(std::uint32_t gid) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* out = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &out) != 0 || out == nullptr)
    return "";
  return out->gr_name;
}

NodeType type_of(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return NodeType::kFile;
    case S_IFDIR:
      return NodeType::kDir;
    case S_IFLNK:
      return NodeType::kSymlink;
    case S_IFBLK:
      return NodeType::kDev;
    case S_IFCHR:
      return NodeType::kCharDev;
    case S_IFIFO:
      return NodeType::kFifo;
    case S_IFSOCK:
      return NodeType::kSocket;
    default:
      return NodeType::kIrregular;
  }
}

// Grows `buf` until `call(buf)` fits; returns the size used or -1 (errno set).
template <class F>
ssize_t call_sized(std::vector<char>& buf, F&& call) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t n = call(buf.data(), buf.size());
    if (n >= 0 || errno != ERANGE)
      return n;
    ssize_t need = call(nullptr, 0);
    if (need < 0)
      return need;
    buf.resize(static_cast<std::size_t>(need) + 256);
  }
  errno = ERANGE;
  return -1;
}

std::vector<ExtendedAttribute> read_xattrs(const std::string& path) {
  std::vector<ExtendedAttribute> out;
  std::vector<char> names(1024);
  ssize_t n =
      call_sized(names, [&](char* b, size_t s) { return ::llistxattr(path.c_str(), b, s); });
  if (n <= 0)
    return out;
  std::vector<char> value(1024);
  for (ssize_t pos = 0; pos < n;) {
    std::string name(names.data() + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    ssize_t v = call_sized(
        value, [&](char* b, size_t s) { return ::lgetxattr(path.c_str(), name.c_str(), b, s); });
    if (v < 0)
      continue;
    const auto* p = reinterpret_cast<const std::byte*>(value.data());
    out.push_back({std::move(name), Bytes(p, p + v)});
  }
  return out;
}

}  // namespace

std::string NameCache::user(std::uint32_t uid) {
  {
    std::scoped_lock lock(mutex_);
    if (auto it = users_.find(uid); it != users_.end())
      return it->second;
  }
  std::string name = lookup_user(uid);
  std::scoped_lock lock(mutex_);
  return users_.emplace(uid, std::move(name)).first->second;
}

std::string NameCache::group(std::uint32_t gid) {
  {
    std::scoped_lock lock(mutex_);
    if (auto it = groups_.find(gid); it != groups_.end())
      return it->second;
  }
  std::string name = lookup_group(gid);
  std::scoped_lock lock(mutex_);
  return groups_.emplace(gid, std::move(name)).first->second;
}

GoTime go_time_local(const struct timespec& ts) {
  GoTime t;
  t.unix_seconds = ts.tv_sec;
  t.nanos = static_cast<std::uint32_t>(ts.tv_nsec);
  std::tm tm{};
  std::time_t secs = ts.tv_sec;
  if (::localtime_r(&secs, &tm) != nullptr)
    t.offset_seconds = static_cast<std::int32_t>(tm.tm_gmtoff);
  return t;
}

Result<Node> node_from_stat(const std::string& path, std::string name, const struct stat& st,
                            NameCache& names) {
  Node n;
  n.name = std::move(name);
  n.type = type_of(st.st_mode);
  n.mode = go_mode_from_unix(st.st_mode);
  n.mtime = go_time_local(st.st_mtim);
  n.atime = go_time_local(st.st_atim);
  n.ctime = go_time_local(st.st_ctim);
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.user = names.user(st.st_uid);
  n.group = names.group(st.st_gid);
  n.inode = st.st_ino;
  n.device_id = st.st_dev;
  n.links = st.st_nlink;
  if (n.type == NodeType::kFile)
    n.size = static_cast<std::uint64_t>(st.st_size);
  if (n.type == NodeType::kDev || n.type == NodeType::kCharDev)
    n.device = st.st_rdev;
  if (n.type == NodeType::kSymlink) {
    std::vector<char> buf(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 255) + 1);
    for (;;) {
      ssize_t len = ::readlink(path.c_str(), buf.data(), buf.size());
      if (len < 0)
        return fail(Errc::kIo, "readlink " + path + ": " + std::strerror(errno));
      if (static_cast<std::size_t>(len) < buf.size()) {
        n.linktarget.assign(buf.data(), static_cast<std::size_t>(len));
        n.has_linktarget_raw = !valid_utf8(n.linktarget);  // restic 0.16+ keeps the raw bytes
        break;
      }
      buf.resize(buf.size() * 2);
    }
  }
  n.xattrs = read_xattrs(path);
  return n;
}

}  // namespace coffer::repo
