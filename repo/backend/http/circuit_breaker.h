// CircuitBreaker: stops a backend from retrying every request on its own while the server is
// unreachable. Internal to repo/backend/http (one per HttpClient, so one per backend).
//
// Only connection-level failures count (no HTTP answer at all: refused, reset, timed out);
// any answer, even a 503, shows the server is reachable and closes the breaker. The breaker
// opens (trips) when
// - `trip_after` requests in a row have spent their retries on connection-level failures, or
// - every attempt for `window` has failed at the connection level, with no gap longer than
//   `window` between failures (a network that went down while many requests were retrying in
//   parallel);
// then for `cooldown` every request fails at once with the last connection error. After the
// cool-down the next attempts go through (half-open): an answer closes the breaker, one more
// connection failure opens it again. An essential request (deleting the lock file) may go
// through an open breaker once per trip, as a probe.
//
// Thread contract: every method is safe to call concurrently (one mutex, held only briefly).
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace coffer::repo::http {

struct BreakerConfig {
  unsigned trip_after = 2;
  std::chrono::milliseconds window{30000};
  std::chrono::milliseconds cooldown{30000};
};

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CircuitBreaker(BreakerConfig config) : config_(config) {}

  // The error to fail a request with at once while the breaker is open; nullopt to go ahead.
  std::optional<std::string> refuse(Clock::time_point now, bool essential);
  // An attempt ended: `connection_failed` (with `error`) or any HTTP answer.
  void attempt_done(bool connection_failed, const std::string& error, Clock::time_point now);
  // A request's retries are spent, its last attempt having failed at the connection level.
  void retries_exhausted(Clock::time_point now);

  [[nodiscard]] bool open() const;

 private:
  void trip_locked(Clock::time_point now);

  const BreakerConfig config_;
  mutable std::mutex mutex_;
  unsigned exhausted_in_row_ = 0;                   // guarded by mutex_
  std::optional<Clock::time_point> failing_since_;  // first failure since the last answer
  Clock::time_point last_failure_;
  std::optional<Clock::time_point> open_until_;  // set while open
  bool half_open_ = false;                       // the cool-down ended, nothing answered yet
  bool probed_ = false;                          // an essential request passed this trip
  std::string last_error_;
};

}  // namespace coffer::repo::http
