// Restore planning (internal to repo/ops/restore): walks the snapshot's trees and lists
// what to create where, in an order where every parent directory precedes its children.
//
// Trees are loaded level by level with a pool of threads (each distinct tree once), then
// walked depth-first with the PathFilter. A directory is kept when it is selected or
// something below it is; hard links are detected by (device_id, inode) of files with
// links > 1, the first selected name being the one whose contents are restored.
//
// Thread contract: build_plan() uses its own threads and returns a value; Plan is a
// plain value afterwards.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "repo/core/error.h"
#include "repo/ops/filter.h"
#include "repo/snapshot/snapshot.h"
#include "repo/tree/node.h"

namespace coffer::repo {
class Repository;
}

namespace coffer::repo::restore_detail {

inline constexpr std::size_t kNoPrimary = static_cast<std::size_t>(-1);

struct PlannedDir {
  std::string path;  // target path
  Node node;
  unsigned depth = 0;  // 0 = directly in the target directory
};

struct PlannedFile {
  std::string path;  // target path
  Node node;
  std::size_t primary = kNoPrimary;  // index of the file this is a hard link to
};

struct PlannedOther {  // symlink, fifo, device node
  std::string path;
  Node node;
};

struct Plan {
  std::vector<PlannedDir> dirs;  // parents before children
  std::vector<PlannedFile> files;
  std::vector<PlannedOther> others;
  std::vector<std::string> errors;  // unreadable subtrees, invalid names
  std::uint64_t skipped_sockets = 0;
};

struct PlanInput {
  const Repository* repo = nullptr;
  Id root_tree;
  std::string subpath;  // "" or "/" = the whole tree
  std::string target;   // the target directory (already clean, no trailing '/')
  const PathFilter* filter = nullptr;
  unsigned workers = 1;
  const std::atomic<bool>* cancel = nullptr;
};

// Errors: kNotFound (subpath missing or below a non-directory), kCorrupt/kIo (a tree on
// the way to subpath or the root tree unreadable), kCancelled. Unreadable subtrees further
// down are listed in Plan::errors instead.
Result<Plan> build_plan(const PlanInput& in);

// True for a node name that is safe to use as one path component.
bool valid_name(std::string_view name);

}  // namespace coffer::repo::restore_detail
