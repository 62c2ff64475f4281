// backup: read files from the local filesystem into a new snapshot (restic's archiver).
//
// The walk runs on one thread (readdir + lstat in name order); regular files go to a pool
// of reader threads that read (sparse files by SEEK_DATA/SEEK_HOLE), chunk with restic's
// chunker and hand chunks to a pool of blob threads that hash, compress, encrypt and store
// them through a RepositoryWriter. A directory's tree blob is written as soon as its last
// child is done, so trees are stored children first and the walk never waits for a file.
// Files unchanged since the parent snapshot (same mtime, ctime, size and inode, content all
// indexed) are not read again. Memory is bounded by the queue depths, not by file sizes.
//
// Thread contract: run_backup is called from one thread and creates its own workers. The
// progress callback is called from a background thread.
// Ownership: everything borrowed (repository, options, cancel flag) must outlive the call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/repository.h"
#include "repo/repository_writer.h"

namespace coffer::repo {

struct ExcludeOptions {
  std::vector<std::string> excludes;            // restic patterns, matched on absolute paths
  std::vector<std::string> iexcludes;           // the same, case-insensitive
  std::vector<std::string> exclude_if_present;  // FILE or FILE:HEADER
  bool exclude_caches = false;                  // CACHEDIR.TAG with its signature
  std::uint64_t exclude_larger_than = 0;        // bytes; 0 = no limit (files only)
  bool one_file_system = false;
};

// A source of the snapshot's only file when backing up standard input or a command.
struct StdinSource {
  std::string filename = "stdin";    // the node name and path "/<filename>"
  std::vector<std::string> command;  // empty: read standard input; else run this argv
};

struct BackupOptions {
  std::vector<std::string> paths;  // as given (relative ones are resolved like restic)
  std::optional<StdinSource> stdin_source;
  ExcludeOptions exclude;
  // The snapshot's "excludes"; nullopt: exclude.excludes. restic records only the --exclude
  // flags, not the patterns read from --exclude-file.
  std::optional<std::vector<std::string>> recorded_excludes;
  std::vector<std::string> tags;
  std::string hostname;        // "" = this host
  std::optional<GoTime> time;  // snapshot time; nullopt = now
  std::optional<Id> parent;    // explicit parent snapshot
  bool force = false;          // read every file, ignore the parent
  bool ignore_inode = false, ignore_ctime = false;
  bool dry_run = false;  // read and chunk everything, store nothing
  WriterOptions writer;
  unsigned readers = 0;  // file reader threads; 0 = auto
  const std::atomic<bool>* cancel = nullptr;
  std::string program_version = "coffer";
  // Called once, before any file is read, with the parent used (nullopt: none).
  std::function<void(const std::optional<Id>& parent)> on_parent;
};

struct BackupProgress {
  double seconds = 0;
  std::uint64_t files_done = 0, bytes_done = 0, dirs_done = 0;
  std::uint64_t total_files = 0, total_bytes = 0;  // from a concurrent scan; 0 until known
  bool scan_finished = false;
  std::uint64_t errors = 0;
  std::vector<std::string> current_files;
};

struct BackupSummary {
  GoTime backup_start, backup_end;
  std::uint64_t files_new = 0, files_changed = 0, files_unmodified = 0;
  std::uint64_t dirs_new = 0, dirs_changed = 0, dirs_unmodified = 0;
  std::uint64_t data_blobs = 0, tree_blobs = 0;
  std::uint64_t data_added = 0, data_added_packed = 0;
  std::uint64_t total_files_processed = 0, total_bytes_processed = 0;
};

struct BackupResult {
  std::optional<Id> snapshot_id;  // nullopt on a dry run
  std::optional<Id> parent_id;    // the parent used for change detection
  BackupSummary summary;
  std::vector<std::string> errors;    // unreadable items (the snapshot lacks them)
  std::vector<std::string> warnings;  // e.g. files that changed while being read
};

using ProgressFn = std::function<void(const BackupProgress&)>;

// The part of a backup that needs no repository: the targets checked and resolved, the
// exclusions compiled, and the scan of the targets (sizes for progress) running on its own
// threads. Preparing before the repository is opened lets the scan's cold, I/O-bound walk
// overlap the CPU-bound key derivation, and warms the kernel's inode and dentry caches for
// the archiver.
struct BackupSources;
struct BackupSourcesDeleter {
  void operator()(BackupSources* s) const;
};
using PreparedSources = std::unique_ptr<BackupSources, BackupSourcesDeleter>;

// Prepares the backup of `options` (which must outlive the result). Errors: those of
// run_backup about paths and patterns (kInvalidArgument).
Result<PreparedSources> prepare_backup(const BackupOptions& options);

// Backs up `options.paths` (or the stdin source) into `repo` and saves a snapshot, from
// `sources` (prepare_backup of the same options; prepared here when null).
// REQUIRES: repo.load_index() done, the caller holds a (non-exclusive) lock.
// Errors: kInvalidArgument (no paths, a path that does not exist, bad pattern), kIo
// (repository writes), kCancelled, kIo for a failing stdin command (no snapshot saved).
// Unreadable files are not errors: they are listed in BackupResult::errors.
Result<BackupResult> run_backup(Repository& repo, const BackupOptions& options,
                                const ProgressFn& progress = {}, PreparedSources sources = {});

// The snapshot `paths` of a backup of `targets` (absolute, cleaned, in order, unique).
Result<std::vector<std::string>> absolute_targets(const std::vector<std::string>& targets);

}  // namespace coffer::repo
