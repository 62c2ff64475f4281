// Creating a repository (config + first key) and managing its key files (restic-format.md
// §2, §4): `coffer init` and `coffer key list|add|remove|passwd`.
//
// Thread contract: plain functions; callers serialize key changes with an exclusive lock.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "repo/backend/backend.h"
#include "repo/chunker/polynomial.h"
#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/crypto/key_file.h"  // KdfParams
#include "repo/repository.h"

namespace coffer::repo {

struct KeyOptions {
  std::string username, hostname;  // "" = the current user / host
  KdfParams kdf;
};

struct InitOptions {
  unsigned version = 2;                  // 1 or 2
  std::optional<Polynomial> polynomial;  // nullopt = random (restic's rule)
  KeyOptions key;
};

// Creates the layout, a fresh master key, the first key file and the config (written last, as
// restic does). Nothing is written when a config already exists.
// Errors: kInvalidArgument when a repository (a config) already exists there, the password is
// empty, or the options are bad (version not 1 or 2, a polynomial that is not irreducible of
// degree at most 53); kIo.
Result<Config> init_repository(WriteBackend& backend, std::string_view password,
                               const InitOptions& options);

// The config JSON exactly as restic writes it (before encryption; never compressed):
// {"version":2,"id":"<64 hex>","chunker_polynomial":"<lowercase hex, no leading zeros>"}
std::string serialize_config(const Config& config);

struct KeyInfo {
  Id id;
  std::string username, hostname, created;
  bool current = false;  // the key this session opened the repository with
};

// Every key file, sorted by created time (then id). A key file that does not parse is skipped
// with a warning, as restic does. Errors: kIo.
Result<std::vector<KeyInfo>> list_keys(const Repository& repo);

// Wraps the repository's master key with `password` into a new key file; returns its id. The
// new file is read back and opened with `password` before this returns (a broken one is
// removed again). Errors: kInvalidArgument (read-only backend, empty password), kCorrupt (the
// written key did not open), kIo.
Result<Id> add_key(const Repository& repo, std::string_view password, const KeyOptions& options);

// Removes key file `id`. Errors: kInvalidArgument when it is the current key (restic
// refuses that too), kNotFound.
Result<void> remove_key(const Repository& repo, const Id& id);

// `key passwd`: adds a key for `new_password` (as add_key), then removes the key the
// repository was opened with. Returns the new key's id. Errors: as add_key; kIo or kNotFound
// from removing the old key (the new one stays and works).
Result<Id> change_password(const Repository& repo, std::string_view new_password,
                           const KeyOptions& options);

}  // namespace coffer::repo
