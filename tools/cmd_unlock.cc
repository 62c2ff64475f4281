// coffer unlock: remove stale locks (or, with --remove-all, every lock), as restic 0.14.
//
// A lock is stale when it is more than 30 minutes old, or when it was made on this host by a
// process that no longer exists (repo/lock.h). unlock takes no lock itself.
#include "repo/core/log.h"
#include "repo/lock.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

struct UnlockOptions {
  bool remove_all = false;
};

repo::Result<int> run(const GlobalOptions& g, const UnlockOptions& o) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  COFFER_ASSIGN_OR_RETURN(std::size_t removed, repo::remove_locks(*repository, o.remove_all));
  repo::log::info("removed " + std::to_string(removed) + " lock" + (removed == 1 ? "" : "s"));
  if (!g.quiet)  // also with --json, as restic
    out_line("successfully removed locks");
  return kExitOk;
}

}  // namespace

Command add_unlock_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<UnlockOptions>();
  CLI::App* sub = app.add_subcommand("unlock", "Remove locks other processes created");
  sub->add_flag("--remove-all", o->remove_all, "remove all locks, even non-stale ones");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
