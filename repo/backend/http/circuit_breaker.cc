#include "repo/backend/http/circuit_breaker.h"

#include "repo/core/log.h"

namespace coffer::repo::http {

std::optional<std::string> CircuitBreaker::refuse(Clock::time_point now, bool essential) {
  std::scoped_lock lock(mutex_);
  if (!open_until_)
    return std::nullopt;
  if (now >= *open_until_) {  // cool-down over: let attempts probe the server again
    open_until_.reset();
    half_open_ = true;
    return std::nullopt;
  }
  if (essential && !probed_) {
    probed_ = true;
    return std::nullopt;
  }
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(config_.cooldown).count();
  return last_error_ + " (the server is unreachable: requests fail without retrying for " +
         std::to_string(seconds) + " s)";
}

void CircuitBreaker::attempt_done(bool connection_failed, const std::string& error,
                                  Clock::time_point now) {
  std::scoped_lock lock(mutex_);
  if (!connection_failed) {
    exhausted_in_row_ = 0;
    failing_since_.reset();
    open_until_.reset();
    half_open_ = false;
    return;
  }
  last_error_ = error;
  if (!failing_since_ || now - last_failure_ > config_.window)  // a quiet gap starts afresh
    failing_since_ = now;
  last_failure_ = now;
  if (half_open_ || now - *failing_since_ >= config_.window)
    trip_locked(now);
}

void CircuitBreaker::retries_exhausted(Clock::time_point now) {
  std::scoped_lock lock(mutex_);
  if (++exhausted_in_row_ >= config_.trip_after)
    trip_locked(now);
}

bool CircuitBreaker::open() const {
  std::scoped_lock lock(mutex_);
  return open_until_.has_value();
}

void CircuitBreaker::trip_locked(Clock::time_point now) {
  if (!open_until_) {
    log::debug("http: the server is unreachable; failing requests at once for a while");
    probed_ = false;
  }
  open_until_ = now + config_.cooldown;
  half_open_ = false;
}

}  // namespace coffer::repo::http
