#include "tools/secondary_repo.h"

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "repo/location.h"

namespace coffer::tools {
namespace {

std::string env_or_empty(const char* coffer_name, const char* restic_name) {
  for (const char* name : {coffer_name, restic_name}) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0')
      return v;
  }
  return "";
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

void add_secondary_repo_options(CLI::App& cmd, SecondaryRepoOptions& o,
                                const std::string& purpose) {
  o.repo = env_or_empty("COFFER_FROM_REPOSITORY", "RESTIC_FROM_REPOSITORY");
  o.repository_file = env_or_empty("COFFER_FROM_REPOSITORY_FILE", "RESTIC_FROM_REPOSITORY_FILE");
  o.password_file = env_or_empty("COFFER_FROM_PASSWORD_FILE", "RESTIC_FROM_PASSWORD_FILE");
  o.password_command = env_or_empty("COFFER_FROM_PASSWORD_COMMAND", "RESTIC_FROM_PASSWORD_COMMAND");
  o.key_hint = env_or_empty("COFFER_FROM_KEY_HINT", "RESTIC_FROM_KEY_HINT");
  cmd.add_option("--from-repo", o.repo,
                 "source repository " + purpose + " (env RESTIC_FROM_REPOSITORY)");
  cmd.add_option(
      "--from-repository-file", o.repository_file,
      "file with the source repository location " + purpose + " (env RESTIC_FROM_REPOSITORY_FILE)");
  cmd.add_option("--from-password-file", o.password_file,
                 "file with the source repository's password (env RESTIC_FROM_PASSWORD_FILE)");
  cmd.add_option("--from-password-command", o.password_command,
                 "command printing the source repository's password "
                 "(env RESTIC_FROM_PASSWORD_COMMAND)");
  cmd.add_option("--from-key-hint", o.key_hint,
                 "key ID to try first for the source repository (accepted; every key is tried)");
}

repo::Result<std::string> secondary_location(const SecondaryRepoOptions& o) {
  if (!o.given()) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "please specify a source repository location (--from-repo or "
                      "--from-repository-file)");
  }
  if (!o.repo.empty() && !o.repository_file.empty()) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "--from-repo and --from-repository-file are mutually exclusive");
  }
  if (!o.repo.empty())
    return o.repo;
  std::ifstream f(o.repository_file, std::ios::binary);
  if (!f) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "cannot read repository file " + o.repository_file);
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string location = trim(text);  // restic: strings.TrimSpace of the whole file
  if (location.empty()) {
    return repo::fail(repo::Errc::kInvalidArgument,
                      "no repository location in " + o.repository_file);
  }
  return location;
}

PasswordInput secondary_password_input(const SecondaryRepoOptions& o) {
  return PasswordInput{o.password_file,
                       o.password_command,
                       {"COFFER_FROM_PASSWORD", "RESTIC_FROM_PASSWORD"},
                       "enter password for source repository: "};
}

repo::Result<std::unique_ptr<repo::Repository>> open_secondary_repository(
    const GlobalOptions& g, const SecondaryRepoOptions& o) {
  COFFER_ASSIGN_OR_RETURN(std::string location, secondary_location(o));
  auto other = open_other_repository(g, location, secondary_password_input(o));
  if (!other)
    return repo::fail(
        other.error().with_context("source repository " + repo::redact_location(location)));
  return other;
}

}  // namespace coffer::tools
