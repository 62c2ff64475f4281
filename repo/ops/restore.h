// restore: writes the contents of a snapshot (or a path inside it) to a local directory.
//
// The tree is walked from the snapshot root or from `subpath`, filtered by include and
// exclude patterns (repo/ops/filter.h; paths are "/a/b.txt" relative to the restored root,
// as restic's restore uses them). It then creates directories, files, symlinks (raw target
// bytes), hard links (nodes with links > 1 and equal (device_id, inode)), fifos and device
// nodes (root only; otherwise an error is counted); sockets are skipped.
//
// File contents: every needed data blob is grouped by pack; a pool of worker threads reads
// ranges of adjacent needed blobs (at most kMaxRangeBytes per read) with one backend load,
// decodes each blob once and pwrite()s it at every offset of every file that uses it.
// All-zero blobs are not written and the final size is set with ftruncate, so sparse files
// restore sparse. Metadata follows the contents, applied by the worker that wrote a file's
// last blob: size, chown (numeric), chmod (not symlinks), xattrs, then atime/mtime;
// directories last, deepest first, so their mtimes stick.
//
// Resume and restoring over an old copy: a regular file already at a target path is read
// and compared chunk by chunk (SHA-256) with the snapshot. If all chunks and the size agree,
// its contents are left alone (counted in files_skipped; metadata is still applied).
// Otherwise it is updated in place: its mtime is first reset to "now" (so an interrupted
// update never looks complete; the node's mtime is set last), then only the chunks that
// differ are fetched and written. A file whose contents failed (a corrupt or missing blob,
// an I/O error) is removed and reported; it is never left looking whole. Per-file problems
// are counted in RestoreStats::errors and do not stop the restore.
//
// Thread contract: restore_snapshot() may run concurrently with other const uses of the
// Repository (it only calls its const methods); it starts and joins its own threads.
// `options.cancel`, when set, is polled from those threads and must outlive the call.
// Ownership: nothing is retained after the call returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "repo/core/error.h"
#include "repo/snapshot/snapshot.h"

namespace coffer::repo {

class Repository;

struct RestoreOptions {
  std::string target;                 // directory to restore into; created if missing
  std::string subpath;                // path inside the snapshot ("" or "/" = whole snapshot)
  std::vector<std::string> includes;  // restore only what these select (plus parent dirs)
  std::vector<std::string> excludes;  // never restore what these select
  bool verify = false;                // re-read each restored file and check every chunk's SHA-256
  bool progress = false;  // one updating status line on stderr, only when stderr is a TTY
  const std::atomic<bool>* cancel = nullptr;  // set to true to stop soon (kCancelled)
  // Called once after the trees are walked and before anything is written to the target;
  // an error ends the restore with that error. The CLI waits here for its repository lock.
  std::function<Result<void>()> before_writing;
  // Worker threads; 0 = 2 * backend max_connections (at least 2; for a local backend at
  // most max(4, 2 * CPUs)).
  unsigned workers = 0;
  // Called (from any worker thread, serialized) once per error as it happens, e.g. to
  // print it. The same messages are also collected in RestoreStats::error_messages.
  std::function<void(const std::string&)> on_error;
};

struct RestoreStats {
  std::uint64_t files = 0;          // regular files restored, including resumed ones
  std::uint64_t files_skipped = 0;  // of those, already right in the target (resume)
  std::uint64_t hardlinks = 0;      // extra names created with link()
  std::uint64_t dirs = 0;
  std::uint64_t others = 0;         // symlinks, fifos, device nodes
  std::uint64_t bytes = 0;          // total size of the restored files
  std::uint64_t bytes_written = 0;  // bytes actually written (zero blocks and skips excluded)
  std::uint64_t errors = 0;
  std::vector<std::string> error_messages;  // the first kMaxErrorMessages errors
};

inline constexpr std::size_t kMaxErrorMessages = 1000;
inline constexpr std::uint64_t kMaxRangeBytes = 8ULL << 20;

// Restores `snapshot` from `repo` per `options`.
// REQUIRES: repo.load_index() has completed.
// Returns the statistics even when some files failed (check `errors`; the CLI maps
// errors > 0 to exit code 3). Errors: kInvalidArgument (bad pattern, no target),
// kNotFound (subpath not in the snapshot), kCorrupt/kIo (the root tree cannot be read or
// the target cannot be created), kCancelled (options.cancel was set; unfinished files keep
// a fresh mtime, and a later restore into the same target completes them).
Result<RestoreStats> restore_snapshot(const Repository& repo, const Snapshot& snapshot,
                                      const RestoreOptions& options);

}  // namespace coffer::repo
