// BackupScan: counts the files and bytes a backup will see, on threads of its own, so that
// progress can show a percentage (restic's scanner). Applies the same exclusions. Started
// before the repository is opened (prepare_backup), its walk also warms the kernel's inode
// and dentry caches: on a cold cache the walk waits on the disk, so it runs on several
// threads to keep several reads in flight.
//
// Thread contract: fill() is safe to call from any thread while the scan runs; the
// destructor stops the scan and joins it. The excluder's const methods are called from the
// scan threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "repo/ops/backup_archiver.h"
#include "repo/ops/work_pool.h"

namespace coffer::repo {

class BackupScan {
 public:
  // Borrows `targets` and `excluder`; both must outlive the scan. `threads` walk at once.
  BackupScan(const detail::TargetNode& targets, const Excluder& excluder,
             const std::atomic<bool>* cancel, unsigned threads = 8);
  ~BackupScan();
  BackupScan(const BackupScan&) = delete;
  BackupScan& operator=(const BackupScan&) = delete;

  // Copies the totals so far (and whether the scan is complete) into `p`.
  void fill(BackupProgress& p) const;

 private:
  void scan_target(const detail::TargetNode& node, WorkPool& pool, const std::stop_token& stop);
  void scan_path(const std::string& path, WorkPool& pool, const std::stop_token& stop);

  const Excluder& excluder_;
  const std::atomic<bool>* cancel_;
  std::atomic<std::uint64_t> files_{0}, bytes_{0};
  std::atomic<bool> finished_{false};
  std::jthread thread_;  // last: stopped and joined first
};

}  // namespace coffer::repo
