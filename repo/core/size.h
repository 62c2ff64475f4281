// Sizes as restic's options spell them ("500", "100k", "2G", ...).
//
// Thread contract: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#include "repo/core/error.h"

namespace coffer::repo {

// restic's parseSizeStr / ui.ParseBytes: a non-negative integer with an optional suffix b/B,
// k/K, m/M, g/G, t/T (powers of 1024). Errors: kInvalidArgument with Go's wording.
Result<std::uint64_t> parse_size(std::string_view text);

}  // namespace coffer::repo
