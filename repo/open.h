// Opening a repository from its location string, as the mains (coffer, coffer-mount) do.
//
// The location is parsed and its backend built first, so a malformed location is reported
// before anyone is asked for a password; then the password is fetched, the repository is
// opened with it, and the fetched copy of the password is wiped. Locking and loading the
// index stay with the caller (they differ per command).
//
// Thread contract: a plain function; `password` is called at most once, on the calling
// thread. Ownership: the returned Repository owns its backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "repo/core/error.h"
#include "repo/location.h"
#include "repo/repository.h"

namespace coffer::repo {

// Where the password comes from (a file, a command, a prompt, an inherited pipe, ...).
using PasswordSource = std::function<Result<std::string>()>;

// Opens the repository at `location` ("/path", "local:/path", "b2:bucket:prefix") with the
// password that `password` returns; `backend_options` are the `-o` options (location.h).
// Errors: kInvalidArgument for a malformed location or option, those of `password`, and
// those of Repository::open (kNoRepository, kAuth, kCorrupt, kIo, kAccessDenied).
Result<std::unique_ptr<Repository>> open_repository_at(std::string_view location,
                                                       const PasswordSource& password,
                                                       const OpenOptions& options,
                                                       const BackendOptions& backend_options = {});

}  // namespace coffer::repo
