// coffer-mount: the FUSE daemon behind `coffer mount` (tools/cmd_mount.cc execs it).
//
//   coffer-mount --repo LOCATION --password-fd FD [--cache-dir DIR | --no-cache] [--daemon]
//                [--allow-other] [--lock] [--cache-mem BYTES] [--cache-size BYTES]
//                [--refresh-ms MS] [--threads N] [--prefetch BYTES] [--fetch-threads N]
//                [--log-level 0-3] [--option KEY=VALUE]... [--] MOUNTPOINT
//
// Every setting arrives resolved by `coffer mount` (absolute repository path and cache
// directory, sizes in bytes). The password arrives over the inherited descriptor FD, read to
// end of file and closed, never through argv or the environment. A location with credentials
// in it (rest:https://user:pass@host/) arrives in COFFER_MOUNT_REPOSITORY instead of --repo. The
// repository is opened through repo/ alone (repo/open.h), with no lock unless --lock (then a
// non-exclusive one, taken once the tree is built and held until after the unmount), as `coffer
// mount` always did.
//
// Errors are one "coffer: ..." line on stderr (in daemon mode the parent prints those the
// child reports before mounting) with coffer's exit codes: 0 after a clean unmount (with
// --daemon: once mounted); 1 bad arguments, bad mount point or failed mount; 10 no
// repository; 11 locked (--lock); 12 wrong password.
//
// Thread contract: main runs single-threaded until run_mount starts libfuse's workers (and
// may fork first, fs/fuse_main.h). Ownership: main owns the parsed arguments, which outlive
// the repository callbacks that refer to them.
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>

#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <string.h>  // explicit_bzero
#include <unistd.h>

#include "fs/fuse_main.h"
#include "repo/core/exit_status.h"
#include "repo/core/log.h"
#include "repo/location.h"
#include "repo/lock.h"
#include "repo/open.h"

namespace coffer::fs {
namespace {

using repo::Errc;
using repo::Result;

struct MountArgs {
  std::string location;
  int password_fd = -1;
  std::string cache_dir;  // resolved base of the index and chunk caches
  bool no_cache = false;
  bool lock = false;
  repo::BackendOptions backend_options;  // --option (coffer's -o)
  int log_level = static_cast<int>(repo::log::Level::kNormal);
  MountConfig config;
};

template <class T>
Result<T> parse_number(const char* name, const char* text, T min, T max) {
  T value{};
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end || *text == '\0' || value < min || value > max)
    return repo::fail(Errc::kInvalidArgument, std::string("invalid ") + name + " \"" + text + "\"");
  return value;
}

enum Opt : int {
  kRepo = 1000,
  kPasswordFd,
  kCacheDir,
  kNoCache,
  kDaemon,
  kAllowOther,
  kLock,
  kCacheMem,
  kCacheSize,
  kRefreshMs,
  kThreads,
  kPrefetch,
  kFetchThreads,
  kLogLevel,
  kOption
};

// Where `coffer mount` puts a location that holds credentials (never in argv, which every
// user can read).
constexpr const char* kLocationEnv = "COFFER_MOUNT_REPOSITORY";

constexpr option kOptions[] = {{"repo", required_argument, nullptr, kRepo},
                               {"password-fd", required_argument, nullptr, kPasswordFd},
                               {"cache-dir", required_argument, nullptr, kCacheDir},
                               {"no-cache", no_argument, nullptr, kNoCache},
                               {"daemon", no_argument, nullptr, kDaemon},
                               {"allow-other", no_argument, nullptr, kAllowOther},
                               {"lock", no_argument, nullptr, kLock},
                               {"cache-mem", required_argument, nullptr, kCacheMem},
                               {"cache-size", required_argument, nullptr, kCacheSize},
                               {"refresh-ms", required_argument, nullptr, kRefreshMs},
                               {"threads", required_argument, nullptr, kThreads},
                               {"prefetch", required_argument, nullptr, kPrefetch},
                               {"fetch-threads", required_argument, nullptr, kFetchThreads},
                               {"log-level", required_argument, nullptr, kLogLevel},
                               {"option", required_argument, nullptr, kOption},
                               {nullptr, 0, nullptr, 0}};

// Sets flag `opt` in `a`; false if `opt` is not a flag.
bool apply_flag(int opt, MountArgs& a) {
  switch (opt) {
    case kNoCache:
      a.no_cache = true;
      return true;
    case kDaemon:
      a.config.daemon = true;
      return true;
    case kAllowOther:
      a.config.allow_other = true;
      return true;
    case kLock:
      a.lock = true;
      return true;
    default:
      return false;
  }
}

// Parses `text` into `out`. Errors: kInvalidArgument.
template <class T>
Result<void> set_number(T& out, const char* name, const char* text, T min, T max) {
  COFFER_ASSIGN_OR_RETURN(out, parse_number(name, text, min, max));
  return {};
}

// Applies option `opt` with value `arg` to `a`. Errors: kInvalidArgument.
Result<void> apply_value(int opt, const char* arg, MountArgs& a) {
  auto& c = a.config;
  constexpr auto kMax64 = std::numeric_limits<std::uint64_t>::max();
  switch (opt) {
    case kRepo:
      a.location = arg;
      return {};
    case kCacheDir:
      a.cache_dir = arg;
      return {};
    case kPasswordFd:
      return set_number(a.password_fd, "--password-fd", arg, 0, INT32_MAX);
    case kCacheMem:
      return set_number(c.access.chunks.mem_budget, "--cache-mem", arg, {}, kMax64);
    case kCacheSize:
      return set_number(c.access.chunks.disk_budget, "--cache-size", arg, {}, kMax64);
    case kThreads:
      return set_number(c.max_threads, "--threads", arg, 1U, 256U);
    case kPrefetch:
      return set_number(c.access.chunks.prefetch_budget, "--prefetch", arg, {}, kMax64 - 1);
    case kFetchThreads:
      return set_number(c.access.chunks.fetch_threads, "--fetch-threads", arg, 1U, 256U);
    case kLogLevel:
      return set_number(a.log_level, "--log-level", arg, 0, 3);
    case kOption:
      return repo::add_backend_option(a.backend_options, arg);
    case kRefreshMs: {
      COFFER_ASSIGN_OR_RETURN(auto ms,
                              parse_number<std::int64_t>("--refresh-ms", arg, 0, INT64_MAX));
      c.fs.refresh_interval = std::chrono::milliseconds(ms);
      return {};
    }
    default:
      return repo::fail(Errc::kInvalidArgument,
                        "coffer-mount is started by `coffer mount`; see coffer(1)");
  }
}

Result<MountArgs> parse_args(int argc, char** argv) {
  MountArgs a;
  opterr = 0;
  int opt = 0;
  while ((opt = ::getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    if (!apply_flag(opt, a))
      COFFER_TRY(apply_value(opt, optarg, a));
  }
  if (optind + 1 != argc)
    return repo::fail(Errc::kInvalidArgument, "coffer-mount needs exactly one MOUNTPOINT");
  a.config.mountpoint = argv[optind];
  // A location with credentials in it (a rest: URL) comes in the environment, not in argv.
  if (const char* env = std::getenv(kLocationEnv); a.location.empty() && env != nullptr) {
    a.location = env;
    ::unsetenv(kLocationEnv);
  }
  if (a.location.empty())
    return repo::fail(Errc::kInvalidArgument, "coffer-mount needs --repo");
  if (a.password_fd < 0 || ::fcntl(a.password_fd, F_SETFD, FD_CLOEXEC) != 0) {
    return repo::fail(Errc::kInvalidArgument,
                      "coffer-mount needs --password-fd with an open descriptor");
  }
  return a;
}

// Reads the password to end of file and closes `fd`. Errors: kInvalidArgument.
Result<std::string> read_password(int fd) {
  std::string password;
  password.reserve(4096);  // fewer reallocations, so fewer stray copies of the secret
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    password.append(buf, static_cast<std::size_t>(n));
  }
  int err = errno;
  ::explicit_bzero(buf, sizeof buf);
  ::close(fd);
  if (n < 0) {
    ::explicit_bzero(password.data(), password.size());
    return repo::fail(Errc::kInvalidArgument,
                      std::string("reading the password failed: ") + std::strerror(err));
  }
  return password;
}

// Fills in what run_mount needs to open (and optionally lock) the repository. `a` outlives
// the returned config's callbacks.
void set_repository_callbacks(MountArgs& a) {
  a.config.open_repository = [&a]() -> Result<std::unique_ptr<repo::Repository>> {
    repo::OpenOptions options;
    options.cache_dir = a.cache_dir;
    options.no_cache = a.no_cache;
    auto read = [&a] { return read_password(a.password_fd); };
    COFFER_ASSIGN_OR_RETURN(auto repository,
                            repo::open_repository_at(a.location, read, options, a.backend_options));
    COFFER_TRY(repository->load_index());
    return repository;
  };
  if (a.lock) {
    a.config.take_lock = [](repo::Repository& r) -> Result<std::shared_ptr<void>> {
      COFFER_ASSIGN_OR_RETURN(auto lock, repo::RepoLock::acquire(r, false));
      return std::shared_ptr<void>(std::move(lock));
    };
  }
}

Result<void> run(MountArgs& a) {
  a.config.fsname = "coffer:" + repo::redact_location(a.location);
  a.config.cache_base = a.no_cache ? "" : a.cache_dir;
  a.config.fs.uid = ::getuid();
  a.config.fs.gid = ::getgid();
  set_repository_callbacks(a);
  return run_mount(a.config);
}

int exit_code(const repo::Error& e) { return repo::exit_status(e.code); }

int report(const repo::Error& e) {
  std::fprintf(stderr, "coffer: %s\n", e.message.c_str());
  return exit_code(e);
}

}  // namespace
}  // namespace coffer::fs

int main(int argc, char** argv) {
  using coffer::fs::report;
  namespace repo = coffer::repo;
  // Decoded chunks and pack reads are large, short-lived buffers allocated on many threads.
  // With glibc's default of up to 8 arenas a core, each arena keeps its own high-water mark
  // of them and RSS grows far past the cache budgets; two arenas keep it near them, and
  // (unlike mapping every buffer) reuse freed memory instead of faulting in fresh pages.
  ::mallopt(M_ARENA_MAX, 2);
  try {
    auto args = coffer::fs::parse_args(argc, argv);
    if (!args)
      return report(args.error());
    repo::log::set_level(static_cast<repo::log::Level>(args->log_level));
    auto r = coffer::fs::run(*args);
    return r ? 0 : report(r.error());
  } catch (const std::bad_alloc&) {
    return report(repo::Error{repo::Errc::kIo, "out of memory"});
  } catch (const std::exception& e) {
    return report(repo::Error{repo::Errc::kIo, std::string("internal error: ") + e.what()});
  }
}
