// BackupScan: counts the files and bytes a backup will see, on its own thread, so that
// progress can show a percentage (restic's scanner). Applies the same exclusions.
//
// Thread contract: fill() is safe to call from any thread while the scan runs; the
// destructor stops the scan and joins it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "repo/ops/backup_archiver.h"

namespace coffer::repo {

class BackupScan {
 public:
  // Borrows `targets` and `excluder`; both must outlive the scan.
  BackupScan(const detail::TargetNode& targets, const Excluder& excluder,
             const std::atomic<bool>* cancel);
  ~BackupScan();
  BackupScan(const BackupScan&) = delete;
  BackupScan& operator=(const BackupScan&) = delete;

  // Copies the totals so far (and whether the scan is complete) into `p`.
  void fill(BackupProgress& p) const;

 private:
  void scan_target(const detail::TargetNode& node, const std::stop_token& stop);
  void scan_path(const std::string& path, const std::stop_token& stop);

  const Excluder& excluder_;
  const std::atomic<bool>* cancel_;
  std::atomic<std::uint64_t> files_{0}, bytes_{0};
  std::atomic<bool> finished_{false};
  std::jthread thread_;  // last: stopped and joined first
};

}  // namespace coffer::repo
