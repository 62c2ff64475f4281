// copy: copying snapshots from one repository into another, as restic 0.14's `copy`.
//
// The two repositories may differ in password, chunker polynomial and version (v1 <-> v2).
// Blobs are copied as they are (no re-chunking; every blob keeps its id): each is loaded and
// checked from the source, then compressed (per the destination's version and compression)
// and encrypted by a RepositoryWriter into the destination. Blobs the destination already has
// are not loaded. Every tree of a snapshot is walked (trees already walked for an earlier
// snapshot of the same run are skipped, as restic does), so a destination holding a tree
// still gets any blob below it that it lacks. A snapshot is saved only after the writer was
// flushed (its packs and index files stored), with "parent" dropped and "original" set to
// the source snapshot's id unless it already names one.
//
// Already copied: a source snapshot is skipped when a destination snapshot (of those given)
// whose id or "original" equals the source snapshot's "original" (or, without one, its id)
// is similar_snapshots to it (restic 0.14's rule).
//
// Failure: the first snapshot that cannot be copied (a source blob fails to load, a write
// fails, cancellation) ends the run, as in restic 0.14; its snapshot is not saved. Unlike
// restic, the blobs stored for it so far are flushed (indexed), so the destination holds no
// unindexed packs and a later run need not copy them again. Snapshots saved before stay.
//
// Thread contract: copy_snapshots is called from one thread and runs its own loader pool;
// the events are called on the calling thread. Both repositories must have their index
// loaded and must not be used by anyone else for writing meanwhile (callers hold a
// non-exclusive lock on each, as restic does).
// Ownership: everything is borrowed and must outlive the call.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/repository.h"
#include "repo/repository_writer.h"

namespace coffer::repo {

// restic 0.14's similarSnapshots: equal time (the same instant), tree, hostname, username,
// uid, gid, the same number of paths, excludes and tags, every path of `b` in `a`, every tag
// of `b` in `a` (restic's HasTags) and the excludes equal in order. Parent, original and
// every other field are ignored.
bool similar_snapshots(const Snapshot& a, const Snapshot& b);

// The destination snapshot that `src` was already copied to, by the rule above, or nullopt.
std::optional<Id> find_copy(const std::vector<SnapshotEntry>& destination,
                            const SnapshotEntry& src);

// The snapshot as copy stores it: "parent" dropped, "original" = src.original or src's id.
Snapshot copied_snapshot(const SnapshotEntry& src);

struct CopyOptions {
  WriterOptions writer;  // pack size and compression of the destination
  unsigned loaders = 0;  // threads loading (and storing) blobs; 0 = automatic
  const std::atomic<bool>* cancel = nullptr;
};

// What copy_snapshots reports while it runs (all optional; called on the calling thread).
struct CopyEvents {
  std::function<void(const SnapshotEntry& src)> on_snapshot;  // before the already-copied check
  std::function<void(const SnapshotEntry& src, const Id& copy)> on_skipped;
  std::function<void(const SnapshotEntry& src)> on_copy_started;
  std::function<void(const SnapshotEntry& src, const Id& saved)> on_saved;
};

struct CopyResult {
  std::size_t copied = 0, skipped = 0;
  WriterStats written;  // blobs, bytes and files stored in the destination
};

// Copies each snapshot of `chosen` (from `src`) into `dst` unless find_copy finds it in
// `dst_snapshots`, in the order given. REQUIRES: both indexes loaded; dst writable.
// Errors: the first failure, with context "snapshot <short id>": kNotFound/kCorrupt/kIo for a
// source blob or tree (naming blob and pack), kIo for destination writes, kCancelled,
// kInvalidArgument (read-only destination, bad writer options).
Result<CopyResult> copy_snapshots(const Repository& src, Repository& dst,
                                  const std::vector<SnapshotEntry>& chosen,
                                  const std::vector<SnapshotEntry>& dst_snapshots,
                                  const CopyOptions& options, const CopyEvents& events = {});

}  // namespace coffer::repo
