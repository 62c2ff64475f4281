#include "fs/repo_access.h"

#include <optional>

#include "repo/core/log.h"

namespace coffer::fs {

using repo::Errc;
using repo::Result;

namespace {

// Rough heap footprint of a parsed tree, for the cache budget.
std::uint64_t tree_weight(const repo::Tree& tree) {
  std::uint64_t bytes = sizeof(repo::Tree);
  for (const repo::Node& n : tree.nodes) {
    bytes += sizeof(repo::Node) + n.name.size() + n.linktarget.size() + n.user.size() +
             n.group.size() + n.content.size() * sizeof(repo::Id);
    for (const auto& x : n.xattrs) bytes += sizeof(x) + x.name.size() + x.value.size();
  }
  return bytes;
}

}  // namespace

RepositoryAccess::RepositoryAccess(repo::Repository& repo, const RepositoryAccessOptions& options)
    : repo_(repo), reload_interval_(options.reload_interval), trees_(options.tree_cache_bytes) {}

RepositoryAccess::~RepositoryAccess() = default;

Result<std::unique_ptr<RepositoryAccess>> RepositoryAccess::open(
    repo::Repository& repo, const RepositoryAccessOptions& options) {
  std::unique_ptr<RepositoryAccess> access(new RepositoryAccess(repo, options));
  ChunkStoreOptions chunks = options.chunks;
  chunks.index_lock = &access->gate_;
  chunks.reload_interval = options.reload_interval;
  RepositoryAccess* self = access.get();
  chunks.reload_index = [self]() -> Result<void> {
    std::scoped_lock serial(self->reload_mutex_);
    return self->reload_now();
  };
  COFFER_ASSIGN_OR_RETURN(access->store_, ChunkStore::open(repo, std::move(chunks)));
  return access;
}

Result<std::vector<repo::Id>> RepositoryAccess::snapshot_ids() {
  return repo_.list_ids(repo::FileKind::kSnapshot);
}

Result<repo::Snapshot> RepositoryAccess::load_snapshot(const repo::Id& id) {
  COFFER_ASSIGN_OR_RETURN(repo::Bytes json, repo_.load_unpacked(repo::FileKind::kSnapshot, id));
  auto parsed = repo::parse_snapshot(repo::as_chars(json));
  if (!parsed)
    return repo::fail(parsed.error().with_context("snapshot " + id.short_hex()));
  return parsed;
}

// Runs `fn` (which looks blobs up) under the shared gate; on kNotFound reloads the index
// once and runs it again.
template <class T>
Result<T> RepositoryAccess::with_retry(const std::function<Result<T>()>& fn) {
  for (int attempt = 0;; ++attempt) {
    std::uint64_t seen = 0;
    std::optional<Result<T>> r;
    {
      std::shared_lock lock(gate_);
      seen = generation_;
      r.emplace(fn());
    }
    if (*r || r->error().code != Errc::kNotFound || attempt > 0 || !reload_after_miss(seen))
      return std::move(*r);
  }
}

bool RepositoryAccess::reload_after_miss(std::uint64_t seen_generation) {
  std::scoped_lock serial(reload_mutex_);
  if (generation_ != seen_generation)
    return true;  // someone reloaded since the miss
  auto now = std::chrono::steady_clock::now();
  if (last_reload_ != std::chrono::steady_clock::time_point{} &&
      now - last_reload_ < reload_interval_)
    return false;
  repo::log::info("a blob was not found; reloading the index");
  if (auto r = reload_now(); !r) {
    repo::log::warn("reloading the index failed: " + r.error().message);
    return false;
  }
  return true;
}

Result<void> RepositoryAccess::reload_now() {
  std::unique_lock lock(gate_);
  auto r = repo_.reload_index();
  ++generation_;
  last_reload_ = std::chrono::steady_clock::now();
  return r;
}

Result<void> RepositoryAccess::refresh_index() {
  std::scoped_lock serial(reload_mutex_);
  std::unique_lock lock(gate_);
  auto r = repo_.load_index();
  ++generation_;
  return r;
}

Result<TreePtr> RepositoryAccess::load_tree(const repo::Id& id) {
  if (auto hit = trees_.get(id))
    return hit;
  COFFER_ASSIGN_OR_RETURN(repo::Tree tree,
                          with_retry<repo::Tree>([&] { return repo_.load_tree(id); }));
  auto ptr = std::make_shared<const repo::Tree>(std::move(tree));
  trees_.put(id, ptr, tree_weight(*ptr));
  return ptr;
}

Result<ChunksPtr> RepositoryAccess::file_chunks(const std::vector<repo::Id>& content) {
  COFFER_ASSIGN_OR_RETURN(FileChunks chunks, with_retry<FileChunks>([&] {
                            return FileChunks::build(repo_, store_->zeros(), content);
                          }));
  return std::make_shared<const FileChunks>(std::move(chunks));
}

Result<std::uint64_t> RepositoryAccess::read(const FileChunks& file, ReadStream& stream,
                                             std::uint64_t offset, std::uint64_t size,
                                             std::vector<ReadSegment>& out,
                                             std::vector<FetchedChunk>* fetched) {
  // No gate here: the chunk store takes it around its own look-ups, and may reload.
  return read_file_segments(*store_, file, stream, offset, size, out, fetched);
}

}  // namespace coffer::fs
