// prune: reading every index file, writing the new index, and finding the used blobs.
#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "repo/core/parallel.h"
#include "repo/index/index_file.h"
#include "repo/ops/prune_internal.h"

namespace coffer::repo::prune_detail {
namespace {

unsigned workers() { return std::max(2U, std::thread::hardware_concurrency()); }

// restic 0.14's indexMaxBlobs / indexMaxBlobsCompressed.
std::size_t index_max_blobs(unsigned version) { return version >= 2 ? 150000 : 50000; }

}  // namespace

Result<LoadedIndex> load_all_index(const Repository& repo) {
  LoadedIndex out;
  COFFER_ASSIGN_OR_RETURN(out.files, repo.list_ids(FileKind::kIndex));
  std::vector<IndexFile> parsed(out.files.size());
  COFFER_TRY(parallel_for(out.files.size(), workers(), [&](std::size_t i) -> Result<void> {
    COFFER_ASSIGN_OR_RETURN(Bytes json, repo.load_unpacked(FileKind::kIndex, out.files[i]));
    auto f = parse_index(as_chars(json));
    if (!f)
      return fail(f.error().with_context("index/" + out.files[i].hex()));
    parsed[i] = std::move(*f);
    return {};
  }));
  IdSet taken;  // packs of earlier files
  for (IndexFile& f : parsed) {
    IdSet here;
    for (PackedBlob& b : f.blobs) {
      if (taken.count(b.pack))
        continue;
      here.insert(b.pack);
      out.blobs.push_back(b);
    }
    taken.insert(here.begin(), here.end());
  }
  return out;
}

Result<std::uint64_t> write_new_index(Repository& repo, const LoadedIndex& index,
                                      const IdSet& drop) {
  std::vector<Id> order;
  std::map<Id, std::vector<const PackedBlob*>> by_pack;
  for (const PackedBlob& b : index.blobs) {
    if (drop.count(b.pack))
      continue;
    auto [it, inserted] = by_pack.try_emplace(b.pack);
    if (inserted)
      order.push_back(b.pack);
    it->second.push_back(&b);
  }
  WriterOptions wo;
  COFFER_ASSIGN_OR_RETURN(auto writer, RepositoryWriter::create(repo, wo));
  const std::size_t max_blobs = index_max_blobs(repo.config().version);
  IndexFile current;
  current.supersedes = index.files;
  auto save = [&]() -> Result<void> {
    COFFER_TRY(writer->save_unpacked(FileKind::kIndex, serialize_index(current)));
    current = IndexFile{};
    return {};
  };
  for (const Id& pack : order) {
    for (const PackedBlob* b : by_pack[pack]) current.blobs.push_back(*b);
    if (current.blobs.size() >= max_blobs)
      COFFER_TRY(save());
  }
  if (!current.blobs.empty())
    COFFER_TRY(save());
  return order.size();
}

namespace {

struct TreeWalk {
  const Repository& repo;
  std::mutex mutex;  // guards used
  BlobSet used;
};

// Loads the trees of `frontier` in parallel; returns the subtrees not seen before.
Result<std::vector<Id>> walk_level(TreeWalk& w, const std::vector<Id>& frontier,
                                   const PruneEvents& events) {
  std::vector<Id> next;
  COFFER_TRY(parallel_for(frontier.size(), workers(), [&](std::size_t i) -> Result<void> {
    if (is_cancelled(events))
      return fail(Errc::kCancelled, "interrupted");
    auto tree = w.repo.load_tree(frontier[i]);
    if (!tree) {
      return fail(Errc::kCorrupt, "unable to load a tree from the repository: " +
                                      tree.error().message + " (run 'coffer check')");
    }
    std::scoped_lock lock(w.mutex);
    for (const Node& n : tree->nodes) {
      if (n.type == NodeType::kFile) {
        for (const Id& c : n.content) w.used.insert(BlobHandle{c, BlobType::kData});
      } else if (n.type == NodeType::kDir && n.subtree) {
        if (w.used.insert(BlobHandle{*n.subtree, BlobType::kTree}).second)
          next.push_back(*n.subtree);
      }
    }
    return {};
  }));
  return next;
}

}  // namespace

Result<BlobSet> find_used_blobs(const Repository& repo, const std::vector<Id>& ignore,
                                const PruneEvents& events, std::uint64_t& snapshots) {
  emit(events.step, "loading all snapshots...");
  COFFER_ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  IdSet skip(ignore.begin(), ignore.end());
  TreeWalk w{repo, {}, {}};
  std::vector<Id> frontier;
  snapshots = 0;
  for (const auto& e : all) {
    if (skip.count(e.id))
      continue;
    ++snapshots;
    if (w.used.insert(BlobHandle{e.snapshot.tree, BlobType::kTree}).second)
      frontier.push_back(e.snapshot.tree);
  }
  emit(events.step, fmt::format("finding data that is still in use for {} snapshots", snapshots));
  while (!frontier.empty()) {
    COFFER_ASSIGN_OR_RETURN(frontier, walk_level(w, frontier, events));
  }
  if (events.counted)
    events.counted("snapshots", snapshots);
  return std::move(w.used);
}

}  // namespace coffer::repo::prune_detail
