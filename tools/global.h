// Global options shared by every coffer command, and opening the repository they name.
//
// Thread contract: filled by CLI11 on the main thread before any command runs.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "repo/core/exit_status.h"
#include "repo/location.h"
#include "repo/lock.h"
#include "repo/ops/cost.h"
#include "repo/ops/snapshot_filter.h"
#include "repo/repository.h"

namespace coffer::tools {

// Exit codes, as restic documents them.
using repo::kExitError;
using repo::kExitInterrupted;
using repo::kExitLocked;
using repo::kExitNoRepository;
using repo::kExitOk;
using repo::kExitPartial;
using repo::kExitWrongPassword;

struct GlobalOptions {
  std::string repo;
  std::string password_file;
  std::string password_command;
  std::string cache_dir;
  bool no_cache = false;
  bool no_lock = false;
  bool json = false;
  bool quiet = false;
  int verbose = 0;
  std::vector<std::string> options;  // -o key=value (backend options, repo/location.h)
  std::string price_table;           // --price-table FILE (wins over COFFER_PRICE_TABLE)
  repo::PriceTable prices;           // resolved by main before the command runs
};

// Set by the SIGINT/SIGTERM handler; long operations poll it.
std::atomic<bool>& interrupted();

// Adds -r, --password-file, ... to `app` (and fills defaults from the environment).
void add_global_options(CLI::App& app, GlobalOptions& g);

// Adds --host/--tag/--path to `cmd`.
void add_filter_options(CLI::App& cmd, repo::SnapshotFilter& f);

// An open repository and, unless --no-lock, the non-exclusive lock read commands hold
// (released first on destruction: members are destroyed in reverse order, so a lock still
// being taken is waited for and released before the repository goes).
struct OpenRepo {
  std::unique_ptr<repo::Repository> repo;
  std::unique_ptr<repo::RepoLock> lock;
  std::future<repo::Result<std::unique_ptr<repo::RepoLock>>> locking;  // kDeferred only
  repo::Repository* operator->() const { return repo.get(); }
  repo::Repository& operator*() const { return *repo; }
  // Waits for a lock open_repository left pending (a no-op otherwise). Errors: as
  // RepoLock::acquire (kLocked, ...).
  repo::Result<void> await_lock();
  // The result of a command that ran while the lock was pending: when `done` failed and the
  // lock could not be taken either, the lock's error (a conflict explains more than what
  // failed while it was being looked for), unless the user interrupted.
  repo::Result<int> prefer_lock_error(repo::Result<int> done);
};

// When open_repository returns relative to its lock. kDeferred is for commands that read
// more of the repository before they write anywhere (restore walks its trees while
// restic's lock protocol waits): they must call OpenRepo::await_lock() before writing.
enum class LockWait { kHeld, kDeferred };

// Opens the repository named by `g`, takes a non-exclusive lock (unless g.no_lock or
// !take_lock) and loads its index. Errors carry the exit-code class.
repo::Result<OpenRepo> open_repository(const GlobalOptions& g, bool load_index = true,
                                       bool take_lock = true, LockWait wait = LockWait::kHeld);

// The password as every command gets it: --password-file, --password-command,
// COFFER_PASSWORD/RESTIC_PASSWORD, else the terminal (or one line of stdin).
// Errors: kInvalidArgument.
repo::Result<std::string> resolve_password(const GlobalOptions& g);

// Where a password comes from, in restic's order: `file`, then `command`, then the first
// variable of `env` that is set, then the terminal (asking `prompt`, without echo) or, when
// standard input is not a terminal, its next line.
struct PasswordInput {
  std::string file, command;
  std::vector<std::string> env;
  std::string prompt;
};

// The sources of the password of -r's repository (--password-file, --password-command,
// COFFER_PASSWORD, RESTIC_PASSWORD).
PasswordInput repository_password_input(const GlobalOptions& g);

// Reads a password from the first source of `in` that is set. Errors: kInvalidArgument.
repo::Result<std::string> read_password(const PasswordInput& in);

// Reads the password of a repository about to be created, or of a new key: as read_password,
// but a prompt on a terminal asks twice ("enter password again: ").
// Errors: kInvalidArgument (the two differ, the password is empty, a file or command failed).
repo::Result<std::string> read_new_password(const PasswordInput& in);

// The writable backend at -r's location, whether or not a repository exists there yet (init).
// Errors: kInvalidArgument (no or malformed location).
repo::Result<std::unique_ptr<repo::WriteBackend>> open_new_backend(const GlobalOptions& g);

// Opens a second repository (init's --from-repo) at `location` with the password from `in`,
// using g's cache settings; no lock, no index. Errors: as open_repository.
repo::Result<std::unique_ptr<repo::Repository>> open_other_repository(const GlobalOptions& g,
                                                                      const std::string& location,
                                                                      const PasswordInput& in);

// The backend options of -o. Errors: kInvalidArgument (not key=value).
repo::Result<repo::BackendOptions> backend_options(const GlobalOptions& g);

// Maps an error to the documented exit code.
int exit_code_for(const repo::Error& e);

// A registered subcommand: main runs `run` when `app` was the one given.
struct Command {
  CLI::App* app = nullptr;
  std::function<repo::Result<int>()> run;
};

// Writes raw bytes to standard output (retrying short writes). Errors: kIo.
repo::Result<void> write_stdout(repo::ByteSpan data);

// Prints one line to stdout (adds the newline).
void out_line(std::string_view line);

}  // namespace coffer::tools
