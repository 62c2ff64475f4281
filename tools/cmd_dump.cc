// coffer dump: write one file of a snapshot to stdout, or a directory as a tar stream.
#include <unistd.h>

#include "repo/ops/dump.h"
#include "repo/ops/walk.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

struct DumpCmdOptions {
  repo::SnapshotFilter filter;
  std::string snapshot;
  std::string path;
};

repo::Result<int> run(const GlobalOptions& g, const DumpCmdOptions& o) {
  COFFER_ASSIGN_OR_RETURN(auto r, open_repository(g));
  COFFER_ASSIGN_OR_RETURN(auto entry, repo::find_snapshot(*r, o.snapshot, o.filter));
  COFFER_ASSIGN_OR_RETURN(repo::Node node,
                          repo::find_node(*r, repo::root_node(entry.snapshot), o.path));
  repo::DumpOptions options;
  options.cancel = &interrupted();
  auto sink = [](repo::ByteSpan b) { return write_stdout(b); };
  std::string path = o.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty() || path[0] != '/')
    path = "/" + path;
  switch (node.type) {
    case repo::NodeType::kFile:
      COFFER_TRY(repo::dump_file(*r, node, sink, options));
      break;
    case repo::NodeType::kDir:
      COFFER_TRY(repo::dump_tar(*r, node, path, sink, options));
      break;
    default:
      return repo::fail(repo::Errc::kInvalidArgument,
                        o.path + " is neither a file nor a directory");
  }
  return kExitOk;
}

}  // namespace

Command add_dump_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<DumpCmdOptions>();
  CLI::App* sub =
      app.add_subcommand("dump", "Write a file to stdout, or a directory as a tar stream");
  add_filter_options(*sub, o->filter);
  sub->add_option("SNAPSHOT", o->snapshot, "snapshot id, prefix or latest")->required();
  sub->add_option("PATH", o->path, "path inside the snapshot")->required();
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
