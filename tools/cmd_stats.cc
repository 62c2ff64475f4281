// coffer stats: restic 0.14's `stats` (repo/ops/stats.h): text or --json output with restic's
// field names. The raw-data text output adds the deduplication ratio (restore size of the same
// snapshots divided by the raw data size). --cost replaces all that with an estimate of the
// repository's monthly B2 bill (repo/ops/cost.h): listing only, no index, no trees.
#include <optional>
#include <string>

#include <fmt/format.h>

#include "repo/core/log.h"
#include "repo/ops/stats.h"
#include "tools/commands.h"
#include "tools/format.h"
#include "tools/usage_report.h"

namespace coffer::tools {
namespace {

struct StatsCliOptions {
  repo::SnapshotFilter filter;
  std::string mode = "restore-size";
  std::vector<std::string> ids;
  bool cost = false;
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

void print_cost_json(const GlobalOptions& g, const repo::RepositoryFootprint& f, bool remote,
                     const std::optional<repo::BackendUsage>& usage) {
  const repo::PriceTable& t = g.prices;
  nlohmann::ordered_json j;
  j["bytes"] = f.bytes;
  j["files"] = f.files;
  j["monthly_storage_usd"] = repo::monthly_storage_cost(f.bytes, t);
  j["restore_egress_usd"] = repo::full_restore_egress_cost(f.bytes, t);
  j["price_table_date"] = t.date;
  j["price_table_source"] = repo::price_table_origin(g.price_table);
  j["remote"] = remote;
  if (usage)
    j["this_run"] = usage_json(*usage, t);
  out_line(j.dump());
}

void print_cost_text(const GlobalOptions& g, const repo::RepositoryFootprint& f, bool remote,
                     const std::optional<repo::BackendUsage>& usage) {
  const repo::PriceTable& t = g.prices;
  std::string origin = repo::price_table_origin(g.price_table);
  out_line(
      fmt::format("Repository size: {} in {} files", format_bytes(f.bytes), with_commas(f.files)));
  out_line(fmt::format("Storage: ${:.2f} a month", repo::monthly_storage_cost(f.bytes, t)));
  out_line(fmt::format("Full restore: ${:.2f} egress (free up to {:g}x stored)",
                       repo::full_restore_egress_cost(f.bytes, t), t.egress_free_stored_multiple));
  if (usage)
    out_line("This run: " + usage_line(*usage, t));
  else if (!remote)
    out_line("Local repository: what it would cost on Backblaze B2");
  out_line(fmt::format("Prices of {} ({}; --price-table to override); an estimate", t.date,
                       origin == "built-in" ? "built-in table" : "table " + origin));
}

// --cost: lists the repository's files (no index, no lock) and prices them.
repo::Result<int> run_cost_report(const GlobalOptions& g) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  repo::ReadBackend& backend = repository->backend();
  COFFER_ASSIGN_OR_RETURN(repo::RepositoryFootprint f, repo::repository_footprint(backend));
  bool remote = !backend.properties().local;
  std::optional<repo::BackendUsage> usage = backend.usage();
  if (g.json)
    print_cost_json(g, f, remote, usage);
  else
    print_cost_text(g, f, remote, usage);
  return kExitOk;
}

repo::Result<int> run(const GlobalOptions& g, const StatsCliOptions& o) {
  if (o.cost)
    return run_cost_report(g);
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
  sub->add_flag(
      "--cost", o->cost,
      "estimate the repository's monthly Backblaze B2 bill instead (other flags ignored)");
  sub->add_option("ID", o->ids, "only these snapshots (id, prefix or latest)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
