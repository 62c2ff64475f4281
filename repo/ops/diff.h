// diff: the differences between two snapshot trees, as restic 0.14's `diff` computes them
// (cmd/restic/cmd_diff.go), quirks included:
//   - a path in both trees gets "T" when its type changed, then "M" when both are files with
//     different content lists, else (with `metadata`) "U" when restic's Node.Equals fails;
//     only pairs of directories are descended into, so a file that became a directory shows
//     as one "T" line and nothing below it;
//   - a path in one tree only gets "-" or "+", and so does everything below it;
//   - directory paths end in '/', siblings come in byte order of their names (trees of added
//     or removed directories in stored order);
//   - blob statistics: the blobs met on the way (content of files, subtrees of directories,
//     both roots) in the first tree but not the second are "removed" and vice versa, except
//     blobs also referenced inside a subtree both snapshots share; sizes are plaintext sizes.
// Subtrees with the same id in both snapshots are not diffed. They are read only when some
// blob is a removal or addition candidate, to find out whether they reference it (restic's
// rule); that read stops as soon as every candidate is found. Trees load on `workers` threads.
//
// Thread contract: diff_trees runs its callbacks on the calling thread, after the trees are
// compared. Ownership: borrows the Repository, which must outlive the call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "repo/repository.h"

namespace coffer::repo {

// One changed path: "/dir/" or "/dir/file", and restic's modifier ("+", "-", "M", "T", "U",
// "TU").
struct DiffChange {
  std::string path;  // raw bytes
  std::string modifier;
};

// What one side contributed (restic's DiffStat).
struct DiffCounts {
  std::uint64_t files = 0;
  std::uint64_t dirs = 0;
  std::uint64_t others = 0;
  std::uint64_t data_blobs = 0;
  std::uint64_t tree_blobs = 0;
  std::uint64_t bytes = 0;
};

struct DiffStats {
  std::uint64_t changed_files = 0;
  DiffCounts added;
  DiffCounts removed;
};

struct DiffOptions {
  bool metadata = false;  // report metadata-only changes ("U")
  unsigned workers = 0;   // threads loading trees; 0 = as many as the backend and CPUs allow
  const std::atomic<bool>* cancel = nullptr;
  // Called once the trees are compared, before the first on_change (tools/ waits for the
  // repository lock there); its error ends the diff.
  std::function<Result<void>()> before_output;
  std::function<void(const DiffChange&)> on_change;    // each change, in restic's order
  std::function<void(const std::string&)> on_warning;  // a subtree that could not be loaded
};

// Compares the trees `from` and `to` (snapshot roots). REQUIRES: repo.load_index() done.
// A subtree that cannot be loaded is reported through on_warning and skipped, as restic does.
// Errors: the root trees' load errors (kNotFound, kCorrupt, kIo), kCancelled.
Result<DiffStats> diff_trees(const Repository& repo, const Id& from, const Id& to,
                             const DiffOptions& options);

// restic 0.14's Node.Equals: every stored attribute except generic attributes (unknown
// fields, "error" among them, compare as text); times compare as instants, extended
// attributes as a set.
bool restic_node_equals(const Node& a, const Node& b);

}  // namespace coffer::repo
