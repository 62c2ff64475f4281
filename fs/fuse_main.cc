// run_mount: mount point checks, the daemon fork and handshake, the libfuse session.
#include "fs/fuse_main.h"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include <fcntl.h>
#include <fmt/format.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/fuse_adapter.h"
#include "fs/page_cache_fill.h"
#include "repo/core/log.h"

namespace coffer::fs {
namespace {

using repo::Errc;
using repo::Result;

// libfuse reports mount failures through its log hook (a plain function pointer, so the
// last error lives in function-local static state).
std::string& last_fuse_error() {
  static std::string message;
  return message;
}
std::mutex& fuse_log_mutex() {
  static std::mutex m;
  return m;
}

void capture_fuse_log(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string text = buf;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  repo::log::debug("libfuse: " + text);
  if (level <= FUSE_LOG_ERR) {
    std::scoped_lock lock(fuse_log_mutex());
    last_fuse_error() = text;
  }
}

// Decodes mountinfo's octal escapes ("\040" = space).
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The "major:minor" of the topmost mount at `path`, or nullopt if nothing is mounted there.
std::optional<std::string> mounted_device(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<std::string> found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    if (fields >> id >> parent >> device >> root >> point && unescape_mountinfo(point) == path)
      found = device;
  }
  return found;
}

Result<std::string> check_mount_point(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT)
      return repo::fail(Errc::kInvalidArgument, "mount point " + path + " does not exist");
    if (err == ENOTCONN) {
      return repo::fail(Errc::kInvalidArgument,
                        "mount point " + path +
                            " is a dead mount (transport endpoint is not connected); unmount "
                            "it first with fusermount3 -u");
    }
    return repo::fail(Errc::kInvalidArgument,
                      "mount point " + path + " cannot be used: " + std::strerror(err));
  }
  if (!S_ISDIR(st.st_mode))
    return repo::fail(Errc::kInvalidArgument, "mount point " + path + " is not a directory");
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr)
    return repo::fail(Errc::kInvalidArgument, "mount point " + path + ": " + std::strerror(errno));
  if (mounted_device(resolved)) {
    return repo::fail(Errc::kInvalidArgument,
                      "mount point " + path + " is busy: something is mounted there already");
  }
  return std::string(resolved);
}

// Raises the mount's read-ahead window (only root may write sysfs).
void raise_readahead(const std::string& mountpoint) {
  if (::geteuid() != 0)
    return;
  auto device = mounted_device(mountpoint);
  if (!device)
    return;
  std::ofstream out("/sys/class/bdi/" + *device + "/read_ahead_kb");
  out << 1024 << '\n';
  if (!out)
    repo::log::debug("could not raise read_ahead_kb of " + *device);
}

std::string escape_option(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The libfuse session: created, mounted and torn down in reverse.
class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (se_ == nullptr)
      return;
    if (signals_)
      fuse_remove_signal_handlers(se_);
    if (mounted_)
      fuse_session_unmount(se_);
    fuse_session_destroy(se_);
  }

  Result<void> mount(const MountConfig& c, const std::string& mountpoint, FuseContext* context) {
    fuse_set_log_func(capture_fuse_log);
    std::string opts = "ro,default_permissions,subtype=coffer,fsname=" + escape_option(c.fsname);
    if (c.allow_other)
      opts += ",allow_other";
    std::string prog = "coffer", dash_o = "-o";
    char* argv[] = {prog.data(), dash_o.data(), opts.data(), nullptr};
    fuse_args args = FUSE_ARGS_INIT(3, argv);
    se_ = fuse_session_new(&args, &fuse_operations(), sizeof(fuse_lowlevel_ops), context);
    fuse_opt_free_args(&args);  // libfuse may have copied argv while parsing
    if (se_ == nullptr)
      return repo::fail(Errc::kIo, "creating the FUSE session failed: " + fuse_error());
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
    if (fuse_set_signal_handlers(se_) != 0)
      return repo::fail(Errc::kIo, "installing signal handlers failed");
    signals_ = true;
    // `restic unlock` probes a lock owner's process with SIGHUP: a mount holding a lock must
    // survive that probe.
    if (c.take_lock)
      std::signal(SIGHUP, SIG_IGN);
    if (fuse_session_mount(se_, mountpoint.c_str()) != 0)
      return repo::fail(Errc::kIo, "mounting " + mountpoint + " failed: " + fuse_error());
    mounted_ = true;
    return {};
  }

  [[nodiscard]] fuse_session* get() const { return se_; }

  Result<void> loop(unsigned max_threads) {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_loop_cfg_set_max_threads(cfg, max_threads);
    int rc = fuse_session_loop_mt(se_, cfg);
    fuse_loop_cfg_destroy(cfg);
    // A positive result is the number of the signal that ended the loop (a clean exit).
    if (rc < 0)
      return repo::fail(Errc::kIo, std::string("the FUSE loop failed: ") + std::strerror(-rc));
    return {};
  }

 private:
  static std::string fuse_error() {
    std::scoped_lock lock(fuse_log_mutex());
    return last_fuse_error().empty() ? "unknown error" : last_fuse_error();
  }

  fuse_session* se_ = nullptr;
  bool signals_ = false;
  bool mounted_ = false;
};

// The daemon child's side of the start-up handshake: one 'R', or 'E' + code + message.
class Notifier {
 public:
  explicit Notifier(int fd) : fd_(fd) {}
  void ready() { send("R"); }
  void error(const repo::Error& e) {
    send(std::string("E") + static_cast<char>('0' + static_cast<int>(e.code)) + e.message);
  }
  [[nodiscard]] bool sent() const { return fd_ < 0; }

 private:
  void send(const std::string& msg) {
    if (fd_ < 0)
      return;
    for (std::size_t done = 0; done < msg.size();) {
      ssize_t n = ::write(fd_, msg.data() + done, msg.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

// The parent's side: waits for the child's message.
Result<void> wait_for_child(int fd, pid_t child) {
  std::string msg;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    msg.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (!msg.empty() && msg[0] == 'R')
    return {};
  ::waitpid(child, nullptr, 0);
  if (msg.size() >= 2 && msg[0] == 'E')
    return repo::fail(static_cast<Errc>(msg[1] - '0'), msg.substr(2));
  return repo::fail(Errc::kIo, "the mount daemon exited during start-up");
}

void detach_stdio() {
  int null = ::open("/dev/null", O_RDWR);
  if (null < 0)
    return;
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null, fd);
  if (null > STDERR_FILENO)
    ::close(null);
  if (::chdir("/") != 0)
    repo::log::debug("chdir / failed");
}

Result<void> serve(const MountConfig& c, const std::string& mountpoint, Notifier* notifier) {
  if (!c.open_repository)
    return repo::fail(Errc::kInvalidArgument, "no repository to mount");
  COFFER_ASSIGN_OR_RETURN(std::unique_ptr<repo::Repository> repository, c.open_repository());
  RepositoryAccessOptions access_options = c.access;
  // The disk chunk cache saves network round trips; over a local repository it would only
  // copy the packs' bytes to another disk file, so it is used for remote backends only.
  bool remote = !repository->backend().properties().local;
  if (!c.cache_base.empty() && remote)
    access_options.chunks.disk_dir = c.cache_base + "/" + repository->config().id.hex() + "/chunks";
  // Several smaller ranged reads in flight beat one long one: over a network each
  // connection is slow on its own, and on a local disk decoding starts sooner and the disk
  // sees a deeper queue (cold sequential read of 1 GiB: 16 MiB reads ~760 MB/s, 2 MiB ~850).
  access_options.chunks.max_read =
      std::min<std::uint64_t>(access_options.chunks.max_read, remote ? 4ULL << 20 : 2ULL << 20);
  access_options.chunks.cache_random = !c.page_cache_fill;
  COFFER_ASSIGN_OR_RETURN(auto access, RepositoryAccess::open(*repository, access_options));
  COFFER_ASSIGN_OR_RETURN(auto fs, SnapshotFs::create(*access, c.fs));
  std::shared_ptr<void> lock;
  if (c.take_lock) {
    COFFER_ASSIGN_OR_RETURN(lock, c.take_lock(*repository));
  }
  FuseContext context(*fs);  // outlives the session: handles left open are freed after it
  Session session;
  COFFER_TRY(session.mount(c, mountpoint, &context));
  raise_readahead(mountpoint);
  // Destroyed before the session (declared after it), after the loop has ended.
  std::unique_ptr<PageCacheFill> fill;
  if (c.page_cache_fill) {
    auto device = mounted_device(mountpoint);
    fill = std::make_unique<PageCacheFill>(session.get(), device ? fuse_abort_path(*device) : "",
                                           c.page_cache_fill_pending,
                                           [a = access.get()] { a->set_cache_random(true); });
    context.fill = fill.get();
  }
  if (notifier != nullptr) {
    notifier->ready();
    detach_stdio();
  }
  auto served = session.loop(c.max_threads);
  ChunkStats st = access->chunk_stats();
  repo::log::info(fmt::format(
      "mount: {} reads of chunks, {} from RAM, {} fetched ({} ranged reads, {} MiB), {} prefetches "
      "dropped, {} corrupt",
      st.gets, st.ram_hits, st.blobs_fetched, st.fetches, st.bytes_fetched >> 20,
      st.prefetch_dropped, st.corrupt));
  if (fill) {
    PageCacheFill::Stats f = fill->stats();
    repo::log::info(
        fmt::format("mount: {} MiB handed to the page cache in {} ms, {} MiB dropped, {} refused",
                    f.stored_bytes >> 20, f.busy_ms, f.dropped_bytes >> 20, f.failed));
  }
  return served;
}

}  // namespace

Result<void> run_mount(const MountConfig& config) {
  COFFER_ASSIGN_OR_RETURN(std::string mountpoint, check_mount_point(config.mountpoint));
  if (!config.daemon)
    return serve(config, mountpoint, nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return repo::fail(Errc::kIo, std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0)
    return repo::fail(Errc::kIo, std::string("fork: ") + std::strerror(errno));
  if (pid > 0) {
    ::close(fds[1]);
    return wait_for_child(fds[0], pid);
  }
  ::close(fds[0]);
  ::setsid();
  Notifier notifier(fds[1]);
  auto r = serve(config, mountpoint, &notifier);
  if (!notifier.sent()) {
    notifier.error(r ? repo::Error{Errc::kIo, "the mount ended during start-up"} : r.error());
    ::_exit(1);
  }
  return r;
}

}  // namespace coffer::fs
