// coffer snapshots: list snapshots as a table or restic-shaped JSON.
#include <algorithm>

#include <fmt/format.h>

#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct SnapshotsOptions {
  repo::SnapshotFilter filter;
  std::vector<std::string> ids;
};

void print_table(const std::vector<repo::SnapshotEntry>& list) {
  std::size_t host_w = 4, tags_w = 4;
  for (const auto& e : list) {
    host_w = std::max(host_w, printable(e.snapshot.hostname).size());
    for (const auto& t : e.snapshot.tags) tags_w = std::max(tags_w, printable(t).size());
  }
  std::string header = fmt::format("{:<9} {:<20} {:<{}}  {:<{}}  {}", "ID", "Time", "Host", host_w,
                                   "Tags", tags_w, "Paths");
  std::string rule(std::max<std::size_t>(header.size(), 60), '-');
  out_line(header);
  out_line(rule);
  for (const auto& e : list) {
    const auto& s = e.snapshot;
    std::size_t rows = std::max<std::size_t>({1, s.tags.size(), s.paths.size()});
    for (std::size_t r = 0; r < rows; ++r) {
      std::string tag = r < s.tags.size() ? printable(s.tags[r]) : "";
      std::string path = r < s.paths.size() ? printable(s.paths[r]) : "";
      std::string line =
          r == 0 ? fmt::format("{:<9} {:<20} {:<{}}  {:<{}}  {}", e.id.short_hex(),
                               local_time(s.time), printable(s.hostname), host_w, tag, tags_w, path)
                 : fmt::format("{:<9} {:<20} {:<{}}  {:<{}}  {}", "", "", "", host_w, tag, tags_w,
                               path);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out_line(line);
    }
  }
  out_line(rule);
  out_line(fmt::format("{} snapshot{}", list.size(), list.size() == 1 ? "" : "s"));
}

repo::Result<int> run(const GlobalOptions& g, const SnapshotsOptions& o) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false));
  COFFER_ASSIGN_OR_RETURN(auto all, repository->list_snapshots());
  auto list = repo::filter_snapshots(all, o.filter);
  if (!o.ids.empty()) {
    std::vector<repo::SnapshotEntry> chosen;
    for (const auto& id : o.ids) {
      COFFER_ASSIGN_OR_RETURN(auto e, repo::find_snapshot(*repository, id, o.filter));
      chosen.push_back(std::move(e));
    }
    list = std::move(chosen);
  }
  if (g.json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& e : list) arr.push_back(snapshot_json(e));
    out_line(arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return kExitOk;
  }
  print_table(list);
  return kExitOk;
}

}  // namespace

Command add_snapshots_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<SnapshotsOptions>();
  CLI::App* sub = app.add_subcommand("snapshots", "List snapshots");
  add_filter_options(*sub, o->filter);
  sub->add_option("ID", o->ids, "only these snapshots (id, prefix or latest)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
