// SnapshotFs: the contents of snapshots (trees, attributes, xattrs, file reads).
#include <algorithm>
#include <cstdio>

#include "fs/snapshot_fs.h"
#include "fs/snapshot_inode.h"

namespace coffer::fs {
namespace {

using repo::Errc;
using repo::NodeType;
using repo::Result;

constexpr blksize_t kFileBlockSize = 1 << 20;

std::string id_bytes(const repo::Id& id) { return std::string(repo::as_chars(id.span())); }

std::string le64(std::uint64_t v) {
  std::string out(8, '\0');
  repo::store_le64(reinterpret_cast<std::byte*>(out.data()), v);
  return out;
}

// A load error of snapshot contents: "not found" must not reach the kernel as ENOENT
// (it would be cached as a missing name), so it becomes an I/O error.
repo::Error content_error(repo::Error e) {
  if (e.code == Errc::kNotFound)
    e.code = Errc::kIo;
  return e;
}

void set_time(struct timespec& ts, const repo::GoTime& t) {
  ts.tv_sec = static_cast<time_t>(t.unix_seconds);
  ts.tv_nsec = static_cast<long>(t.nanos);
}

const repo::Node* find_child(const repo::Tree& tree, const std::string& name) {
  auto it = std::lower_bound(tree.nodes.begin(), tree.nodes.end(), name,
                             [](const repo::Node& n, const std::string& v) { return n.name < v; });
  if (it != tree.nodes.end() && it->name == name)
    return &*it;
  auto any = std::find_if(tree.nodes.begin(), tree.nodes.end(),
                          [&](const repo::Node& n) { return n.name == name; });
  return any == tree.nodes.end() ? nullptr : &*any;
}

bool is_special_root_node(const repo::Node& n) {
  return (n.name == "." || n.name == "/") && n.type == NodeType::kDir && n.subtree;
}

}  // namespace

std::uint64_t ino_for_key(const std::string& key) {
  repo::Id h = repo::Id::hash(repo::as_bytes(key));
  std::uint64_t ino = repo::load_le64(h.bytes().data());
  return ino < 2 ? ino + 2 : ino;
}

std::string child_path(const Inode& parent, const std::string& name) {
  return (parent.kind == Inode::Kind::kSnapRoot ? std::string() : parent.path) + "/" + name;
}

std::string child_key(const Inode& parent, const repo::Node& child) {
  std::string id = id_bytes(parent.snapshot->id);
  if (child.type == NodeType::kDir)
    return "d" + parent.view + '\0' + id + child_path(parent, child.name);
  if (child.links > 1 && child.inode != 0)
    return "h" + id + le64(child.device_id) + le64(child.inode);
  return "f" + id + child_path(parent, child.name);
}

std::string meta_key(const std::string& parent_path, const std::string& name,
                     const MetaEntry& entry) {
  std::string path = parent_path + "/" + name;
  switch (entry.kind) {
    case MetaEntry::Kind::kDir:
      return "m" + path;
    case MetaEntry::Kind::kSnapshot:
      return "s" + path + '\0' + id_bytes(entry.snapshot->id);
    case MetaEntry::Kind::kSymlink:
      break;
  }
  return "l" + path + '\0' + entry.target;
}

Result<Entry> SnapshotFs::lookup_node(const Inode& parent, const std::string& name) {
  COFFER_ASSIGN_OR_RETURN(TreePtr tree, listing(parent));
  const repo::Node* found = find_child(*tree, name);
  if (found == nullptr) {
    Entry negative;
    negative.entry_timeout = options_.content_timeout;
    return negative;
  }
  return enter_node(parent, *found);
}

Entry SnapshotFs::enter_node(const Inode& parent, const repo::Node& node) {
  std::string key = child_key(parent, node);
  auto [id, inode] = inodes_.acquire(key, [&]() -> InodePtr {
    auto fresh = std::make_shared<Inode>();
    fresh->kind = Inode::Kind::kNode;
    fresh->ino = ino_for_key(key);
    fresh->path = child_path(parent, node.name);
    fresh->view = parent.view;
    fresh->snapshot = parent.snapshot;
    fresh->node = std::make_shared<const repo::Node>(node);
    return fresh;
  });
  return reply_for(id, *inode);
}

Result<TreePtr> SnapshotFs::listing(const Inode& dir) {
  if (dir.kind == Inode::Kind::kSnapRoot)
    return root_listing(*dir.snapshot);
  if (!dir.node->subtree)
    return std::make_shared<const repo::Tree>();
  auto tree = repo_.load_tree(*dir.node->subtree);
  if (!tree)
    return repo::fail(content_error(tree.error()));
  return tree;
}

// The root tree, with nodes named "." or "/" replaced by their contents (as restic does).
Result<TreePtr> SnapshotFs::root_listing(const repo::SnapshotEntry& snap) {
  const repo::Id& root = snap.snapshot.tree;
  if (auto hit = root_listings_.get(root))
    return hit;
  auto loaded = repo_.load_tree(root);
  if (!loaded)
    return repo::fail(content_error(loaded.error()));
  TreePtr tree = *loaded;
  if (std::any_of(tree->nodes.begin(), tree->nodes.end(), is_special_root_node)) {
    auto spliced = std::make_shared<repo::Tree>();
    for (const repo::Node& n : tree->nodes) {
      if (!is_special_root_node(n)) {
        spliced->nodes.push_back(n);
        continue;
      }
      auto sub = repo_.load_tree(*n.subtree);
      if (!sub)
        return repo::fail(content_error(sub.error()));
      spliced->nodes.insert(spliced->nodes.end(), (*sub)->nodes.begin(), (*sub)->nodes.end());
    }
    std::stable_sort(spliced->nodes.begin(), spliced->nodes.end(),
                     [](const repo::Node& a, const repo::Node& b) { return a.name < b.name; });
    tree = std::move(spliced);
  }
  root_listings_.put(root, tree, 1);
  return tree;
}

Result<void> SnapshotFs::walk_tree(const DirHandle& dir, std::uint64_t first_index,
                                   std::uint64_t offset, const WalkFn& fn) {
  const Inode& self = *dir.inode;
  const auto& nodes = dir.tree->nodes;
  for (std::size_t i = offset > first_index ? offset - first_index : 0; i < nodes.size(); ++i) {
    const repo::Node& n = nodes[i];
    DirEntry e{n.name, ino_for_key(child_key(self, n)), n.unix_mode() & S_IFMT,
               first_index + i + 1};
    if (!fn(e, [&] { return enter_node(self, n); }))
      return {};
  }
  return {};
}

struct stat SnapshotFs::node_attr(const Inode& inode) {
  const repo::Node& n = *inode.node;
  struct stat st {};
  st.st_ino = inode.ino;
  st.st_mode = n.unix_mode();
  st.st_nlink = n.type == NodeType::kDir ? 1 : std::max<nlink_t>(1, n.links);
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_blksize = 4096;
  if (n.type == NodeType::kDev || n.type == NodeType::kCharDev)
    st.st_rdev = n.device;
  if (n.type == NodeType::kSymlink)
    st.st_size = static_cast<off_t>(n.linktarget.size());
  if (n.type == NodeType::kFile) {
    st.st_blksize = kFileBlockSize;
    auto chunks = file_chunks(inode);  // on failure: the stored size, reads will fail
    std::uint64_t size = chunks ? (*chunks)->size() : n.size;
    std::uint64_t allocated = chunks ? (*chunks)->allocated_bytes() : n.size;
    st.st_size = static_cast<off_t>(size);
    st.st_blocks = static_cast<blkcnt_t>((allocated + 511) / 512);
  }
  set_time(st.st_atim, n.atime);
  set_time(st.st_mtim, n.mtime);
  set_time(st.st_ctim, n.ctime);
  return st;
}

Result<ChunksPtr> SnapshotFs::file_chunks(const Inode& inode) {
  {
    std::scoped_lock lock(inode.map_mutex);
    if (inode.chunks)
      return inode.chunks;
  }
  auto built = repo_.file_chunks(inode.node->content);  // no lock held across I/O
  if (!built)
    return repo::fail(content_error(built.error()));
  std::scoped_lock lock(inode.map_mutex);
  if (!inode.chunks)
    inode.chunks = *built;
  return inode.chunks;
}

Result<std::optional<repo::Bytes>> SnapshotFs::getxattr(std::uint64_t nodeid,
                                                        std::string_view name) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  if (node->kind != Inode::Kind::kNode)
    return std::nullopt;
  for (const auto& x : node->node->xattrs) {
    if (x.name == name)
      return x.value;
  }
  return std::nullopt;
}

Result<std::vector<std::string>> SnapshotFs::listxattr(std::uint64_t nodeid) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  std::vector<std::string> names;
  if (node->kind == Inode::Kind::kNode) {
    for (const auto& x : node->node->xattrs) names.push_back(x.name);
  }
  return names;
}

Result<std::shared_ptr<FileHandle>> SnapshotFs::open(std::uint64_t nodeid) {
  COFFER_ASSIGN_OR_RETURN(InodePtr node, inode(nodeid));
  if (node->kind != Inode::Kind::kNode || node->node->type != NodeType::kFile)
    return repo::fail(Errc::kInvalidArgument, "not a regular file");
  auto handle = std::make_shared<FileHandle>();
  handle->inode = node;
  COFFER_ASSIGN_OR_RETURN(handle->chunks, file_chunks(*node));
  return handle;
}

Result<void> SnapshotFs::read(FileHandle& file, std::uint64_t offset, std::size_t size,
                              std::vector<ReadSegment>& out, std::vector<FetchedChunk>* fetched) {
  const FileChunks& chunks = *file.chunks;
  std::uint64_t want =
      offset >= chunks.size() ? 0 : std::min<std::uint64_t>(size, chunks.size() - offset);
  if (want == 0)
    return {};
  auto r = repo_.read(chunks, file.stream, offset, want, out, fetched);
  if (!r)
    return repo::fail(content_error(r.error()).with_context(file.inode->path));
  if (*r != want)
    return repo::fail(Errc::kCorrupt, file.inode->path + ": short read");
  return {};
}

Result<void> SnapshotFs::read(FileHandle& file, std::uint64_t offset, std::size_t size,
                              repo::Bytes& out) {
  std::vector<ReadSegment> segments;
  COFFER_TRY(read(file, offset, size, segments));
  out.clear();
  out.reserve(size);
  for (const ReadSegment& s : segments) out.insert(out.end(), s.data, s.data + s.size);
  return {};
}

Result<std::optional<std::uint64_t>> SnapshotFs::lseek(FileHandle& file, std::uint64_t offset,
                                                       int whence) {
  if (whence == SEEK_DATA)
    return file.chunks->next_data(offset);
  if (whence == SEEK_HOLE)
    return file.chunks->next_hole(offset);
  return repo::fail(Errc::kInvalidArgument, "unsupported lseek whence");
}

}  // namespace coffer::fs
