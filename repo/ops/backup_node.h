// Reading one filesystem item's metadata into a restic tree Node, as restic's archiver
// fills it (restic-format.md §9): type, Go mode, times with the local zone's offset,
// owners (ids and names), inode, device, links, size, symlink target, device number and
// extended attributes.
//
// Thread contract: NameCache is safe to call concurrently; the free functions are pure or
// read only the filesystem.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include <sys/stat.h>

#include "repo/core/error.h"
#include "repo/tree/node.h"

namespace coffer::repo {

// uid -> user name and gid -> group name, looked up once each.
class NameCache {
 public:
  std::string user(std::uint32_t uid);
  std::string group(std::uint32_t gid);

 private:
  std::mutex mutex_;  // guards both maps
  std::unordered_map<std::uint32_t, std::string> users_, groups_;
};

// `ts` as a GoTime carrying the local zone's offset at that instant (as Go's time.Local).
GoTime go_time_local(const struct timespec& ts);

// The node for `path` (named `name` in its directory) whose lstat is `st`. Reads the symlink
// target and the extended attributes. Content (files) and subtree (dirs) are left empty.
// Errors: kIo when the symlink target cannot be read. Unreadable xattrs are skipped.
Result<Node> node_from_stat(const std::string& path, std::string name, const struct stat& st,
                            NameCache& names);

}  // namespace coffer::repo
