#include "tools/global.h"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>

#include <stdio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "repo/core/log.h"
#include "repo/location.h"
#include "repo/open.h"

namespace coffer::tools {
namespace {

using repo::Errc;
using repo::fail;

std::string env_either(const char* coffer_name, const char* restic_name) {
  if (const char* v = std::getenv(coffer_name); v != nullptr && *v != '\0')
    return v;
  if (const char* v = std::getenv(restic_name); v != nullptr && *v != '\0')
    return v;
  return "";
}

void strip_newlines(std::string& s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
}

repo::Result<std::string> read_password_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return fail(Errc::kInvalidArgument, "cannot read password file " + path);
  std::string line;
  std::getline(f, line);
  strip_newlines(line);
  return line;
}

repo::Result<std::string> run_password_command(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return fail(Errc::kInvalidArgument, "cannot run the password command");
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (status != 0)
    return fail(Errc::kInvalidArgument, "the password command failed");
  auto nl = out.find('\n');
  if (nl != std::string::npos)
    out.resize(nl);
  strip_newlines(out);
  return out;
}

repo::Result<std::string> prompt_password(const char* prompt = "enter password for repository: ") {
  if (::isatty(STDIN_FILENO) == 0) {
    std::string line;
    if (!std::getline(std::cin, line)) {
      return fail(Errc::kInvalidArgument,
                  "no password given (use --password-file, --password-command or COFFER_PASSWORD)");
    }
    strip_newlines(line);
    return line;
  }
  termios old{};
  ::tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);  // before the prompt: fast typists are not echoed
  std::fputs(prompt, stderr);
  std::string line;
  std::getline(std::cin, line);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
  std::fputs("\n", stderr);
  strip_newlines(line);
  return line;
}

}  // namespace

repo::Result<std::string> resolve_password(const GlobalOptions& g) {
  if (!g.password_file.empty())
    return read_password_file(g.password_file);
  if (!g.password_command.empty())
    return run_password_command(g.password_command);
  if (const char* v = std::getenv("COFFER_PASSWORD"); v != nullptr)
    return std::string(v);
  if (const char* v = std::getenv("RESTIC_PASSWORD"); v != nullptr)
    return std::string(v);
  return prompt_password();
}

namespace {

// The password from `in`'s file, command or environment; std::nullopt when none is set.
std::optional<repo::Result<std::string>> configured_password(const PasswordInput& in) {
  if (!in.file.empty())
    return read_password_file(in.file);
  if (!in.command.empty())
    return run_password_command(in.command);
  for (const auto& name : in.env) {
    if (const char* v = std::getenv(name.c_str()); v != nullptr)
      return repo::Result<std::string>(std::string(v));
  }
  return std::nullopt;
}

repo::Result<std::string> ask_new_password(const PasswordInput& in) {
  if (auto pw = configured_password(in))
    return std::move(*pw);
  COFFER_ASSIGN_OR_RETURN(std::string first, prompt_password(in.prompt.c_str()));
  if (::isatty(STDIN_FILENO) == 0 || first.empty())
    return first;
  COFFER_ASSIGN_OR_RETURN(std::string second, prompt_password("enter password again: "));
  bool same = first == second;
  std::fill(second.begin(), second.end(), '\0');
  if (!same) {
    std::fill(first.begin(), first.end(), '\0');
    return fail(Errc::kInvalidArgument, "passwords do not match");
  }
  return first;
}

}  // namespace

PasswordInput repository_password_input(const GlobalOptions& g) {
  return PasswordInput{g.password_file,
                       g.password_command,
                       {"COFFER_PASSWORD", "RESTIC_PASSWORD"},
                       "enter password for repository: "};
}

repo::Result<std::string> read_password(const PasswordInput& in) {
  if (auto pw = configured_password(in))
    return std::move(*pw);
  return prompt_password(in.prompt.c_str());
}

repo::Result<std::string> read_new_password(const PasswordInput& in) {
  COFFER_ASSIGN_OR_RETURN(std::string pw, ask_new_password(in));
  if (pw.empty())
    return fail(Errc::kInvalidArgument, "an empty password is not a password");
  return pw;
}

repo::Result<repo::BackendOptions> backend_options(const GlobalOptions& g) {
  repo::BackendOptions options;
  for (const auto& text : g.options) COFFER_TRY(repo::add_backend_option(options, text));
  return options;
}

repo::Result<std::unique_ptr<repo::WriteBackend>> open_new_backend(const GlobalOptions& g) {
  COFFER_ASSIGN_OR_RETURN(auto options, backend_options(g));
  return repo::open_backend(g.repo, options);
}

repo::Result<std::unique_ptr<repo::Repository>> open_other_repository(const GlobalOptions& g,
                                                                      const std::string& location,
                                                                      const PasswordInput& in) {
  repo::OpenOptions options;
  options.cache_dir = g.cache_dir;
  options.no_cache = g.no_cache;
  COFFER_ASSIGN_OR_RETURN(auto backend, backend_options(g));
  return repo::open_repository_at(
      location, [&in] { return read_password(in); }, options, backend);
}

std::atomic<bool>& interrupted() {
  static std::atomic<bool> flag{false};
  return flag;
}

void add_global_options(CLI::App& app, GlobalOptions& g) {
  g.repo = env_either("COFFER_REPOSITORY", "RESTIC_REPOSITORY");
  g.password_file = env_either("COFFER_PASSWORD_FILE", "RESTIC_PASSWORD_FILE");
  g.password_command = env_either("COFFER_PASSWORD_COMMAND", "RESTIC_PASSWORD_COMMAND");
  g.cache_dir = env_either("COFFER_CACHE_DIR", "RESTIC_CACHE_DIR");
  app.add_option(
      "-r,--repo", g.repo,
      "repository location (/path, local:/path, b2:bucket:prefix, rest:URL, rclone:remote:path)");
  app.add_option("-o,--option", g.options,
                 "set a backend option key=value, e.g. b2.connections=16 (repeatable)");
  app.add_option("--password-file", g.password_file,
                 "read the password from the first line of a file");
  app.add_option("--password-command", g.password_command,
                 "run a shell command that prints the password");
  app.add_option("--cache-dir", g.cache_dir, "base directory of the local cache");
  app.add_option("--price-table", g.price_table,
                 "B2 price table (JSON) for cost estimates; overrides COFFER_PRICE_TABLE");
  app.add_flag("--no-cache", g.no_cache, "do not use a local cache (index kept in memory)");
  app.add_flag("--no-lock", g.no_lock, "do not lock the repository (read-only commands)");
  app.add_flag("--json", g.json, "machine-readable JSON output");
  app.add_flag("-q,--quiet", g.quiet, "print only errors");
  app.add_flag("-v,--verbose", g.verbose, "print more (repeat for debug output)");
}

void add_filter_options(CLI::App& cmd, repo::SnapshotFilter& f) {
  cmd.add_option("--host", f.hosts, "only snapshots of this host (repeatable)");
  cmd.add_option("--tag", f.tags,
                 "only snapshots with these tags: a,b means both (repeatable: any)");
  cmd.add_option("--path", f.paths, "only snapshots that include this path (repeatable: all)");
}

repo::Result<void> OpenRepo::await_lock() {
  if (!locking.valid())
    return {};
  COFFER_ASSIGN_OR_RETURN(lock, locking.get());
  return {};
}

repo::Result<int> OpenRepo::prefer_lock_error(repo::Result<int> done) {
  if (done)
    return done;
  auto locked = await_lock();
  if (!locked && done.error().code != repo::Errc::kCancelled)
    return repo::fail(locked.error());
  return done;
}

repo::Result<OpenRepo> open_repository(const GlobalOptions& g, bool load_index, bool take_lock,
                                       LockWait wait) {
  repo::OpenOptions options;
  options.cache_dir = g.cache_dir;
  options.no_cache = g.no_cache;
  options.prepare_writes = take_lock && !g.no_lock;
  OpenRepo r;
  COFFER_ASSIGN_OR_RETURN(auto backend, backend_options(g));
  COFFER_ASSIGN_OR_RETURN(r.repo,
                          repo::open_repository_at(
                              g.repo, [&g] { return resolve_password(g); }, options, backend));
  if (take_lock && !g.no_lock) {
    // restic's lock protocol waits 200 ms after writing the lock before it looks again; the
    // index loads meanwhile (over B2 that saves the lock's round trips and the wait). Reading
    // needs no lock yet: the command writes nothing before both have succeeded, and a lock
    // conflict is reported before any error of the index.
    repo::Repository* repository = r.repo.get();
    r.locking = std::async(std::launch::async,
                           [repository] { return repo::RepoLock::acquire(*repository, false); });
    repo::Result<void> loaded = load_index ? r.repo->load_index() : repo::Result<void>{};
    if (wait == LockWait::kHeld || !loaded)
      COFFER_TRY(r.await_lock());
    COFFER_TRY(loaded);
    return r;
  }
  if (load_index)
    COFFER_TRY(r.repo->load_index());
  return r;
}

repo::Result<void> write_stdout(repo::ByteSpan data) {
  std::fflush(stdout);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return repo::fail(Errc::kIo, "writing to standard output failed");
    done += static_cast<std::size_t>(n);
  }
  return {};
}

void out_line(std::string_view line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

int exit_code_for(const repo::Error& e) { return repo::exit_status(e.code); }

}  // namespace coffer::tools
