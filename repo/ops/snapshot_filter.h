// Choosing snapshots: by --host/--tag/--path filters and by "latest", full id or prefix.
//
// Thread contract: pure functions over caller-owned values.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"

namespace coffer::repo {

struct SnapshotFilter {
  std::vector<std::string> hosts;  // any of these hostnames
  std::vector<std::string> tags;   // each entry "a,b" means all of a and b; any entry matches
  std::vector<std::string> paths;  // the snapshot must contain all of these paths
  [[nodiscard]] bool matches(const Snapshot& s) const;
};

// Snapshots that pass `filter`, oldest first.
std::vector<SnapshotEntry> filter_snapshots(const std::vector<SnapshotEntry>& all,
                                            const SnapshotFilter& filter);

// Finds one snapshot: "latest" (newest passing `filter`), a full id or a unique prefix.
// Errors: kNotFound, kInvalidArgument (ambiguous prefix).
Result<SnapshotEntry> find_snapshot(const Repository& repo, std::string_view name,
                                    const SnapshotFilter& filter);

}  // namespace coffer::repo
