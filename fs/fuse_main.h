// run_mount: mounts a repository's snapshots at a directory and serves them until unmounted.
//
// Steps: check the mount point (exists, is a directory, nothing mounted there, not a dead
// FUSE mount); in daemon mode fork (the repository, the index cache, the chunk store's
// threads and libfuse's threads are all created in the child); open the repository; build
// the tree; take the optional lock; mount (ro, default_permissions, fsname, subtype=coffer,
// optional allow_other); raise the mount's read-ahead to 1 MiB when running as root; serve
// with libfuse's multi-threaded loop (clone_fd) until SIGINT/SIGTERM/SIGHUP or an unmount;
// then unmount and release the lock.
//
// In daemon mode the parent returns once the child has mounted the tree (or with the
// error the child reported before mounting); the child detaches (setsid, stdio to
// /dev/null) and returns when it is unmounted.
//
// Thread contract: call once, from a single-threaded process (it may fork).
// Ownership: everything it creates is released before it returns.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "fs/repo_access.h"
#include "fs/snapshot_fs.h"
#include "repo/repository.h"

namespace coffer::fs {

struct MountConfig {
  std::string mountpoint;
  std::string fsname;  // shown by mount(8), e.g. "coffer:/srv/repo"
  bool daemon = false;
  bool allow_other = false;
  unsigned max_threads = 16;  // libfuse worker threads
  std::string cache_base;     // disk chunk cache at <cache_base>/<repo id>/chunks; "" = none
  // Chunks fetched for random reads go whole into the kernel's page cache
  // (fs/page_cache_fill.h), with at most this many bytes waiting.
  bool page_cache_fill = true;
  std::uint64_t page_cache_fill_pending = 16ULL << 20;
  SnapshotFsOptions fs;
  RepositoryAccessOptions access;
  // Opens the repository with its index loaded (runs in the daemon child).
  std::function<repo::Result<std::unique_ptr<repo::Repository>>()> open_repository;
  // Optional: takes a repository lock; it is held until after the unmount.
  std::function<repo::Result<std::shared_ptr<void>>(repo::Repository&)> take_lock;
};

// Mounts and serves. Errors (all before anything is mounted): kInvalidArgument for a bad
// mount point (missing, not a directory, busy, dead mount), those of open_repository and
// take_lock, kIo if mounting fails. In daemon mode the parent returns {} once mounted.
repo::Result<void> run_mount(const MountConfig& config);

}  // namespace coffer::fs
