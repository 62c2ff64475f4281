// The backup's concurrent size scan (see backup_scan.h).
#include "repo/ops/backup_scan.h"

#include <dirent.h>
#include <sys/stat.h>

namespace coffer::repo {

BackupScan::BackupScan(const detail::TargetNode& targets, const Excluder& excluder,
                       const std::atomic<bool>* cancel)
    : excluder_(excluder), cancel_(cancel) {
  thread_ = std::jthread([this, &targets](std::stop_token stop) {
    scan_target(targets, stop);
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

void BackupScan::scan_target(const detail::TargetNode& node, const std::stop_token& stop) {
  if (node.full)
    return scan_path(node.path, stop);
  for (const auto& [name, child] : node.children) {
    if (stop.stop_requested())
      return;
    scan_target(child, stop);
  }
}

void BackupScan::scan_path(const std::string& path, const std::stop_token& stop) {
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
  for (const auto& n : names) scan_path(path == "/" ? "/" + n : path + "/" + n, stop);
}

}  // namespace coffer::repo
