#include "repo/ops/walk.h"

#include <algorithm>

namespace coffer::repo {

Node root_node(const Snapshot& snapshot) {
  Node n;
  n.name = "/";
  n.type = NodeType::kDir;
  n.mode = 0x80000000U | 0755;
  n.mtime = n.atime = n.ctime = snapshot.time;
  n.subtree = snapshot.tree;
  return n;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == "/")
    return "/" + name;
  return dir + "/" + name;
}

Result<Node> find_node(const Repository& repo, const Node& root, std::string_view path) {
  Node current = root;
  std::string walked;
  std::size_t pos = 0;
  while (pos < path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    std::string_view comp = path.substr(pos, next - pos);
    pos = next + 1;
    if (comp.empty() || comp == ".")
      continue;
    walked += "/" + std::string(comp);
    if (current.type != NodeType::kDir || !current.subtree) {
      return fail(Errc::kNotFound, "path " + walked + " not found in snapshot (not a directory)");
    }
    COFFER_ASSIGN_OR_RETURN(Tree tree, repo.load_tree(*current.subtree));
    auto it = std::lower_bound(tree.nodes.begin(), tree.nodes.end(), comp,
                               [](const Node& n, std::string_view c) { return n.name < c; });
    if (it == tree.nodes.end() || it->name != comp) {
      return fail(Errc::kNotFound, "path " + walked + " not found in snapshot");
    }
    current = std::move(*it);
  }
  return current;
}

Result<void> walk(const Repository& repo, const Node& dir, const std::string& dir_path,
                  const WalkFn& fn) {
  if (dir.type != NodeType::kDir || !dir.subtree)
    return {};
  COFFER_ASSIGN_OR_RETURN(Tree tree, repo.load_tree(*dir.subtree));
  for (const Node& child : tree.nodes) {
    std::string path = join_path(dir_path, child.name);
    COFFER_ASSIGN_OR_RETURN(WalkAction action, fn(path, child));
    if (action == WalkAction::kContinue && child.type == NodeType::kDir) {
      COFFER_TRY(walk(repo, child, path, fn));
    }
  }
  return {};
}

}  // namespace coffer::repo
