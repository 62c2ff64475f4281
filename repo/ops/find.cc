#include "repo/ops/find.h"

#include <algorithm>
#include <map>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "repo/core/parallel.h"
#include "repo/ops/find_match.h"
#include "repo/ops/index_entries.h"
#include "repo/ops/walk.h"

namespace coffer::repo {

namespace {

// restic's WalkFunc answer: ignore = "need not visit again"; kSkip = ErrSkipNode (a dir is not
// entered, after a non-dir the rest of the tree is skipped); kStop ends the snapshot's walk.
enum class Flow { kContinue, kSkip, kStop };
struct Verdict {
  bool ignore = false;
  Flow flow = Flow::kContinue;
};

struct LoadedTree {
  std::shared_ptr<const Tree> tree;  // null when it could not be loaded
};

// Roughly what a decoded tree occupies in memory.
std::uint64_t tree_bytes(const Tree& t) {
  std::uint64_t n = sizeof(Tree) + t.nodes.capacity() * sizeof(Node);
  for (const Node& node : t.nodes) {
    n += node.name.capacity() + node.user.capacity() + node.group.capacity() +
         node.linktarget.capacity() + node.content.capacity() * sizeof(Id) +
         node.generic_attributes_json.capacity() + node.unknown_fields_json.capacity();
    for (const auto& x : node.xattrs) n += sizeof(x) + x.name.capacity() + x.value.capacity();
  }
  return n;
}

// Trees prefetched or loaded are kept while they fit in this many bytes; past it they are
// loaded when the walk reaches them and dropped after (memory stays bounded on large
// repositories; restic keeps no decoded trees at all).
constexpr std::uint64_t kDefaultTreeCacheBytes = 64ULL << 20;

unsigned worker_count(const Repository& repo) {
  return std::max(
      {2U, repo.backend().properties().max_connections, std::thread::hardware_concurrency()});
}

}  // namespace

struct Finder::Impl {
  const Repository& repo;
  FindSink& sink;
  const std::atomic<bool>* cancel;
  std::unordered_map<Id, LoadedTree, IdHash> trees;
  std::uint64_t cache_limit = kDefaultTreeCacheBytes;
  std::uint64_t cached_bytes = 0;
  std::unordered_set<Id, IdHash> ignore_trees;  // restic's ignoreTrees, for the whole run
  const SnapshotEntry* snapshot = nullptr;
  std::string path;                     // of the node being visited
  std::vector<std::string> components;  // its filter components ({"/", ...}), maybe lower-cased
  bool lower = false;
  // The search's callback for a node of tree `parent` (restic's WalkFunc without its error
  // and root cases, which visit_checked handles).
  std::function<Result<Verdict>(const Id& parent, const Node& node)> visit;
  std::function<bool(const std::string& dir_path)> prefetch_below;

  Impl(const Repository& r, FindSink& s, const std::atomic<bool>* c)
      : repo(r), sink(s), cancel(c) {}

  // Keeps `lt` if it fits in the cache (failures always: they are small and reported once
  // per path that meets them); false if it did not fit.
  bool keep(const Id& id, const LoadedTree& lt) {
    std::uint64_t size = lt.tree ? tree_bytes(*lt.tree) : 0;
    if (size != 0 && cached_bytes + size > cache_limit)
      return false;
    if (trees.emplace(id, lt).second)
      cached_bytes += size;
    return true;
  }

  LoadedTree tree(const Id& id) {
    auto it = trees.find(id);
    if (it != trees.end())
      return it->second;
    auto t = repo.load_tree(id);
    LoadedTree lt;
    if (t)
      lt.tree = std::make_shared<const Tree>(std::move(*t));
    keep(id, lt);
    return lt;
  }

  // restic's walker callback: a tree that could not be loaded is reported and skipped, the
  // root itself (`node` null) passes, every other node goes to `visit`.
  Result<Verdict> visit_checked(const Id& parent, const Node* node, bool load_failed) {
    if (load_failed) {
      sink.on_tree_error(*snapshot, parent);
      return Verdict{false, Flow::kSkip};
    }
    if (node == nullptr)
      return Verdict{};
    return visit(parent, *node);
  }

  void prefetch(const std::vector<SnapshotEntry>& snapshots);
  Result<void> walk_snapshot(const SnapshotEntry& sn);
  // restic walker.walk: true when every node of `tree` was ignored.
  Result<std::pair<bool, bool>> walk(const Id& tree_id, const Tree& tree);
  Result<Flow> walk_dir(const Id& parent, const Node& node, bool& all_ignored);
};

// Loads the trees the walks may need, breadth first, each level on parallel workers in
// small batches (what one batch holds in memory is bounded too), until a tree does not fit
// in the cache (the walk loads the rest as it reaches them).
void Finder::Impl::prefetch(const std::vector<SnapshotEntry>& snapshots) {
  std::vector<std::pair<Id, std::string>> level;
  std::unordered_set<Id, IdHash> queued;
  for (const auto& sn : snapshots) {
    if (!sn.snapshot.tree.is_zero() && queued.insert(sn.snapshot.tree).second)
      level.emplace_back(sn.snapshot.tree, "/");
  }
  const unsigned workers = worker_count(repo);
  const std::size_t batch = 4 * std::size_t{workers};
  bool full = false;
  while (!level.empty() && !full) {
    std::vector<std::pair<Id, std::string>> next;
    for (std::size_t start = 0; start < level.size() && !full; start += batch) {
      if (cancel != nullptr && *cancel)
        return;
      const std::size_t n = std::min(batch, level.size() - start);
      std::vector<LoadedTree> loaded(n);
      auto ok = parallel_for(n, workers, [&](std::size_t i) -> Result<void> {
        auto t = repo.load_tree(level[start + i].first);
        if (t)
          loaded[i].tree = std::make_shared<const Tree>(std::move(*t));
        return {};
      });
      (void)ok;  // failures stay null and are reported by the walk
      for (std::size_t i = 0; i < n; ++i) {
        const auto& [id, dir] = level[start + i];
        if (loaded[i].tree) {
          for (const Node& node : loaded[i].tree->nodes) {
            if (node.type != NodeType::kDir || !node.subtree || queued.contains(*node.subtree))
              continue;
            std::string p = join_path(dir, node.name);
            if (!prefetch_below || prefetch_below(p)) {
              queued.insert(*node.subtree);
              next.emplace_back(*node.subtree, std::move(p));
            }
          }
        }
        full = !keep(id, loaded[i]) || full;
      }
    }
    level = std::move(next);
  }
}

Result<void> Finder::Impl::walk_snapshot(const SnapshotEntry& sn) {
  snapshot = &sn;
  if (sn.snapshot.tree.is_zero())
    return fail(Errc::kCorrupt, "snapshot " + sn.id.short_hex() + " has no tree");
  const Id& root = sn.snapshot.tree;
  const LoadedTree lt = tree(root);
  path = "/";
  components = {"/"};
  COFFER_ASSIGN_OR_RETURN(Verdict v, visit_checked(root, nullptr, lt.tree == nullptr));
  if (v.flow != Flow::kContinue || !lt.tree)
    return {};
  auto held = lt.tree;  // the cache may not hold it
  COFFER_TRY(walk(root, *held));
  return {};
}

// Returns {all nodes ignored, stopped}.
Result<std::pair<bool, bool>> Finder::Impl::walk(const Id& tree_id, const Tree& t) {
  bool all_ignored = !t.nodes.empty();
  std::string saved_path = path;
  for (const Node& node : t.nodes) {
    if (cancel != nullptr && *cancel)
      return fail(Errc::kCancelled, "interrupted");
    path = join_path(saved_path, node.name);
    components.push_back(lower ? go_to_lower(node.name) : node.name);
    Flow flow = Flow::kContinue;
    if (node.type != NodeType::kDir) {
      auto v = visit(tree_id, node);
      if (v) {
        flow = v->flow;
        all_ignored = all_ignored && (v->ignore || flow == Flow::kSkip);
      }
      components.pop_back();
      if (!v)
        return fail(v.error());
    } else {
      auto f = walk_dir(tree_id, node, all_ignored);
      components.pop_back();
      if (!f)
        return fail(f.error());
      flow = *f;
    }
    if (flow == Flow::kStop) {
      path = saved_path;
      return std::pair{false, true};
    }
    if (flow == Flow::kSkip && node.type != NodeType::kDir)
      break;  // ErrSkipNode after a non-dir: the rest of this tree is skipped
  }
  path = saved_path;
  return std::pair{all_ignored, false};
}

// One directory node of restic's walker; updates the parent's all-ignored flag.
Result<Flow> Finder::Impl::walk_dir(const Id& parent, const Node& node, bool& all_ignored) {
  if (!node.subtree)
    return fail(Errc::kCorrupt, "subtree for node " + node.name + " in tree " + path + " is nil");
  const Id sub = *node.subtree;
  if (ignore_trees.contains(sub))
    return Flow::kContinue;
  auto loaded = tree(sub).tree;
  COFFER_ASSIGN_OR_RETURN(Verdict v, visit_checked(parent, &node, loaded == nullptr));
  if (v.flow == Flow::kStop)
    return Flow::kStop;
  if (v.ignore)
    ignore_trees.insert(sub);
  if (v.flow == Flow::kSkip || loaded == nullptr)
    return Flow::kContinue;
  all_ignored = all_ignored && v.ignore;
  COFFER_ASSIGN_OR_RETURN(auto r, walk(sub, *loaded));
  if (r.second)
    return Flow::kStop;
  if (r.first)
    ignore_trees.insert(sub);
  all_ignored = all_ignored && r.first;
  return Flow::kContinue;
}

Finder::Finder(const Repository& repo, FindSink& sink, const std::atomic<bool>* cancel,
               std::uint64_t tree_cache_bytes)
    : impl_(std::make_unique<Impl>(repo, sink, cancel)) {
  if (tree_cache_bytes != 0)
    impl_->cache_limit = tree_cache_bytes;
}

Finder::~Finder() = default;

namespace {

// Any of `patterns` matches / may match below `path`.
Result<bool> any_match(const std::vector<FindPattern>& patterns, std::span<const std::string> path,
                       bool children) {
  for (const auto& p : patterns) {
    COFFER_ASSIGN_OR_RETURN(bool m, children ? p.child_match(path) : p.match(path));
    if (m)
      return true;
  }
  return false;
}

bool in_time_range(const NameQuery& q, const GoTime& t) {
  return !(q.oldest && t < *q.oldest) && !(q.newest && *q.newest < t);
}

}  // namespace

Result<void> Finder::find_names(const std::vector<SnapshotEntry>& snapshots,
                                const NameQuery& query) {
  Impl& s = *impl_;
  std::vector<FindPattern> patterns;
  bool all_relative = true;
  for (const auto& p : query.patterns) {
    patterns.emplace_back(query.ignore_case ? go_to_lower(p) : p);
    all_relative = all_relative && !patterns.back().absolute();
  }
  s.lower = query.ignore_case;
  if (!all_relative) {
    s.prefetch_below = [&](const std::string& dir) {
      auto m =
          any_match(patterns, split_filter_path(query.ignore_case ? go_to_lower(dir) : dir), true);
      return !m || *m;
    };
  }
  s.prefetch(snapshots);
  s.visit = [&](const Id& /*parent*/, const Node& node) -> Result<Verdict> {
    COFFER_ASSIGN_OR_RETURN(bool found, any_match(patterns, s.components, false));
    Verdict no_match{true, Flow::kContinue};
    if (node.type == NodeType::kDir) {
      COFFER_ASSIGN_OR_RETURN(bool below, any_match(patterns, s.components, true));
      no_match = below ? Verdict{false, Flow::kContinue} : Verdict{true, Flow::kSkip};
    }
    if (!found || !in_time_range(query, node.mtime))
      return no_match;
    s.sink.on_match(*s.snapshot, s.path, node);
    return Verdict{};
  };
  for (const auto& sn : snapshots) COFFER_TRY(s.walk_snapshot(sn));
  return {};
}

namespace {

// A set of ids as the user gave them, in the order given (restic keeps a map).
struct IdSet {
  std::vector<std::string> order;
  std::unordered_set<std::string> members;
  explicit IdSet(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      if (members.insert(id).second)
        order.push_back(id);
    }
  }
  bool has(const std::string& id) const { return members.contains(id); }
  // restic: f.blobIDs[full] = {}; delete(f.blobIDs, short).
  void expand(const std::string& short_id, const std::string& full) {
    members.erase(short_id);
    auto it = std::find(order.begin(), order.end(), short_id);
    if (members.insert(full).second) {
      *it = full;
    } else {
      order.erase(it);
    }
  }
};

}  // namespace

Result<void> Finder::find_ids(const std::vector<SnapshotEntry>& snapshots, IdQuery& query) {
  Impl& s = *impl_;
  std::optional<IdSet> blobs, trees;
  if (query.blobs)
    blobs.emplace(*query.blobs);
  if (query.trees)
    trees.emplace(*query.trees);
  std::size_t items_found = 0;
  s.prefetch(snapshots);
  s.visit = [&](const Id& parent, const Node& node) -> Result<Verdict> {
    if (node.type == NodeType::kDir && trees && node.subtree) {
      const Id& id = *node.subtree;
      if (trees->has(id.short_hex()) || trees->has(id.hex())) {
        s.sink.on_object(*s.snapshot, true, id, s.path, std::nullopt);
        ++items_found;
        if (items_found >= trees->members.size() && !blobs)
          return Verdict{true, Flow::kStop};
      }
    }
    if (node.type == NodeType::kFile && blobs) {
      for (const Id& id : node.content) {
        std::string full = id.hex();
        if (!blobs->has(full)) {
          std::string short_id = id.short_hex();
          if (!blobs->has(short_id))
            continue;
          blobs->expand(short_id, full);
        }
        s.sink.on_object(*s.snapshot, false, id, s.path, parent);
      }
    }
    return Verdict{};
  };
  for (const auto& sn : snapshots) COFFER_TRY(s.walk_snapshot(sn));
  if (blobs)
    query.blobs = blobs->order;
  return {};
}

namespace {

// Takes `id` (by full or short name) out of `wanted`; true if it was there.
bool take(std::map<std::string, bool>& wanted, const Id& id) {
  return wanted.erase(id.hex()) > 0 || wanted.erase(id.short_hex()) > 0;
}

}  // namespace

Result<PackBlobs> blobs_of_packs(const Repository& repo, const std::vector<std::string>& packs) {
  std::map<std::string, bool> wanted;  // name as given
  for (const auto& p : packs) wanted.emplace(p, true);
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> stored, repo.list_ids(FileKind::kPack));
  std::unordered_set<Id, IdHash> selected;
  for (const Id& id : stored) {
    if (!wanted.empty() && take(wanted, id))
      selected.insert(id);
  }
  std::unordered_set<Id, IdHash> in_backend(selected.begin(), selected.end());
  COFFER_ASSIGN_OR_RETURN(std::vector<PackedBlob> entries,
                          load_index_entries(repo, worker_count(repo)));
  PackBlobs out;
  std::unordered_set<Id, IdHash> seen_blobs, missing;
  for (const PackedBlob& b : entries) {
    if (!selected.contains(b.pack)) {
      if (wanted.empty() || !take(wanted, b.pack))
        continue;
      selected.insert(b.pack);
    }
    if (!in_backend.contains(b.pack) && missing.insert(b.pack).second)
      out.missing_packs.push_back(b.pack);
    if (seen_blobs.insert(b.id).second)
      out.blob_ids.push_back(b.id.hex());
  }
  if (!wanted.empty()) {
    std::string list;
    for (const auto& [name, unused] : wanted) list += (list.empty() ? "" : " ") + name;
    return fail(Errc::kNotFound, "unable to find pack(s): [" + list + "]");
  }
  return out;
}

}  // namespace coffer::repo
