// Repository locations: parses "/path", "local:/path" and "b2:bucket[:prefix]" and builds the
// backend for it. Only the mains call this.
//
// b2: takes the key id and key from COFFER_B2_ACCOUNT_ID / COFFER_B2_ACCOUNT_KEY, else
// B2_ACCOUNT_ID / B2_ACCOUNT_KEY (never from the command line), and these options (`-o`, or
// the environment variable beside them; an option wins): b2.connections (default 8),
// b2.endpoint (COFFER_B2_ENDPOINT; an http:// endpoint is allowed only here, for emulators),
// b2.ca-file (COFFER_B2_CA_FILE), b2.retries (attempts per request, default 8),
// b2.backoff-ms (first backoff step, default 1000), b2.timeout (seconds per request, 120).
//
// Thread contract: pure functions; the returned backend follows backend.h's contract.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "repo/backend/backend.h"

namespace coffer::repo {

// Backend options as `-o key=value` gives them ("b2.connections" -> "4"). Options of another
// backend's namespace are ignored.
using BackendOptions = std::map<std::string, std::string>;

// Adds "key=value" to `options`. Errors: kInvalidArgument (no '=' or an empty key).
Result<void> add_backend_option(BackendOptions& options, std::string_view text);

// Builds the backend for `location`; nothing is sent over the network yet.
// Errors: kInvalidArgument (unknown scheme, empty, a malformed b2: location, missing B2
// credentials, an unknown or malformed b2.* option).
Result<std::unique_ptr<WriteBackend>> open_backend(std::string_view location,
                                                   const BackendOptions& options = {});

}  // namespace coffer::repo
