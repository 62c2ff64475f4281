// Repository locations: parses "/path", "local:/path" (and later "b2:bucket:prefix") and
// builds the backend for it. Only the mains call this.
//
// Thread contract: pure functions; the returned backend follows backend.h's contract.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "repo/backend/backend.h"

namespace coffer::repo {

// Builds the backend for `location`. Errors: kInvalidArgument (unknown scheme or empty).
Result<std::unique_ptr<WriteBackend>> open_backend(std::string_view location);

}  // namespace coffer::repo
