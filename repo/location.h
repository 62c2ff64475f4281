// Repository locations: parses "/path", "local:/path", "b2:bucket[:prefix]", "rest:URL" and
// "rclone:REMOTE:PATH" and builds the backend for it. Only the mains call this.
//
// b2: takes the key id and key from COFFER_B2_ACCOUNT_ID / COFFER_B2_ACCOUNT_KEY, else
// B2_ACCOUNT_ID / B2_ACCOUNT_KEY (never from the command line), and these options (`-o`, or
// the environment variable beside them; an option wins): b2.connections (default 10),
// b2.endpoint (COFFER_B2_ENDPOINT; an http:// endpoint is allowed only here, for emulators),
// b2.ca-file (COFFER_B2_CA_FILE), b2.retries (attempts per request, default 8),
// b2.backoff-ms (first backoff step, default 1000), b2.timeout (seconds per request, 120).
//
// rest:http://[USER:PASS@]HOST[:PORT]/PATH/ (or https://) speaks restic's REST protocol v2.
// Credentials come from the URL, else COFFER_REST_USERNAME / COFFER_REST_PASSWORD, else
// RESTIC_REST_USERNAME / RESTIC_REST_PASSWORD; the password never appears in location() or a
// message. Options: rest.connections (COFFER_REST_CONNECTIONS, default 5), rest.retries
// (attempts per request, default 6), rest.backoff-ms (first backoff step, default 500),
// rest.timeout (seconds per request, 120).
//
// rclone:REMOTE:PATH starts `rclone serve restic --b2-hard-delete --addr 127.0.0.1:PORT
// REMOTE:PATH` and speaks the REST protocol to it (see rclone_backend.h; with --stdio in the
// args it uses restic's stdin/stdout way instead); options rclone.program (default "rclone")
// and rclone.args (default "serve restic --b2-hard-delete"). Unlike the others, this starts
// the child process at once (a missing program fails here).
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

// `location` as it may be shown: a rest: URL's password becomes "***"; others unchanged.
std::string redact_location(std::string_view location);

// Builds the backend for `location`; nothing is sent over the network yet.
// Errors: kInvalidArgument (unknown scheme, empty, a malformed b2: or rest: location, missing
// B2 credentials, an unknown or malformed b2.*, rest.* or rclone.* option, an rclone program
// that cannot be started); kIo (rclone: the socket cannot be made).
Result<std::unique_ptr<WriteBackend>> open_backend(std::string_view location,
                                                   const BackendOptions& options = {});

}  // namespace coffer::repo
