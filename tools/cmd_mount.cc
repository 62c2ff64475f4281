// coffer mount: serve every snapshot of the repository as a read-only FUSE tree.
//
//   coffer mount MOUNTPOINT [--daemon] [--allow-other] [--cache-mem SIZE] [--cache-size SIZE]
//                [--refresh SECONDS] [--lock] [--threads N] [--prefetch SIZE]
//                [--fetch-threads N]
//
// This command resolves the settings (absolute paths, the cache directory, sizes) and the
// password exactly as every command does, then execs the coffer-mount daemon that sits beside
// this binary (fs/mount_main.cc; tools/ never links fs/), with the settings on its command line
// and the password in a pipe whose read end it inherits: never in argv or the environment
// (COFFER_PASSWORD*/RESTIC_PASSWORD* are dropped from its environment). The process keeps its
// pid, so in foreground mode SIGINT/SIGTERM reach the FUSE loop directly; with --daemon the
// same process waits for the mount and prints start-up errors.
//
// Exit codes: 0 after a clean unmount (or, with --daemon, once mounted); 1 for a bad mount
// point (missing, not a directory, busy, a dead mount), a failed mount or a missing
// coffer-mount; 10 no repository; 11 locked (--lock); 12 wrong password.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <string.h>  // explicit_bzero
#include <unistd.h>

#include "repo/core/log.h"
#include "repo/location.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

// Whether `location` holds a secret (a rest: URL with a password) that must stay out of argv.
bool has_credentials(const std::string& location) {
  return repo::redact_location(location) != location;
}

struct MountCmdOptions {
  std::string mountpoint;
  bool daemon = false;
  bool allow_other = false;
  bool lock = false;
  std::string cache_mem = "96M";
  std::string cache_size = "4G";
  double refresh_seconds = 60;
  unsigned threads = 16;
  std::string prefetch;        // "" = automatic (a quarter or half of --cache-mem)
  unsigned fetch_threads = 0;  // 0 = automatic (twice the connections; local: twice the cores)
};

// "123", "64K", "512M", "4G", "1T" (powers of 1024; "KB", "KiB" and the like also work).
repo::Result<std::uint64_t> parse_size(const std::string& text) {
  auto bad = [&] {
    return repo::fail(repo::Errc::kInvalidArgument, "invalid size \"" + text + "\"");
  };
  std::size_t pos = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])) != 0) ++pos;
  if (pos == 0 || pos > 18)
    return bad();
  std::uint64_t value = std::strtoull(text.substr(0, pos).c_str(), nullptr, 10);
  std::string unit;
  for (char c : text.substr(pos))
    unit.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (unit.ends_with("IB"))
    unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("B"))
    unit.pop_back();
  if (unit.empty() || unit == "B")
    return value;
  auto u = std::string("KMGT").find(unit[0]);
  if (unit.size() != 1 || u == std::string::npos)
    return bad();
  unsigned shift = 10 * static_cast<unsigned>(u + 1);
  if (value > (UINT64_MAX >> shift))
    return bad();
  return value << shift;
}

std::string cache_base(const GlobalOptions& g) {
  if (g.no_cache)
    return "";
  if (!g.cache_dir.empty())
    return g.cache_dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0')
    return std::string(x) + "/coffer";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
    return std::string(h) + "/.cache/coffer";
  return "/var/cache/coffer";
}

std::string absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// coffer-mount's daemon changes to "/", so relative paths must be made absolute first.
GlobalOptions with_absolute_paths(const GlobalOptions& g) {
  GlobalOptions a = g;
  std::string_view loc = g.repo;
  bool local_prefix = loc.starts_with("local:");
  if (local_prefix)
    loc.remove_prefix(6);
  auto colon = loc.find(':');
  auto slash = loc.find('/');
  bool has_scheme =
      colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash);
  if (!has_scheme && !loc.empty())
    a.repo = (local_prefix ? "local:" : "") + absolute(std::string(loc));
  a.cache_dir = absolute(g.cache_dir);
  return a;
}

// coffer-mount's settings, every one resolved, and MOUNTPOINT (without --password-fd).
// Errors: kInvalidArgument for a bad size.
repo::Result<std::vector<std::string>> daemon_args(const GlobalOptions& g,
                                                   const MountCmdOptions& o) {
  // A location with credentials goes in the environment (daemon_environment), not argv.
  std::vector<std::string> args;
  if (!has_credentials(g.repo))
    args.insert(args.end(), {"--repo", g.repo});
  std::string cache = cache_base(g);
  if (cache.empty())
    args.emplace_back("--no-cache");
  else
    args.insert(args.end(), {"--cache-dir", absolute(cache)});
  COFFER_ASSIGN_OR_RETURN(std::uint64_t mem, parse_size(o.cache_mem));
  COFFER_ASSIGN_OR_RETURN(std::uint64_t disk, parse_size(o.cache_size));
  auto refresh_ms = static_cast<long long>(std::min(o.refresh_seconds, 1e12) * 1000);
  args.insert(args.end(),
              {"--cache-mem", std::to_string(mem), "--cache-size", std::to_string(disk),
               "--refresh-ms", std::to_string(refresh_ms), "--threads", std::to_string(o.threads),
               "--log-level", std::to_string(static_cast<int>(repo::log::level()))});
  if (!o.prefetch.empty()) {
    COFFER_ASSIGN_OR_RETURN(std::uint64_t ahead, parse_size(o.prefetch));
    args.insert(args.end(), {"--prefetch", std::to_string(ahead)});
  }
  if (o.fetch_threads != 0)
    args.insert(args.end(), {"--fetch-threads", std::to_string(o.fetch_threads)});
  for (auto [on, flag] : {std::pair{o.daemon, "--daemon"},
                          std::pair{o.allow_other, "--allow-other"}, std::pair{o.lock, "--lock"}}) {
    if (on)
      args.emplace_back(flag);
  }
  for (const auto& option : g.options) args.insert(args.end(), {"--option", option});
  args.insert(args.end(), {"--", o.mountpoint});
  return args;
}

// The coffer-mount executable beside this one. Errors: kIo.
repo::Result<std::string> daemon_path() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    return repo::fail(repo::Errc::kIo, "cannot locate the coffer binary: " + ec.message());
  std::string path = (self.parent_path() / "coffer-mount").string();
  if (::access(path.c_str(), X_OK) != 0) {
    return repo::fail(repo::Errc::kIo,
                      "cannot run " + path + " (installed beside coffer): " + std::strerror(errno));
  }
  return path;
}

// A pipe holding `password` and then end of file; returns its read end (close-on-exec).
// Errors: kIo (also for a password longer than the pipe can hold).
repo::Result<int> password_pipe(std::string_view password) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return repo::fail(repo::Errc::kIo, std::string("pipe: ") + std::strerror(errno));
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);  // a full pipe must not block: nobody reads it yet
  if (password.size() >= 4096)           // more than a page: ask for room (up to pipe-max-size)
    ::fcntl(fds[1], F_SETPIPE_SZ,
            static_cast<int>(std::min<std::size_t>(password.size(), 1U << 30)));
  std::size_t done = 0;
  while (done < password.size()) {
    ssize_t n = ::write(fds[1], password.data() + done, password.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fds[1]);
  if (done < password.size()) {
    ::close(fds[0]);
    return repo::fail(repo::Errc::kIo, "the password is too long to hand to coffer-mount");
  }
  return fds[0];
}

// This process's environment without the password variables (and their file/command forms),
// plus COFFER_MOUNT_REPOSITORY=`location` when the location holds credentials. `storage`
// keeps that entry's text alive.
std::vector<char*> daemon_environment(const std::string& location, std::string& storage) {
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (!v.starts_with("COFFER_PASSWORD") && !v.starts_with("RESTIC_PASSWORD") &&
        !v.starts_with("COFFER_MOUNT_REPOSITORY="))
      env.push_back(*e);
  }
  if (has_credentials(location)) {
    storage = "COFFER_MOUNT_REPOSITORY=" + location;
    env.push_back(storage.data());
  }
  env.push_back(nullptr);
  return env;
}

// Replaces this process with coffer-mount; returns only on failure. Errors: kIo.
repo::Result<void> exec_daemon(const std::string& path, std::vector<std::string> args, int fd,
                               const std::string& location) {
  args.insert(args.begin(), {path, "--password-fd", std::to_string(fd)});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string location_entry;
  std::vector<char*> env = daemon_environment(location, location_entry);
  std::fflush(stdout);
  std::fflush(stderr);
  int flags = ::fcntl(fd, F_GETFD);
  ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);  // the one descriptor coffer-mount inherits
  ::execve(path.c_str(), argv.data(), env.data());
  int err = errno;
  ::close(fd);
  return repo::fail(repo::Errc::kIo, "cannot run " + path + ": " + std::strerror(err));
}

repo::Result<int> run(const GlobalOptions& global, const MountCmdOptions& o) {
  const GlobalOptions g = with_absolute_paths(global);
  COFFER_ASSIGN_OR_RETURN(auto backend_opts, backend_options(g));
  COFFER_TRY(repo::open_backend(g.repo, backend_opts));  // reported before a prompt
  COFFER_ASSIGN_OR_RETURN(std::string path, daemon_path());
  COFFER_ASSIGN_OR_RETURN(auto args, daemon_args(g, o));
  COFFER_ASSIGN_OR_RETURN(std::string password, resolve_password(g));
  auto fd = password_pipe(password);
  ::explicit_bzero(password.data(), password.size());
  if (!fd)
    return repo::fail(fd.error());
  if (interrupted()) {
    ::close(*fd);
    return repo::fail(repo::Errc::kCancelled, "interrupted");
  }
  COFFER_TRY(exec_daemon(path, std::move(args), *fd, g.repo));
  return kExitOk;  // not reached: exec_daemon returns only errors
}

}  // namespace

Command add_mount_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<MountCmdOptions>();
  CLI::App* sub =
      app.add_subcommand("mount", "Serve the repository's snapshots as a read-only tree");
  sub->add_option("MOUNTPOINT", o->mountpoint, "an existing, empty directory")->required();
  sub->add_flag("--daemon", o->daemon, "return once mounted and keep serving in the background");
  sub->add_flag("--allow-other", o->allow_other,
                "let other users in (owners and modes from the snapshots still apply)");
  sub->add_option("--cache-mem", o->cache_mem, "RAM for decoded chunks (default 96M)");
  sub->add_option("--cache-size", o->cache_size,
                  "cap of the on-disk chunk cache (default 4G; --no-cache disables it)");
  sub->add_option("--refresh", o->refresh_seconds,
                  "look for new snapshots at most this often, in seconds (default 60)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--lock", o->lock, "hold a non-exclusive repository lock while mounted");
  sub->add_option("--threads", o->threads, "FUSE worker threads (default 16)")
      ->check(CLI::Range(1, 256));
  sub->add_option("--prefetch", o->prefetch,
                  "read-ahead budget of sequential readers (default a quarter of --cache-mem, "
                  "half for remote repositories; "
                  "0 turns prefetching off)");
  sub->add_option("--fetch-threads", o->fetch_threads,
                  "concurrent backend reads (default twice the backend's connections; for a local "
                  "repository twice the cores, at least 4)")
      ->check(CLI::Range(1, 256));
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
