// Internal to SnapshotFs (snapshot_fs*.cc): the inode record, open handles, and the keys
// that give every entry its stable identity and st_ino.
//
// Keys (bytes): root "r"; layout directory "m"+path; layout symlink "l"+path+"\0"+target;
// snapshot directory "s"+path+"\0"+id; inside a snapshot: directory
// "d"+view+"\0"+id+path, hard link (non-directory, links > 1, inode != 0)
// "h"+id+le64(device_id)+le64(inode), anything else "f"+id+path.
// st_ino = the first 8 bytes (little endian) of SHA-256(key), never 0 or 1.
//
// Thread contract: Inode fields are immutable after creation, except the file map cache
// (guarded by map_mutex). Handles are used by one request at a time.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "fs/snapshot_fs.h"
#include "fs/snapshot_layout.h"

namespace coffer::fs {

struct Inode {
  enum class Kind { kRoot, kMetaDir, kMetaLink, kSnapRoot, kNode };
  Kind kind = Kind::kRoot;
  std::uint64_t ino = kRootNodeId;
  std::string path;      // layout path (root, meta, snapshot dir) or path inside the snapshot
  std::string view;      // kSnapRoot, kNode: layout path of the snapshot directory
  SnapshotPtr snapshot;  // kSnapRoot, kNode, kMetaLink
  std::string target;    // kMetaLink
  std::shared_ptr<const repo::Node> node;  // kNode

  mutable std::mutex map_mutex;  // guards chunks
  mutable ChunksPtr chunks;      // files: built on first need

  [[nodiscard]] bool is_dir() const {
    return kind == Kind::kRoot || kind == Kind::kMetaDir || kind == Kind::kSnapRoot ||
           (kind == Kind::kNode && node->type == repo::NodeType::kDir);
  }
  [[nodiscard]] bool in_snapshot() const { return kind == Kind::kSnapRoot || kind == Kind::kNode; }
};

class DirHandle {
 public:
  std::shared_ptr<const Inode> inode;
  std::shared_ptr<const SnapshotLayout> layout;  // layout directories: the pinned layout
  TreePtr tree;                                  // snapshot directories: the listing
};

class FileHandle {
 public:
  std::shared_ptr<const Inode> inode;
  ChunksPtr chunks;
  ReadStream stream;  // sequential detection for this open file
};

// st_ino for a key.
std::uint64_t ino_for_key(const std::string& key);
// Key of a child node of directory inode `parent` (kSnapRoot or directory kNode).
std::string child_key(const Inode& parent, const repo::Node& child);
// Path inside the snapshot of a child of `parent`.
std::string child_path(const Inode& parent, const std::string& name);
// Key of a layout entry `name` of layout directory `parent_path`.
std::string meta_key(const std::string& parent_path, const std::string& name,
                     const MetaEntry& entry);

}  // namespace coffer::fs
