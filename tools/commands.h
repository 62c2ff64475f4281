// Registration functions of the coffer subcommands. Each adds its CLI11 subcommand to
// `app` and returns the Command whose run() main calls when it was chosen.
#pragma once

#include "tools/global.h"

namespace coffer::tools {

Command add_snapshots_command(CLI::App& app, const GlobalOptions& g);
Command add_ls_command(CLI::App& app, const GlobalOptions& g);
Command add_cat_command(CLI::App& app, const GlobalOptions& g);
Command add_dump_command(CLI::App& app, const GlobalOptions& g);
Command add_restore_command(CLI::App& app, const GlobalOptions& g);
Command add_mount_command(CLI::App& app, const GlobalOptions& g);
Command add_backup_command(CLI::App& app, const GlobalOptions& g);
Command add_init_command(CLI::App& app, const GlobalOptions& g);
Command add_key_command(CLI::App& app, const GlobalOptions& g);
Command add_forget_command(CLI::App& app, const GlobalOptions& g);
Command add_unlock_command(CLI::App& app, const GlobalOptions& g);
Command add_tag_command(CLI::App& app, const GlobalOptions& g);
Command add_prune_command(CLI::App& app, const GlobalOptions& g);
Command add_check_command(CLI::App& app, const GlobalOptions& g);
Command add_stats_command(CLI::App& app, const GlobalOptions& g);
Command add_copy_command(CLI::App& app, const GlobalOptions& g);
Command add_diff_command(CLI::App& app, const GlobalOptions& g);
Command add_find_command(CLI::App& app, const GlobalOptions& g);
Command add_list_command(CLI::App& app, const GlobalOptions& g);
Command add_version_command(CLI::App& app, const GlobalOptions& g);

}  // namespace coffer::tools
