// The second repository of `init --copy-chunker-params` and `copy`: restic 0.14's
// --from-repo, --from-repository-file, --from-password-file, --from-password-command and
// --from-key-hint, with their RESTIC_FROM_* environment defaults (COFFER_FROM_* first), and
// opening that repository.
//
// Thread contract: filled by CLI11 on the main thread before the command runs.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/global.h"

namespace coffer::tools {

struct SecondaryRepoOptions {
  std::string repo;              // --from-repo / RESTIC_FROM_REPOSITORY
  std::string repository_file;   // --from-repository-file / RESTIC_FROM_REPOSITORY_FILE
  std::string password_file;     // --from-password-file / RESTIC_FROM_PASSWORD_FILE
  std::string password_command;  // --from-password-command / RESTIC_FROM_PASSWORD_COMMAND
  // --from-key-hint / RESTIC_FROM_KEY_HINT: restic tries this key first. coffer accepts it and
  // tries every key anyway (the same result, only the order differs).
  std::string key_hint;

  // Whether a location was given (by flag, file or environment).
  [[nodiscard]] bool given() const { return !repo.empty() || !repository_file.empty(); }
};

// Fills `o` from the environment and adds the --from-* flags to `cmd`; `purpose` ends each
// flag's help text (e.g. "to copy snapshots from").
void add_secondary_repo_options(CLI::App& cmd, SecondaryRepoOptions& o, const std::string& purpose);

// The location of the secondary repository: --from-repo, else the first line of
// --from-repository-file. Errors: kInvalidArgument ("please specify a source repository
// location ..." when neither is given, both are given, or the file cannot be read).
repo::Result<std::string> secondary_location(const SecondaryRepoOptions& o);

// Where the secondary repository's password comes from: --from-password-file,
// --from-password-command, COFFER_FROM_PASSWORD, RESTIC_FROM_PASSWORD, else a prompt
// "enter password for source repository: ".
PasswordInput secondary_password_input(const SecondaryRepoOptions& o);

// Opens the secondary repository with g's cache settings; no lock, no index. Errors carry
// the exit-code class (kNoRepository, kAuth, ...) and name the location as "source
// repository LOCATION: ...".
repo::Result<std::unique_ptr<repo::Repository>> open_secondary_repository(
    const GlobalOptions& g, const SecondaryRepoOptions& o);

}  // namespace coffer::tools
