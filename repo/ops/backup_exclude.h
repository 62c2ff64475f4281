// What a backup leaves out, with restic's semantics: --exclude / --iexclude patterns on
// absolute paths (repo/ops/filter.h), --exclude-if-present FILE[:HEADER] and
// --exclude-caches for directories, --exclude-larger-than for files, and
// --one-file-system (a mount point below a target is kept as an empty directory).
//
// Thread contract: immutable after create(); const methods are safe to call concurrently.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "repo/core/error.h"
#include "repo/ops/backup.h"
#include "repo/ops/filter.h"

namespace coffer::repo {

class Excluder {
 public:
  // Errors: kInvalidArgument naming a bad pattern.
  static Result<Excluder> create(const ExcludeOptions& options);

  // Devices of the backup targets (--one-file-system stays on these).
  void allow_device(dev_t dev) { devices_.insert(dev); }

  // True when `path` (absolute) with lstat `st` is excluded by a pattern or by size.
  [[nodiscard]] bool excluded(const std::string& path, const struct stat& st) const;

  // Removes from `names` (the entries of directory `path`) what a marker file of
  // --exclude-if-present/--exclude-caches excludes: restic keeps a marked directory holding
  // only its marker file.
  void drop_marked(const std::string& path, std::vector<std::string>& names) const;

  // --one-file-system: true when directory `st` lies on another filesystem and must be
  // kept empty (its contents are not read).
  [[nodiscard]] bool other_filesystem(const struct stat& st) const;

 private:
  struct Marker {
    std::string file, header;
  };
  std::vector<FilterPattern> patterns_, ipatterns_;
  std::vector<Marker> markers_;
  std::uint64_t larger_than_ = 0;
  bool one_file_system_ = false;
  std::set<dev_t> devices_;
};

}  // namespace coffer::repo
