// Helpers shared by the SnapshotFs tests: path resolution and directory listing.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fs/snapshot_fs.h"

namespace coffer::test {

// Looks up each component of `path` from the root (no symlinks followed).
inline fs::Entry resolve(fs::SnapshotFs& fs, const std::string& path) {
  fs::Entry e;
  e.nodeid = fs::kRootNodeId;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = std::min(path.find('/', start), path.size());
    auto next = fs.lookup(e.nodeid, path.substr(start, end - start));
    REQUIRE(next);
    REQUIRE(next->nodeid != 0);
    e = *next;
    start = end + 1;
  }
  return e;
}

inline std::vector<std::string> list(fs::SnapshotFs& fs, std::uint64_t nodeid,
                                     std::uint64_t offset = 0) {
  auto dir = fs.opendir(nodeid);
  REQUIRE(dir);
  std::vector<std::string> names;
  REQUIRE(fs.readdir(**dir, offset, [&](const fs::DirEntry& e) {
    names.push_back(e.name);
    return true;
  }));
  return names;
}

}  // namespace coffer::test
