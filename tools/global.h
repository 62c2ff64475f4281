// Global options shared by every coffer command, and opening the repository they name.
//
// Thread contract: filled by CLI11 on the main thread before any command runs.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "repo/ops/snapshot_filter.h"
#include "repo/repository.h"

namespace coffer::tools {

// Exit codes, as restic documents them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitPartial = 3;
inline constexpr int kExitNoRepository = 10;
inline constexpr int kExitLocked = 11;
inline constexpr int kExitWrongPassword = 12;
inline constexpr int kExitInterrupted = 130;

struct GlobalOptions {
  std::string repo;
  std::string password_file;
  std::string password_command;
  std::string cache_dir;
  bool no_cache = false;
  bool json = false;
  bool quiet = false;
  int verbose = 0;
};

// Set by the SIGINT/SIGTERM handler; long operations poll it.
std::atomic<bool>& interrupted();

// Adds -r, --password-file, ... to `app` (and fills defaults from the environment).
void add_global_options(CLI::App& app, GlobalOptions& g);

// Adds --host/--tag/--path to `cmd`.
void add_filter_options(CLI::App& cmd, repo::SnapshotFilter& f);

// Opens the repository named by `g` and loads its index. Errors carry the exit-code class.
repo::Result<std::unique_ptr<repo::Repository>> open_repository(const GlobalOptions& g,
                                                                bool load_index = true);

// Maps an error to the documented exit code.
int exit_code_for(const repo::Error& e);

// A registered subcommand: main runs `run` when `app` was the one given.
struct Command {
  CLI::App* app = nullptr;
  std::function<repo::Result<int>()> run;
};

// Prints one line to stdout (adds the newline).
void out_line(std::string_view line);

}  // namespace coffer::tools
