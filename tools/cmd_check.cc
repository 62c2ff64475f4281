// coffer check: verify a repository like restic 0.14's check (repo/ops/check.h).
//
// Output follows restic's wording: phase lines, hints and every problem on stdout (restic
// prints problems on stderr; coffer keeps its rule that a failing command writes exactly one
// stderr line), then "no errors were found" (exit 0) or the one line "coffer: repository
// contains errors (N found)" on stderr (exit 1). -q prints only the problems. The index is always
// read from the repository's index files, never from the local cache.
//
// Lock: like restic 0.14, check takes an EXCLUSIVE lock (restic prints "create exclusive lock
// for repository"), so it refuses to run while any lock exists, even a stale one (remove
// those with `coffer unlock`); a concurrent backup or prune would otherwise show up as
// unreferenced or missing packs. --no-lock checks without locking.
#include <chrono>

#include <fmt/format.h>

#include "repo/core/log.h"
#include "repo/ops/check.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

struct CheckCliOptions {
  bool read_data = false;
  std::string read_data_subset;
  bool with_cache = false;
};

using Clock = std::chrono::steady_clock;

std::string progress_line(Clock::time_point start, std::uint64_t done, std::uint64_t total,
                          const char* what) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  double pct = total == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total);
  return fmt::format("[{}:{:02}] {:.2f}%  {} / {} {}", secs / 60, secs % 60, pct, done, total,
                     what);
}

repo::Result<repo::ReadDataSubset> subset_of(const CheckCliOptions& o) {
  if (o.read_data && !o.read_data_subset.empty()) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "check flags --read-data and --read-data-subset cannot be used together");
  }
  if (!o.read_data_subset.empty())
    return repo::parse_read_data_subset(o.read_data_subset);
  repo::ReadDataSubset s;
  if (o.read_data)
    s.kind = repo::ReadDataSubset::Kind::kAll;
  return s;
}

void announce_read(const repo::ReadDataSubset& s, std::uint64_t selected, std::uint64_t total) {
  using Kind = repo::ReadDataSubset::Kind;
  switch (s.kind) {
    case Kind::kBucket:
      out_line(fmt::format("read group #{} of {} data packs (out of total {} packs in {} groups)",
                           s.n, selected, total, s.t));
      break;
    case Kind::kPercent:
      out_line(fmt::format("read {:.1f}% of data packs", s.percent));
      break;
    case Kind::kSize:
      out_line(fmt::format("read {} bytes of data packs", s.bytes));
      break;
    default:
      out_line("read all data");
  }
}

repo::CheckOptions check_options(const GlobalOptions& g, const repo::ReadDataSubset& subset,
                                 Clock::time_point start) {
  bool talk = !g.quiet;
  repo::CheckOptions c;
  c.read_data = subset;
  c.cancel = &interrupted();
  c.report = [talk](const repo::CheckMessage& m) {
    if (talk || m.severity == repo::CheckSeverity::kError)
      out_line(m.text);
  };
  c.phase = [talk](std::string_view name) {
    if (talk && name != "read data")
      out_line(name);
  };
  c.snapshot_progress = [talk, start](std::uint64_t done, std::uint64_t total) {
    if (talk)
      out_line(progress_line(start, done, total, "snapshots") + "\n");
  };
  c.packs_selected = [talk, subset](std::uint64_t selected, std::uint64_t total) {
    if (talk)
      announce_read(subset, selected, total);
  };
  c.pack_read = [verbose = g.verbose > 0 && talk](const repo::Id& pack) {
    if (verbose)
      out_line("read pack " + pack.hex());
  };
  c.pack_progress = [talk, start](std::uint64_t done, std::uint64_t total) {
    if (talk)
      out_line(progress_line(start, done, total, "packs") + "\n");
  };
  return c;
}

repo::Result<int> run(const GlobalOptions& g, const CheckCliOptions& o) {
  COFFER_ASSIGN_OR_RETURN(repo::ReadDataSubset subset, subset_of(o));
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  if (!g.no_lock) {
    if (!g.quiet)
      out_line("create exclusive lock for repository");
    COFFER_ASSIGN_OR_RETURN(repository.lock, repo::RepoLock::acquire(*repository, true));
  }
  auto start = Clock::now();
  COFFER_ASSIGN_OR_RETURN(repo::CheckSummary summary,
                          repo::run_check(*repository, check_options(g, subset, start)));
  if (summary.orphaned_packs > 0 && !g.quiet) {
    out_line(
        fmt::format("{} additional files were found in the repo, which likely contain "
                    "duplicate data.\nThis is non-critical, you can run `coffer prune` to "
                    "correct this.",
                    summary.orphaned_packs));
  }
  if (summary.errors > 0) {
    return repo::fail(repo::Errc::kCorrupt,
                      fmt::format("repository contains errors ({} found)", summary.errors));
  }
  if (!g.quiet)
    out_line("no errors were found");
  return kExitOk;
}

}  // namespace

Command add_check_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CheckCliOptions>();
  CLI::App* sub = app.add_subcommand("check", "Check the repository for errors");
  sub->add_flag("--read-data", o->read_data, "read all data blobs");
  sub->add_option("--read-data-subset", o->read_data_subset,
                  "read a subset of data packs: n/t, x% or a size (e.g. 1/5, 2.5%, 500M)");
  sub->add_flag("--with-cache", o->with_cache,
                "accepted for restic compatibility (check never uses the index cache)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
