// coffer diff: restic 0.14's `diff SNAPSHOT1 SNAPSHOT2` (repo/ops/diff.h): one line per changed
// path, then the statistics block, or with --json one "change" object a line and a final
// "statistics" object, with restic's field names and byte for byte its text.
// Like restic 0.14, snapshots are named by full id or unique prefix only ("latest" and
// "ID:subpath" name no snapshot there).
#include <string>
#include <vector>

#include <fmt/format.h>

#include "repo/core/log.h"
#include "repo/ops/diff.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct DiffCliOptions {
  std::vector<std::string> ids;
  bool metadata = false;
};

// restic 0.14 matches the name as a prefix of the snapshot file names (lowercase hex).
repo::Result<repo::SnapshotEntry> snapshot_named(const repo::Repository& r,
                                                 const std::string& name) {
  bool hex = !name.empty() && name.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex)
    return repo::fail(repo::Errc::kNotFound,
                      fmt::format("no snapshots file matches id {}", repo::go_json_string(name)));
  return repo::find_snapshot(r, name, {});
}

std::string change_json(const repo::DiffChange& c) {
  return R"({"message_type":"change","path":)" + repo::go_json_string(c.path) + R"(,"modifier":)" +
         repo::go_json_string(c.modifier) + "}";
}

std::string counts_json(const repo::DiffCounts& c) {
  return fmt::format(
      R"({{"files":{},"dirs":{},"others":{},"data_blobs":{},"tree_blobs":{},"bytes":{}}})", c.files,
      c.dirs, c.others, c.data_blobs, c.tree_blobs, c.bytes);
}

void print_json(const DiffCliOptions& o, const repo::DiffStats& s) {
  out_line(R"({"message_type":"statistics","source_snapshot":)" + repo::go_json_string(o.ids[0]) +
           R"(,"target_snapshot":)" + repo::go_json_string(o.ids[1]) +
           fmt::format(R"(,"changed_files":{},"added":)", s.changed_files) + counts_json(s.added) +
           R"(,"removed":)" + counts_json(s.removed) + "}");
}

void print_text(const repo::DiffStats& s) {
  const repo::DiffCounts& a = s.added;
  const repo::DiffCounts& r = s.removed;
  out_line("");
  out_line(fmt::format("Files:       {:5} new, {:5} removed, {:5} changed", a.files, r.files,
                       s.changed_files));
  out_line(fmt::format("Dirs:        {:5} new, {:5} removed", a.dirs, r.dirs));
  out_line(fmt::format("Others:      {:5} new, {:5} removed", a.others, r.others));
  out_line(fmt::format("Data Blobs:  {:5} new, {:5} removed", a.data_blobs, r.data_blobs));
  out_line(fmt::format("Tree Blobs:  {:5} new, {:5} removed", a.tree_blobs, r.tree_blobs));
  out_line(fmt::format("  Added:   {:<5}", format_bytes(a.bytes)));
  out_line(fmt::format("  Removed: {:<5}", format_bytes(r.bytes)));
}

repo::DiffOptions diff_options(const GlobalOptions& g, const DiffCliOptions& o) {
  repo::DiffOptions d;
  d.metadata = o.metadata;
  d.cancel = &interrupted();
  d.on_warning = [](const std::string& w) { repo::log::warn(w); };
  if (g.quiet)
    return d;
  if (g.json)
    d.on_change = [](const repo::DiffChange& c) { out_line(change_json(c)); };
  else
    d.on_change = [](const repo::DiffChange& c) {
      out_line(fmt::format("{:<5}", c.modifier) + c.path);  // the path's raw bytes, as restic
    };
  return d;
}

repo::Result<int> diff(const GlobalOptions& g, const DiffCliOptions& o, OpenRepo& r) {
  COFFER_ASSIGN_OR_RETURN(auto from, snapshot_named(*r, o.ids[0]));
  COFFER_ASSIGN_OR_RETURN(auto to, snapshot_named(*r, o.ids[1]));
  COFFER_TRY(r->load_index());
  repo::DiffOptions d = diff_options(g, o);
  d.before_output = [&]() -> repo::Result<void> {
    COFFER_TRY(r.await_lock());
    if (!g.json && !g.quiet) {
      out_line(fmt::format("comparing snapshot {} to {}:", from.id.short_hex(), to.id.short_hex()));
      out_line("");
    }
    return {};
  };
  COFFER_ASSIGN_OR_RETURN(repo::DiffStats stats,
                          repo::diff_trees(*r, from.snapshot.tree, to.snapshot.tree, d));
  if (g.json)
    print_json(o, stats);
  else
    print_text(stats);
  return kExitOk;
}

repo::Result<int> run(const GlobalOptions& g, const DiffCliOptions& o) {
  if (o.ids.size() != 2)
    return repo::fail(repo::Errc::kInvalidArgument, "specify two snapshot IDs");
  // The lock is taken while the snapshots are found and their trees compared; nothing is
  // printed before it is held.
  COFFER_ASSIGN_OR_RETURN(auto r, open_repository(g, false, true, LockWait::kDeferred));
  return r.prefer_lock_error(diff(g, o, r));
}

}  // namespace

Command add_diff_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<DiffCliOptions>();
  CLI::App* sub = app.add_subcommand("diff", "Show differences between two snapshots");
  sub->add_flag("--metadata", o->metadata, "print changes in metadata");
  sub->add_option("SNAPSHOT", o->ids, "the two snapshots to compare (id or unique prefix)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
