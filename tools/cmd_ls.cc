// coffer ls: list the files of a snapshot, like restic ls.
#include <fmt/format.h>

#include "repo/ops/walk.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

struct LsOptions {
  repo::SnapshotFilter filter;
  std::string snapshot;
  std::vector<std::string> paths;
  bool long_format = false;
  bool recursive = false;
};

std::string clean(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p[0] != '/')
    p = "/" + p;
  return p;
}

// restic semantics: with filter dirs, print a node if its path equals one of them or is
// inside one of them; enter a directory if it is on the way to one of them.
bool within(const std::string& path, const std::string& dir) {
  return path == dir || dir == "/" ||
         (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
          path[dir.size()] == '/');
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Whether to print `path` and whether to descend into it. restic 0.14 semantics: a listed
// directory shows itself and its direct children (all levels below with --recursive).
std::pair<bool, bool> selected(const std::vector<std::string>& dirs, const std::string& path,
                               bool recursive) {
  if (dirs.empty())
    return {true, true};
  bool print = false;
  bool enter = false;
  for (const auto& d : dirs) {
    bool below = within(path, d);
    print = print || path == d || parent_of(path) == d || (recursive && below);
    enter = enter || within(d, path) || (recursive && below);
  }
  return {print, enter};
}

std::string long_line(const std::string& path, const repo::Node& n) {
  std::string line = fmt::format("{} {:5} {:5} {:6} {} {}", permissions_string(n), n.uid, n.gid,
                                 n.size, local_time(n.mtime), path);
  if (n.type == repo::NodeType::kSymlink)
    line += " -> " + n.linktarget;
  return line;
}

repo::Result<int> run(const GlobalOptions& g, const LsOptions& o) {
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g));
  COFFER_ASSIGN_OR_RETURN(auto entry, repo::find_snapshot(*repository, o.snapshot, o.filter));
  std::vector<std::string> dirs;
  for (const auto& p : o.paths) dirs.push_back(clean(p));
  std::string filters;
  for (std::size_t i = 0; i < o.paths.size(); ++i) filters += (i ? " " : "") + o.paths[i];
  if (g.json) {
    auto j = snapshot_json(entry);
    j["struct_type"] = "snapshot";
    out_line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else if (!g.quiet) {
    std::string paths;
    for (std::size_t i = 0; i < entry.snapshot.paths.size(); ++i) {
      paths += (i ? " " : "") + printable(entry.snapshot.paths[i]);
    }
    out_line(fmt::format("snapshot {} of [{}] filtered by [{}] at {}):", entry.id.short_hex(),
                         paths, filters, go_time_string(entry.snapshot.time)));
  }
  auto visit = [&](const std::string& path, const repo::Node& n) -> repo::Result<repo::WalkAction> {
    if (interrupted())
      return repo::fail(repo::Errc::kCancelled, "interrupted");
    auto [print, enter] = selected(dirs, path, o.recursive);
    if (print) {
      if (g.json) {
        out_line(node_json(path, n).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        out_line(o.long_format ? long_line(path, n) : path);
      }
    }
    return enter ? repo::WalkAction::kContinue : repo::WalkAction::kSkipChildren;
  };
  COFFER_TRY(repo::walk(*repository, repo::root_node(entry.snapshot), "/", visit));
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<LsOptions>();
  CLI::App* sub = app.add_subcommand("ls", "List files in a snapshot");
  add_filter_options(*sub, o->filter);
  sub->add_option("SNAPSHOT", o->snapshot, "snapshot id, prefix or latest")->required();
  sub->add_option("PATH", o->paths, "only list these directories/files");
  sub->add_flag("-l,--long", o->long_format, "long listing (mode, owner, size, time)");
  sub->add_flag("--recursive", o->recursive, "with PATHs, list everything below them");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
