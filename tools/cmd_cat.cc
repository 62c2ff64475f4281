// coffer cat: print repository objects (config, index, snapshot, key, tree, blob, pack).
#include <fmt/format.h>
#include <unistd.h>

#include "repo/crypto/key_file.h"
#include "repo/ops/walk.h"
#include "tools/commands.h"
#include "tools/format.h"

namespace coffer::tools {
namespace {

using repo::Errc;
using repo::FileKind;

struct CatOptions {
  std::string type;
  std::string id;
  repo::SnapshotFilter filter;
};

repo::Result<void> print_indented(std::string_view json_text) {
  auto j = nlohmann::ordered_json::parse(json_text, nullptr, false);
  if (j.is_discarded())
    return repo::fail(Errc::kCorrupt, "object is not valid JSON");
  out_line(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  return {};
}

repo::Result<repo::Id> tree_id_of(const repo::Repository& r, const CatOptions& o) {
  if (o.id.size() == 64) {
    if (auto id = repo::Id::parse(o.id); id) {
      COFFER_ASSIGN_OR_RETURN(auto where, r.lookup(repo::BlobHandle{*id, repo::BlobType::kTree}));
      if (where)
        return *id;
    }
  }
  auto colon = o.id.find(':');
  std::string snap = o.id.substr(0, colon);
  std::string path = colon == std::string::npos ? "/" : o.id.substr(colon + 1);
  COFFER_ASSIGN_OR_RETURN(auto entry, repo::find_snapshot(r, snap, o.filter));
  COFFER_ASSIGN_OR_RETURN(repo::Node node,
                          repo::find_node(r, repo::root_node(entry.snapshot), path));
  if (!node.subtree)
    return repo::fail(Errc::kInvalidArgument, path + " is not a directory");
  return *node.subtree;
}

repo::Result<void> cat_blob(const repo::Repository& r, const std::string& id_text, bool tree) {
  COFFER_ASSIGN_OR_RETURN(repo::Id id, repo::Id::parse(id_text));
  std::vector<repo::BlobType> types = {repo::BlobType::kData, repo::BlobType::kTree};
  if (tree)
    types = {repo::BlobType::kTree};
  for (auto t : types) {
    COFFER_ASSIGN_OR_RETURN(auto where, r.lookup(repo::BlobHandle{id, t}));
    if (!where)
      continue;
    COFFER_ASSIGN_OR_RETURN(repo::Bytes data, r.load_blob(repo::BlobHandle{id, t}));
    return write_stdout(data);
  }
  return repo::fail(Errc::kNotFound, "blob " + id.hex() + " not found in index");
}

repo::Result<int> run(const GlobalOptions& g, const CatOptions& o) {
  bool needs_index = o.type == "blob" || o.type == "tree";
  COFFER_ASSIGN_OR_RETURN(auto r, open_repository(g, needs_index));
  if (o.type == "config") {
    const auto& c = r->config();
    out_line(fmt::format(
        "{{\n  \"version\": {},\n  \"id\": \"{}\",\n  \"chunker_polynomial\": \"{:x}\"\n}}",
        c.version, c.id.hex(), c.chunker_polynomial));
    return kExitOk;
  }
  if (o.id.empty())
    return repo::fail(Errc::kInvalidArgument, "cat " + o.type + " needs an ID");
  if (o.type == "masterkey") {
    return repo::fail(Errc::kInvalidArgument, "refusing to print the master key");
  }
  if (o.type == "index" || o.type == "snapshot" || o.type == "lock") {
    FileKind kind = o.type == "index"  ? FileKind::kIndex
                    : o.type == "lock" ? FileKind::kLock
                                       : FileKind::kSnapshot;
    repo::Id id;
    if (kind == FileKind::kSnapshot) {
      COFFER_ASSIGN_OR_RETURN(auto e, repo::find_snapshot(*r, o.id, o.filter));
      id = e.id;
    } else {
      COFFER_ASSIGN_OR_RETURN(id, r->resolve(kind, o.id));
    }
    COFFER_ASSIGN_OR_RETURN(repo::Bytes plain, r->load_unpacked(kind, id));
    if (kind == FileKind::kIndex) {
      COFFER_TRY(write_stdout(plain));
    } else {
      COFFER_TRY(print_indented(repo::as_chars(plain)));
    }
    return kExitOk;
  }
  if (o.type == "key") {
    COFFER_ASSIGN_OR_RETURN(repo::Id id, r->resolve(FileKind::kKey, o.id));
    COFFER_ASSIGN_OR_RETURN(repo::Bytes data,
                            r->backend().load(repo::Handle{FileKind::kKey, id.hex()}, 0, 0));
    COFFER_TRY(print_indented(repo::as_chars(data)));
    return kExitOk;
  }
  if (o.type == "pack") {
    COFFER_ASSIGN_OR_RETURN(repo::Id id, r->resolve(FileKind::kPack, o.id));
    COFFER_ASSIGN_OR_RETURN(repo::Bytes data,
                            r->backend().load(repo::Handle{FileKind::kPack, id.hex()}, 0, 0));
    COFFER_TRY(write_stdout(data));
    return kExitOk;
  }
  if (o.type == "blob") {
    COFFER_TRY(cat_blob(*r, o.id, false));
    return kExitOk;
  }
  if (o.type == "tree") {
    COFFER_ASSIGN_OR_RETURN(repo::Id id, tree_id_of(*r, o));
    COFFER_TRY(cat_blob(*r, id.hex(), true));
    return kExitOk;
  }
  return repo::fail(Errc::kInvalidArgument, "unknown object type \"" + o.type + "\"");
}

}  // namespace

Command add_cat_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CatOptions>();
  CLI::App* sub = app.add_subcommand("cat", "Print a repository object");
  sub->add_option("TYPE", o->type, "config|index|snapshot|key|lock|tree|blob|pack")
      ->required()
      ->check(CLI::IsMember(
          {"config", "index", "snapshot", "key", "lock", "tree", "blob", "pack", "masterkey"}));
  sub->add_option("ID", o->id,
                  "object id (prefix allowed for files); tree also takes SNAPSHOT[:PATH]");
  add_filter_options(*sub, o->filter);
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
