// check phase "check snapshots, trees and blobs": every snapshot parses, every tree reachable
// from one loads and decodes, and every blob a tree names is in the index. Trees are visited
// breadth first, one level at a time on parallel workers, each tree once.
#include <mutex>
#include <unordered_set>

#include <fmt/format.h>

#include "repo/core/parallel.h"
#include "repo/ops/check_internal.h"
#include "repo/ops/walk.h"

namespace coffer::repo::check_detail {
namespace {

struct TreeRef {
  Id tree;
  std::string snapshot;  // short id of the first snapshot reaching the tree
  std::string path;      // its path there
};

// The trees of one level, and the ones found below them.
struct Level {
  std::mutex mutex;  // guards visited and next
  std::unordered_set<Id, IdHash> visited;
  std::vector<TreeRef> next;

  void add(TreeRef ref) {
    std::scoped_lock lock(mutex);
    if (visited.insert(ref.tree).second)
      next.push_back(std::move(ref));
  }
};

std::string where(const TreeRef& ref) {
  return fmt::format("tree {} (snapshot {}, path {})", ref.tree.hex(), ref.snapshot, ref.path);
}

Result<Tree> load_tree(const CheckRun& run, const Id& id) {
  COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> at, run.index.lookup({id, BlobType::kTree}));
  if (!at)
    return fail(Errc::kNotFound, "not found in index");
  COFFER_ASSIGN_OR_RETURN(
      Bytes sealed,
      run.repo.backend().load(Handle{FileKind::kPack, at->pack.hex()}, at->offset, at->length));
  COFFER_ASSIGN_OR_RETURN(Bytes plain, run.repo.decode_blob(*at, sealed));
  return parse_tree(plain);
}

bool indexed(const CheckRun& run, const Id& id, BlobType type) {
  auto found = run.index.lookup({id, type});
  return found && found->has_value();
}

void check_file(CheckRun& run, const TreeRef& ref, const Node& node) {
  for (std::size_t i = 0; i < node.content.size(); ++i) {
    const Id& blob = node.content[i];
    if (blob.is_zero()) {
      run.error(
          fmt::format("{}: file \"{}\" blob {} has null ID", where(ref), go_quote(node.name), i));
    } else if (!indexed(run, blob, BlobType::kData)) {
      run.error(fmt::format("{}: file \"{}\" blob {} not found in index", where(ref),
                            go_quote(node.name), blob.hex()));
    }
  }
}

void check_node(CheckRun& run, const TreeRef& ref, const Node& node, Level& level) {
  if (node.name.empty())
    run.error(where(ref) + ": node with empty name");
  switch (node.type) {
    case NodeType::kFile:
      check_file(run, ref, node);
      break;
    case NodeType::kDir:
      if (!node.subtree) {
        run.error(
            fmt::format("{}: dir node \"{}\" has no subtree", where(ref), go_quote(node.name)));
      } else if (node.subtree->is_zero()) {
        run.error(
            fmt::format("{}: dir node \"{}\" subtree id is null", where(ref), go_quote(node.name)));
      } else {
        level.add(TreeRef{*node.subtree, ref.snapshot, join_path(ref.path, node.name)});
      }
      break;
    case NodeType::kIrregular:
      run.error(fmt::format("{}: node \"{}\" with invalid type \"{}\"", where(ref),
                            go_quote(node.name), node_type_name(node.type)));
      break;
    default:
      break;
  }
}

void check_tree(CheckRun& run, const TreeRef& ref, Level& level) {
  auto tree = load_tree(run, ref.tree);
  run.count(&CheckSummary::trees);
  if (!tree) {
    run.error(where(ref) + ": " + tree.error().message);
    return;
  }
  for (const Node& node : tree->nodes) check_node(run, ref, node, level);
}

// Loads every snapshot; unreadable ones are reported. Returns their root trees.
Result<std::vector<TreeRef>> snapshot_roots(CheckRun& run) {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> ids, run.repo.list_ids(FileKind::kSnapshot));
  std::vector<std::optional<TreeRef>> roots(ids.size());
  COFFER_TRY(parallel_for(ids.size(), run.workers(), [&](std::size_t i) -> Result<void> {
    auto json = run.repo.load_unpacked(FileKind::kSnapshot, ids[i]);
    auto snapshot = json ? parse_snapshot(as_chars(*json)) : Result<Snapshot>(fail(json.error()));
    if (!snapshot) {
      run.error(fmt::format("snapshot {}: {}", ids[i].hex(), snapshot.error().message));
      return {};
    }
    roots[i] = TreeRef{snapshot->tree, ids[i].short_hex(), "/"};
    return {};
  }));
  run.count(&CheckSummary::snapshots, ids.size());
  std::vector<TreeRef> out;
  for (auto& r : roots) {
    if (r)
      out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace

Result<void> check_snapshots(CheckRun& run) {
  COFFER_ASSIGN_OR_RETURN(std::vector<TreeRef> roots, snapshot_roots(run));
  Level level;
  for (auto& r : roots) level.add(std::move(r));
  std::uint64_t snapshots = run.summary().snapshots;
  while (!level.next.empty()) {
    std::vector<TreeRef> current = std::move(level.next);
    level.next.clear();
    COFFER_TRY(parallel_for(current.size(), run.workers(), [&](std::size_t i) -> Result<void> {
      if (run.cancelled())
        return fail(Errc::kCancelled, "check interrupted");
      check_tree(run, current[i], level);
      return {};
    }));
  }
  if (run.options.snapshot_progress)
    run.options.snapshot_progress(snapshots, snapshots);
  return {};
}

}  // namespace coffer::repo::check_detail
