// coffer init: creates a restic repository (config, first key, layout) at -r.
//
//   coffer init [--repository-version 1|2|latest|stable] [--copy-chunker-params --from-repo R
//               [--from-password-file F | --from-password-command C]]
// The --from-* options are tools/secondary_repo.h's, shared with `copy`.
#include <algorithm>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "repo/init.h"
#include "repo/location.h"
#include "tools/commands.h"
#include "tools/secondary_repo.h"

namespace coffer::tools {
namespace {

struct InitCmdOptions {
  std::string repository_version = "stable";
  bool copy_chunker_params = false;
  SecondaryRepoOptions from;
};

// restic 0.14: "stable" and "latest" are both version 2.
repo::Result<unsigned> parse_version(const std::string& text) {
  if (text == "stable" || text == "latest" || text.empty())
    return 2U;
  if (text == "1" || text == "2")
    return static_cast<unsigned>(text[0] - '0');
  if (text.find_first_not_of("0123456789") == std::string::npos)
    return repo::fail(repo::Errc::kInvalidArgument,
                      "only repository versions between 1 and 2 are allowed");
  return repo::fail(repo::Errc::kInvalidArgument, "invalid repository version " + text);
}

// The polynomial of --from-repo when --copy-chunker-params is given, else std::nullopt.
repo::Result<std::optional<repo::Polynomial>> source_polynomial(const GlobalOptions& g,
                                                                const InitCmdOptions& o) {
  if (!o.copy_chunker_params) {
    if (o.from.given()) {
      return repo::fail(
          repo::Errc::kInvalidArgument,
          "a source repository (--from-repo) is only used with --copy-chunker-params");
    }
    return std::nullopt;
  }
  COFFER_ASSIGN_OR_RETURN(auto other, open_secondary_repository(g, o.from));
  return std::optional<repo::Polynomial>(other->config().chunker_polynomial);
}

void print_created(const GlobalOptions& g, const InitCmdOptions& o, const repo::Config& c) {
  if (g.json) {
    nlohmann::ordered_json j;
    j["message_type"] = "initialized";
    j["id"] = c.id.hex();
    j["repository"] = repo::redact_location(g.repo);
    out_line(j.dump());
    return;
  }
  if (g.quiet)
    return;
  out_line(fmt::format(
      "created restic repository {} at {}{}", c.id.hex().substr(0, 10),
      repo::redact_location(g.repo),
      o.copy_chunker_params ? " with chunker parameters copied from secondary repository" : ""));
  out_line("");
  out_line("Please note that knowledge of your password is required to access");
  out_line("the repository. Losing your password means that your data is");
  out_line("irrecoverably lost.");
}

repo::Result<int> run(const GlobalOptions& g, const InitCmdOptions& o) {
  repo::InitOptions options;
  COFFER_ASSIGN_OR_RETURN(options.version, parse_version(o.repository_version));
  COFFER_ASSIGN_OR_RETURN(options.polynomial, source_polynomial(g, o));
  COFFER_ASSIGN_OR_RETURN(auto backend, open_new_backend(g));
  if (backend->stat(repo::Handle{repo::FileKind::kConfig, "config"})) {  // before asking
    return repo::fail(repo::Errc::kInvalidArgument, "create repository at " +
                                                        repo::redact_location(g.repo) +
                                                        " failed: config file already exists");
  }
  PasswordInput in = repository_password_input(g);
  in.prompt = "enter password for new repository: ";
  COFFER_ASSIGN_OR_RETURN(std::string password, read_new_password(in));
  auto config = repo::init_repository(*backend, password, options);
  std::fill(password.begin(), password.end(), '\0');
  if (!config)
    return repo::fail(config.error().with_context("create repository at " +
                                                  repo::redact_location(g.repo) + " failed"));
  print_created(g, o, *config);
  return kExitOk;
}

}  // namespace

Command add_init_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<InitCmdOptions>();
  CLI::App* sub = app.add_subcommand("init", "Initialize a new repository");
  sub->add_option("--repository-version", o->repository_version,
                  "repository format version: 1, 2, 'latest' or 'stable' (both 2)")
      ->capture_default_str();
  sub->add_flag("--copy-chunker-params", o->copy_chunker_params,
                "copy the chunker polynomial from --from-repo (dedup across repositories)");
  add_secondary_repo_options(*sub, o->from, "to copy the chunker parameters from");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
