// coffer mount: serve every snapshot of the repository as a read-only FUSE tree.
//
//   coffer mount MOUNTPOINT [--daemon] [--allow-other] [--cache-mem SIZE] [--cache-size SIZE]
//                [--refresh SECONDS] [--lock] [--threads N]
//
// Exit codes: 0 after a clean unmount (or, with --daemon, once mounted); 1 for a bad mount
// point (missing, not a directory, busy, a dead mount) or a failed mount; 10 no repository;
// 11 locked (--lock); 12 wrong password.
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "fs/fuse_main.h"
#include "repo/lock.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

struct MountCmdOptions {
  std::string mountpoint;
  bool daemon = false;
  bool allow_other = false;
  bool lock = false;
  std::string cache_mem = "512M";
  std::string cache_size = "4G";
  double refresh_seconds = 60;
  unsigned threads = 16;
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

// The daemon changes to "/", so relative paths must be made absolute first.
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
  a.password_file = absolute(g.password_file);
  return a;
}

repo::Result<int> run(const GlobalOptions& global, const MountCmdOptions& o) {
  const GlobalOptions g = with_absolute_paths(global);
  fs::MountConfig c;
  c.mountpoint = o.mountpoint;
  c.fsname = "coffer:" + g.repo;
  c.daemon = o.daemon;
  c.allow_other = o.allow_other;
  c.max_threads = o.threads;
  c.cache_base = cache_base(g);
  COFFER_ASSIGN_OR_RETURN(c.access.chunks.mem_budget, parse_size(o.cache_mem));
  COFFER_ASSIGN_OR_RETURN(c.access.chunks.disk_budget, parse_size(o.cache_size));
  c.fs.refresh_interval =
      std::chrono::milliseconds(static_cast<long long>(o.refresh_seconds * 1000));
  c.fs.uid = ::getuid();
  c.fs.gid = ::getgid();
  c.open_repository = [&g]() -> repo::Result<std::unique_ptr<repo::Repository>> {
    // No lock here: a mount must not keep prune away (--lock takes one explicitly).
    COFFER_ASSIGN_OR_RETURN(OpenRepo opened, tools::open_repository(g, true, false));
    return std::move(opened.repo);
  };
  if (o.lock) {
    c.take_lock = [](repo::Repository& r) -> repo::Result<std::shared_ptr<void>> {
      COFFER_ASSIGN_OR_RETURN(auto lock, repo::RepoLock::acquire(r, false));
      return std::shared_ptr<void>(std::move(lock));
    };
  }
  COFFER_TRY(fs::run_mount(c));
  return kExitOk;
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
  sub->add_option("--cache-mem", o->cache_mem, "RAM for decoded chunks (default 512M)");
  sub->add_option("--cache-size", o->cache_size,
                  "cap of the on-disk chunk cache (default 4G; --no-cache disables it)");
  sub->add_option("--refresh", o->refresh_seconds,
                  "look for new snapshots at most this often, in seconds (default 60)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--lock", o->lock, "hold a non-exclusive repository lock while mounted");
  sub->add_option("--threads", o->threads, "FUSE worker threads (default 16)")
      ->check(CLI::Range(1, 256));
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
