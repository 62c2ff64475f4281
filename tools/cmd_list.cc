// coffer list: the ids of one kind of repository file, or every blob the index names, as
// restic 0.14's `list` prints them (one per line, backend order; `blobs` as "data <id>" and
// "tree <id>", one line per index entry, so a blob stored twice is listed twice).
// Every type but `locks` takes a non-exclusive lock; --json changes nothing, as in restic.
#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "repo/ops/index_entries.h"
#include "tools/commands.h"

namespace coffer::tools {
namespace {

constexpr std::array<std::pair<std::string_view, repo::FileKind>, 5> kKinds{{
    {"packs", repo::FileKind::kPack},
    {"index", repo::FileKind::kIndex},
    {"snapshots", repo::FileKind::kSnapshot},
    {"keys", repo::FileKind::kKey},
    {"locks", repo::FileKind::kLock},
}};

struct ListOptions {
  std::string type;
};

repo::Result<void> list_blobs(const repo::Repository& r) {
  COFFER_ASSIGN_OR_RETURN(std::vector<repo::PackedBlob> entries, repo::load_index_entries(r, 8));
  for (const repo::PackedBlob& b : entries)
    out_line(std::string(repo::blob_type_name(b.type)) + " " + b.id.hex());
  return {};
}

repo::Result<int> run(const GlobalOptions& g, const ListOptions& o) {
  if (o.type.empty()) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "type not specified, usage: list [blobs|packs|index|snapshots|keys|locks]");
  }
  const auto* kind =
      std::find_if(kKinds.begin(), kKinds.end(), [&](const auto& k) { return k.first == o.type; });
  if (o.type != "blobs" && kind == kKinds.end())
    return repo::fail(repo::Errc::kInvalidArgument, "invalid type \"" + o.type + "\"");
  const bool lock = o.type != "locks";
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g, false, lock));
  if (o.type == "blobs") {
    COFFER_TRY(list_blobs(*repository));
    return kExitOk;
  }
  COFFER_ASSIGN_OR_RETURN(std::vector<repo::Id> ids, repository->list_ids(kind->second));
  for (const repo::Id& id : ids) out_line(id.hex());
  return kExitOk;
}

}  // namespace

Command add_list_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<ListOptions>();
  CLI::App* sub = app.add_subcommand("list", "List objects in the repository");
  sub->add_option("TYPE", o->type, "blobs, packs, index, snapshots, keys or locks");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
