#include "repo/ops/copy.h"

#include <algorithm>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "repo/ops/forget.h"  // has_tags
#include "repo/ops/work_pool.h"

namespace coffer::repo {
namespace {

using IdSet = std::unordered_set<Id, IdHash>;

// Every element of `want` is in `have` (restic's Snapshot.HasPaths).
bool has_all(const std::vector<std::string>& have, const std::vector<std::string>& want) {
  return std::all_of(want.begin(), want.end(), [&](const std::string& w) {
    return std::find(have.begin(), have.end(), w) != have.end();
  });
}

bool cancelled(const CopyOptions& o) { return o.cancel != nullptr && o.cancel->load(); }

unsigned loader_count(const Repository& src, const CopyOptions& o) {
  if (o.loaders != 0)
    return o.loaders;
  unsigned n =
      std::max(src.backend().properties().max_connections, std::thread::hardware_concurrency());
  return std::clamp(n, 1U, 8U);
}

// Copies the trees below one root and every blob they reference that the destination lacks.
// Tree and data jobs run on a WorkPool; a job submits its children with submit_or_run, so
// the queue (and the blobs in memory: one per running job) stays bounded.
class TreeCopier {
 public:
  // `visited` (trees walked in this run, shared by all snapshots) outlives the copier.
  TreeCopier(const Repository& src, RepositoryWriter& dst, IdSet& visited,
             const CopyOptions& options)
      : src_(src), dst_(dst), options_(options), visited_(visited) {}

  Result<void> copy(const Id& root) {
    if (!first_visit(root))
      return {};
    unsigned threads = loader_count(src_, options_);
    {
      WorkPool pool(threads, 2 * static_cast<std::size_t>(threads));
      pool_ = &pool;
      pool.submit([this, root] { copy_tree(root); });
      pool.join();
      pool_ = nullptr;
    }
    if (error_)
      return fail(*error_);
    if (cancelled(options_))
      return fail(Errc::kCancelled, "interrupted");
    return {};
  }

 private:
  bool stopped() const { return failed_.load() || cancelled(options_); }

  void record(const Error& e) {
    std::scoped_lock lock(mutex_);
    if (!error_)
      error_ = e;
    failed_ = true;
  }

  bool first_visit(const Id& tree) {
    std::scoped_lock lock(mutex_);
    return visited_.insert(tree).second;
  }

  bool first_queued(const Id& data) {
    std::scoped_lock lock(mutex_);
    return queued_.insert(data).second;
  }

  void copy_tree(const Id& id) {
    if (stopped())
      return;
    auto raw = src_.load_blob(BlobHandle{id, BlobType::kTree});
    if (!raw)
      return record(raw.error());
    auto tree = parse_tree(*raw);
    if (!tree)
      return record(tree.error().with_context("tree " + id.hex()));
    // The raw bytes are stored, not a re-serialization: the id stays the same whatever
    // fields this version of the tree parser knows.
    if (auto saved = dst_.save_blob(BlobType::kTree, id, *raw); !saved)
      return record(saved.error());
    raw->clear();
    raw->shrink_to_fit();
    for (const Node& node : tree->nodes) {
      if (auto queued = queue_content(node); !queued)
        return record(queued.error());
      if (node.subtree && first_visit(*node.subtree))
        pool_->submit_or_run([this, sub = *node.subtree] { copy_tree(sub); });
    }
  }

  Result<void> queue_content(const Node& node) {
    for (const Id& blob : node.content) {
      if (stopped() || !first_queued(blob))
        continue;
      COFFER_ASSIGN_OR_RETURN(bool present, dst_.has_blob(BlobType::kData, blob));
      if (!present)
        pool_->submit_or_run([this, blob] { copy_data(blob); });
    }
    return {};
  }

  void copy_data(const Id& id) {
    if (stopped())
      return;
    auto data = src_.load_blob(BlobHandle{id, BlobType::kData});
    if (!data)
      return record(data.error());
    if (auto saved = dst_.save_blob(BlobType::kData, id, *data); !saved)
      record(saved.error());
  }

  const Repository& src_;
  RepositoryWriter& dst_;
  const CopyOptions& options_;
  WorkPool* pool_ = nullptr;  // set while copy() runs
  std::atomic<bool> failed_{false};
  std::mutex mutex_;  // guards visited_, queued_, error_
  IdSet& visited_;
  IdSet queued_;  // data blobs handed to a job (or found present) by this copier
  std::optional<Error> error_;
};

// Copies one snapshot's blobs, flushes the writer and saves the snapshot.
Result<Id> copy_one(const Repository& src, RepositoryWriter& writer, IdSet& visited,
                    const SnapshotEntry& e, const CopyOptions& options) {
  TreeCopier copier(src, writer, visited, options);
  auto copied = copier.copy(e.snapshot.tree);
  auto flushed = writer.flush();  // also after a failure: what was stored gets indexed
  std::string context = "snapshot " + e.id.short_hex();
  if (!copied)
    return fail(copied.error().with_context(context));
  if (!flushed)
    return fail(flushed.error().with_context(context));
  auto saved = writer.save_unpacked(FileKind::kSnapshot, serialize_snapshot(copied_snapshot(e)));
  if (!saved)
    return fail(saved.error().with_context(context));
  return *saved;
}

}  // namespace

bool similar_snapshots(const Snapshot& a, const Snapshot& b) {
  if ((a.time <=> b.time) != 0 || a.tree != b.tree || a.hostname != b.hostname ||
      a.username != b.username || a.uid != b.uid || a.gid != b.gid ||
      a.paths.size() != b.paths.size() || a.excludes.size() != b.excludes.size() ||
      a.tags.size() != b.tags.size()) {
    return false;
  }
  return has_all(a.paths, b.paths) && has_tags(a, b.tags) && a.excludes == b.excludes;
}

std::optional<Id> find_copy(const std::vector<SnapshotEntry>& destination,
                            const SnapshotEntry& src) {
  const Id persistent = src.snapshot.original.value_or(src.id);
  for (const auto& d : destination) {
    bool same_origin = d.id == persistent || d.snapshot.original == persistent;
    if (same_origin && similar_snapshots(d.snapshot, src.snapshot))
      return d.id;
  }
  return std::nullopt;
}

Snapshot copied_snapshot(const SnapshotEntry& src) {
  Snapshot s = src.snapshot;
  s.parent.reset();  // the parent has no meaning in the destination
  if (!s.original)
    s.original = src.id;
  return s;
}

Result<CopyResult> copy_snapshots(const Repository& src, Repository& dst,
                                  const std::vector<SnapshotEntry>& chosen,
                                  const std::vector<SnapshotEntry>& dst_snapshots,
                                  const CopyOptions& options, const CopyEvents& events) {
  COFFER_ASSIGN_OR_RETURN(auto writer, RepositoryWriter::create(dst, options.writer));
  CopyResult result;
  IdSet visited;
  for (const auto& e : chosen) {
    if (cancelled(options))
      return fail(Errc::kCancelled, "interrupted");
    if (events.on_snapshot)
      events.on_snapshot(e);
    if (auto copy = find_copy(dst_snapshots, e)) {
      ++result.skipped;
      if (events.on_skipped)
        events.on_skipped(e, *copy);
      continue;
    }
    if (events.on_copy_started)
      events.on_copy_started(e);
    COFFER_ASSIGN_OR_RETURN(Id saved, copy_one(src, *writer, visited, e, options));
    ++result.copied;
    if (events.on_saved)
      events.on_saved(e, saved);
  }
  result.written = writer->stats();
  return result;
}

}  // namespace coffer::repo
