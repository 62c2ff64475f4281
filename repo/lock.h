// Repository locks (locks/<id>), restic-format.md §11.
//
// Any number of non-exclusive locks, or one exclusive lock and nothing else. A lock is an
// encrypted unpacked JSON file; it is refreshed (a new file replaces the old) every 5
// minutes while held, and removed on release. Stale locks still block: only `unlock`
// judges staleness, as in restic.
//
// Thread contract: a RepoLock is owned by one thread; its refresher thread only touches
// the lock's own state under its mutex. The Repository must outlive the lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "repo/repository.h"

namespace coffer::repo {

struct LockInfo {
  GoTime time;
  bool exclusive = false;
  std::string hostname, username;
  std::int64_t pid = 0;
  std::uint32_t uid = 0, gid = 0;
};

// Parses the decoded JSON of a lock file. Errors: kCorrupt.
Result<LockInfo> parse_lock(std::string_view json);
// Serializes as restic does (uid/gid omitted when 0).
std::string serialize_lock(const LockInfo& lock);

// restic's Lock.Stale: `lock` was taken more than 30 minutes before `now`, or on host `host`
// (this machine) by a process that no longer exists (`process_exists(pid)` is false).
bool lock_is_stale(const LockInfo& lock, const GoTime& now, std::string_view host,
                   const std::function<bool(std::int64_t)>& process_exists);

// Whether process `pid` exists on this machine: kill(pid, 0) succeeds or fails with EPERM.
// Non-positive pids never exist. (restic sends SIGHUP instead and counts EPERM as gone; a
// live process of another user is treated as alive here.)
bool local_process_exists(std::int64_t pid);

// `coffer unlock`: deletes every lock file that lock_is_stale judges stale (unreadable lock
// files are left alone, as restic does), or with `all` every lock file. Returns the number
// deleted. Takes no lock itself. Errors: kUnsupported (read-only backend), kIo.
Result<std::size_t> remove_locks(const Repository& repo, bool all);

class RepoLock {
 public:
  // Takes a lock. Errors: kLocked naming the holder ("locked exclusively by PID 123 on
  // host x since ..."), kUnsupported for a read-only backend, kIo.
  static Result<std::unique_ptr<RepoLock>> acquire(const Repository& repo, bool exclusive);
  ~RepoLock();  // releases (removes the lock file)
  RepoLock(const RepoLock&) = delete;
  RepoLock& operator=(const RepoLock&) = delete;

 private:
  explicit RepoLock(const Repository& repo) : repo_(repo) {}
  struct SealedLock {
    Id id;
    Bytes bytes;
  };
  Result<SealedLock> seal_lock_file();  // the lock file of info_ (time set to now)
  Result<void> save_lock_file(const SealedLock& lock);
  Result<Id> write_lock_file();  // seal_lock_file + save_lock_file
  void release_file();           // removes current_'s file, if any; current_ becomes zero
  void refresh_loop(const std::stop_token& stop);

  const Repository& repo_;  // outlives the lock
  LockInfo info_;
  std::mutex mutex_;  // guards current_
  Id current_;
  std::condition_variable_any wake_;
  std::jthread refresher_;
};

}  // namespace coffer::repo
