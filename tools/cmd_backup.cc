// coffer backup: back up files, standard input or a command's output into a new snapshot,
// with restic 0.14's options, output and exit codes (0 ok, 1 no snapshot, 3 snapshot saved
// but some files could not be read, 130 interrupted).
#include <cstdio>
#include <fstream>
#include <mutex>

#include <fmt/format.h>
#include <glob.h>
#include <unistd.h>

#include "repo/ops/backup.h"
#include "tools/commands.h"
#include "tools/format.h"
#include "tools/usage_report.h"
#include "tools/version.h"

namespace coffer::tools {
namespace {

struct BackupCmdOptions {
  std::vector<std::string> paths;
  std::vector<std::string> exclude_files, iexclude_files;
  std::vector<std::string> files_from, files_from_verbatim, files_from_raw;
  std::vector<std::string> tags;
  std::string host, time, parent, exclude_larger_than, compression, stdin_filename = "stdin";
  std::uint64_t pack_size_mib = 0;
  bool stdin = false, stdin_from_command = false;
  repo::BackupOptions backup;
};

repo::Result<std::uint64_t> parse_size(const std::string& text) {
  if (text.empty())
    return fail(repo::Errc::kInvalidArgument, "empty size");
  std::uint64_t mult = 1;
  std::string digits = text;
  switch (std::tolower(static_cast<unsigned char>(text.back()))) {
    case 'k':
      mult = 1ULL << 10;
      break;
    case 'm':
      mult = 1ULL << 20;
      break;
    case 'g':
      mult = 1ULL << 30;
      break;
    case 't':
      mult = 1ULL << 40;
      break;
    case 'b':
      break;
    default:
      digits.push_back('b');
      break;
  }
  digits.pop_back();
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
    return fail(repo::Errc::kInvalidArgument, "invalid size \"" + text + "\"");
  return std::stoull(digits) * mult;
}

// Lines of `path` (or stdin for "-"): trimmed, without blanks and # comments unless verbatim.
repo::Result<std::vector<std::string>> read_list(const std::string& path, char sep, bool verbatim) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file)
      return fail(repo::Errc::kInvalidArgument, "cannot read " + path);
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line, sep)) {
    if (!verbatim) {
      auto b = line.find_first_not_of(" \t\r");
      auto e = line.find_last_not_of(" \t\r");
      line = b == std::string::npos ? "" : line.substr(b, e - b + 1);
      if (line.empty() || line.front() == '#')
        continue;
    } else if (!line.empty() && line.back() == '\r' && sep == '\n') {
      line.pop_back();
    }
    if (line.empty() && sep == '\0')  // restic: NUL NUL is a mistake, not a blank line
      return fail(repo::Errc::kInvalidArgument, "--files-from-raw: empty filename in listing");
    if (!line.empty())
      out.push_back(line);
  }
  return out;
}

repo::Result<void> append_list(std::vector<std::string>& to, const std::vector<std::string>& files,
                               char sep, bool verbatim) {
  for (const auto& f : files) {
    COFFER_ASSIGN_OR_RETURN(auto lines, read_list(f, sep, verbatim));
    to.insert(to.end(), lines.begin(), lines.end());
  }
  return {};
}

// restic expands each --files-from line as a glob (Go's filepath.Glob: `*` also matches a
// leading dot); a pattern matching nothing is skipped with a warning.
void expand_globs(const std::vector<std::string>& patterns, std::vector<std::string>& out) {
  for (const auto& pattern : patterns) {
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_PERIOD, nullptr, &g) == 0)
      out.insert(out.end(), g.gl_pathv, g.gl_pathv + g.gl_pathc);
    else
      std::fprintf(stderr, "pattern \"%s\" does not match any files, skipping\n",
                   printable(pattern).c_str());
    ::globfree(&g);
  }
}

repo::Result<void> finish_options(BackupCmdOptions& o) {
  auto& b = o.backup;
  b.recorded_excludes = b.exclude.excludes;
  COFFER_TRY(append_list(b.exclude.excludes, o.exclude_files, '\n', false));
  COFFER_TRY(append_list(b.exclude.iexcludes, o.iexclude_files, '\n', false));
  std::vector<std::string> patterns;
  COFFER_TRY(append_list(patterns, o.files_from, '\n', false));
  expand_globs(patterns, b.paths);
  COFFER_TRY(append_list(b.paths, o.files_from_verbatim, '\n', true));
  COFFER_TRY(append_list(b.paths, o.files_from_raw, '\0', true));
  if (!o.exclude_larger_than.empty()) {
    COFFER_ASSIGN_OR_RETURN(b.exclude.exclude_larger_than, parse_size(o.exclude_larger_than));
  }
  for (const auto& t : o.tags) {
    for (std::size_t pos = 0; pos <= t.size();) {
      auto comma = std::min(t.find(',', pos), t.size());
      if (comma > pos)
        b.tags.push_back(t.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  b.hostname = o.host;
  if (!o.time.empty()) {
    COFFER_ASSIGN_OR_RETURN(b.time, parse_local_time(o.time));
  }
  if (o.compression == "auto" || o.compression.empty())
    b.writer.compression = repo::Compression::kAuto;
  else if (o.compression == "max")
    b.writer.compression = repo::Compression::kMax;
  else if (o.compression == "off")
    b.writer.compression = repo::Compression::kOff;
  else
    return fail(repo::Errc::kInvalidArgument, "--compression must be auto, max or off");
  if (o.pack_size_mib != 0)
    b.writer.pack_size = o.pack_size_mib << 20;
  if (o.stdin_from_command) {
    if (o.paths.empty())
      return fail(repo::Errc::kInvalidArgument, "--stdin-from-command needs a command after --");
    b.stdin_source = repo::StdinSource{o.stdin_filename, o.paths};
  } else if (o.stdin) {
    if (!o.paths.empty())
      return fail(repo::Errc::kInvalidArgument, "--stdin was given together with paths");
    b.stdin_source = repo::StdinSource{o.stdin_filename, {}};
  } else {
    b.paths.insert(b.paths.end(), o.paths.begin(),
                   o.paths.end());  // after --files-from*, as restic
  }
  return {};
}

std::string clock(double seconds) {
  auto s = static_cast<std::uint64_t>(seconds);
  if (s >= 3600)
    return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

void print_status_line(const repo::BackupProgress& p) {
  std::string line = fmt::format("[{}]", clock(p.seconds));
  if (p.total_bytes > 0)
    line +=
        fmt::format(" {:.2f}%", 100.0 * static_cast<double>(std::min(p.bytes_done, p.total_bytes)) /
                                    static_cast<double>(p.total_bytes));
  line += fmt::format("  {} files {}", p.files_done, format_bytes(p.bytes_done));
  if (p.total_files > 0)
    line += fmt::format(", total {} files {}", p.total_files, format_bytes(p.total_bytes));
  line += fmt::format(", {} errors", p.errors);
  if (p.scan_finished && p.bytes_done > 0 && p.total_bytes > p.bytes_done)
    line += " ETA " + clock(p.seconds * static_cast<double>(p.total_bytes - p.bytes_done) /
                            static_cast<double>(p.bytes_done));
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void print_status_json(const repo::BackupProgress& p) {
  nlohmann::ordered_json j;
  j["message_type"] = "status";
  j["seconds_elapsed"] = static_cast<std::uint64_t>(p.seconds);
  if (p.total_bytes > 0)
    j["percent_done"] = static_cast<double>(std::min(p.bytes_done, p.total_bytes)) /
                        static_cast<double>(p.total_bytes);
  else
    j["percent_done"] = 0;
  j["total_files"] = p.total_files;
  j["files_done"] = p.files_done;
  j["total_bytes"] = p.total_bytes;
  j["bytes_done"] = p.bytes_done;
  j["error_count"] = p.errors;
  if (!p.current_files.empty())
    j["current_files"] = p.current_files;
  out_line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void print_summary(const GlobalOptions& g, const BackupCmdOptions& o, const repo::BackupResult& r,
                   double seconds, const repo::ReadBackend& backend) {
  const auto& s = r.summary;
  if (g.json) {
    nlohmann::ordered_json j;
    j["message_type"] = "summary";
    j["dry_run"] = o.backup.dry_run;
    j["files_new"] = s.files_new;
    j["files_changed"] = s.files_changed;
    j["files_unmodified"] = s.files_unmodified;
    j["dirs_new"] = s.dirs_new;
    j["dirs_changed"] = s.dirs_changed;
    j["dirs_unmodified"] = s.dirs_unmodified;
    j["data_blobs"] = s.data_blobs;
    j["tree_blobs"] = s.tree_blobs;
    j["data_added"] = s.data_added;
    j["data_added_packed"] = s.data_added_packed;
    j["total_files_processed"] = s.total_files_processed;
    j["total_bytes_processed"] = s.total_bytes_processed;
    j["total_duration"] = seconds;
    if (r.snapshot_id)
      j["snapshot_id"] = r.snapshot_id->hex();
    add_usage_field(j, backend, g.prices);
    out_line(j.dump());
    return;
  }
  if (g.quiet)
    return;
  out_line("");
  out_line(fmt::format("Files:       {:5} new, {:5} changed, {:5} unmodified", s.files_new,
                       s.files_changed, s.files_unmodified));
  out_line(fmt::format("Dirs:        {:5} new, {:5} changed, {:5} unmodified", s.dirs_new,
                       s.dirs_changed, s.dirs_unmodified));
  if (g.verbose > 0) {
    out_line(fmt::format("Data Blobs:  {:5} new", s.data_blobs));
    out_line(fmt::format("Tree Blobs:  {:5} new", s.tree_blobs));
  }
  out_line(fmt::format("{} to the repository: {} ({} stored)",
                       o.backup.dry_run ? "Would add" : "Added", format_bytes(s.data_added),
                       format_bytes(s.data_added_packed)));
  out_line("");
  out_line(fmt::format("processed {} files, {} in {}", s.total_files_processed,
                       format_bytes(s.total_bytes_processed), clock(seconds)));
  if (r.snapshot_id)
    out_line(fmt::format("snapshot {} saved", r.snapshot_id->short_hex()));
}

void print_problem(const GlobalOptions& g, const char* kind, const std::string& message) {
  if (g.json) {
    nlohmann::ordered_json j;
    j["message_type"] = kind;
    j["error"] = {{"message", message}};
    j["during"] = "archival";
    std::fprintf(stderr, "%s\n",
                 j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fprintf(stderr, "%s: %s\n", kind, printable(message).c_str());
  }
}

repo::Result<int> run(const GlobalOptions& g, BackupCmdOptions& o) {
  COFFER_TRY(finish_options(o));
  auto& b = o.backup;
  b.cancel = &interrupted();
  b.program_version = std::string("coffer ") + kVersion;
  // The scan of the sources starts before the key derivation, which it overlaps.
  COFFER_ASSIGN_OR_RETURN(auto sources, repo::prepare_backup(b));
  COFFER_ASSIGN_OR_RETURN(auto r, open_repository(g));
  if (!o.parent.empty()) {
    COFFER_ASSIGN_OR_RETURN(b.parent, r->resolve(repo::FileKind::kSnapshot, o.parent));
  }
  bool terminal = ::isatty(STDERR_FILENO) != 0;
  repo::ProgressFn progress;
  std::mutex print_mutex;
  if (g.json && !g.quiet)
    progress = [&](const repo::BackupProgress& p) { print_status_json(p); };
  else if (terminal && !g.quiet)
    progress = [&](const repo::BackupProgress& p) { print_status_line(p); };
  if (!g.json && !g.quiet) {
    b.on_parent = [](const std::optional<repo::Id>& parent) {
      out_line(parent ? "using parent snapshot " + parent->short_hex()
                      : "no parent snapshot found, will read all files");
      std::fflush(stdout);
    };
  }
  auto start = std::chrono::steady_clock::now();
  auto result = repo::run_backup(*r, b, progress, std::move(sources));
  if (progress && !g.json)
    std::fprintf(stderr, "\r\033[K");
  COFFER_TRY(result);
  for (const auto& w : result->warnings) print_problem(g, "warning", w);
  for (const auto& e : result->errors) print_problem(g, "error", e);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print_summary(g, o, *result, seconds, r->backend());
  if (!result->errors.empty()) {
    if (!g.json)
      std::fprintf(stderr, "Warning: at least one source file could not be read\n");
    return kExitPartial;
  }
  return kExitOk;
}

}  // namespace

Command add_backup_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<BackupCmdOptions>();
  auto& b = o->backup;
  CLI::App* sub = app.add_subcommand("backup", "Create a new snapshot of files and directories");
  sub->add_option("PATH", o->paths, "files and directories to back up (or the command)");
  sub->add_option("-e,--exclude", b.exclude.excludes, "exclude a pattern (repeatable)");
  sub->add_option("--iexclude", b.exclude.iexcludes, "as --exclude, ignoring case");
  sub->add_option("--exclude-file", o->exclude_files, "read exclude patterns from a file");
  sub->add_option("--iexclude-file", o->iexclude_files, "as --exclude-file, ignoring case");
  sub->add_option("--exclude-if-present", b.exclude.exclude_if_present,
                  "exclude directories holding FILE[:HEADER]");
  sub->add_flag("--exclude-caches", b.exclude.exclude_caches,
                "exclude directories marked by a CACHEDIR.TAG");
  sub->add_option("--exclude-larger-than", o->exclude_larger_than,
                  "exclude files larger than SIZE (k, m, g, t suffixes)");
  sub->add_flag("-x,--one-file-system", b.exclude.one_file_system,
                "do not cross filesystem boundaries");
  sub->add_option("--files-from", o->files_from, "read paths from a file (- for stdin)");
  sub->add_option("--files-from-verbatim", o->files_from_verbatim,
                  "read paths, one per line, as is");
  sub->add_option("--files-from-raw", o->files_from_raw, "read NUL-separated paths");
  sub->add_option("--tag", o->tags, "add tags (comma-separated, repeatable)");
  sub->add_option("-H,--host,--hostname", o->host, "hostname to store (default: this host)");
  sub->add_option("--time", o->time, "snapshot time \"YYYY-MM-DD HH:MM:SS\" (local)");
  sub->add_option("--parent", o->parent, "use this snapshot as the parent");
  sub->add_flag("-f,--force", b.force, "read every file, ignoring the parent snapshot");
  sub->add_flag("--ignore-inode", b.ignore_inode,
                "ignore inode changes when finding changed files");
  sub->add_flag("--ignore-ctime", b.ignore_ctime,
                "ignore ctime changes when finding changed files");
  sub->add_flag("-n,--dry-run", b.dry_run, "do not store anything, only report");
  sub->add_flag("--stdin", o->stdin, "back up standard input");
  sub->add_option("--stdin-filename", o->stdin_filename, "file name for --stdin data");
  sub->add_flag("--stdin-from-command", o->stdin_from_command,
                "back up the output of the command given after --");
  sub->add_option("--compression", o->compression, "auto, max or off")
      ->envname("RESTIC_COMPRESSION");
  sub->add_option("--pack-size", o->pack_size_mib, "target pack size in MiB (4-128)")
      ->envname("RESTIC_PACK_SIZE");
  sub->add_option("--read-concurrency", b.readers, "files read at once (default: cores)");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
