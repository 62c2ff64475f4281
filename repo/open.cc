#include "repo/open.h"

#include <charconv>
#include <chrono>
#include <cstdlib>

#include <string.h>  // explicit_bzero

#include "repo/backend/fault_backend.h"
#include "repo/location.h"

namespace coffer::repo {
namespace {

// COFFER_DEBUG_LATENCY_MS=N (benchmarks only): every backend request first waits N ms, as
// over a distant network. Errors: kInvalidArgument for a value that is not 0..60000.
Result<std::unique_ptr<WriteBackend>> with_debug_latency(std::unique_ptr<WriteBackend> backend) {
  const char* text = std::getenv("COFFER_DEBUG_LATENCY_MS");
  if (text == nullptr || *text == '\0')
    return backend;
  std::string_view s(text);
  long ms = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
  if (ec != std::errc{} || end != s.data() + s.size() || ms < 0 || ms > 60000) {
    return fail(Errc::kInvalidArgument,
                "COFFER_DEBUG_LATENCY_MS must be a number of milliseconds (0..60000)");
  }
  auto delayed = std::make_unique<FaultBackend>(std::move(backend));
  delayed->set_latency(std::chrono::milliseconds(ms));
  return std::unique_ptr<WriteBackend>(std::move(delayed));
}

}  // namespace

Result<std::unique_ptr<Repository>> open_repository_at(std::string_view location,
                                                       const PasswordSource& password,
                                                       const OpenOptions& options,
                                                       const BackendOptions& backend_options) {
  COFFER_ASSIGN_OR_RETURN(auto plain, open_backend(location, backend_options));
  COFFER_ASSIGN_OR_RETURN(auto backend, with_debug_latency(std::move(plain)));
  COFFER_ASSIGN_OR_RETURN(std::string secret, password());
  auto opened = Repository::open(std::move(backend), secret, options);
  ::explicit_bzero(secret.data(), secret.size());
  return opened;
}

}  // namespace coffer::repo
