// Private to repo/ops/prune*.cc: helpers shared by planning and executing a prune.
//
// Thread contract: functions; the Repository outlives every call.
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

#include "repo/core/id.h"
#include "repo/ops/prune.h"

namespace coffer::repo::prune_detail {

struct HandleHash {
  std::size_t operator()(const BlobHandle& h) const noexcept {
    return IdHash{}(h.id) ^ static_cast<std::size_t>(h.type);
  }
};
using BlobSet = std::unordered_set<BlobHandle, HandleHash>;
using IdSet = std::unordered_set<Id, IdHash>;

// restic's pack header overhead (encrypted header IV + MAC, and the length field).
inline constexpr std::uint64_t kPackHeaderOverhead = 36;

// Every index file, and the union of their entries with each pack taken from the first
// file (in id order) that lists it, so a pack named twice is counted once.
struct LoadedIndex {
  std::vector<Id> files;
  std::vector<PackedBlob> blobs;
};

// Loads and parses every index file (in parallel). Errors: kCorrupt, kIo.
Result<LoadedIndex> load_all_index(const Repository& repo);

// The blobs reachable from the trees of every snapshot except `ignore`; counts the
// snapshots in `snapshots`. Errors: kCorrupt ("unable to load a tree ..."), kCancelled.
Result<BlobSet> find_used_blobs(const Repository& repo, const std::vector<Id>& ignore,
                                const PruneEvents& events, std::uint64_t& snapshots);

// Temporary files a killed writer left (LocalBackend only): data/pending-tmp-* and
// <kind dir>/.../<id>-tmp-*; backend-relative paths.
std::vector<std::string> leftover_temp_files(const Repository& repo);

// Writes the index of every pack in `index` not in `drop` as new index files (restic
// 0.14's MasterIndex.Save: at most 50 000 blobs, v2 150 000, per file; the first lists the
// old files in "supersedes"). Returns the number of packs written. Errors: kIo.
Result<std::uint64_t> write_new_index(Repository& repo, const LoadedIndex& index,
                                      const IdSet& drop);

// Deletes files of `kind` in parallel. With `checked` the first failure is returned;
// otherwise failures are reported through events.warn and skipped (restic's DeleteFiles).
Result<void> delete_files(const Repository& repo, FileKind kind, const std::vector<Id>& ids,
                          bool checked, const PruneEvents& events);

// Calls the event if it is set.
void emit(const std::function<void(const std::string&)>& fn, const std::string& text);
bool is_cancelled(const PruneEvents& events);

}  // namespace coffer::repo::prune_detail
