// Process-wide cancellation of remote I/O: the hook through which Ctrl-C reaches the backends'
// retry loops and transfers, which sit below every ops:: function and have no options of their
// own to carry a flag (restic cancels its context; this is the same, for one process).
//
// The front end installs the flag its signal handler sets (tools/main.cc installs
// tools::interrupted()); the remote backends (repo/backend/http, b2, rest) consult
// cancel_requested() before each request, while a transfer runs (curl's progress callback) and
// while they wait a backoff, and then fail with kCancelled. Nothing else in repo/ needs it: the
// ops take their own `cancel` option.
//
// A thread may shield itself (CancelShield) for work that must still happen after Ctrl-C or a
// failure, such as deleting the command's lock file.
//
// Thread contract: every function is safe from any thread; set_cancel_flag is meant to be
// called once, before any backend is used. Ownership: the flag is borrowed and must outlive
// every use (a process-lifetime object such as tools::interrupted()).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace coffer::repo {
namespace cancel_detail {
inline std::atomic<const std::atomic<bool>*>& installed() {
  static std::atomic<const std::atomic<bool>*> flag{nullptr};
  return flag;
}
inline int& shield_depth() {
  thread_local int depth = 0;
  return depth;
}
}  // namespace cancel_detail

// Installs `flag` as the process's cancel request; nullptr removes it.
inline void set_cancel_flag(const std::atomic<bool>* flag) noexcept {
  cancel_detail::installed().store(flag);
}

// True once the installed flag is set, unless the calling thread is shielded.
inline bool cancel_requested() noexcept {
  const std::atomic<bool>* flag = cancel_detail::installed().load(std::memory_order_relaxed);
  return flag != nullptr && flag->load(std::memory_order_relaxed) &&
         cancel_detail::shield_depth() == 0;
}

// Sleeps for `d`, waking every 50 ms to look at cancel_requested(). Returns false if the sleep
// ended early because of a cancel request.
inline bool sleep_unless_cancelled(std::chrono::duration<double, std::milli> d) {
  constexpr std::chrono::duration<double, std::milli> kSlice{50};
  auto end = std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  for (;;) {
    if (cancel_requested())
      return false;
    auto left = end - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero())
      return true;
    std::this_thread::sleep_for(
        std::min(left, std::chrono::duration_cast<std::chrono::steady_clock::duration>(kSlice)));
  }
}

// True on a thread inside a CancelShield: its work must happen even now (the HTTP client also
// lets such a request probe a server its circuit breaker has given up on).
inline bool cancel_shielded() noexcept { return cancel_detail::shield_depth() > 0; }

// While alive, cancel_requested() is false on the constructing thread (nests).
class CancelShield {
 public:
  CancelShield() { ++cancel_detail::shield_depth(); }
  ~CancelShield() { --cancel_detail::shield_depth(); }
  CancelShield(const CancelShield&) = delete;
  CancelShield& operator=(const CancelShield&) = delete;
};

}  // namespace coffer::repo
