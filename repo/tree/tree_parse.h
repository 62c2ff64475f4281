// Internal to repo/tree: the single-pass tree blob parser behind parse_tree, and the nlohmann
// DOM parser it replaced (kept as the reference the tests compare it with).
//
// parse_tree_fast reads the blob text once: known node fields are decoded straight from the
// text; generic_attributes and unknown fields are delimited by a validating skipper and that
// raw text is handed to the nlohmann-based helpers of go_json.h, so the kept text is
// byte-identical to the reference. Accepts exactly what the reference accepts (strict JSON
// as nlohmann reads it: UTF-8 BOM allowed, invalid UTF-8 and lone surrogates rejected,
// non-finite numbers rejected; for duplicate keys the last value counts and an unknown key
// keeps the position of its first occurrence) and yields the same Tree.
//
// Thread contract: pure functions.
#pragma once

#include <string_view>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/tree/node.h"

namespace coffer::repo::detail {

// Parses a tree blob in one pass. kCorrupt on everything parse_tree_reference rejects.
Result<Tree> parse_tree_fast(std::string_view text);

// The former DOM-based parse_tree (for the differential tests only). kCorrupt on bad input.
Result<Tree> parse_tree_reference(ByteSpan blob);

}  // namespace coffer::repo::detail
