#include "repo/ops/stats.h"

#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "repo/ops/walk.h"

namespace coffer::repo {
namespace {

using IdSet = std::unordered_set<Id, IdHash>;

constexpr const char* kModeNames[] = {"restore-size", "files-by-contents", "raw-data",
                                      "blobs-per-file"};

// restic's makeFileIDByContents: SHA-256 of the concatenated content ids.
Id content_id(const Node& node) {
  Bytes all;
  all.reserve(node.content.size() * Id::kSize);
  for (const Id& id : node.content) all.insert(all.end(), id.span().begin(), id.span().end());
  return Id::hash(all);
}

Result<void> check_cancel(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load())
    return fail(Errc::kCancelled, "stats interrupted");
  return {};
}

// State that persists across snapshots.
struct Counter {
  const Repository& repo;
  StatsMode mode;
  const std::atomic<bool>* cancel;
  StatsResult result;
  IdSet seen_trees;    // trees whose every node was counted (not restore-size)
  IdSet unique_files;  // content ids (files-by-contents, blobs-per-file)
  std::unordered_map<std::string, IdSet> file_blobs;  // blobs-per-file: path -> blobs
  IdSet data_blobs;                                   // raw-data

  Result<void> blobs_per_file(const std::string& path, const Node& node) {
    for (const Id& blob : node.content) {
      auto [it, new_path] = file_blobs.try_emplace(path);
      if (new_path)
        ++result.total_file_count;
      if (!it->second.insert(blob).second)
        continue;
      COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> at, repo.lookup({blob, BlobType::kData}));
      if (!at)
        return fail(Errc::kNotFound, fmt::format("blob {} not found for {}", blob.hex(), path));
      result.total_size += at->plain_size();
      ++result.total_blob_count;
    }
    return {};
  }

  Result<WalkAction> visit(const std::string& path, const Node& node) {
    COFFER_TRY(check_cancel(cancel));
    if (node.type == NodeType::kDir && node.subtree && !seen_trees.insert(*node.subtree).second)
      return WalkAction::kSkipChildren;  // everything below was counted already
    if (mode == StatsMode::kRawData) {
      if (node.type == NodeType::kFile)
        data_blobs.insert(node.content.begin(), node.content.end());
      return WalkAction::kContinue;
    }
    if (!unique_files.insert(content_id(node)).second)
      return WalkAction::kContinue;
    if (mode == StatsMode::kFilesByContents) {
      result.total_size += node.size;
      ++result.total_file_count;
      return WalkAction::kContinue;
    }
    COFFER_TRY(blobs_per_file(path, node));
    return WalkAction::kContinue;
  }
};

// restic's restore-size of one snapshot: every node, hard-linked inodes counted once.
Result<void> restore_size(const Repository& repo, const SnapshotEntry& s,
                          const std::atomic<bool>* cancel, StatsResult& out) {
  std::unordered_set<std::uint64_t> inodes;
  return walk(repo, root_node(s.snapshot), "/",
              [&](const std::string&, const Node& node) -> Result<WalkAction> {
                COFFER_TRY(check_cancel(cancel));
                ++out.total_file_count;
                if (node.inode == 0 || inodes.insert(node.inode).second)
                  out.total_size += node.size;
                return WalkAction::kContinue;
              });
}

Result<void> add_raw_sizes(const Repository& repo, Counter& c) {
  auto add = [&](const IdSet& ids, BlobType type) -> Result<void> {
    for (const Id& id : ids) {
      COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> at, repo.lookup({id, type}));
      if (!at)
        return fail(Errc::kNotFound,
                    fmt::format("{} blob {} not found", blob_type_name(type), id.hex()));
      c.result.total_size += at->length;
      ++c.result.total_blob_count;
    }
    return {};
  };
  COFFER_TRY(add(c.seen_trees, BlobType::kTree));
  return add(c.data_blobs, BlobType::kData);
}

}  // namespace

const char* stats_mode_name(StatsMode mode) { return kModeNames[static_cast<int>(mode)]; }

Result<StatsMode> parse_stats_mode(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kModeNames[i])
      return static_cast<StatsMode>(i);
  }
  return fail(Errc::kInvalidArgument, fmt::format("unknown counting mode: {} (use the -h flag to "
                                                  "get a list of supported modes)",
                                                  name));
}

Result<StatsResult> compute_stats(const Repository& repo,
                                  const std::vector<SnapshotEntry>& snapshots, StatsMode mode,
                                  const std::atomic<bool>* cancel) {
  Counter c{repo, mode, cancel, {}, {}, {}, {}, {}};
  for (const SnapshotEntry& s : snapshots) {
    ++c.result.snapshots_count;
    if (mode == StatsMode::kRestoreSize) {
      COFFER_TRY(restore_size(repo, s, cancel, c.result));
      continue;
    }
    if (c.seen_trees.insert(s.snapshot.tree).second) {  // else: counted with another snapshot
      COFFER_TRY(walk(repo, root_node(s.snapshot), "/",
                      [&c](const std::string& p, const Node& n) { return c.visit(p, n); }));
    }
    if (mode == StatsMode::kRawData) {
      StatsResult restore;
      COFFER_TRY(restore_size(repo, s, cancel, restore));
      c.result.restore_size += restore.total_size;
    }
  }
  if (mode == StatsMode::kRawData)
    COFFER_TRY(add_raw_sizes(repo, c));
  return c.result;
}

}  // namespace coffer::repo
