// SnapshotLayout: the directories above the snapshots in a mount (restic-format.md §15).
//
//   ids/<short id>            one per snapshot ("-1", "-2" appended on a short-id clash)
//   snapshots/<time>          time in the snapshot's own offset, RFC 3339 without fraction;
//                             equal names get "-1", "-2", ... in ascending (time, id) order
//   hosts/<host>/<time>
//   tags/<tag>/<time>         once per tag; several tags are sanitized ('/' → '_', "" and
//                             "." → "_", ".." → "__"), a single tag is used raw
//   <dir>/latest              symlink to the newest name in every <time> directory
//
// A layout is built once from a snapshot list and never changes; a refresh builds a new one.
// Paths inside the layout are "" for the mount root and "/ids", "/hosts/h", ... below it.
//
// Thread contract: an immutable value after build(); safe to share between threads.
// Ownership: the layout shares ownership of the snapshot entries it was built from.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "repo/repository.h"

namespace coffer::fs {

using SnapshotPtr = std::shared_ptr<const repo::SnapshotEntry>;

struct MetaEntry {
  enum class Kind { kDir, kSnapshot, kSymlink };
  Kind kind = Kind::kDir;
  SnapshotPtr snapshot;  // kSnapshot (and the snapshot a kSymlink points to)
  std::string target;    // kSymlink: the relative target name
};

struct MetaDir {
  std::map<std::string, MetaEntry> entries;  // sorted by name
  repo::GoTime newest;                       // time of the newest snapshot below (0 if none)
  std::size_t subdirs = 0;                   // entries of kind kDir
};

class SnapshotLayout {
 public:
  // Builds the layout. REQUIRES: `snapshots` sorted ascending by (time, id), as
  // Repository::list_snapshots returns them.
  static SnapshotLayout build(const std::vector<SnapshotPtr>& snapshots);

  // The directory at `path` ("" = root), or nullptr if the layout has none there.
  [[nodiscard]] const MetaDir* dir(const std::string& path) const;

  // Every snapshot the layout was built from, in build order.
  [[nodiscard]] const std::vector<SnapshotPtr>& snapshots() const { return snapshots_; }

 private:
  [[nodiscard]] bool taken(const std::string& path) const;
  void add_dir(const std::string& path);
  bool add_leaf(const std::string& path, const MetaEntry& entry, const repo::GoTime& time);
  void add_from_template(const std::string& templ, const SnapshotPtr& snap,
                         std::map<std::string, repo::GoTime>& latest);

  std::vector<SnapshotPtr> snapshots_;
  std::unordered_map<std::string, MetaDir> dirs_;
};

// The name a snapshot time gets: RFC 3339 in the snapshot's own offset, whole seconds.
std::string snapshot_time_name(const repo::GoTime& time);

// Expands one path template (%i short id, %I full id, %u user, %h host, %t tag, %T time) for
// `snap`. Returns the expanded paths (several when a snapshot has several tags, none when %t
// is used and it has no tags). When the template ends in %T, the time is left out of the
// paths and returned in `time_suffix` instead.
std::vector<std::string> expand_template(const std::string& templ, const repo::SnapshotEntry& snap,
                                         std::string& time_suffix);

// Cleans a slash-separated path like Go's path.Clean on "/" + path, then drops the leading
// slash for the root: "snapshots//x" → "/snapshots/x", "" → "".
std::string clean_layout_path(const std::string& path);

}  // namespace coffer::fs
