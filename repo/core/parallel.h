// parallel_for: run fn(i) for i in [0, n) on up to `workers` threads.
//
// Thread contract: `fn` is called concurrently from several threads and must be safe so.
// The first error stops the hand-out of new items and is returned; items already running
// finish. Results are not ordered.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "repo/core/error.h"

namespace coffer::repo {

inline Result<void> parallel_for(std::size_t n, unsigned workers,
                                 const std::function<Result<void>(std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards first_error
  std::optional<Error> first_error;
  auto run = [&] {
    for (std::size_t i = next++; i < n && !failed; i = next++) {
      auto r = fn(i);
      if (!r) {
        std::scoped_lock lock(mutex);
        if (!first_error)
          first_error = r.error();
        failed = true;
      }
    }
  };
  unsigned count = std::max(1U, std::min<unsigned>(workers, static_cast<unsigned>(n)));
  {
    std::vector<std::jthread> threads;
    for (unsigned t = 1; t < count; ++t) threads.emplace_back(run);
    run();
  }
  if (first_error)
    return fail(*first_error);
  return {};
}

}  // namespace coffer::repo
