// coffer tag: change the tags of snapshots, as restic 0.14's `tag`.
//
//   coffer tag [--set T | --add T --remove T] [-H host] [--tag T] [--path P] [ID ...]
//
// Without IDs every snapshot passing the filters is changed. Each changed snapshot is stored
// as a new file whose "original" names the first version, and the old file is deleted, under
// an exclusive lock (none with --no-lock, as restic allows).
#include <cstdio>

#include <fmt/format.h>

#include "repo/ops/forget.h"
#include "repo/ops/tag.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

struct TagCmdOptions {
  std::vector<std::string> set, add, remove;  // tag lists "a,b", repeatable
  repo::SnapshotFilter filter;
  std::vector<std::string> ids;
};

void warn_line(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

// restic's TagLists.Flatten: every tag of every list, empty ones dropped.
std::vector<std::string> flatten(const std::vector<std::string>& lists) {
  std::vector<std::string> out;
  for (const auto& l : lists) {
    for (auto& t : repo::parse_tag_list(l)) {
      if (!t.empty())
        out.push_back(std::move(t));
    }
  }
  return out;
}

repo::Result<std::vector<repo::SnapshotEntry>> chosen_snapshots(const TagCmdOptions& o,
                                                                const repo::Repository& r) {
  if (!o.ids.empty())
    return repo::resolve_snapshot_args(r, o.ids, o.filter, warn_line);
  COFFER_ASSIGN_OR_RETURN(auto all, r.list_snapshots());
  return repo::restic_filter(all, o.filter);
}

repo::Result<int> run(const GlobalOptions& g, TagCmdOptions& o) {
  if (o.set.empty() && o.add.empty() && o.remove.empty())
    return repo::fail(repo::Errc::kInvalidArgument, "nothing to do!");
  if (!o.set.empty() && (!o.add.empty() || !o.remove.empty())) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "--set and --add/--remove cannot be given at the same time");
  }
  bool talk = !g.quiet;  // restic prints these with --json too
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  if (!g.no_lock) {
    if (talk)
      out_line("create exclusive lock for repository");
    COFFER_ASSIGN_OR_RETURN(repository.lock, repo::RepoLock::acquire(*repository, true));
  }
  repo::TagChange change{flatten(o.set), flatten(o.add), flatten(o.remove)};
  COFFER_ASSIGN_OR_RETURN(auto chosen, chosen_snapshots(o, *repository));
  std::size_t changed = 0;
  for (auto& e : chosen) {
    if (interrupted())
      return repo::fail(repo::Errc::kCancelled, "interrupted");
    if (!repo::change_tags(e.snapshot, change))
      continue;
    auto id = repo::rewrite_snapshot(*repository, e.id, e.snapshot);
    if (!id) {
      warn_line(fmt::format("unable to modify the tags for snapshot ID \"{}\", ignoring: {}",
                            e.id.hex(), id.error().message));
      continue;
    }
    ++changed;
  }
  if (talk) {
    out_line(changed == 0 ? std::string("no snapshots were modified")
                          : fmt::format("modified tags on {} snapshots", changed));
  }
  return kExitOk;
}

}  // namespace

Command add_tag_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<TagCmdOptions>();
  CLI::App* sub = app.add_subcommand("tag", "Modify tags on snapshots");
  sub->add_option("--set", o->set,
                  "tags which replace the existing tags: tag[,tag,...] (repeatable)");
  sub->add_option("--add", o->add, "tags to add to the existing tags: tag[,tag,...] (repeatable)");
  sub->add_option("--remove", o->remove,
                  "tags to remove from the existing tags: tag[,tag,...] (repeatable)");
  sub->add_option("-H,--host", o->filter.hosts,
                  "only snapshots of this host, when no ID is given (repeatable)");
  sub->add_option("--tag", o->filter.tags,
                  "only snapshots with these tags, when no ID is given: a,b means both "
                  "(repeatable: any)");
  sub->add_option("--path", o->filter.paths,
                  "only snapshots that include this path, when no ID is given (repeatable: all)");
  sub->add_option("ID", o->ids, "snapshots to change (id, prefix or latest)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
