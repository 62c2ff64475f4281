// Walking snapshot trees: path look-up and depth-first traversal.
//
// Paths are snapshot paths as restic prints them: "/" is the root tree, "/home/a.txt" a
// node below it. Components are raw bytes.
//
// Thread contract: functions only; the Repository must outlive the call.
#pragma once

#include <functional>
#include <string>

#include "repo/repository.h"

namespace coffer::repo {

// A directory node standing for a snapshot's root tree.
Node root_node(const Snapshot& snapshot);

// Finds the node at `path` below `root` ("/" or "" gives the root node itself).
// Errors: kNotFound naming the path, or load errors.
Result<Node> find_node(const Repository& repo, const Node& root, std::string_view path);

enum class WalkAction { kContinue, kSkipChildren };

using WalkFn = std::function<Result<WalkAction>(const std::string& path, const Node& node)>;

// Calls `fn` for each node below the directory `dir` (whose own path is `dir_path`),
// parents before children, siblings in tree order. `fn` may skip a directory's children.
Result<void> walk(const Repository& repo, const Node& dir, const std::string& dir_path,
                  const WalkFn& fn);

// Joins a directory path and a child name ("/" + "a" → "/a", "/x" + "a" → "/x/a").
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace coffer::repo
