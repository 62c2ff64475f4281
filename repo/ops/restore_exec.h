// Restore execution (internal to repo/ops/restore): turns a Plan into files on disk.
//
// Phases, in order: directories (parents first), special nodes, blob lookups, comparing
// files already in the target (resume), file contents (pack jobs and content-less files on
// a worker pool), hard links, optional verification, directory metadata (deepest first). File
// metadata is applied by whichever worker finishes a file's last blob, so it overlaps with other
// files' contents.
//
// Thread contract: one Restorer per restore; run() is called once, from one thread, and
// starts and joins its workers. Shared state during the content phase: per-file atomics
// (FileState), the creation stripes (mutexes guarding the first create of a file), the
// error log mutex. Lock order: a stripe, then errors_mutex_ (never the other way round).
// Ownership: refers to the Repository, Plan and options of restore_snapshot(), which outlive
// it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <unordered_map>
#include <vector>

#include "repo/index/blob.h"
#include "repo/ops/restore.h"
#include "repo/ops/restore_fs.h"
#include "repo/ops/restore_plan.h"

namespace coffer::repo::restore_detail {

struct Placement {
  std::uint32_t file = 0;  // index into Plan::files
  std::uint64_t offset = 0;
};

struct NeededBlob {
  PackedBlob blob;
  bool found = false;
  std::vector<Placement> placements;
};

struct PackJob {
  Id pack;
  std::uint64_t start = 0, length = 0;
  std::uint32_t priority = 0;        // smallest file index served; jobs run in this order
  std::vector<std::uint32_t> blobs;  // indices into blobs_, by pack offset
};

struct FileState {
  std::atomic<std::uint32_t> remaining{0};  // placements not yet processed
  std::atomic<bool> created{false};         // created and sized in this run
  std::atomic<bool> failed{false};
  std::atomic<bool> ok{false};  // complete, metadata applied
  // Set by check_existing() before the content phase, read-only afterwards:
  bool skip = false;      // resume: already complete in the target
  bool in_place = false;  // resume: an existing file is updated chunk by chunk
  bool absent = false;    // nothing was at the path: create it exclusively
};

struct Progress {
  std::atomic<std::uint64_t> files_done{0}, bytes_done{0}, bytes_written{0};
  std::uint64_t files_total = 0, bytes_total = 0;
};

class FdCache;

class Restorer {
 public:
  Restorer(const Repository& repo, const Plan& plan, const RestoreOptions& options,
           unsigned workers);
  Result<RestoreStats> run();

  // Content-phase entry points used by FdCache and the workers.
  Result<UniqueFd> open_file(std::uint32_t file);
  void fail_file(std::uint32_t file, const std::string& message);

 private:
  [[nodiscard]] bool cancelled() const;
  Result<void> check_cancel() const;
  void report(const std::string& message);

  // restore.cc
  Result<void> run_phases();
  Result<void> create_dirs();
  Result<void> create_others();
  Result<void> link_hardlinks();
  Result<void> verify_files();
  Result<void> finish_dirs();
  void progress_loop(std::stop_token stop) const;
  void print_progress(bool final) const;
  RestoreStats collect_stats();

  // restore_content.cc
  Result<void> locate_blobs();
  bool chunks_of(const Node& node, std::vector<Chunk>& out) const;
  Result<void> check_existing();
  void check_existing_file(std::uint32_t file);
  void add_placements(std::uint32_t file);
  void build_jobs();
  Result<void> restore_contents();
  Result<void> run_pack_job(const PackJob& job);
  void process_blob(const NeededBlob& nb, ByteSpan encrypted, FdCache& cache);
  void place(const Placement& p, ByteSpan plain, bool zero, FdCache& cache);
  void fail_placements(const NeededBlob& nb, const std::string& message);
  void finish_file(std::uint32_t file, int fd);

  static constexpr std::size_t kStripes = 64;

  const Repository& repo_;
  const Plan& plan_;
  const RestoreOptions& options_;
  const unsigned workers_;
  std::unique_ptr<FileState[]> states_;
  std::vector<NeededBlob> blobs_;
  std::unordered_map<Id, std::uint32_t, IdHash> blob_index_;
  std::vector<PackJob> jobs_;
  std::vector<std::uint32_t> plain_files_;    // files with nothing to fetch
  std::vector<std::vector<bool>> keep_;       // in-place files: chunks already right
  std::vector<unsigned char> dir_failed_;     // per Plan::dirs entry: could not be created
  std::array<std::mutex, kStripes> stripes_;  // guard the first create of file i % kStripes
  Progress progress_;
  std::atomic<std::uint64_t> dirs_done_{0}, others_done_{0}, links_done_{0};
  bool show_progress_ = false;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex errors_mutex_;  // guards stats_.errors, stats_.error_messages, on_error calls
  RestoreStats stats_;
};

}  // namespace coffer::repo::restore_detail
