// coffer forget: remove snapshots by a keep policy or by id, as restic 0.14's `forget`.
//
//   coffer forget [--keep-* ...] [--group-by host,paths] [--host H] [--tag T] [--path P]
//                 [--dry-run] [--compact] [ID ...]
//
// Text output, `--json` and the messages follow restic 0.14 (tables per group, "Would have
// removed the following snapshots:" for --dry-run). Holds an exclusive lock, except with
// --dry-run --no-lock. With --prune (and restic's prune flags) it then runs prune under the
// same lock, ignoring the removed snapshots (with --dry-run: the ones that would be removed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "repo/core/log.h"
#include "repo/ops/forget.h"
#include "repo/tree/node.h"
#include "tools/cmd_prune.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct ForgetOptions {
  repo::ForgetPolicy policy;
  std::string within, within_hourly, within_daily, within_weekly, within_monthly, within_yearly;
  std::vector<std::string> keep_tags;
  repo::SnapshotFilter filter;
  std::string group_by = "host,paths";
  bool compact = false, dry_run = false, prune = false;
  PruneFlags prune_flags;
  std::vector<std::string> ids;
};

void warn_line(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : std::string(sep)) + parts[i];
  return out;
}

std::vector<std::string> split_lines(const std::string& cell) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (true) {
    auto nl = cell.find('\n', start);
    lines.push_back(cell.substr(start, nl - start));
    if (nl == std::string::npos)
      return lines;
    start = nl + 1;
  }
}

// restic's ui/table: columns padded to their widest line (in bytes) and joined by two
// spaces, trailing blanks trimmed, a rule under the header and under the rows.
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;  // a cell may hold several lines
  bool blank_between_rows = false;

  void print(const std::string& footer) const {
    std::vector<std::size_t> widths;
    for (const auto& h : headers) widths.push_back(h.size());
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        for (const auto& l : split_lines(row[i])) widths[i] = std::max(widths[i], l.size());
      }
    }
    std::size_t total = 2 * (widths.size() - 1);
    for (auto w : widths) total += w;
    print_row(headers, widths);
    out_line(std::string(total, '-'));
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (blank_between_rows && r != 0)
        out_line("");
      print_row(rows[r], widths);
    }
    out_line(std::string(total, '-'));
    out_line(footer);
  }

  static void print_row(const std::vector<std::string>& cells,
                        const std::vector<std::size_t>& widths) {
    std::vector<std::vector<std::string>> lines;
    std::size_t height = 1;
    for (const auto& c : cells) {
      lines.push_back(split_lines(c));
      height = std::max(height, lines.back().size());
    }
    for (std::size_t l = 0; l < height; ++l) {
      std::string s;
      for (std::size_t i = 0; i < lines.size(); ++i) {
        std::string v = l < lines[i].size() ? lines[i][l] : "";
        v.resize(std::max(v.size(), widths[i]), ' ');
        s += (i == 0 ? "" : "  ") + v;
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out_line(s);
    }
  }
};

// restic's PrintSnapshots: oldest first; `reasons` (by id) adds the Reasons column.
void print_snapshots(std::vector<repo::SnapshotEntry> list,
                     const std::map<repo::Id, std::vector<std::string>>* reasons, bool compact) {
  std::stable_sort(list.begin(), list.end(),
                   [](const auto& a, const auto& b) { return a.snapshot.time < b.snapshot.time; });
  Table t;
  t.headers = compact ? std::vector<std::string>{"ID", "Time", "Host", "Tags  "}
                      : std::vector<std::string>{"ID", "Time", "Host      ", "Tags      "};
  if (!compact && reasons != nullptr)
    t.headers.emplace_back("Reasons");
  if (!compact)
    t.headers.emplace_back("Paths");
  for (const auto& e : list) {
    const auto& s = e.snapshot;
    std::vector<std::string> row = {e.id.short_hex(), local_time(s.time), s.hostname,
                                    join(s.tags, compact ? "\n" : ",")};
    if (!compact && reasons != nullptr) {
      auto it = reasons->find(e.id);
      row.push_back(it == reasons->end() ? "" : join(it->second, "\n"));
    }
    if (!compact)
      row.push_back(join(s.paths, "\n"));
    t.blank_between_rows = t.blank_between_rows || (!compact && s.paths.size() > 1);
    t.rows.push_back(std::move(row));
  }
  t.print(fmt::format("{} snapshots", list.size()));
}

// restic's PrintSnapshotGroupHeader (printed with -v).
void print_group_header(const repo::GroupKey& key) {
  if (key.host.empty() && key.tags.empty() && key.paths.empty())
    return;
  std::vector<std::string> info;
  if (!key.host.empty())
    info.push_back("host [" + key.host + "]");
  if (!key.tags.empty())
    info.push_back("tags [" + join(key.tags, ", ") + "]");
  if (!key.paths.empty())
    info.push_back("paths [" + join(key.paths, ", ") + "]");
  out_line("snapshots for (" + join(info, ", ") + "):");
}

// --- JSON in the shape of restic 0.14's `forget --json` (Go encoding/json, nil as null) ---

std::string json_strings(const std::vector<std::string>& v) {
  if (v.empty())
    return "null";
  std::vector<std::string> quoted;
  for (const auto& s : v) quoted.push_back(repo::go_json_string(s));
  return "[" + join(quoted, ",") + "]";
}

std::string json_snapshot_with_id(const repo::SnapshotEntry& e) {
  std::string s = repo::serialize_snapshot(e.snapshot);
  s.pop_back();  // the closing brace
  return s + ",\"id\":\"" + e.id.hex() + "\",\"short_id\":\"" + e.id.short_hex() + "\"}";
}

std::string json_snapshots(const std::vector<repo::SnapshotEntry>& list) {
  if (list.empty())
    return "null";
  std::vector<std::string> items;
  for (const auto& e : list) items.push_back(json_snapshot_with_id(e));
  return "[" + join(items, ",") + "]";
}

std::string json_counters(const repo::KeepCounters& c) {
  std::vector<std::string> fields;
  const std::pair<const char*, int> all[] = {{"last", c.last},       {"hourly", c.hourly},
                                             {"daily", c.daily},     {"weekly", c.weekly},
                                             {"monthly", c.monthly}, {"yearly", c.yearly}};
  for (const auto& [name, n] : all) {
    if (n != 0)
      fields.push_back(fmt::format("\"{}\":{}", name, n));
  }
  return "{" + join(fields, ",") + "}";
}

std::string json_group(const repo::GroupKey& key, const repo::PolicyResult& r) {
  std::vector<std::string> reasons;
  for (std::size_t i = 0; i < r.keep.size(); ++i) {
    reasons.push_back("{\"snapshot\":" + repo::serialize_snapshot(r.keep[i].snapshot) +
                      ",\"matches\":" + json_strings(r.reasons[i].matches) +
                      ",\"counters\":" + json_counters(r.reasons[i].counters) + "}");
  }
  return "{\"tags\":" + json_strings(key.tags) + ",\"host\":" + repo::go_json_string(key.host) +
         ",\"paths\":" + json_strings(key.paths) + ",\"keep\":" + json_snapshots(r.keep) +
         ",\"remove\":" + json_snapshots(r.remove) +
         ",\"reasons\":" + (reasons.empty() ? "null" : "[" + join(reasons, ",") + "]") + "}";
}

// --- running ---

repo::Result<void> finish_options(ForgetOptions& o) {
  auto& p = o.policy;
  const std::pair<const std::string*, repo::KeepDuration*> durations[] = {
      {&o.within, &p.within},
      {&o.within_hourly, &p.within_hourly},
      {&o.within_daily, &p.within_daily},
      {&o.within_weekly, &p.within_weekly},
      {&o.within_monthly, &p.within_monthly},
      {&o.within_yearly, &p.within_yearly}};
  for (const auto& [text, d] : durations) {
    auto parsed = repo::parse_keep_duration(*text);
    if (!parsed)
      return repo::fail(parsed.error().with_context("invalid duration \"" + *text + "\""));
    *d = *parsed;
  }
  for (const auto& t : o.keep_tags) p.tags.push_back(repo::parse_tag_list(t));
  return repo::validate_policy(p);
}

// Applies the policy group by group, printing as restic does; returns the ids to remove.
repo::Result<std::vector<repo::Id>> apply_to_groups(const GlobalOptions& g, const ForgetOptions& o,
                                                    const repo::Repository& repository,
                                                    std::string& json) {
  COFFER_ASSIGN_OR_RETURN(repo::GroupBy by, repo::parse_group_by(o.group_by));
  COFFER_ASSIGN_OR_RETURN(auto all, repository.list_snapshots());
  auto groups = repo::group_snapshots(repo::restic_filter(all, o.filter), by);
  std::vector<repo::Id> remove;
  if (o.policy.empty()) {
    if (!g.json && !g.quiet)
      out_line("no policy was specified, no snapshots will be removed");
    return remove;
  }
  if (!g.json && !g.quiet)
    out_line("Applying Policy: " + o.policy.describe());
  auto clock = repo::system_policy_clock();
  std::vector<std::string> json_groups;
  for (auto& group : groups) {
    if (g.verbose >= 1 && !g.json)
      print_group_header(group.key);
    auto r = repo::apply_policy(group.snapshots, o.policy, clock);
    if (!r.keep.empty() && !g.quiet && !g.json) {
      std::map<repo::Id, std::vector<std::string>> reasons;
      for (std::size_t i = 0; i < r.keep.size(); ++i) reasons[r.keep[i].id] = r.reasons[i].matches;
      out_line(fmt::format("keep {} snapshots:", r.keep.size()));
      print_snapshots(r.keep, &reasons, o.compact);
      out_line("");
    }
    if (!r.remove.empty() && !g.quiet && !g.json) {
      out_line(fmt::format("remove {} snapshots:", r.remove.size()));
      print_snapshots(r.remove, nullptr, o.compact);
      out_line("");
    }
    json_groups.push_back(json_group(group.key, r));
    for (const auto& e : r.remove) remove.push_back(e.id);
  }
  if (!json_groups.empty())
    json = "[" + join(json_groups, ",") + "]";
  return remove;
}

// restic's [m:ss] / [h:mm:ss] elapsed time.
std::string elapsed_string(std::chrono::steady_clock::duration d) {
  auto sec = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (sec >= 3600)
    return fmt::format("{}:{:02}:{:02}", sec / 3600, sec / 60 % 60, sec % 60);
  return fmt::format("{}:{:02}", sec / 60, sec % 60);
}

repo::Result<void> remove_snapshots(const GlobalOptions& g, const repo::Repository& repository,
                                    const std::vector<repo::Id>& ids) {
  auto start = std::chrono::steady_clock::now();
  for (const auto& id : ids) {
    if (interrupted())
      return repo::fail(repo::Errc::kCancelled, "interrupted");
    auto r = repo::remove_snapshot(repository, id);
    if (!r) {
      return repo::fail(r.error().with_context("unable to remove <snapshot/" +
                                               id.hex().substr(0, 10) + "> from the repository"));
    }
    if (!g.json && g.verbose >= 2)
      out_line("removed <snapshot/" + id.hex().substr(0, 10) + ">");
  }
  if (!g.json && !g.quiet) {
    out_line(fmt::format("[{}] 100.00%  {} / {} files deleted",
                         elapsed_string(std::chrono::steady_clock::now() - start), ids.size(),
                         ids.size()));
    out_line("");
  }
  return {};
}

repo::Result<std::vector<repo::Id>> explicit_ids(const ForgetOptions& o,
                                                 const repo::Repository& repository) {
  COFFER_ASSIGN_OR_RETURN(auto chosen,
                          repo::resolve_snapshot_args(repository, o.ids, o.filter, warn_line));
  std::vector<repo::Id> ids;
  for (const auto& e : chosen) ids.push_back(e.id);
  return ids;
}

repo::Result<int> run(const GlobalOptions& g, ForgetOptions& o) {
  COFFER_ASSIGN_OR_RETURN(repo::PruneOptions prune_options, parse_prune_flags(o.prune_flags));
  COFFER_TRY(finish_options(o));
  if (g.no_lock && !o.dry_run) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "--no-lock is only applicable in combination with --dry-run for forget "
                      "command");
  }
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, false));
  if (!g.no_lock) {
    COFFER_ASSIGN_OR_RETURN(repository.lock, repo::RepoLock::acquire(*repository, true));
  }
  std::string json;
  std::vector<repo::Id> remove;
  if (!o.ids.empty()) {
    COFFER_ASSIGN_OR_RETURN(remove, explicit_ids(o, *repository));
  } else {
    COFFER_ASSIGN_OR_RETURN(remove, apply_to_groups(g, o, *repository, json));
  }
  std::sort(remove.begin(), remove.end());
  remove.erase(std::unique(remove.begin(), remove.end()), remove.end());
  if (!remove.empty() && !o.dry_run) {
    COFFER_TRY(remove_snapshots(g, *repository, remove));
  } else if (!remove.empty() && !g.json) {
    std::vector<std::string> shorts;
    for (const auto& id : remove) shorts.push_back(id.short_hex());
    out_line("Would have removed the following snapshots:\n{" + join(shorts, " ") + "}\n");
  }
  if (g.json && !json.empty())
    out_line(json);
  if (!remove.empty() && o.prune) {
    if (!g.json && !g.quiet)
      out_line(fmt::format("{} snapshots have been removed, running prune", remove.size()));
    prune_options.dry_run = o.dry_run;
    prune_options.ignore_snapshots = remove;
    COFFER_TRY(run_prune_locked(g, *repository, prune_options));
  }
  return kExitOk;
}

}  // namespace

Command add_forget_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<ForgetOptions>();
  auto& p = o->policy;
  CLI::App* sub = app.add_subcommand("forget", "Remove snapshots from the repository");
  sub->add_option("-l,--keep-last", p.last, "keep the last n snapshots");
  sub->add_option("-H,--keep-hourly", p.hourly, "keep the last n hourly snapshots");
  sub->add_option("-d,--keep-daily", p.daily, "keep the last n daily snapshots");
  sub->add_option("-w,--keep-weekly", p.weekly, "keep the last n weekly snapshots");
  sub->add_option("-m,--keep-monthly", p.monthly, "keep the last n monthly snapshots");
  sub->add_option("-y,--keep-yearly", p.yearly, "keep the last n yearly snapshots");
  const char* rel = " (eg. 1y5m7d2h) relative to the latest snapshot";
  sub->add_option("--keep-within", o->within, std::string("keep snapshots newer than this") + rel);
  sub->add_option("--keep-within-hourly", o->within_hourly,
                  std::string("keep hourly snapshots newer than this") + rel);
  sub->add_option("--keep-within-daily", o->within_daily,
                  std::string("keep daily snapshots newer than this") + rel);
  sub->add_option("--keep-within-weekly", o->within_weekly,
                  std::string("keep weekly snapshots newer than this") + rel);
  sub->add_option("--keep-within-monthly", o->within_monthly,
                  std::string("keep monthly snapshots newer than this") + rel);
  sub->add_option("--keep-within-yearly", o->within_yearly,
                  std::string("keep yearly snapshots newer than this") + rel);
  sub->add_option("--keep-tag", o->keep_tags, "keep snapshots with this taglist (repeatable)");
  add_filter_options(*sub, o->filter);
  sub->add_flag("-c,--compact", o->compact, "use compact output format");
  sub->add_option("-g,--group-by", o->group_by,
                  "group snapshots by host, paths and/or tags, separated by comma ('' = none)");
  sub->add_flag("-n,--dry-run", o->dry_run,
                "do not delete anything, just print what would be done");
  sub->add_flag("--prune", o->prune,
                "automatically run the 'prune' command if snapshots have been removed");
  add_prune_flags(*sub, o->prune_flags);
  sub->add_option("ID", o->ids, "snapshots to remove (id, prefix or latest)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
