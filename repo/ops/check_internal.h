// Shared state of one run_check (repo/ops/check.h) and the phases in check*.cc.
//
// Thread contract: `packs` and `index` are filled by the index phase before any worker
// starts and only read afterwards; report() and the counters are guarded by `mutex_`.
// Ownership: borrows the Repository and the options, which outlive the run.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "repo/index/blob_index.h"
#include "repo/ops/check.h"

namespace coffer::repo::check_detail {

struct CheckPack {
  std::vector<PackedBlob> blobs;  // what the index files say, unique, in offset order
  std::vector<Id> index_files;    // index files naming the pack
  std::uint64_t expected_size = 0;
  std::optional<std::uint64_t> actual_size;  // from the listing; nullopt = missing
};

class CheckRun {
 public:
  CheckRun(const Repository& r, const CheckOptions& o) : repo(r), options(o) {}

  void report(CheckSeverity severity, std::string text);
  void error(std::string text) { report(CheckSeverity::kError, std::move(text)); }
  [[nodiscard]] bool cancelled() const {
    return options.cancel != nullptr && options.cancel->load();
  }
  [[nodiscard]] unsigned workers() const;
  // Adds `delta` to a counter of the summary under the lock.
  void count(std::uint64_t CheckSummary::*field, std::uint64_t delta = 1);
  [[nodiscard]] CheckSummary summary();
  // Calls options.pack_read (if set) under the report lock.
  void pack_read(const Id& pack);

  const Repository& repo;
  const CheckOptions& options;
  std::map<Id, CheckPack> packs;  // every pack an index file names
  MemoryBlobIndex index;          // every indexed blob (the first copy of each)

 private:
  std::mutex mutex_;  // guards summary_ and serializes the report callbacks
  CheckSummary summary_;
};

// Size a pack holding exactly `blobs` has: blobs, header entries, IV+MAC, length field.
std::uint64_t expected_pack_size(const std::vector<PackedBlob>& blobs);

// One line per difference between a pack's header entries and its index entries.
std::vector<std::string> compare_with_index(const Id& pack, std::vector<PackedBlob> header,
                                            const std::vector<PackedBlob>& indexed);

// Orders blobs by offset, then by every other field (for sorting and set differences).
bool blob_position_less(const PackedBlob& a, const PackedBlob& b);

// Reads and parses the header of pack `pack` of `size` bytes: from `whole` (the complete
// file) when given, else by loading the pack's tail. Errors: kCorrupt, kIo, kNotFound.
Result<std::vector<PackedBlob>> read_pack_header(const Repository& repo, const Id& pack,
                                                 std::uint64_t size, const Bytes* whole);

// Reads every index file into run.packs / run.index. Errors: listing failures only.
Result<void> load_index_files(CheckRun& run);
// Compares the pack listing with run.packs. Errors: listing failures only.
Result<void> check_pack_files(CheckRun& run);
// Loads and compares the header of every existing pack not in `skip`.
void check_pack_headers(CheckRun& run, const std::vector<Id>& skip);
// Checks every snapshot and every tree reachable from them. Errors: listing failures only.
Result<void> check_snapshots(CheckRun& run);
// Downloads and verifies `selected` packs on run.workers() threads.
void read_packs(CheckRun& run, const std::vector<Id>& selected);

}  // namespace coffer::repo::check_detail
