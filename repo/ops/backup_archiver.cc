// The archiver's walk and tree assembly (see backup_archiver.h).
#include "repo/ops/backup_archiver.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace coffer::repo::detail {

namespace {

// Entry names of directory `path`, sorted by bytes. Errors: kIo.
Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr)
    return fail(Errc::kIo, "open directory " + path + ": " + std::strerror(errno));
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..")
      names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0)
    return fail(Errc::kIo, "read directory " + path + ": " + std::strerror(err));
  std::sort(names.begin(), names.end());
  return names;
}

const Node* find_old(const Tree* tree, const std::string& name) {
  if (tree == nullptr)
    return nullptr;
  auto it = std::lower_bound(tree->nodes.begin(), tree->nodes.end(), name,
                             [](const Node& n, const std::string& k) { return n.name < k; });
  return it != tree->nodes.end() && it->name == name ? &*it : nullptr;
}

std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

unsigned default_threads() { return std::max(2U, std::thread::hardware_concurrency()); }

}  // namespace

Archiver::Archiver(Repository& repo, RepositoryWriter* writer, const BackupOptions& options,
                   const Excluder& excluder)
    : repo_(repo),
      writer_(writer),
      options_(options),
      excluder_(excluder),
      polynomial_(repo.config().chunker_polynomial) {
  unsigned cores = default_threads();
  unsigned readers = options.readers != 0 ? options.readers : cores;
  buffers_ = BufferPool::create(kChunkMaxSize + (1U << 20), 2 * readers + cores + 2);
  blob_pool_ = std::make_unique<WorkPool>(cores, 2 * cores);
  reader_pool_ = std::make_unique<WorkPool>(readers, 4 * readers);
  unsigned walkers = std::max(4U, cores);
  walk_pool_ = std::make_unique<WorkPool>(walkers, 4 * walkers);
}

Archiver::~Archiver() { drain(); }

void Archiver::drain() {
  walk_pool_->join();    // walkers feed the readers,
  reader_pool_->join();  // readers feed the blob pool
  blob_pool_->join();
}

Result<Id> Archiver::run(const TargetNode& root, const std::optional<Id>& parent_tree) {
  std::optional<Tree> old_root;
  if (parent_tree) {
    auto t = repo_.load_tree(*parent_tree);
    if (t)
      old_root = std::move(*t);
    else
      warning("parent snapshot's tree unreadable, reading all files: " + t.error().message);
  }
  auto dir = std::make_shared<DirJob>();
  dir->had_old = parent_tree.has_value();
  dir->old_subtree = parent_tree;
  if (root.full)
    walk_dir(dir, root.path, old_root ? &*old_root : nullptr);
  else
    walk_virtual(dir, root, old_root ? &*old_root : nullptr);
  return finish_run();
}

Result<Id> Archiver::finish_run() {
  drain();
  std::scoped_lock lock(mutex_);
  if (fatal_)
    return fail(*fatal_);
  if (!root_id_)
    return fail(Errc::kIo, "the root tree was not written");
  return *root_id_;
}

void Archiver::walk_virtual(const std::shared_ptr<DirJob>& dir, const TargetNode& target,
                            const Tree* old_tree) {
  dir->children.resize(target.children.size());
  dir->pending += target.children.size();
  std::size_t slot = 0;
  for (const auto& [name, child] : target.children) {
    const Node* old = find_old(old_tree, name);
    if (child.full || stopping()) {
      process_entry(dir, slot++, child.path, name, old);
      continue;
    }
    struct stat st {};
    if (::lstat(child.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      error("lstat " + child.path + ": " + std::strerror(errno));
      deliver(dir, slot++, std::nullopt);
      continue;
    }
    auto node = node_from_stat(child.path, name, st, names_);
    auto sub = std::make_shared<DirJob>();
    sub->node = node ? std::move(*node) : Node{};
    sub->parent = dir;
    sub->slot = slot++;
    sub->had_old = old != nullptr && old->type == NodeType::kDir;
    sub->old_subtree = sub->had_old ? old->subtree : std::nullopt;
    std::optional<Tree> old_sub = load_old_tree(sub->old_subtree, child.path);
    walk_virtual(sub, child, old_sub ? &*old_sub : nullptr);
  }
  release(dir);
}

void Archiver::walk_dir(const std::shared_ptr<DirJob>& dir, const std::string& path,
                        const Tree* old_tree) {
  auto names = list_dir(path);
  if (!names) {
    error(names.error().message);
    if (dir->parent)  // restic leaves an unreadable directory out of the snapshot
      return deliver(dir->parent, dir->slot, std::nullopt);
    names = std::vector<std::string>{};
  }
  excluder_.drop_marked(path, *names);
  dir->children.resize(names->size());
  dir->pending += names->size();
  for (std::size_t i = 0; i < names->size(); ++i) {
    std::string& name = (*names)[i];
    const Node* old = find_old(old_tree, name);
    std::string child = join(path, name);
    process_entry(dir, i, child, std::move(name), old);
  }
  release(dir);
}

void Archiver::process_entry(const std::shared_ptr<DirJob>& dir, std::size_t slot,
                             const std::string& path, std::string name, const Node* old) {
  if (stopping())
    return deliver(dir, slot, std::nullopt);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    error("lstat " + path + ": " + std::strerror(errno));
    return deliver(dir, slot, std::nullopt);
  }
  if (excluder_.excluded(path, st))
    return deliver(dir, slot, std::nullopt);
  auto node = node_from_stat(path, std::move(name), st, names_);
  if (!node) {
    error(node.error().message);
    return deliver(dir, slot, std::nullopt);
  }
  if (node->type == NodeType::kDir)
    return process_dir(dir, slot, path, std::move(*node), old, st);
  if (node->type == NodeType::kFile)
    return process_file(dir, slot, path, std::move(*node), old);
  deliver(dir, slot, std::move(*node));
}

void Archiver::process_dir(const std::shared_ptr<DirJob>& dir, std::size_t slot,
                           const std::string& path, Node node, const Node* old,
                           const struct stat& st) {
  auto sub = std::make_shared<DirJob>();
  sub->node = std::move(node);
  sub->parent = dir;
  sub->slot = slot;
  sub->had_old = old != nullptr && old->type == NodeType::kDir;
  sub->old_subtree = sub->had_old ? old->subtree : std::nullopt;
  if (excluder_.other_filesystem(st))
    return release(sub);  // a mount point: kept, empty
  walk_pool_->submit_or_run([this, sub, path] { walk_subdir(sub, path); });
}

void Archiver::walk_subdir(const std::shared_ptr<DirJob>& dir, const std::string& path) {
  std::optional<Tree> old_tree = load_old_tree(dir->old_subtree, path);
  walk_dir(dir, path, old_tree ? &*old_tree : nullptr);
}

std::optional<Tree> Archiver::load_old_tree(const std::optional<Id>& id, const std::string& path) {
  if (!id)
    return std::nullopt;
  auto t = repo_.load_tree(*id);
  if (!t) {
    warning("parent snapshot's tree of " + path + " unreadable: " + t.error().message);
    return std::nullopt;
  }
  return std::move(*t);
}

bool Archiver::unchanged(const Node& now, const Node* old) const {
  if (options_.force || old == nullptr || old->type != NodeType::kFile)
    return false;
  if (now.mtime != old->mtime || now.size != old->size)
    return false;
  if (!options_.ignore_ctime && now.ctime != old->ctime)
    return false;
  if (!options_.ignore_inode && now.inode != old->inode)
    return false;
  for (const Id& id : old->content) {  // every blob must still be there
    auto where = repo_.lookup({id, BlobType::kData});
    if (!where || !*where)
      return false;
  }
  return true;
}

void Archiver::process_file(const std::shared_ptr<DirJob>& dir, std::size_t slot,
                            const std::string& path, Node node, const Node* old) {
  if (unchanged(node, old)) {
    node.content = old->content;
    ++files_unmodified_;
    bytes_done_ += node.size;
    return deliver(dir, slot, std::move(node));
  }
  auto job = std::make_shared<FileJob>();
  job->node = std::move(node);
  job->path = path;
  job->dir = dir;
  job->slot = slot;
  job->had_old = old != nullptr;
  reader_pool_->submit([this, job] { read_file(job); });
}

void Archiver::deliver(const std::shared_ptr<DirJob>& dir, std::size_t slot,
                       std::optional<Node> node) {
  dir->children[slot] = std::move(node);
  release(dir);
}

void Archiver::release(const std::shared_ptr<DirJob>& dir) {
  if (dir->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
    finish_dir(dir);
}

void Archiver::finish_dir(const std::shared_ptr<DirJob>& dir) {
  Tree tree;
  tree.nodes.reserve(dir->children.size());
  for (auto& child : dir->children) {
    if (child)
      tree.nodes.push_back(std::move(*child));
  }
  dir->children.clear();
  std::string blob = serialize_tree(tree);
  Id id = Id::hash(as_bytes(blob));
  auto stored = store(BlobType::kTree, id, as_bytes(blob));
  if (!stored)
    set_fatal(stored.error());
  if (!dir->parent) {  // the snapshot's root is not counted (as restic)
    std::scoped_lock lock(mutex_);
    root_id_ = id;
    return;
  }
  if (!dir->had_old)
    ++dirs_new_;
  else if (dir->old_subtree == id)
    ++dirs_unmodified_;
  else
    ++dirs_changed_;
  dir->node.subtree = id;
  deliver(dir->parent, dir->slot, std::move(dir->node));
}

Result<bool> Archiver::store(BlobType type, const Id& id, ByteSpan data) {
  if (writer_ != nullptr)
    return writer_->save_blob(type, id, data);
  {
    std::scoped_lock lock(mutex_);
    if (seen_.count(id) != 0)
      return false;
  }
  COFFER_ASSIGN_OR_RETURN(auto where, repo_.lookup({id, type}));
  std::scoped_lock lock(mutex_);
  if (where || !seen_.insert(id).second)
    return false;
  (type == BlobType::kTree ? dry_trees_ : dry_blobs_)++;
  if (type == BlobType::kData)
    dry_bytes_ += data.size();
  return true;
}

void Archiver::set_fatal(const Error& e) {
  std::scoped_lock lock(mutex_);
  if (!fatal_)
    fatal_ = e;
  has_fatal_ = true;
}

bool Archiver::stopping() {
  if (options_.cancel != nullptr && options_.cancel->load(std::memory_order_relaxed)) {
    set_fatal(Error{Errc::kCancelled, "backup cancelled", false});
    return true;
  }
  return has_fatal_.load(std::memory_order_relaxed);
}

void Archiver::error(const std::string& message) {
  ++error_count_;
  std::scoped_lock lock(mutex_);
  errors_.push_back(message);
}

void Archiver::warning(const std::string& message) {
  std::scoped_lock lock(mutex_);
  warnings_.push_back(message);
}

std::vector<std::string> Archiver::take_errors() {
  std::scoped_lock lock(mutex_);
  return std::move(errors_);
}

std::vector<std::string> Archiver::take_warnings() {
  std::scoped_lock lock(mutex_);
  return std::move(warnings_);
}

void Archiver::fill_summary(BackupSummary& s) const {
  s.files_new = files_new_;
  s.files_changed = files_changed_;
  s.files_unmodified = files_unmodified_;
  s.dirs_new = dirs_new_;
  s.dirs_changed = dirs_changed_;
  s.dirs_unmodified = dirs_unmodified_;
  s.total_files_processed = s.files_new + s.files_changed + s.files_unmodified;
  s.total_bytes_processed = bytes_done_;
  if (writer_ != nullptr) {
    WriterStats w = writer_->stats();
    s.data_blobs = w.data_blobs;
    s.tree_blobs = w.tree_blobs;
    s.data_added = w.data_added;
    s.data_added_packed = w.data_added_packed;
  } else {
    s.data_blobs = dry_blobs_;
    s.tree_blobs = dry_trees_;
    s.data_added = dry_bytes_;
  }
}

BackupProgress Archiver::progress() const {
  BackupProgress p;
  p.files_done = files_new_ + files_changed_ + files_unmodified_;
  p.bytes_done = bytes_done_;
  p.dirs_done = dirs_new_ + dirs_changed_ + dirs_unmodified_;
  p.errors = error_count_;
  std::scoped_lock lock(mutex_);
  p.current_files = current_;
  return p;
}

}  // namespace coffer::repo::detail
