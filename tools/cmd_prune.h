// The prune options and runner shared by `coffer prune` and `coffer forget --prune`.
//
// Thread contract: main thread only.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "repo/ops/prune.h"
#include "tools/global.h"

namespace coffer::tools {

// restic's prune flags as typed on the command line.
struct PruneFlags {
  std::string max_unused = "5%";
  std::string max_repack_size;
  bool repack_cacheable_only = false;
  bool repack_small = false;
  std::uint64_t pack_size_mib = 0;  // 0: $RESTIC_PACK_SIZE, else 16
};

// Adds --max-unused, --max-repack-size, --repack-cacheable-only, --repack-small and
// --pack-size to `cmd`.
void add_prune_flags(CLI::App& cmd, PruneFlags& flags);

// Checks and converts the flags (restic's verifyPruneOptions). Errors: kInvalidArgument.
repo::Result<repo::PruneOptions> parse_prune_flags(const PruneFlags& flags);

// Plans, prints restic's report and (unless options.dry_run) prunes `repository`.
// REQUIRES: the caller holds the exclusive lock. Errors: those of plan_prune/execute_prune.
repo::Result<void> run_prune_locked(const GlobalOptions& g, repo::Repository& repository,
                                    const repo::PruneOptions& options);

}  // namespace coffer::tools
