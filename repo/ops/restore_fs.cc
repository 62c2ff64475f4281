#include "repo/ops/restore_fs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace coffer::repo::restore_detail {
namespace {

constexpr int kWriteFlags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

// Removes a non-directory at `path` so something else can be created there.
Result<void> clear_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return {};
    return fail(errno_error(path, "lstat"));
  }
  if (S_ISDIR(st.st_mode)) {
    return fail(Errc::kIo, path + ": a directory is in the way");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail(errno_error(path, "unlink"));
  return {};
}

timespec to_timespec(const GoTime& t) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t.unix_seconds);
  ts.tv_nsec = static_cast<long>(t.nanos);
  return ts;
}

std::string errno_text(const std::string& path, const char* what) {
  return errno_error(path, what).message;
}

Result<void> read_exact(int fd, std::byte* buf, std::size_t n, std::uint64_t offset,
                        const std::string& path) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return fail(errno_error(path, "read"));
    if (r == 0)
      return fail(Errc::kCorrupt, path + ": file is shorter than its chunks");
    done += static_cast<std::size_t>(r);
  }
  return {};
}

// Opens for reading without following a symlink; O_NOATIME keeps the restored atimes
// (allowed for the owner and for root). Sets errno on failure.
UniqueFd open_for_reading(const std::string& path) {
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  UniqueFd fd(::open(path.c_str(), kFlags | O_NOATIME));
  if (!fd.valid() && errno == EPERM)
    fd = UniqueFd(::open(path.c_str(), kFlags));
  return fd;
}

// Reads the chunks of `fd` in order (the file is `size` bytes) and calls on_chunk(index,
// hash matches) for each; stops early when on_chunk returns false. Chunks that do not fit
// in the file are reported as not matching without reading.
template <class Fn>
Result<void> hash_chunks(int fd, const std::string& path, const std::vector<Chunk>& chunks,
                         std::uint64_t size, Fn on_chunk) {
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::uint32_t largest = 0;
  for (const Chunk& c : chunks) largest = std::max(largest, c.size);
  thread_local Bytes buf;  // reused across files: no fresh pages per file
  if (buf.size() < largest)
    buf.resize(largest);
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    bool match = false;
    if (offset + chunks[i].size <= size) {
      COFFER_TRY(read_exact(fd, buf.data(), chunks[i].size, offset, path));
      match = Id::hash({buf.data(), chunks[i].size}) == chunks[i].id;
    }
    if (!on_chunk(i, match))
      break;
    offset += chunks[i].size;
  }
  return {};
}

}  // namespace

void UniqueFd::reset() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

Error errno_error(const std::string& path, const char* what) {
  int e = errno;
  return Error{Errc::kIo, path + ": " + what + ": " + std::system_category().message(e), false};
}

Result<void> make_dirs(const std::string& path) {
  std::optional<Error> first_error;
  for (std::size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/')
      continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST && !first_error) {
      first_error = errno_error(prefix, "mkdir");
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fail(first_error.value_or(errno_error(path, "stat")));
  if (!S_ISDIR(st.st_mode))
    return fail(Errc::kIo, path + ": not a directory");
  return {};
}

Result<void> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0)
    return {};
  if (errno != EEXIST)
    return fail(errno_error(path, "mkdir"));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return {};
  COFFER_TRY(clear_path(path));
  if (::mkdir(path.c_str(), 0700) != 0)
    return fail(errno_error(path, "mkdir"));
  return {};
}

Result<UniqueFd> create_file(const std::string& path, bool absent) {
  if (absent) {
    UniqueFd fd(::open(path.c_str(), kWriteFlags | O_CREAT | O_EXCL, 0600));
    if (fd.valid() || errno != EEXIST) {
      if (!fd.valid())
        return fail(errno_error(path, "create"));
      return fd;
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_nlink > 1)) {
    COFFER_TRY(clear_path(path));  // never write through a link or into a device
  }
  UniqueFd fd(::open(path.c_str(), kWriteFlags | O_CREAT | O_TRUNC, 0600));
  if (!fd.valid() && errno == EACCES) {  // a read-only file from an earlier restore
    COFFER_TRY(clear_path(path));
    fd = UniqueFd(::open(path.c_str(), kWriteFlags | O_CREAT | O_TRUNC, 0600));
  }
  if (!fd.valid())
    return fail(errno_error(path, "create"));
  return fd;
}

Result<UniqueFd> open_for_write(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), kWriteFlags));
  if (!fd.valid())
    return fail(errno_error(path, "open"));
  return fd;
}

Result<void> write_at(int fd, ByteSpan data, std::uint64_t offset, const std::string& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t r =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return fail(errno_error(path, "write"));
    done += static_cast<std::size_t>(r);
  }
  return {};
}

bool is_all_zero(ByteSpan data) {
  if (data.empty())
    return true;
  return data[0] == std::byte{0} && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0;
}

Result<void> create_special(const std::string& path, const Node& node) {
  COFFER_TRY(clear_path(path));
  int rc = -1;
  switch (node.type) {
    case NodeType::kSymlink:
      rc = ::symlink(node.linktarget.c_str(), path.c_str());
      break;
    case NodeType::kFifo:
      rc = ::mkfifo(path.c_str(), 0600);
      break;
    case NodeType::kDev:
      rc = ::mknod(path.c_str(), S_IFBLK | 0600, static_cast<dev_t>(node.device));
      break;
    case NodeType::kCharDev:
      rc = ::mknod(path.c_str(), S_IFCHR | 0600, static_cast<dev_t>(node.device));
      break;
    default:
      return fail(Errc::kUnsupported, path + ": cannot create a " + node_type_name(node.type));
  }
  if (rc != 0)
    return fail(errno_error(path, "create"));
  return {};
}

Result<void> make_hardlink(const std::string& existing, const std::string& path) {
  struct stat have {
  }, want{};
  if (::lstat(path.c_str(), &have) == 0) {
    if (::lstat(existing.c_str(), &want) == 0 && have.st_dev == want.st_dev &&
        have.st_ino == want.st_ino) {
      return {};
    }
    COFFER_TRY(clear_path(path));
  }
  if (::link(existing.c_str(), path.c_str()) != 0)
    return fail(errno_error(path, "link"));
  return {};
}

void remove_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    ::unlink(path.c_str());
}

std::vector<std::string> apply_metadata(const std::string& path, const Node& node) {
  std::vector<std::string> errs;
  if (::lchown(path.c_str(), node.uid, node.gid) != 0) {
    // Like cp -a and restic: a permission error is expected when not running as root.
    if (!(errno == EPERM && ::geteuid() != 0))
      errs.push_back(errno_text(path, "lchown"));
  }
  if (node.type != NodeType::kSymlink && ::chmod(path.c_str(), node.unix_mode() & 07777) != 0) {
    errs.push_back(errno_text(path, "chmod"));
  }
  for (const ExtendedAttribute& x : node.xattrs) {
    if (::lsetxattr(path.c_str(), x.name.c_str(), x.value.data(), x.value.size(), 0) != 0) {
      errs.push_back(errno_text(path, ("setting xattr " + x.name).c_str()));
    }
  }
  const timespec times[2] = {to_timespec(node.atime), to_timespec(node.mtime)};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    errs.push_back(errno_text(path, "setting times"));
  }
  return errs;
}

UniqueFd open_for_metadata(const std::string& path, bool writable) {
  const int access = writable ? O_WRONLY : O_RDONLY;
  return UniqueFd(::open(path.c_str(), access | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
}

std::vector<std::string> finalize_file(int fd, const std::string& path, const Node& node) {
  std::vector<std::string> errs;
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return {errno_text(path, "stat")};
  if (static_cast<std::uint64_t>(st.st_size) != node.size &&
      ::ftruncate(fd, static_cast<off_t>(node.size)) != 0) {
    errs.push_back(errno_text(path, "truncate"));
  }
  const bool chown_needed = st.st_uid != node.uid || st.st_gid != node.gid;
  if (chown_needed && ::fchown(fd, node.uid, node.gid) != 0 &&
      !(errno == EPERM && ::geteuid() != 0))
    errs.push_back(errno_text(path, "chown"));
  const std::uint32_t mode = node.unix_mode() & 07777;
  if ((chown_needed || (st.st_mode & 07777) != mode) && ::fchmod(fd, mode) != 0)
    errs.push_back(errno_text(path, "chmod"));
  for (const ExtendedAttribute& x : node.xattrs) {
    if (::fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) != 0)
      errs.push_back(errno_text(path, ("setting xattr " + x.name).c_str()));
  }
  const timespec times[2] = {to_timespec(node.atime), to_timespec(node.mtime)};
  if (::futimens(fd, times) != 0)
    errs.push_back(errno_text(path, "setting times"));
  return errs;
}

bool ExistingFile::all_match() const {
  return std::all_of(matches.begin(), matches.end(), [](bool m) { return m; });
}

Result<ExistingFile> compare_existing(const std::string& path, const std::vector<Chunk>& chunks,
                                      bool allow_links) {
  ExistingFile out;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return out;
    return fail(errno_error(path, "lstat"));
  }
  out.state = ExistingFile::State::kOther;
  if (!S_ISREG(st.st_mode) || (st.st_nlink > 1 && !allow_links))
    return out;
  UniqueFd fd = open_for_reading(path);
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return out;  // unreadable or replaced meanwhile: treat as something in the way
  out.state = ExistingFile::State::kRegular;
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.matches.assign(chunks.size(), false);
  COFFER_TRY(hash_chunks(fd.get(), path, chunks, out.size, [&](std::size_t i, bool match) {
    out.matches[i] = match;
    return true;
  }));
  return out;
}

Result<void> prepare_in_place(const std::string& path, std::uint64_t size) {
  COFFER_ASSIGN_OR_RETURN(UniqueFd fd, open_for_write(path));
  if (::futimens(fd.get(), nullptr) != 0)
    return fail(errno_error(path, "setting times"));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return fail(errno_error(path, "truncate"));
  }
  return {};
}

Result<void> zero_range(int fd, std::uint64_t offset, std::uint64_t length,
                        const std::string& path) {
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return {};
  }
  static const Bytes kZeros(1 << 16);
  for (std::uint64_t done = 0; done < length;) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(kZeros.size(), length - done));
    COFFER_TRY(write_at(fd, {kZeros.data(), n}, offset + done, path));
    done += n;
  }
  return {};
}

Result<void> verify_file(const std::string& path, const std::vector<Chunk>& chunks,
                         std::uint64_t size) {
  UniqueFd fd = open_for_reading(path);
  if (!fd.valid())
    return fail(errno_error(path, "open for verify"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return fail(errno_error(path, "stat"));
  if (static_cast<std::uint64_t>(st.st_size) != size) {
    return fail(Errc::kCorrupt, path + ": size " + std::to_string(st.st_size) + ", expected " +
                                    std::to_string(size));
  }
  std::optional<std::size_t> bad;
  COFFER_TRY(hash_chunks(fd.get(), path, chunks, size, [&](std::size_t i, bool match) {
    if (!match)
      bad = i;
    return match;
  }));
  if (!bad)
    return {};
  return fail(Errc::kCorrupt, path + ": chunk " + std::to_string(*bad) + " does not match blob " +
                                  chunks[*bad].id.hex());
}

}  // namespace coffer::repo::restore_detail
