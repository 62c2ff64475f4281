// check: verifies a repository's structure and, optionally, every byte of its packs, as
// restic 0.14's `check` does (restic-format.md §6, §7, §16), and names every problem found.
//
// Phases, each reported through CheckOptions::phase:
//   "load indexes"      every index file is read from the backend (never from the LMDB cache)
//                       and parsed; a damaged one is an error naming the file.
//   "check all packs"   every pack an index names must exist with the size the index implies;
//                       packs no index names are reported as kInfo (as restic: not an error).
//                       The header of every pack that is not read in full is loaded (the
//                       pack's tail only) and compared entry by entry with the index.
//   "check snapshots, trees and blobs"  every snapshot decrypts and parses, every tree it
//                       reaches loads and decodes, and every blob a tree names is indexed.
//   "read data"         (with a read-data subset) selected packs are downloaded in full by
//                       parallel workers: SHA-256 equals the name, the header equals the index,
//                       every blob decrypts, decompresses and hashes to its id.
// Duplicate packs and mixed tree/data packs are hints, not errors. The check continues after
// every problem; only failures to list the repository end it early.
//
// Thread contract: run_check uses worker threads internally; the report callbacks are called
// one at a time (serialized), possibly from a worker thread. Ownership: borrows the
// Repository, which must outlive the call. Memory: the index (about 100 bytes per blob), the
// set of visited trees, and at most `workers` packs in flight during "read data".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "repo/repository.h"

namespace coffer::repo {

// Which packs "read data" reads (restic's --read-data / --read-data-subset).
struct ReadDataSubset {
  enum class Kind { kNone, kAll, kBucket, kPercent, kSize };
  Kind kind = Kind::kNone;
  unsigned n = 0, t = 0;    // kBucket: group n of t (1 <= n <= t <= 256)
  double percent = 0;       // kPercent: 0 < percent <= 100
  std::uint64_t bytes = 0;  // kSize
};

// Parses a --read-data-subset value: "n/t", "x%" or a size ("500M", "2G", "1024").
// Errors: kInvalidArgument with restic 0.14's message.
Result<ReadDataSubset> parse_read_data_subset(std::string_view text);

// restic's choice: kAll every pack; kBucket the packs whose id's first byte % t == n-1;
// kPercent int(count*percent/100) random packs (at least one when there are packs); kSize
// the percentage `bytes` is of the total size (capped at 100 %). `packs` maps pack -> size.
std::vector<Id> select_packs(const std::map<Id, std::uint64_t>& packs, const ReadDataSubset& s,
                             std::mt19937_64& rng);

enum class CheckSeverity { kError, kHint, kInfo };

struct CheckMessage {
  CheckSeverity severity = CheckSeverity::kError;
  std::string text;  // one line, e.g. "pack 3fa2...: does not exist"
};

struct CheckOptions {
  ReadDataSubset read_data;
  unsigned workers = 0;       // pack readers; 0 = backend max_connections (at least 2)
  bool check_headers = true;  // compare pack headers with the index without --read-data
  std::function<void(const CheckMessage&)> report;    // every problem, hint and note
  std::function<void(std::string_view phase)> phase;  // phase names, see above
  std::function<void(std::uint64_t done, std::uint64_t total)> snapshot_progress;
  std::function<void(std::uint64_t done, std::uint64_t total)> pack_progress;  // read data
  std::function<void(const Id& pack)> pack_read;  // after each pack of "read data"
  // Before "read data": how many of the indexed packs were selected.
  std::function<void(std::uint64_t selected, std::uint64_t indexed)> packs_selected;
  const std::atomic<bool>* cancel = nullptr;  // set by another thread to stop (kCancelled)
};

struct CheckSummary {
  std::uint64_t errors = 0, hints = 0;
  std::uint64_t index_files = 0, packs = 0, orphaned_packs = 0;
  std::uint64_t snapshots = 0, trees = 0;
  std::uint64_t packs_selected = 0, packs_read = 0;  // "read data"
  std::uint64_t bytes_read = 0;
};

// Runs the check. Problems go to options.report and are counted, they are not errors of the
// call. Errors: kIo or kNotFound when a file list cannot be read, kInvalidArgument for a bad
// option, kCancelled.
Result<CheckSummary> run_check(const Repository& repo, const CheckOptions& options);

}  // namespace coffer::repo
