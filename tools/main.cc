// coffer: the command-line front end. Parses with CLI11, calls repo::, prints, and maps
// errors to restic's documented exit codes (README, man/coffer.1).
#include <csignal>
#include <cstdio>
#include <exception>
#include <vector>

#include "repo/core/cancel.h"
#include "repo/core/log.h"
#include "tools/commands.h"
#include "tools/usage_report.h"
#include "tools/version.h"

namespace {

using coffer::tools::Command;
using coffer::tools::GlobalOptions;

void on_signal(int /*sig*/) { coffer::tools::interrupted() = true; }

// restic's `unlock` sends SIGHUP to the owner of a lock made on the same host to see whether it
// is alive; restic itself ignores the signal, and so must coffer while it holds a lock. A handler
// (not SIG_IGN) so that programs coffer executes get the default disposition back.
void on_hangup(int /*sig*/) {}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hangup;
  hup.sa_flags = SA_RESTART;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// Every repeatable option takes one value per flag, as restic's do: `--exclude '*.tmp' DIR`
// backs up DIR, and `--tag t ID` names snapshot ID.
void one_value_per_flag(CLI::App& app) {
  for (CLI::Option* opt : app.get_options())
    if (!opt->get_positional() && opt->get_expected_max() > 1)
      opt->allow_extra_args(false);
  for (CLI::App* sub : app.get_subcommands({})) one_value_per_flag(*sub);
}

int fail_line(const std::string& message, int code) {
  std::fprintf(stderr, "coffer: %s\n", message.c_str());
  return code;
}

int run_command(const Command& cmd, GlobalOptions& g) {
  auto prices = coffer::repo::resolve_price_table(g.price_table);
  if (!prices)  // before the command does anything
    return fail_line(prices.error().message, coffer::tools::exit_code_for(prices.error()));
  g.prices = *prices;
  auto result = cmd.run();
  std::fflush(stdout);
  // An error stays one line: the usage goes with successful runs.
  if (result)
    coffer::tools::print_usage_report(g.json, g.quiet, g.prices);
  if (!result) {
    const auto& e = result.error();
    // Whatever failed after Ctrl-C failed because of it (restic: context canceled, 130).
    if (coffer::tools::interrupted())
      return fail_line(e.message, coffer::tools::kExitInterrupted);
    return fail_line(e.message, coffer::tools::exit_code_for(e));
  }
  if (coffer::tools::interrupted())
    return coffer::tools::kExitInterrupted;
  return *result;
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  // Ctrl-C also stops the remote backends' retries and transfers.
  coffer::repo::set_cancel_flag(&coffer::tools::interrupted());
  CLI::App app{"coffer: fast, restic-compatible backups"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("coffer ") + coffer::tools::kVersion);
  GlobalOptions g;
  coffer::tools::add_global_options(app, g);
  std::vector<Command> commands = {
      coffer::tools::add_snapshots_command(app, g), coffer::tools::add_ls_command(app, g),
      coffer::tools::add_cat_command(app, g),       coffer::tools::add_dump_command(app, g),
      coffer::tools::add_restore_command(app, g),   coffer::tools::add_mount_command(app, g),
      coffer::tools::add_backup_command(app, g),    coffer::tools::add_init_command(app, g),
      coffer::tools::add_key_command(app, g),       coffer::tools::add_forget_command(app, g),
      coffer::tools::add_unlock_command(app, g),    coffer::tools::add_tag_command(app, g),
      coffer::tools::add_copy_command(app, g)};
  commands.push_back(coffer::tools::add_check_command(app, g));
  commands.push_back(coffer::tools::add_stats_command(app, g));
  commands.push_back(coffer::tools::add_prune_command(app, g));
  commands.push_back(coffer::tools::add_diff_command(app, g));
  commands.push_back(coffer::tools::add_find_command(app, g));
  commands.push_back(coffer::tools::add_list_command(app, g));
  commands.push_back(coffer::tools::add_version_command(app, g));
  one_value_per_flag(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    return fail_line(e.what(), coffer::tools::kExitError);
  }
  namespace log = coffer::repo::log;
  log::set_level(g.quiet          ? log::Level::kQuiet
                 : g.verbose >= 2 ? log::Level::kDebug
                 : g.verbose == 1 ? log::Level::kVerbose
                                  : log::Level::kNormal);
  try {
    for (const auto& cmd : commands) {
      if (cmd.app->parsed())
        return run_command(cmd, g);
    }
  } catch (const std::bad_alloc&) {
    return fail_line("out of memory", coffer::tools::kExitError);
  } catch (const std::exception& e) {
    return fail_line(std::string("internal error: ") + e.what(), coffer::tools::kExitError);
  }
  return fail_line("no command given", coffer::tools::kExitError);
}
