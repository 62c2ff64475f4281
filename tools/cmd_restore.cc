// coffer restore: restore a snapshot (or SNAPSHOT:SUBPATH) into a target directory.
#include <fmt/format.h>
#include <unistd.h>

#include "repo/ops/restore.h"
#include "tools/commands.h"
#include "tools/format.h"
#include "tools/usage_report.h"

namespace coffer::tools {
namespace {

struct RestoreCmdOptions {
  repo::SnapshotFilter filter;
  std::string snapshot;
  std::string target;
  std::vector<std::string> includes, excludes;
  bool verify = false;
};

repo::Result<int> restore(const GlobalOptions& g, const RestoreCmdOptions& o, OpenRepo& r) {
  auto colon = o.snapshot.find(':');
  std::string name = o.snapshot.substr(0, colon);
  COFFER_ASSIGN_OR_RETURN(auto entry, repo::find_snapshot(*r, name, o.filter));
  repo::RestoreOptions options;
  options.target = o.target;
  options.subpath = colon == std::string::npos ? "" : o.snapshot.substr(colon + 1);
  options.includes = o.includes;
  options.excludes = o.excludes;
  options.verify = o.verify;
  options.progress = !g.quiet && !g.json && ::isatty(STDERR_FILENO) != 0;
  options.cancel = &interrupted();
  options.before_writing = [&r] { return r.await_lock(); };
  if (!g.quiet && !g.json) {
    out_line(fmt::format("restoring snapshot {} to {}", entry.id.short_hex(), o.target));
  }
  COFFER_ASSIGN_OR_RETURN(repo::RestoreStats stats,
                          repo::restore_snapshot(*r, entry.snapshot, options));
  for (const auto& msg : stats.error_messages) std::fprintf(stderr, "coffer: %s\n", msg.c_str());
  if (g.json) {
    nlohmann::ordered_json j;
    j["message_type"] = "summary";
    j["files_restored"] = stats.files;
    j["dirs_restored"] = stats.dirs;
    j["bytes_restored"] = stats.bytes;
    j["errors"] = stats.errors;
    add_usage_field(j, r->backend(), g.prices);
    out_line(j.dump());
  } else if (!g.quiet) {
    out_line(fmt::format("restored {} files, {} dirs, {} bytes; {} errors", stats.files, stats.dirs,
                         stats.bytes, stats.errors));
  }
  return stats.errors > 0 ? kExitPartial : kExitOk;
}

repo::Result<int> run(const GlobalOptions& g, const RestoreCmdOptions& o) {
  // The lock is taken while the snapshot is found and its trees are walked.
  COFFER_ASSIGN_OR_RETURN(auto r, open_repository(g, true, true, LockWait::kDeferred));
  return r.prefer_lock_error(restore(g, o, r));
}

}  // namespace

Command add_restore_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<RestoreCmdOptions>();
  CLI::App* sub = app.add_subcommand("restore", "Restore a snapshot into a directory");
  add_filter_options(*sub, o->filter);
  sub->add_option("SNAPSHOT", o->snapshot, "snapshot id, prefix or latest, optionally :SUBPATH")
      ->required();
  sub->add_option("-t,--target", o->target, "directory to restore into")->required();
  sub->add_option("-i,--include", o->includes,
                  "restore only paths matching this pattern (repeatable)");
  sub->add_option("-e,--exclude", o->excludes,
                  "do not restore paths matching this pattern (repeatable)");
  sub->add_flag("--verify", o->verify, "read restored files back and check every chunk's hash");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
