// stats: sizes and counts of snapshots, in restic 0.14's four counting modes.
//
//   restore-size       every node of every snapshot counts as a file; sizes add up, except
//                      that within one snapshot a non-zero inode is counted once (hard links).
//   files-by-contents  nodes (of any type) counted once per distinct content list.
//   raw-data           distinct tree and data blobs the snapshots reference; size = their
//                      stored (encrypted, maybe compressed) length.
//   blobs-per-file     for each distinct content list, its blobs counted once per path;
//                      size = plaintext blob sizes.
// These are restic 0.14's rules (cmd/restic/cmd_stats.go), quirks included: directories are
// "files" in restore-size and files-by-contents mode.
//
// Thread contract: runs on the calling thread. Ownership: borrows the Repository, which must
// outlive the call.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

#include "repo/repository.h"

namespace coffer::repo {

enum class StatsMode { kRestoreSize, kFilesByContents, kRawData, kBlobsPerFile };

// "restore-size", "files-by-contents", "raw-data", "blobs-per-file".
const char* stats_mode_name(StatsMode mode);
// The inverse of stats_mode_name. Errors: kInvalidArgument.
Result<StatsMode> parse_stats_mode(std::string_view name);

struct StatsResult {
  std::uint64_t total_size = 0;
  std::uint64_t total_file_count = 0;
  std::uint64_t total_blob_count = 0;
  std::uint64_t snapshots_count = 0;
  // raw-data only: the restore size of the same snapshots, for the deduplication ratio.
  std::uint64_t restore_size = 0;
};

// Computes the statistics of `snapshots` in `mode`. REQUIRES: repo.load_index() done.
// Errors: kNotFound for a blob or tree missing from the index, kCorrupt, kIo, kCancelled.
Result<StatsResult> compute_stats(const Repository& repo,
                                  const std::vector<SnapshotEntry>& snapshots, StatsMode mode,
                                  const std::atomic<bool>* cancel = nullptr);

}  // namespace coffer::repo
