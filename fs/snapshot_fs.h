// SnapshotFs: the mounted tree of a repository, without any FUSE types.
//
//   /                         ids/ snapshots/ hosts/ tags/ (fs/snapshot_layout.h)
//   /<layout dir>/<name>/     a snapshot: the contents of its root tree
//
// The layout is rebuilt from the snapshot list when a top-level directory is accessed and
// the last check is older than `refresh_interval`; entries there get short timeouts.
// Everything inside a snapshot never changes and gets long timeouts.
//
// Inodes (st_ino) are stable across remounts: a hash of the entry's identity. Inside a
// snapshot that is (snapshot id, path) for files, links and devices, (device, inode) for
// hard links (links > 1: one inode, one node id, st_nlink = links), and (layout path,
// snapshot id, path) for directories, so one directory never has two parents. Node ids
// are handed out per mount by an InodeTable with lookup counts.
//
// File sizes and st_blocks come from the index: blobs that are all zero count as holes;
// lseek(SEEK_DATA/SEEK_HOLE) reports them. Reads return exactly the bytes asked for, or
// an error.
//
// Thread contract: every public method is safe to call concurrently.
// Ownership: borrows the RepoAccess (must outlive this); owns inodes, layout and handles.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs/inode_table.h"
#include "fs/repo_access.h"
#include "fs/snapshot_layout.h"

namespace coffer::fs {

struct SnapshotFsOptions {
  std::chrono::milliseconds refresh_interval{60000};  // 0: check on every access
  double content_timeout = 1e9;                       // entries/attrs inside snapshots
  double dynamic_timeout = 1.0;                       // the layout directories
  std::uint32_t uid = 0, gid = 0;                     // owner of the layout directories
};

// A lookup result. nodeid 0 is a negative entry, cacheable for entry_timeout.
struct Entry {
  std::uint64_t nodeid = 0;
  struct stat attr {};
  double entry_timeout = 0;
  double attr_timeout = 0;
};

struct Attr {
  struct stat attr {};
  double timeout = 0;
};

struct DirEntry {
  std::string name;
  std::uint64_t ino = 0;   // st_ino
  std::uint32_t mode = 0;  // S_IFMT bits
  std::uint64_t next_offset = 0;
};

struct Inode;
class DirHandle;
class FileHandle;

class SnapshotFs {
 public:
  // Lists the snapshots and builds the layout. Errors: those of listing or loading
  // snapshot files.
  static repo::Result<std::unique_ptr<SnapshotFs>> create(RepoAccess& repo,
                                                          const SnapshotFsOptions& options);
  ~SnapshotFs();
  SnapshotFs(const SnapshotFs&) = delete;
  SnapshotFs& operator=(const SnapshotFs&) = delete;

  // Looks up `name` in directory `parent`; a found entry gets one lookup (see forget).
  // Errors: kNotFound (stale parent), kInvalidArgument (parent not a directory), load errors.
  repo::Result<Entry> lookup(std::uint64_t parent, std::string_view name);
  // Drops `n` lookups of `nodeid`.
  void forget(std::uint64_t nodeid, std::uint64_t n);
  // Attributes. Errors: kNotFound (unknown node id).
  repo::Result<Attr> getattr(std::uint64_t nodeid);
  // Symlink target. Errors: kNotFound, kInvalidArgument (not a symlink).
  repo::Result<std::string> readlink(std::uint64_t nodeid);

  // Opens a directory; `cacheable` tells whether its listing never changes.
  repo::Result<std::shared_ptr<DirHandle>> opendir(std::uint64_t nodeid);
  [[nodiscard]] static bool cacheable(const DirHandle& dir);
  // Calls `fn` for the entries from `offset` on ("." and ".." first) until it returns false.
  repo::Result<void> readdir(const DirHandle& dir, std::uint64_t offset,
                             const std::function<bool(const DirEntry&)>& fn);
  // As readdir, with each entry (except "." and "..") looked up (one lookup each). When
  // `fn` returns false the entry it was given is not counted.
  repo::Result<void> readdirplus(const DirHandle& dir, std::uint64_t offset,
                                 const std::function<bool(const DirEntry&, const Entry&)>& fn);

  // A stored extended attribute, or nullopt (ENODATA). Errors: kNotFound.
  repo::Result<std::optional<repo::Bytes>> getxattr(std::uint64_t nodeid, std::string_view name);
  // Names of the stored extended attributes. Errors: kNotFound.
  repo::Result<std::vector<std::string>> listxattr(std::uint64_t nodeid);
  [[nodiscard]] struct statvfs statfs() const;

  // Opens a regular file for reading. Errors: kInvalidArgument (not a file), load errors.
  repo::Result<std::shared_ptr<FileHandle>> open(std::uint64_t nodeid);
  // Reads exactly min(size, file size - offset) bytes as pieces appended to `out`
  // (read_file_segments in fs/chunk_file.h), or fails. The chunks of a random read are
  // appended to `fetched` when it is given.
  repo::Result<void> read(FileHandle& file, std::uint64_t offset, std::size_t size,
                          std::vector<ReadSegment>& out,
                          std::vector<FetchedChunk>* fetched = nullptr);
  // As above, copied into `out` (resized to the bytes read).
  repo::Result<void> read(FileHandle& file, std::uint64_t offset, std::size_t size,
                          repo::Bytes& out);
  // SEEK_DATA / SEEK_HOLE: the resulting offset, or nullopt (ENXIO).
  // Errors: kInvalidArgument for other `whence` values.
  repo::Result<std::optional<std::uint64_t>> lseek(FileHandle& file, std::uint64_t offset,
                                                   int whence);

  // Re-reads the snapshot list now if it changed (also done on access, rate-limited).
  repo::Result<void> refresh();
  [[nodiscard]] std::size_t live_inodes() const { return inodes_.size(); }

 private:
  using InodePtr = std::shared_ptr<const Inode>;
  using LayoutPtr = std::shared_ptr<const SnapshotLayout>;

  using WalkFn = std::function<bool(const DirEntry&, const std::function<Entry()>& enter)>;

  SnapshotFs(RepoAccess& repo, const SnapshotFsOptions& options);
  using SnapshotMap = std::unordered_map<repo::Id, SnapshotPtr, repo::IdHash>;

  repo::Result<void> refresh_locked(bool load_index);  // REQUIRES: refresh_mutex_ held
  // Loads the snapshots of `ids` missing from `snapshots`; true if any was added.
  bool load_missing(const std::vector<repo::Id>& ids, SnapshotMap& snapshots);
  [[nodiscard]] LayoutPtr layout();  // after a rate-limited refresh
  [[nodiscard]] LayoutPtr current_layout() const;
  repo::Result<InodePtr> inode(std::uint64_t nodeid) const;
  repo::Result<Entry> lookup_meta(const Inode& parent, const std::string& name);
  repo::Result<Entry> lookup_node(const Inode& parent, const std::string& name);
  Entry enter_meta(const std::string& parent_path, const std::string& name, const MetaEntry& entry);
  Entry enter_node(const Inode& parent, const repo::Node& node);
  Entry reply_for(std::uint64_t nodeid, const Inode& inode);
  repo::Result<TreePtr> listing(const Inode& dir);
  repo::Result<TreePtr> root_listing(const repo::SnapshotEntry& snap);
  repo::Result<void> walk(const DirHandle& dir, std::uint64_t offset, const WalkFn& fn);
  repo::Result<void> walk_tree(const DirHandle& dir, std::uint64_t first_index,
                               std::uint64_t offset, const WalkFn& fn);
  struct stat attr_of(const Inode& inode);
  struct stat node_attr(const Inode& inode);
  repo::Result<ChunksPtr> file_chunks(const Inode& inode);

  RepoAccess& repo_;
  const SnapshotFsOptions options_;
  InodeTable<Inode> inodes_;
  LruCache<repo::Tree> root_listings_;  // spliced root trees, by snapshot tree id

  mutable std::mutex layout_mutex_;  // guards layout_, known_, last_check_
  LayoutPtr layout_;
  SnapshotMap known_;
  std::chrono::steady_clock::time_point last_check_;
  std::mutex refresh_mutex_;  // one refresh at a time; taken before layout_mutex_
};

}  // namespace coffer::fs
