// The backup's concurrent size scan (see backup_scan.h).
#include "repo/ops/backup_scan.h"

#include <dirent.h>
#include <sys/stat.h>

namespace coffer::repo {

BackupScan::BackupScan(const detail::TargetNode& targets, const Excluder& excluder,
                       const std::atomic<bool>* cancel, unsigned threads)
    : excluder_(excluder), cancel_(cancel) {
  thread_ = std::jthread([this, &targets, threads](std::stop_token stop) {
    {
      WorkPool pool(threads, 4096);
      scan_target(targets, pool, stop);
    }  // joined: every directory queued has been listed (or skipped after a stop)
    finished_ = !stop.stop_requested();
  });
}

BackupScan::~BackupScan() {
  thread_.request_stop();
  if (thread_.joinable())
    thread_.join();
}

void BackupScan::fill(BackupProgress& p) const {
  p.total_files = files_;
  p.total_bytes = bytes_;
  p.scan_finished = finished_;
}

void BackupScan::scan_target(const detail::TargetNode& node, WorkPool& pool,
                             const std::stop_token& stop) {
  if (node.full)
    return scan_path(node.path, pool, stop);
  for (const auto& [name, child] : node.children) {
    if (stop.stop_requested())
      return;
    scan_target(child, pool, stop);
  }
}

// Counts `path`; a directory's entries become jobs of `pool`, so several lstat() calls
// (disk reads, on a cold cache) are in flight at once.
void BackupScan::scan_path(const std::string& path, WorkPool& pool, const std::stop_token& stop) {
  if (stop.stop_requested() || (cancel_ != nullptr && cancel_->load()))
    return;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || excluder_.excluded(path, st))
    return;
  if (S_ISREG(st.st_mode)) {
    ++files_;
    bytes_ += static_cast<std::uint64_t>(st.st_size);
    return;
  }
  if (!S_ISDIR(st.st_mode) || excluder_.other_filesystem(st))
    return;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr)
    return;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..")
      names.emplace_back(n);
  }
  ::closedir(d);
  excluder_.drop_marked(path, names);
  for (auto& n : names) {
    std::string child = path == "/" ? "/" + n : path + "/" + n;
    pool.submit_or_run(
        [this, child = std::move(child), &pool, stop] { scan_path(child, pool, stop); });
  }
}

}  // namespace coffer::repo
