// coffer stats: restic 0.14's `stats` (repo/ops/stats.h): text or --json output with restic's
// field names. The raw-data text output adds the deduplication ratio (restore size of the same
// snapshots divided by the raw data size).
#include <fmt/format.h>

#include "repo/core/log.h"
#include "repo/ops/stats.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct StatsCliOptions {
  repo::SnapshotFilter filter;
  std::string mode = "restore-size";
  std::vector<std::string> ids;
};

// The snapshots named on the command line (restic skips, with a warning, names that match
// nothing), or every snapshot passing the filter.
repo::Result<std::vector<repo::SnapshotEntry>> chosen_snapshots(const repo::Repository& r,
                                                                const StatsCliOptions& o) {
  if (o.ids.empty()) {
    COFFER_ASSIGN_OR_RETURN(auto all, r.list_snapshots());
    return repo::filter_snapshots(all, o.filter);
  }
  std::vector<repo::SnapshotEntry> out;
  for (const auto& id : o.ids) {
    auto e = repo::find_snapshot(r, id, o.filter);
    if (!e) {
      if (e.error().code != repo::Errc::kNotFound && e.error().code != repo::Errc::kInvalidArgument)
        return repo::fail(e.error());
      repo::log::warn(fmt::format("Ignoring \"{}\": {}", id, e.error().message));
      continue;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

void print_json(const repo::StatsResult& s) {
  nlohmann::ordered_json j;
  j["total_size"] = s.total_size;
  j["total_file_count"] = s.total_file_count;
  if (s.total_blob_count != 0)  // omitempty in restic 0.14
    j["total_blob_count"] = s.total_blob_count;
  j["snapshots_count"] = s.snapshots_count;
  out_line(j.dump());
}

void print_text(repo::StatsMode mode, const repo::StatsResult& s) {
  out_line(fmt::format("Stats in {} mode:", repo::stats_mode_name(mode)));
  out_line(fmt::format("Snapshots processed:   {}", s.snapshots_count));
  if (s.total_blob_count > 0)
    out_line(fmt::format("   Total Blob Count:   {}", s.total_blob_count));
  if (s.total_file_count > 0)
    out_line(fmt::format("   Total File Count:   {}", s.total_file_count));
  out_line(fmt::format("         Total Size:   {:<5}", format_bytes(s.total_size)));
  if (mode == repo::StatsMode::kRawData && s.total_size > 0) {
    out_line(fmt::format("       Restore Size:   {:<5}", format_bytes(s.restore_size)));
    out_line(fmt::format("Deduplication Ratio:   {:.2f}x",
                         static_cast<double>(s.restore_size) / static_cast<double>(s.total_size)));
  }
}

repo::Result<int> run(const GlobalOptions& g, const StatsCliOptions& o) {
  COFFER_ASSIGN_OR_RETURN(repo::StatsMode mode, repo::parse_stats_mode(o.mode));
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g));
  if (!g.json && !g.quiet)
    out_line("scanning...");
  COFFER_ASSIGN_OR_RETURN(auto snapshots, chosen_snapshots(*repository, o));
  COFFER_ASSIGN_OR_RETURN(repo::StatsResult s,
                          repo::compute_stats(*repository, snapshots, mode, &interrupted()));
  if (g.json)
    print_json(s);
  else
    print_text(mode, s);
  return kExitOk;
}

}  // namespace

Command add_stats_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<StatsCliOptions>();
  CLI::App* sub = app.add_subcommand("stats", "Scan the repository and show basic statistics");
  add_filter_options(*sub, o->filter);
  sub->add_option("--mode", o->mode,
                  "counting mode: restore-size (default), files-by-contents, blobs-per-file or "
                  "raw-data");
  sub->add_option("ID", o->ids, "only these snapshots (id, prefix or latest)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
