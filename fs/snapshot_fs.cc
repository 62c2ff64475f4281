// SnapshotFs: node ids, the layout directories and their refresh, dispatch to the snapshot
// contents (snapshot_fs_nodes.cc).
#include "fs/snapshot_fs.h"

#include <algorithm>
#include <cerrno>

#include "fs/snapshot_inode.h"
#include "repo/core/log.h"

namespace coffer::fs {
namespace {

using repo::Errc;
using repo::Result;

void set_time(struct timespec& ts, const repo::GoTime& t) {
  ts.tv_sec = static_cast<time_t>(t.unix_seconds);
  ts.tv_nsec = static_cast<long>(t.nanos);
}

struct stat meta_dir_attr(std::uint64_t ino, const MetaDir* dir, const SnapshotFsOptions& o) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = S_IFDIR | 0555;
  st.st_nlink = 2 + (dir != nullptr ? dir->subdirs : 0);
  st.st_uid = o.uid;
  st.st_gid = o.gid;
  st.st_blksize = 4096;
  if (dir != nullptr) {
    set_time(st.st_mtim, dir->newest);
    st.st_atim = st.st_ctim = st.st_mtim;
  }
  return st;
}

std::shared_ptr<Inode> make_root() {
  auto root = std::make_shared<Inode>();
  root->kind = Inode::Kind::kRoot;
  root->ino = kRootNodeId;
  return root;
}

std::shared_ptr<Inode> meta_inode(const std::string& path, const MetaEntry& entry,
                                  const std::string& key) {
  auto inode = std::make_shared<Inode>();
  inode->ino = ino_for_key(key);
  inode->path = path;
  inode->snapshot = entry.snapshot;
  switch (entry.kind) {
    case MetaEntry::Kind::kDir:
      inode->kind = Inode::Kind::kMetaDir;
      break;
    case MetaEntry::Kind::kSnapshot:
      inode->kind = Inode::Kind::kSnapRoot;
      inode->view = path;
      break;
    case MetaEntry::Kind::kSymlink:
      inode->kind = Inode::Kind::kMetaLink;
      inode->target = entry.target;
      break;
  }
  return inode;
}

bool by_time_then_id(const SnapshotPtr& a, const SnapshotPtr& b) {
  if (a->snapshot.time != b->snapshot.time)
    return a->snapshot.time < b->snapshot.time;
  return a->id < b->id;
}

}  // namespace

SnapshotFs::SnapshotFs(RepoAccess& repo, const SnapshotFsOptions& options)
    : repo_(repo), options_(options), inodes_(make_root()), root_listings_(256) {}

SnapshotFs::~SnapshotFs() = default;

Result<std::unique_ptr<SnapshotFs>> SnapshotFs::create(RepoAccess& repo,
                                                       const SnapshotFsOptions& options) {
  std::unique_ptr<SnapshotFs> fs(new SnapshotFs(repo, options));
  fs->layout_ = std::make_shared<const SnapshotLayout>(SnapshotLayout::build({}));
  std::scoped_lock serial(fs->refresh_mutex_);
  COFFER_TRY(fs->refresh_locked(false));
  return fs;
}

Result<void> SnapshotFs::refresh() {
  std::scoped_lock serial(refresh_mutex_);
  return refresh_locked(true);
}

Result<void> SnapshotFs::refresh_locked(bool load_index) {
  {
    std::scoped_lock lock(layout_mutex_);
    last_check_ = std::chrono::steady_clock::now();  // also after a failure: no hammering
  }
  COFFER_ASSIGN_OR_RETURN(std::vector<repo::Id> ids, repo_.snapshot_ids());
  SnapshotMap next;
  std::size_t known = 0;
  {
    std::scoped_lock lock(layout_mutex_);
    known = known_.size();
    for (const repo::Id& id : ids) {
      if (auto it = known_.find(id); it != known_.end())
        next.emplace(id, it->second);
    }
  }
  bool added = load_missing(ids, next);
  if (!added && next.size() == known)
    return {};
  if (added && load_index)
    COFFER_TRY(repo_.refresh_index());
  std::vector<SnapshotPtr> sorted;
  for (const auto& [id, snap] : next) sorted.push_back(snap);
  std::sort(sorted.begin(), sorted.end(), by_time_then_id);
  auto layout = std::make_shared<const SnapshotLayout>(SnapshotLayout::build(sorted));
  std::scoped_lock lock(layout_mutex_);
  layout_ = std::move(layout);
  known_ = std::move(next);
  return {};
}

bool SnapshotFs::load_missing(const std::vector<repo::Id>& ids, SnapshotMap& snapshots) {
  bool added = false;
  for (const repo::Id& id : ids) {
    if (snapshots.count(id) != 0)
      continue;
    auto snap = repo_.load_snapshot(id);
    if (!snap) {  // retried on the next refresh
      repo::log::warn("skipping snapshot " + id.short_hex() + ": " + snap.error().message);
      continue;
    }
    auto entry = std::make_shared<const repo::SnapshotEntry>(repo::SnapshotEntry{id, *snap});
    snapshots.emplace(id, std::move(entry));
    added = true;
  }
  return added;
}

SnapshotFs::LayoutPtr SnapshotFs::current_layout() const {
  std::scoped_lock lock(layout_mutex_);
  return layout_;
}

SnapshotFs::LayoutPtr SnapshotFs::layout() {
  bool due = false;
  {
    std::scoped_lock lock(layout_mutex_);
    due = std::chrono::steady_clock::now() - last_check_ >= options_.refresh_interval;
  }
  if (due) {
    std::unique_lock serial(refresh_mutex_, std::try_to_lock);
    if (serial.owns_lock()) {
      if (auto r = refresh_locked(true); !r)
        repo::log::warn("refreshing the snapshot list failed: " + r.error().message);
    }
  }
  return current_layout();
}

Result<SnapshotFs::InodePtr> SnapshotFs::inode(std::uint64_t nodeid) const {
  InodePtr found = inodes_.find(nodeid);
  if (!found)
    return repo::fail(Errc::kNotFound, "stale node id");
  return found;
}

Result<Entry> SnapshotFs::lookup(std::uint64_t parent, std::string_view name) {
  COFFER_ASSIGN_OR_RETURN(InodePtr dir, inode(parent));
  if (!dir->is_dir())
    return repo::fail(Errc::kInvalidArgument, "not a directory");
  if (dir->in_snapshot())
    return lookup_node(*dir, std::string(name));
  return lookup_meta(*dir, std::string(name));
}

Result<Entry> SnapshotFs::lookup_meta(const Inode& parent, const std::string& name) {
  LayoutPtr l = layout();
  const MetaDir* dir = l->dir(parent.path);
  Entry negative;
  negative.entry_timeout = options_.dynamic_timeout;
  if (dir == nullptr)
    return negative;
  auto it = dir->entries.find(name);
  if (it == dir->entries.end())
    return negative;
  return enter_meta(parent.path, name, it->second);
}

Entry SnapshotFs::enter_meta(const std::string& parent_path, const std::string& name,
                             const MetaEntry& entry) {
  std::string key = meta_key(parent_path, name, entry);
  std::string path = parent_path + "/" + name;
  auto [id, node] =
      inodes_.acquire(key, [&]() -> InodePtr { return meta_inode(path, entry, key); });
  return reply_for(id, *node);
}

Entry SnapshotFs::reply_for(std::uint64_t nodeid, const Inode& inode) {
  Entry e;
  e.nodeid = nodeid;
  e.attr = attr_of(inode);
  bool fixed = inode.in_snapshot();
  e.entry_timeout =
      inode.kind == Inode::Kind::kNode ? options_.content_timeout : options_.dynamic_timeout;
  e.attr_timeout = fixed ? options_.content_timeout : options_.dynamic_timeout;
  return e;
}

void SnapshotFs::forget(std::uint64_t nodeid, std::uint64_t n) { inodes_.forget(nodeid, n); }

Result<Attr> SnapshotFs::getattr(std::uint64_t nodeid) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  if (node->kind == Inode::Kind::kRoot || node->kind == Inode::Kind::kMetaDir)
    (void)layout();  // a stat of a layout directory may show new snapshots
  bool fixed = node->in_snapshot();
  return Attr{attr_of(*node), fixed ? options_.content_timeout : options_.dynamic_timeout};
}

struct stat SnapshotFs::attr_of(const Inode& inode) {
  switch (inode.kind) {
    case Inode::Kind::kRoot:
    case Inode::Kind::kMetaDir: {
      LayoutPtr l = current_layout();
      return meta_dir_attr(inode.ino, l->dir(inode.path), options_);
    }
    case Inode::Kind::kMetaLink: {
      struct stat st = meta_dir_attr(inode.ino, nullptr, options_);
      st.st_mode = S_IFLNK | 0777;
      st.st_nlink = 1;
      st.st_size = static_cast<off_t>(inode.target.size());
      set_time(st.st_mtim, inode.snapshot->snapshot.time);
      st.st_atim = st.st_ctim = st.st_mtim;
      return st;
    }
    case Inode::Kind::kSnapRoot: {
      struct stat st = meta_dir_attr(inode.ino, nullptr, options_);
      const repo::Snapshot& s = inode.snapshot->snapshot;
      st.st_nlink = 1;
      st.st_uid = s.uid;
      st.st_gid = s.gid;
      set_time(st.st_mtim, s.time);
      st.st_atim = st.st_ctim = st.st_mtim;
      return st;
    }
    case Inode::Kind::kNode:
      break;
  }
  return node_attr(inode);
}

Result<std::string> SnapshotFs::readlink(std::uint64_t nodeid) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  if (node->kind == Inode::Kind::kMetaLink)
    return node->target;
  if (node->kind == Inode::Kind::kNode && node->node->type == repo::NodeType::kSymlink)
    return node->node->linktarget;
  return repo::fail(Errc::kInvalidArgument, "not a symlink");
}

Result<std::shared_ptr<DirHandle>> SnapshotFs::opendir(std::uint64_t nodeid) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  if (!node->is_dir())
    return repo::fail(Errc::kInvalidArgument, "not a directory");
  auto dir = std::make_shared<DirHandle>();
  dir->inode = node;
  if (node->in_snapshot()) {
    COFFER_ASSIGN_OR_RETURN(dir->tree, listing(*node));
  } else {
    dir->layout = layout();
  }
  return dir;
}

bool SnapshotFs::cacheable(const DirHandle& dir) { return dir.inode->in_snapshot(); }

Result<void> SnapshotFs::readdir(const DirHandle& dir, std::uint64_t offset,
                                 const std::function<bool(const DirEntry&)>& fn) {
  return walk(dir, offset, [&](const DirEntry& e, const auto&) { return fn(e); });
}

Result<void> SnapshotFs::readdirplus(const DirHandle& dir, std::uint64_t offset,
                                     const std::function<bool(const DirEntry&, const Entry&)>& fn) {
  return walk(dir, offset, [&](const DirEntry& e, const std::function<Entry()>& enter) {
    if (e.name == "." || e.name == "..") {
      Entry dots;
      dots.attr.st_ino = e.ino;
      dots.attr.st_mode = e.mode;
      return fn(e, dots);
    }
    Entry entry = enter();
    if (fn(e, entry))
      return true;
    forget(entry.nodeid, 1);
    return false;
  });
}

Result<void> SnapshotFs::walk(const DirHandle& dir, std::uint64_t offset, const WalkFn& fn) {
  const Inode& self = *dir.inode;
  std::uint64_t index = 0;
  for (const char* dots : {".", ".."}) {
    if (index >= offset && !fn(DirEntry{dots, self.ino, S_IFDIR, index + 1}, nullptr))
      return {};
    ++index;
  }
  if (dir.tree)
    return walk_tree(dir, index, offset, fn);
  const MetaDir* meta = dir.layout->dir(self.path);
  if (meta == nullptr)
    return {};
  for (const auto& [name, entry] : meta->entries) {
    if (index++ < offset)
      continue;
    std::uint32_t mode = entry.kind == MetaEntry::Kind::kSymlink ? S_IFLNK : S_IFDIR;
    DirEntry e{name, ino_for_key(meta_key(self.path, name, entry)), mode, index};
    const std::string& n = name;
    const MetaEntry& me = entry;
    if (!fn(e, [&] { return enter_meta(self.path, n, me); }))
      return {};
  }
  return {};
}

struct statvfs SnapshotFs::statfs() const {
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 4096;
  st.f_files = inodes_.size();
  st.f_namemax = 255;
  return st;
}

}  // namespace coffer::fs
