// coffer prune: remove data no snapshot needs, as restic 0.14's `prune`.
//
//   coffer prune [--dry-run] [--max-unused LIMIT] [--max-repack-size SIZE]
//                [--repack-cacheable-only] [--repack-small] [--pack-size MiB]
//
// Prints restic's report ("to repack: ... / remaining: ... / unused size after prune"), its
// step lines and finished progress counters; -v adds the used/unused and pack counts, and
// with --dry-run the pack lists. --json prints one JSON object with the statistics instead
// (restic 0.14 has no JSON output for prune). Holds an exclusive lock (exit 11 when the
// repository is locked); --no-lock is accepted with --dry-run only (restic allows it always).
#include "tools/cmd_prune.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "repo/core/log.h"
#include "repo/core/size.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

using Clock = std::chrono::steady_clock;

std::string elapsed(Clock::time_point since) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - since).count();
  if (s >= 3600)
    return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

// restic's formatPercent ("" for a zero denominator, capped at 100 %).
std::string percent(std::uint64_t num, std::uint64_t den) {
  if (den == 0)
    return "";
  double p = std::min(100.0, 100.0 * static_cast<double>(num) / static_cast<double>(den));
  return fmt::format("{:3.2f}%", p);
}

std::string blobs_line(const char* label, std::uint64_t n, std::uint64_t bytes) {
  return fmt::format("{}{:>10} blobs / {}", label, n, format_bytes(bytes));
}

void print_usage(const repo::PruneStats& s) {
  out_line("");
  out_line(blobs_line("used:         ", s.blobs.used, s.size.used));
  if (s.blobs.duplicate > 0)
    out_line(blobs_line("duplicates:   ", s.blobs.duplicate, s.size.duplicate));
  out_line(blobs_line("unused:       ", s.blobs.unused, s.size.unused));
  if (s.size_unref > 0)
    out_line("unreferenced:                    " + format_bytes(s.size_unref));
  std::uint64_t total_blobs = s.blobs.used + s.blobs.unused + s.blobs.duplicate;
  std::uint64_t total = s.size.used + s.size.duplicate + s.size.unused + s.size_unref;
  out_line(blobs_line("total:        ", total_blobs, total));
  out_line("unused size: " + percent(s.size.duplicate + s.size.unused, total) + " of total size");
}

void print_plan_sizes(const repo::PruneStats& s) {
  std::uint64_t total_blobs = s.blobs.used + s.blobs.unused + s.blobs.duplicate;
  std::uint64_t total = s.size.used + s.size.duplicate + s.size.unused + s.size_unref;
  std::uint64_t pruned = s.size.remove + s.size.repackrm + s.size_unref;
  std::uint64_t pruned_blobs = s.blobs.remove + s.blobs.repackrm;
  std::uint64_t unused_after = s.size.duplicate + s.size.unused - s.size.remove - s.size.repackrm;
  out_line("");
  out_line(blobs_line("to repack:    ", s.blobs.repack, s.size.repack));
  out_line(blobs_line("this removes: ", s.blobs.repackrm, s.size.repackrm));
  out_line(blobs_line("to delete:    ", s.blobs.remove, s.size.remove + s.size_unref));
  out_line(blobs_line("total prune:  ", pruned_blobs, pruned));
  out_line(blobs_line("remaining:    ", total_blobs - pruned_blobs, total - pruned));
  out_line(fmt::format("unused size after prune: {} ({} of remaining size)",
                       format_bytes(unused_after), percent(unused_after, total - pruned)));
  out_line("");
}

void print_pack_counts(const repo::PruneStats& s) {
  out_line(fmt::format("totally used packs: {:>10}", s.packs.used));
  out_line(fmt::format("partly used packs:  {:>10}", s.packs.partly_used));
  out_line(fmt::format("unused packs:       {:>10}", s.packs.unused));
  out_line("");
  out_line(fmt::format("to keep:      {:>10} packs", s.packs.keep));
  out_line(fmt::format("to repack:    {:>10} packs", s.packs.repack));
  out_line(fmt::format("to delete:    {:>10} packs", s.packs.remove));
  if (s.packs.unref > 0) {
    out_line(fmt::format("to delete:    {:>10} unreferenced packs", s.packs.unref));
    out_line("");
  }
  if (s.temp_files > 0)
    out_line(fmt::format("to delete:    {:>10} temporary files", s.temp_files));
}

std::string id_set(std::vector<repo::Id> ids) {
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> shorts;
  for (const auto& id : ids) shorts.push_back(id.short_hex());
  return "{" + fmt::format("{}", fmt::join(shorts, " ")) + "}";
}

void print_dry_run_lists(const repo::PrunePlan& plan) {
  if (!plan.remove_first.empty()) {
    out_line("Would have removed the following unreferenced packs:\n" + id_set(plan.remove_first) +
             "\n");
  }
  out_line("Would have repacked and removed the following packs:\n" + id_set(plan.repack) + "\n");
  out_line("Would have removed the following no longer used packs:\n" + id_set(plan.remove) + "\n");
}

nlohmann::ordered_json stats_json(const repo::PruneStats& s, bool dry_run) {
  nlohmann::ordered_json j;
  j["message_type"] = "summary";
  j["dry_run"] = dry_run;
  j["snapshots"] = s.snapshots;
  auto counts = [](const repo::PruneStats::Counts& c) {
    return nlohmann::ordered_json{{"used", c.used},     {"duplicate", c.duplicate},
                                  {"unused", c.unused}, {"remove", c.remove},
                                  {"repack", c.repack}, {"repack_removes", c.repackrm}};
  };
  j["blobs"] = counts(s.blobs);
  j["bytes"] = counts(s.size);
  j["bytes"]["unreferenced"] = s.size_unref;
  j["packs"] = {{"used", s.packs.used},         {"partly_used", s.packs.partly_used},
                {"unused", s.packs.unused},     {"keep", s.packs.keep},
                {"repack", s.packs.repack},     {"remove", s.packs.remove},
                {"unreferenced", s.packs.unref}};
  j["temporary_files"] = s.temp_files;
  return j;
}

repo::PruneEvents make_events(const GlobalOptions& g, Clock::time_point& step_start) {
  bool text = !g.json && !g.quiet;
  repo::PruneEvents ev;
  ev.step = [text, &step_start](const std::string& line) {
    step_start = Clock::now();
    if (text)
      out_line(line);
  };
  ev.detail = [text, &g](const std::string& line) {
    if (text && g.verbose >= 1)
      out_line(line);
  };
  ev.warn = [&g](const std::string& line) {
    if (!g.json)
      std::fprintf(stderr, "%s\n", line.c_str());
  };
  ev.counted = [text, &step_start](const std::string& unit, std::uint64_t n) {
    if (!text)
      return;
    if (n == 0)
      out_line(fmt::format("[{}]          0 {}", elapsed(step_start), unit));
    else
      out_line(fmt::format("[{}] 100.00%  {} / {} {}", elapsed(step_start), n, n, unit));
    out_line("");
  };
  ev.cancelled = [] { return interrupted().load(); };
  return ev;
}

struct PruneCommandOptions {
  PruneFlags flags;
  bool dry_run = false;
};

repo::Result<int> run(const GlobalOptions& g, const PruneCommandOptions& o) {
  COFFER_ASSIGN_OR_RETURN(repo::PruneOptions options, parse_prune_flags(o.flags));
  options.dry_run = o.dry_run;
  if (g.no_lock && !o.dry_run) {  // restic would prune unlocked; too dangerous
    return repo::fail(repo::Errc::kInvalidArgument,
                      "--no-lock is only applicable in combination with --dry-run for prune");
  }
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  if (!g.no_lock) {
    COFFER_ASSIGN_OR_RETURN(repository.lock, repo::RepoLock::acquire(*repository, true));
  }
  COFFER_TRY(run_prune_locked(g, *repository, options));
  return kExitOk;
}

}  // namespace

void add_prune_flags(CLI::App& cmd, PruneFlags& flags) {
  cmd.add_option("--max-unused", flags.max_unused,
                 "tolerate given limit of unused data (absolute value in bytes with suffixes "
                 "k/K, m/M, g/G, t/T, a value in % or the word 'unlimited')");
  cmd.add_option("--max-repack-size", flags.max_repack_size,
                 "maximum size to repack (allowed suffixes: k/K, m/M, g/G, t/T)");
  cmd.add_flag("--repack-cacheable-only", flags.repack_cacheable_only,
               "only repack packs which are cacheable");
  cmd.add_flag("--repack-small", flags.repack_small,
               "repack pack files below 80% of target pack size");
  cmd.add_option("--pack-size", flags.pack_size_mib,
                 "target pack size in MiB (default: $RESTIC_PACK_SIZE or 16)");
}

repo::Result<repo::PruneOptions> parse_prune_flags(const PruneFlags& flags) {
  repo::PruneOptions o;
  if (!flags.max_repack_size.empty()) {
    auto size = repo::parse_size(flags.max_repack_size);
    if (!size) {
      return repo::fail(repo::Errc::kInvalidArgument,
                        fmt::format("invalid size \"{}\" for --max-repack-size: {}",
                                    flags.max_repack_size, size.error().message));
    }
    o.max_repack_bytes = *size;
  }
  COFFER_ASSIGN_OR_RETURN(o.max_unused, repo::parse_max_unused(flags.max_unused));
  o.repack_cacheable_only = flags.repack_cacheable_only;
  o.repack_small = flags.repack_small;
  std::uint64_t mib = flags.pack_size_mib;
  if (const char* env = std::getenv("RESTIC_PACK_SIZE"); mib == 0 && env != nullptr && *env)
    mib = std::strtoull(env, nullptr, 10);
  if (mib != 0) {
    o.pack_size = mib << 20;
    if (o.pack_size < repo::kMinPackSize || o.pack_size > repo::kMaxPackSize) {
      return repo::fail(repo::Errc::kInvalidArgument,
                        fmt::format("pack size {} MiB is outside {} ... {} MiB", mib,
                                    repo::kMinPackSize >> 20, repo::kMaxPackSize >> 20));
    }
  }
  return o;
}

repo::Result<void> run_prune_locked(const GlobalOptions& g, repo::Repository& repository,
                                    const repo::PruneOptions& options) {
  Clock::time_point step_start = Clock::now();
  repo::PruneEvents events = make_events(g, step_start);
  bool text = !g.json && !g.quiet;
  COFFER_ASSIGN_OR_RETURN(repo::PrunePlan plan, repo::plan_prune(repository, options, events));
  if (text && g.verbose >= 1)
    print_usage(plan.stats);
  if (text)
    print_plan_sizes(plan.stats);
  if (text && g.verbose >= 1)
    print_pack_counts(plan.stats);
  if (options.dry_run) {
    if (text && g.verbose >= 1)
      print_dry_run_lists(plan);
  } else {
    COFFER_TRY(repo::execute_prune(repository, plan, options, events));
  }
  if (g.json)
    out_line(stats_json(plan.stats, options.dry_run).dump());
  return {};
}

Command add_prune_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<PruneCommandOptions>();
  CLI::App* sub = app.add_subcommand("prune", "Remove unneeded data from the repository");
  sub->add_flag("-n,--dry-run", o->dry_run,
                "do not modify the repository, just print what would be done");
  add_prune_flags(*sub, o->flags);
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
