#include "repo/backend/local/local_backend.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace coffer::repo {
namespace {

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Error errno_error(const std::string& what, int err) {
  Errc code = err == ENOENT ? Errc::kNotFound : Errc::kIo;
  bool retry = err == EINTR || err == EAGAIN || err == EIO;
  return Error{code, what + ": " + std::strerror(err), retry};
}

// Reads exactly `length` bytes at `offset` of `fd` into `out`. Errors: kCorrupt when the
// file ends first, those of errno_error.
Result<void> read_exactly(int fd, std::byte* out, std::uint64_t length, std::uint64_t offset,
                          const Handle& h) {
  std::uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(errno_error("read " + h.path(), errno));
    if (n == 0) {
      return fail(Errc::kCorrupt, h.path() + ": file is shorter than expected (" +
                                      std::to_string(offset + done) + " bytes)");
    }
    done += static_cast<std::uint64_t>(n);
  }
  return {};
}

// O_DIRECT reads need offsets, lengths and buffers aligned to the device's logical block
// size; 4096 covers every common device. Below kDirectMin a buffered read costs little.
constexpr std::uint64_t kDirectAlign = 4096;
constexpr std::uint64_t kDirectMin = 256ULL << 10;

// `size` bytes aligned to kDirectAlign, not zero-filled. Taken from malloc with room to
// align rather than from aligned_alloc, whose split-off padding fragments the heap (a cold
// read of 1 GiB peaked 60 MiB higher that way).
class AlignedBuffer {
 public:
  explicit AlignedBuffer(std::uint64_t size) : raw_(std::malloc(size + kDirectAlign)) {}
  ~AlignedBuffer() { std::free(raw_); }
  AlignedBuffer(AlignedBuffer&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(AlignedBuffer&&) = delete;
  explicit operator bool() const { return raw_ != nullptr; }
  [[nodiscard]] std::byte* get() const {
    auto at = (reinterpret_cast<std::uintptr_t>(raw_) + kDirectAlign - 1) & ~(kDirectAlign - 1);
    return reinterpret_cast<std::byte*>(at);
  }

 private:
  void* raw_;
};

// Whether every page of [offset, offset + length) of `fd` is in the page cache (mincore on a
// mapping that is never touched, so nothing is read). False when it cannot tell.
bool all_cached(int fd, std::uint64_t offset, std::uint64_t length) {
  auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::uint64_t start = offset & ~(page - 1);
  std::uint64_t span = offset + length - start;
  void* map = ::mmap(nullptr, span, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
  if (map == MAP_FAILED)
    return false;
  std::vector<unsigned char> resident((span + page - 1) / page);
  bool cached =
      ::mincore(map, span, resident.data()) == 0 &&
      std::all_of(resident.begin(), resident.end(), [](unsigned char c) { return c & 1; });
  ::munmap(map, span);
  return cached;
}

// Switches `fd` to O_DIRECT; false when the file system refuses it.
bool set_direct(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
}

// Reads [start, end) of an O_DIRECT `fd` into the aligned `buffer` (which holds end - start
// bytes), stopping early only at EOF, and needing at least the bytes before `need`.
// Errors: kInvalidArgument when the kernel refuses the alignment (nothing useful was read),
// kCorrupt when the file ends before `need`, those of errno_error.
Result<void> read_direct(int fd, std::byte* buffer, std::uint64_t start, std::uint64_t need,
                         std::uint64_t end, const Handle& h) {
  std::uint64_t at = start;
  while (at < need) {
    ssize_t n = ::pread(fd, buffer + (at - start), end - at, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EINVAL)
      return fail(Errc::kInvalidArgument, h.path() + ": O_DIRECT refused");
    if (n < 0)
      return fail(errno_error("read " + h.path(), errno));
    if (n == 0) {
      return fail(Errc::kCorrupt,
                  h.path() + ": file is shorter than expected (" + std::to_string(at) + " bytes)");
    }
    at += static_cast<std::uint64_t>(n);
    if (at % kDirectAlign != 0 && at < need) {
      return fail(Errc::kCorrupt,
                  h.path() + ": file is shorter than expected (" + std::to_string(at) + " bytes)");
    }
  }
  return {};
}

Result<void> write_all(int fd, ByteSpan data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(errno_error("write", errno));
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0)
    return fail(errno_error("open " + dir, errno));
  if (::fsync(fd.get()) != 0 && errno != EINVAL)
    return fail(errno_error("fsync " + dir, errno));
  return {};
}

std::string random_suffix() {
  std::array<std::byte, 8> b{};
  if (::getrandom(b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) {
    return std::to_string(::getpid());
  }
  return hex_encode(b);
}

// Renames `from` to `to` unless `to` exists (then EEXIST). File systems without
// RENAME_NOREPLACE get link + unlink, which refuses an existing name the same way.
int rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -1;
  if (::link(from.c_str(), to.c_str()) != 0)
    return -1;
  ::unlink(from.c_str());
  return 0;
}

// LocalBackend::begin_file's temporary file. States: open (fd_ valid, tmp_ exists), then
// committed or abandoned (fd_ closed, tmp_ gone).
class LocalPendingFile final : public PendingFile {
 public:
  LocalPendingFile(std::string root, FileKind kind, std::string tmp, int fd)
      : root_(std::move(root)), kind_(kind), tmp_(std::move(tmp)), fd_(fd) {}
  ~LocalPendingFile() override { abandon(); }
  LocalPendingFile(const LocalPendingFile&) = delete;
  LocalPendingFile& operator=(const LocalPendingFile&) = delete;

  Result<void> append(ByteSpan data) override {
    if (fd_.get() < 0)
      return fail(Errc::kInvalidArgument, "append to a committed or abandoned file");
    auto written = write_all(fd_.get(), data);
    if (!written) {
      Error e{Errc::kIo, "temporary file " + tmp_ + ": " + written.error().message, false};
      abandon();
      return fail(e);
    }
    return {};
  }

  Result<void> commit(const Handle& h) override {
    if (fd_.get() < 0 || h.kind != kind_) {
      return fail(Errc::kInvalidArgument,
                  h.path() + ": commit of a committed, abandoned or other-kind file");
    }
    auto done = move_into_place(h);
    if (!done) {
      abandon();
      Error e = done.error();
      e.retryable = false;  // the data may be gone (see the header)
      if (e.code == Errc::kNotFound)
        e.code = Errc::kIo;
      return fail(e);
    }
    return {};
  }

 private:
  Result<void> move_into_place(const Handle& h) {
    std::string final_path = root_ + "/" + h.path();
    std::string dir = final_path.substr(0, final_path.rfind('/'));
    if (::fsync(fd_.get()) != 0)
      return fail(errno_error("fsync " + tmp_, errno));
    if (::fchmod(fd_.get(), 0400) != 0)
      return fail(errno_error("chmod " + tmp_, errno));
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return fail(errno_error("mkdir " + dir, errno));
    if (rename_noreplace(tmp_, final_path) != 0) {
      if (errno == EEXIST)
        return fail(Errc::kInvalidArgument, h.path() + ": already exists");
      return fail(errno_error("rename " + tmp_ + " to " + h.path(), errno));
    }
    ::close(fd_.release());
    tmp_.clear();  // renamed: nothing left to remove
    return fsync_dir(dir);
  }

  void abandon() {
    if (fd_.get() >= 0)
      ::close(fd_.release());
    if (!tmp_.empty())
      ::unlink(tmp_.c_str());
    tmp_.clear();
  }

  const std::string root_;
  const FileKind kind_;
  std::string tmp_;  // "" once renamed or removed
  UniqueFd fd_;
};

}  // namespace

bool valid_file_name(FileKind kind, std::string_view name) {
  if (kind == FileKind::kConfig)
    return name == "config";
  Bytes raw;
  return name.size() == 64 && hex_decode(name, raw);
}

LocalBackend::LocalBackend(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<Bytes> LocalBackend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  std::string path = path_of(h);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return fail(errno_error("open " + h.path(), errno));
  if (length == 0) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
      return fail(errno_error("stat " + h.path(), errno));
    if (static_cast<std::uint64_t>(st.st_size) < offset) {
      return fail(Errc::kCorrupt, h.path() + ": offset beyond end of file");
    }
    length = static_cast<std::uint64_t>(st.st_size) - offset;
  }
  Bytes out(length);
  COFFER_TRY(read_exactly(fd.get(), out.data(), length, offset, h));
  return out;
}

Result<SharedBytes> LocalBackend::load_shared(const Handle& h, std::uint64_t offset,
                                              std::uint64_t length) {
  if (h.kind != FileKind::kPack || length < kDirectMin)
    return ReadBackend::load_shared(h, offset, length);
  UniqueFd fd(::open(path_of(h).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return fail(errno_error("open " + h.path(), errno));
  std::uint64_t start = offset & ~(kDirectAlign - 1);
  std::uint64_t end = (offset + length + kDirectAlign - 1) & ~(kDirectAlign - 1);
  AlignedBuffer buffer(end - start);
  if (!buffer)
    return fail(Errc::kIo, h.path() + ": out of memory for a read of " + std::to_string(length));
  std::byte* at = buffer.get() + (offset - start);
  bool direct = !all_cached(fd.get(), offset, length) && set_direct(fd.get());
  if (direct) {
    auto r = read_direct(fd.get(), buffer.get(), start, offset + length, end, h);
    if (!r && r.error().code != Errc::kInvalidArgument)
      return fail(r.error());
    direct = r.has_value();  // EINVAL: this file system takes no O_DIRECT at this alignment
    if (!direct && ::fcntl(fd.get(), F_SETFL, 0) != 0)
      return fail(errno_error("fcntl " + h.path(), errno));
  }
  if (!direct)
    COFFER_TRY(read_exactly(fd.get(), at, length, offset, h));
  return SharedBytes{std::make_shared<const AlignedBuffer>(std::move(buffer)),
                     ByteSpan(at, length)};
}

Result<std::uint64_t> LocalBackend::stat(const Handle& h) {
  struct stat st {};
  if (::stat(path_of(h).c_str(), &st) != 0)
    return fail(errno_error("stat " + h.path(), errno));
  return static_cast<std::uint64_t>(st.st_size);
}

Result<void> LocalBackend::list_dir(const std::string& dir, FileKind kind,
                                    const std::function<Result<void>(const FileInfo&)>& fn) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
  if (!d) {
    if (errno == ENOENT)
      return {};
    return fail(errno_error("list " + dir, errno));
  }
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (kind == FileKind::kPack && name.size() == 2 && name != "..") {
      COFFER_TRY(list_dir(dir + "/" + name, kind, fn));
      continue;
    }
    if (!valid_file_name(kind, name))
      continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    COFFER_TRY(fn(FileInfo{name, static_cast<std::uint64_t>(st.st_size)}));
  }
  return {};
}

Result<void> LocalBackend::list(FileKind kind,
                                const std::function<Result<void>(const FileInfo&)>& fn) {
  if (kind == FileKind::kConfig)
    return list_config(*this, fn);
  return list_dir(root_ + "/" + file_kind_dir(kind), kind, fn);
}

Result<void> LocalBackend::save(const Handle& h, ByteSpan data) {
  std::string final_path = path_of(h);
  std::string dir = final_path.substr(0, final_path.rfind('/'));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(errno_error("mkdir " + dir, errno));
  }
  std::string tmp = final_path + "-tmp-" + random_suffix();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0)
    return fail(errno_error("create " + h.path(), errno));
  auto written = write_all(fd.get(), data);
  if (written && ::fsync(fd.get()) != 0)
    written = fail(errno_error("fsync " + h.path(), errno));
  if (written && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    written = fail(errno_error("rename " + h.path(), errno));
  }
  if (!written) {
    ::unlink(tmp.c_str());
    return written;
  }
  ::fchmod(fd.get(), 0400);
  return fsync_dir(dir);
}

std::string LocalBackend::dir_of(FileKind kind) const {
  return kind == FileKind::kConfig ? root_ : root_ + "/" + file_kind_dir(kind);
}

Result<std::unique_ptr<PendingFile>> LocalBackend::begin_file(FileKind kind) {
  std::string tmp = dir_of(kind) + "/pending-tmp-" + random_suffix();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    int err = errno;
    return fail(Errc::kIo, "creating temporary file " + tmp + ": " + std::strerror(err));
  }
  int raw = fd.release();
  return std::unique_ptr<PendingFile>(
      std::make_unique<LocalPendingFile>(root_, kind, std::move(tmp), raw));
}

Result<void> LocalBackend::remove(const Handle& h) {
  std::string path = path_of(h);
  if (::unlink(path.c_str()) != 0)
    return fail(errno_error("remove " + h.path(), errno));
  return {};
}

Result<void> LocalBackend::create() {
  struct stat st {};
  if (::stat((root_ + "/config").c_str(), &st) == 0) {
    return fail(Errc::kInvalidArgument, "a repository already exists at " + root_);
  }
  std::vector<std::string> dirs;
  for (std::size_t slash = root_.find('/', 1); slash != std::string::npos;
       slash = root_.find('/', slash + 1))
    dirs.push_back(root_.substr(0, slash));  // missing parents too, as restic creates them
  for (const char* sub : {"", "/data", "/index", "/keys", "/locks", "/snapshots"})
    dirs.push_back(root_ + sub);
  for (int i = 0; i < 256; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    dirs.push_back(root_ + "/data/" + kHex[i >> 4] + kHex[i & 15]);
  }
  for (const auto& d : dirs) {
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      return fail(errno_error("mkdir " + d, errno));
  }
  return {};
}

}  // namespace coffer::repo
