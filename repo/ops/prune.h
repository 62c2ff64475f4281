// prune: remove data no snapshot needs, as restic 0.14's `prune` (restic-format.md §14).
//
// plan_prune finds the used blobs (every blob reachable from a snapshot's tree), sorts each
// pack on the backend into keep / repack / delete with restic's rules (--max-unused,
// --max-repack-size, --repack-cacheable-only, --repack-small, duplicates, unindexed packs)
// and counts restic's statistics. execute_prune then changes the repository in an order
// that survives a crash (kill -9) at any moment without losing a blob a snapshot needs:
//   1. delete packs no index names, and temporary files a killed writer left behind;
//   2. copy the used blobs of the packs to repack into new packs, and flush them with
//      their index file (RepositoryWriter);
//   3. write the complete new index (every remaining pack) as new index files;
//   4. delete the old index files;
//   5. delete the packs no longer indexed (unused and repacked ones).
// After a crash, `coffer unlock` removes the stale exclusive lock and a new prune finishes
// the job; in between restic check finds at most unreferenced packs and duplicate index
// entries, which are harmless.
//
// Thread contract: functions; the Repository must outlive the call. The caller must not
// use the repository concurrently. Worker threads run inside plan and execute; `events`
// callbacks are called from the calling thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/index/blob.h"
#include "repo/repository.h"
#include "repo/repository_writer.h"

namespace coffer::repo {

// restic's --max-unused: a percentage of the used size, a number of bytes, or unlimited.
struct MaxUnused {
  enum class Kind { kPercent, kBytes, kUnlimited };
  Kind kind = Kind::kPercent;
  double percent = 5;
  std::uint64_t bytes = 0;

  // The unused bytes tolerated after prune when `used` bytes are used (restic's
  // maxUnusedBytes: p / (100 - p) * used for a percentage).
  [[nodiscard]] std::uint64_t limit(std::uint64_t used) const;
};

// Parses --max-unused as restic does: "unlimited", "N%" (0 <= N < 100, a float) or a size
// for parse_size (repo/core/size.h). Errors: kInvalidArgument with restic's wording.
Result<MaxUnused> parse_max_unused(std::string_view text);

struct PruneOptions {
  MaxUnused max_unused;
  std::uint64_t max_repack_bytes = std::numeric_limits<std::uint64_t>::max();
  bool repack_cacheable_only = false;  // only tree packs are repacked
  bool repack_small = false;           // repack packs below 80 % of pack_size
  bool dry_run = false;
  std::uint64_t pack_size = kDefaultPackSize;  // target size of packs (and of new ones)
  std::vector<Id> ignore_snapshots;            // forget --prune: snapshots just forgotten
};

// restic's pruneStats: blob counts and sizes (encrypted lengths), and pack counts.
struct PruneStats {
  struct Counts {
    std::uint64_t used = 0, duplicate = 0, unused = 0, remove = 0, repack = 0, repackrm = 0;
  };
  Counts blobs, size;
  std::uint64_t size_unref = 0;  // bytes of packs no index names
  struct Packs {
    std::uint64_t used = 0, unused = 0, partly_used = 0, unref = 0, keep = 0, repack = 0,
                  remove = 0;
  } packs;
  std::uint64_t snapshots = 0;     // snapshots whose trees were walked
  std::uint64_t temp_files = 0;    // leftover temporary files of killed writers
  std::uint64_t packs_listed = 0;  // packs on the backend (the "packs processed" count)
};

struct PrunePlan {
  std::vector<Id> remove_first;         // packs no index names: deleted first
  std::vector<Id> repack;               // packs whose used blobs are copied, then deleted
  std::vector<Id> remove;               // packs without a used blob
  std::vector<Id> ignore;               // missing packs without a used blob: dropped from the index
  std::vector<PackedBlob> keep;         // the used blobs to copy out of `repack`
  std::vector<std::string> temp_files;  // backend-relative paths ("data/pending-tmp-...")
  PruneStats stats;
};

// Progress and messages, in restic's wording; any callback may be empty.
struct PruneEvents {
  std::function<void(const std::string&)> step;    // "loading indexes..." (restic's Verbosef)
  std::function<void(const std::string&)> detail;  // -v lines (restic's Verboseff)
  std::function<void(const std::string&)> warn;    // non-fatal problems
  // A finished counter: `n` of `unit` done ("snapshots", "packs processed", "files deleted").
  std::function<void(const std::string& unit, std::uint64_t n)> counted;
  std::function<bool()> cancelled;  // polled between steps and items
};

// Loads the index and decides what to do. REQUIRES: the caller holds an exclusive lock.
// Errors (nothing was changed): kCorrupt when a snapshot needs a blob no index lists
// ("index is not complete"), a tree cannot be loaded, a needed pack is missing from the
// backend ("packs from index missing in repo") or its size differs from the index;
// kCancelled; kIo.
Result<PrunePlan> plan_prune(Repository& repo, const PruneOptions& options,
                             const PruneEvents& events);

// Carries out `plan` (nothing with options.dry_run) in the crash-safe order above.
// REQUIRES: plan_prune's plan, the same exclusive lock still held. Errors: kIo (a failed
// write or index delete; failed pack deletes are only warned about, as restic does),
// kCorrupt (a blob to keep could not be read), kCancelled (stopped between two steps or
// items; the repository is consistent), kUnsupported (read-only backend).
Result<void> execute_prune(Repository& repo, const PrunePlan& plan, const PruneOptions& options,
                           const PruneEvents& events);

}  // namespace coffer::repo
