#include "repo/ops/restore_plan.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "repo/core/parallel.h"
#include "repo/repository.h"

namespace coffer::repo::restore_detail {
namespace {

using TreeMap = std::unordered_map<Id, Tree, IdHash>;

bool is_cancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

std::string join_path(std::string_view parent, std::string_view name) {
  std::string out(parent);
  if (out.empty() || out.back() != '/')
    out += '/';
  out += name;
  return out;
}

struct Pending {
  Id tree;
  std::string snap_path;
};

// Loads every tree the walk will enter, one level of the hierarchy at a time, each distinct
// tree once, `in.workers` at a time.
class TreeLoader {
 public:
  TreeLoader(const PlanInput& in, TreeMap& trees, std::vector<std::string>& errors)
      : in_(in), trees_(trees), errors_(errors) {}

  Result<void> load_all(const Id& root) {
    std::vector<Pending> level{{root, "/"}};
    while (!level.empty()) {
      if (is_cancelled(in_.cancel))
        return fail(Errc::kCancelled, "restore cancelled");
      COFFER_TRY(load_level(level));
      if (trees_.empty())
        return fail(last_error_);
      level = next_level(level);
    }
    return {};
  }

 private:
  Result<void> load_level(const std::vector<Pending>& level) {
    std::vector<Id> ids;
    std::unordered_set<Id, IdHash> seen;
    for (const Pending& p : level) {
      if (!trees_.contains(p.tree) && !failed_.contains(p.tree) && seen.insert(p.tree).second) {
        ids.push_back(p.tree);
      }
    }
    std::vector<Tree> loaded(ids.size());
    std::vector<std::optional<Error>> errs(ids.size());
    COFFER_TRY(parallel_for(ids.size(), in_.workers, [&](std::size_t i) -> Result<void> {
      if (is_cancelled(in_.cancel))
        return fail(Errc::kCancelled, "restore cancelled");
      auto tree = in_.repo->load_tree(ids[i]);
      if (tree) {
        loaded[i] = std::move(*tree);
      } else {
        errs[i] = tree.error();
      }
      return {};
    }));
    for (std::size_t i = 0; i < ids.size(); ++i) record(ids[i], std::move(loaded[i]), errs[i]);
    return {};
  }

  void record(const Id& id, Tree&& tree, const std::optional<Error>& err) {
    if (!err) {
      trees_.emplace(id, std::move(tree));
      return;
    }
    failed_.insert(id);
    last_error_ = err->with_context("loading tree " + id.short_hex());
    errors_.push_back(last_error_.message);
  }

  std::vector<Pending> next_level(const std::vector<Pending>& level) const {
    std::vector<Pending> next;
    for (const Pending& p : level) {
      auto it = trees_.find(p.tree);
      if (it == trees_.end())
        continue;
      for (const Node& node : it->second.nodes) {
        if (node.type != NodeType::kDir || !node.subtree || !valid_name(node.name))
          continue;
        std::string path = join_path(p.snap_path, node.name);
        if (in_.filter->decide(path, true).descend)
          next.push_back({*node.subtree, path});
      }
    }
    return next;
  }

  const PlanInput& in_;  // outlives the loader
  TreeMap& trees_;
  std::vector<std::string>& errors_;
  std::unordered_set<Id, IdHash> failed_;
  Error last_error_;
};

struct InodeKey {
  std::uint64_t device = 0, inode = 0;
  bool operator==(const InodeKey&) const = default;
};
struct InodeKeyHash {
  std::size_t operator()(const InodeKey& k) const noexcept {
    return std::hash<std::uint64_t>()(k.inode * 0x9E3779B97F4A7C15ULL ^ k.device);
  }
};

// Depth-first walk over loaded trees, producing the plan in parent-first order.
class Walker {
 public:
  Walker(const PlanInput& in, const TreeMap& trees, Plan& plan)
      : in_(in), trees_(trees), plan_(plan) {}

  Result<void> walk_tree(const Id& id, const std::string& snap, const std::string& target,
                         unsigned depth) {
    if (is_cancelled(in_.cancel))
      return fail(Errc::kCancelled, "restore cancelled");
    auto it = trees_.find(id);
    if (it == trees_.end())
      return {};  // load failure already recorded
    for (const Node& node : it->second.nodes) {
      COFFER_TRY(add_node(node, join_path(snap, node.name), join_path(target, node.name), depth));
    }
    return {};
  }

  Result<void> add_node(const Node& node, const std::string& snap, const std::string& target,
                        unsigned depth) {
    if (!valid_name(node.name)) {
      plan_.errors.push_back(snap + ": invalid file name in tree, skipped");
      return {};
    }
    const bool is_dir = node.type == NodeType::kDir;
    FilterDecision d = in_.filter->decide(snap, is_dir);
    if (!is_dir) {
      if (d.selected)
        add_leaf(node, target);
      return {};
    }
    const std::size_t dirs = plan_.dirs.size(), files = plan_.files.size();
    const std::size_t others = plan_.others.size();
    plan_.dirs.push_back({target, node, depth});
    if (d.descend && !node.subtree)
      plan_.errors.push_back(snap + ": directory has no subtree");
    if (d.descend && node.subtree)
      COFFER_TRY(walk_tree(*node.subtree, snap, target, depth + 1));
    const bool empty = plan_.dirs.size() == dirs + 1 && plan_.files.size() == files &&
                       plan_.others.size() == others;
    if (!d.selected && empty)
      plan_.dirs.pop_back();
    return {};
  }

 private:
  void add_leaf(const Node& node, const std::string& target) {
    switch (node.type) {
      case NodeType::kFile:
        add_file(node, target);
        return;
      case NodeType::kSymlink:
      case NodeType::kFifo:
      case NodeType::kDev:
      case NodeType::kCharDev:
        plan_.others.push_back({target, node});
        return;
      case NodeType::kSocket:
        ++plan_.skipped_sockets;
        return;
      default:
        plan_.errors.push_back(target + ": node type " + node_type_name(node.type) +
                               " cannot be restored, skipped");
    }
  }

  void add_file(const Node& node, const std::string& target) {
    PlannedFile f{target, node, kNoPrimary};
    if (node.links > 1 && node.inode != 0) {
      auto [it, inserted] = links_.try_emplace({node.device_id, node.inode}, plan_.files.size());
      if (!inserted)
        f.primary = it->second;
    }
    plan_.files.push_back(std::move(f));
  }

  const PlanInput& in_;  // outlives the walker
  const TreeMap& trees_;
  Plan& plan_;
  std::unordered_map<InodeKey, std::size_t, InodeKeyHash> links_;
};

std::vector<std::string> split_subpath(std::string_view subpath) {
  std::vector<std::string> comps;
  std::string cleaned = clean_path(subpath);
  std::size_t pos = 0;
  while (pos < cleaned.size()) {
    std::size_t end = std::min(cleaned.find('/', pos), cleaned.size());
    std::string comp = cleaned.substr(pos, end - pos);
    if (!comp.empty() && comp != "." && comp != "..")
      comps.push_back(std::move(comp));
    pos = end + 1;
  }
  return comps;
}

// The restored root: a tree whose children go into the target, or a single node.
struct Root {
  std::optional<Id> tree;
  Node node;
};

Result<Root> resolve_root(const PlanInput& in) {
  Root root{in.root_tree, {}};
  std::vector<std::string> comps = split_subpath(in.subpath);
  std::string walked;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    COFFER_ASSIGN_OR_RETURN(Tree tree, in.repo->load_tree(*root.tree));
    walked += "/" + comps[i];
    auto it = std::find_if(tree.nodes.begin(), tree.nodes.end(),
                           [&](const Node& n) { return n.name == comps[i]; });
    if (it == tree.nodes.end()) {
      return fail(Errc::kNotFound, "path " + walked + " not found in snapshot");
    }
    if (it->type == NodeType::kDir && it->subtree) {
      root.tree = *it->subtree;
      continue;
    }
    if (i + 1 < comps.size())
      return fail(Errc::kNotFound, walked + " is not a directory");
    root.tree.reset();
    root.node = *it;
  }
  return root;
}

}  // namespace

bool valid_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

Result<Plan> build_plan(const PlanInput& in) {
  COFFER_ASSIGN_OR_RETURN(Root root, resolve_root(in));
  Plan plan;
  TreeMap trees;
  Walker walker(in, trees, plan);
  if (!root.tree) {
    if (!root.node.subtree && root.node.type == NodeType::kDir) {
      return fail(Errc::kCorrupt, "directory " + in.subpath + " has no subtree");
    }
    COFFER_TRY(
        walker.add_node(root.node, "/" + root.node.name, join_path(in.target, root.node.name), 0));
    return plan;
  }
  TreeLoader loader(in, trees, plan.errors);
  COFFER_TRY(loader.load_all(*root.tree));
  COFFER_TRY(walker.walk_tree(*root.tree, "/", in.target, 0));
  return plan;
}

}  // namespace coffer::repo::restore_detail
