// run_backup: targets, parent snapshot, archiver, snapshot file (see backup.h).
#include "repo/ops/backup.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "repo/core/system.h"
#include "repo/ops/backup_archiver.h"
#include "repo/ops/backup_scan.h"
#include "repo/ops/filter.h"

namespace coffer::repo {

namespace {

using detail::Archiver;
using detail::TargetNode;

GoTime now_local() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return go_time_local(ts);
}

std::string current_dir() {
  std::vector<char> buf(4096);
  while (::getcwd(buf.data(), buf.size()) == nullptr && errno == ERANGE) buf.resize(buf.size() * 2);
  return buf.data();
}

// The components restic uses for `target` in the snapshot's tree: an absolute path's own,
// a relative path's without leading "..".
std::vector<std::string> tree_components(const std::string& target) {
  std::string clean = clean_path(target);
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos <= clean.size()) {
    std::size_t slash = clean.find('/', pos);
    if (slash == std::string::npos)
      slash = clean.size();
    std::string part = clean.substr(pos, slash - pos);
    if (!part.empty() && part != "." && !(part == ".." && parts.empty()))
      parts.push_back(part);
    pos = slash + 1;
  }
  return parts;
}

Result<TargetNode> build_targets(const std::vector<std::string>& given,
                                 const std::vector<std::string>& absolute) {
  TargetNode root;
  root.path = "/";
  for (std::size_t i = 0; i < given.size(); ++i) {
    auto parts = tree_components(given[i]);
    if (parts.empty()) {  // "." or "/": the root tree is this directory itself
      if (given.size() > 1)
        return fail(Errc::kInvalidArgument,
                    "\"" + given[i] + "\" cannot be combined with other paths");
      root.full = true;
      root.path = absolute[i];
      return root;
    }
    TargetNode* node = &root;
    // The filesystem path of each inner component: the absolute path cut at that depth.
    std::string abs = absolute[i];
    std::size_t depth = parts.size();
    for (std::size_t k = 0; k < parts.size(); ++k) {
      node = &node->children[parts[k]];
      std::string p = abs;
      for (std::size_t up = k + 1; up < depth; ++up) p = p.substr(0, p.rfind('/'));
      node->path = p.empty() ? "/" : p;
    }
    node->full = true;
  }
  return root;
}

std::string summary_json(const BackupSummary& s) {
  nlohmann::ordered_json j;
  j["backup_start"] = format_go_time(s.backup_start);
  j["backup_end"] = format_go_time(s.backup_end);
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
  return j.dump();
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// The newest snapshot of this host with the same paths, not newer than `limit`.
Result<std::optional<SnapshotEntry>> find_parent(const Repository& repo, const std::string& host,
                                                 const std::vector<std::string>& paths,
                                                 const GoTime& limit) {
  COFFER_ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  auto want = sorted(paths);
  std::optional<SnapshotEntry> best;
  for (auto& e : all) {
    if (e.snapshot.hostname != host || sorted(e.snapshot.paths) != want || limit < e.snapshot.time)
      continue;
    if (!best || best->snapshot.time < e.snapshot.time)
      best = std::move(e);
  }
  return best;
}

// Calls `progress` about once a second until stopped, and once more at the end.
class ProgressTicker {
 public:
  ProgressTicker(const ProgressFn& fn, Archiver& archiver, const BackupScan* scan)
      : fn_(fn), archiver_(archiver), scan_(scan), start_(std::chrono::steady_clock::now()) {
    if (fn_)
      thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
  }
  ~ProgressTicker() { stop(); }
  void stop() {
    if (!thread_.joinable())
      return;
    thread_.request_stop();
    cv_.notify_all();
    thread_.join();
    tick();
  }

 private:
  void loop(const std::stop_token& stop) {
    std::mutex m;
    std::unique_lock lock(m);
    while (!stop.stop_requested()) {
      cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop.stop_requested(); });
      if (!stop.stop_requested())
        tick();
    }
  }
  void tick() {
    BackupProgress p = archiver_.progress();
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (scan_ != nullptr)
      scan_->fill(p);
    fn_(p);
  }
  const ProgressFn& fn_;
  Archiver& archiver_;
  const BackupScan* scan_;
  std::chrono::steady_clock::time_point start_;
  std::condition_variable_any cv_;
  std::jthread thread_;
};

// Runs `command` with its standard output on a pipe; returns {pid, read end}.
// An exec failure comes back as errno through a close-on-exec pipe: the child only makes
// async-signal-safe calls (other threads may hold the stdio or malloc locks).
Result<std::pair<pid_t, int>> spawn_command(const std::vector<std::string>& command) {
  int fds[2], errs[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return fail(Errc::kIo, std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(errs, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return fail(Errc::kIo, std::string("pipe: ") + std::strerror(e));
  }
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::execvp(argv[0], argv.data());
    int e = errno;
    [[maybe_unused]] ssize_t w = ::write(errs[1], &e, sizeof e);
    ::_exit(127);
  }
  int e = pid < 0 ? errno : 0;
  ::close(fds[1]);
  ::close(errs[1]);
  ssize_t n = 0;
  do {
    n = pid < 0 ? 0 : ::read(errs[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  ::close(errs[0]);
  if (pid < 0 || n == sizeof e) {
    ::close(fds[0]);
    if (pid > 0)
      ::waitpid(pid, nullptr, 0);
    return fail(Errc::kIo,
                "cannot run " + command.front() + ": " + std::strerror(e) + ", no snapshot saved");
  }
  return std::make_pair(pid, fds[0]);
}

Result<void> wait_command(pid_t pid, const std::string& name) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return fail(Errc::kIo, std::string("waitpid: ") + std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return {};
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  return fail(Errc::kIo, "command " + name + " failed (" + how + "), no snapshot saved");
}

Node stream_node(const std::string& filename, const GoTime& now) {
  Node n;
  n.name = filename;
  n.type = NodeType::kFile;
  n.mode = 0644;
  n.mtime = n.atime = n.ctime = now;
  n.uid = ::getuid();
  n.gid = ::getgid();
  NameCache names;
  n.user = names.user(n.uid);
  n.group = names.group(n.gid);
  return n;
}

Result<Id> archive_stream(Archiver& archiver, const StdinSource& source, const GoTime& now) {
  if (source.filename.empty() || source.filename.find('/') != std::string::npos)
    return fail(Errc::kInvalidArgument, "--stdin-filename must be a plain file name");
  Node node = stream_node(source.filename, now);
  if (source.command.empty())
    return archiver.run_stream(STDIN_FILENO, std::move(node));
  COFFER_ASSIGN_OR_RETURN(auto child, spawn_command(source.command));
  auto root = archiver.run_stream(child.second, std::move(node));
  ::close(child.second);
  auto waited = wait_command(child.first, source.command.front());
  if (!root)
    return root;
  COFFER_TRY(waited);
  return root;
}

}  // namespace

Result<std::vector<std::string>> absolute_targets(const std::vector<std::string>& targets) {
  std::vector<std::string> out;
  std::string cwd;
  for (const auto& t : targets) {
    if (t.empty())
      return fail(Errc::kInvalidArgument, "empty path given");
    std::string abs = t.front() == '/' ? t : (cwd.empty() ? (cwd = current_dir()) : cwd) + "/" + t;
    abs = clean_path(abs);
    if (std::find(out.begin(), out.end(), abs) == out.end())
      out.push_back(abs);
  }
  return out;
}

struct BackupSources {
  explicit BackupSources(Excluder e) : excluder(std::move(e)) {}
  Excluder excluder;
  std::vector<std::string> paths;     // the snapshot's paths
  std::optional<TargetNode> targets;  // none for stdin
  std::vector<std::string> missing;   // targets that do not exist
  std::unique_ptr<BackupScan> scan;   // last: stopped before the rest goes
};

void BackupSourcesDeleter::operator()(BackupSources* s) const { delete s; }

Result<PreparedSources> prepare_backup(const BackupOptions& options) {
  COFFER_ASSIGN_OR_RETURN(Excluder excluder, Excluder::create(options.exclude));
  PreparedSources s(new BackupSources(std::move(excluder)));
  if (options.stdin_source) {
    s->paths.push_back("/" + options.stdin_source->filename);
    return s;
  }
  if (options.paths.empty())
    return fail(Errc::kInvalidArgument, "nothing to back up: no paths given");
  std::vector<std::string> given;
  for (const auto& p : options.paths) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      s->missing.push_back(p + " does not exist, skipping");
      continue;
    }
    given.push_back(p);
    s->excluder.allow_device(st.st_dev);
  }
  if (given.empty())
    return fail(Errc::kInvalidArgument, "all target paths do not exist");
  COFFER_ASSIGN_OR_RETURN(s->paths, absolute_targets(given));
  COFFER_ASSIGN_OR_RETURN(s->targets, build_targets(given, s->paths));
  s->scan = std::make_unique<BackupScan>(*s->targets, s->excluder, options.cancel);
  return s;
}

Result<BackupResult> run_backup(Repository& repo, const BackupOptions& options,
                                const ProgressFn& progress, PreparedSources sources) {
  if (!sources) {
    COFFER_ASSIGN_OR_RETURN(sources, prepare_backup(options));
  }
  BackupResult result;
  result.summary.backup_start = now_local();
  GoTime snapshot_time = options.time.value_or(result.summary.backup_start);
  std::string host = options.hostname.empty() ? host_name() : options.hostname;
  result.errors = sources->missing;
  const std::vector<std::string>& paths = sources->paths;
  const std::optional<TargetNode>& targets = sources->targets;
  const Excluder& excluder = sources->excluder;

  std::optional<SnapshotEntry> parent;
  if (options.parent) {
    COFFER_ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
    for (auto& e : all)
      if (e.id == *options.parent)
        parent = std::move(e);
    if (!parent)
      return fail(Errc::kNotFound, "parent snapshot " + options.parent->short_hex() + " not found");
  } else if (!options.force && targets) {
    COFFER_ASSIGN_OR_RETURN(parent, find_parent(repo, host, paths, snapshot_time));
  }
  if (parent && !options.force)
    result.parent_id = parent->id;
  if (options.on_parent && !options.stdin_source)
    options.on_parent(result.parent_id);

  std::unique_ptr<RepositoryWriter> writer;
  if (!options.dry_run) {
    COFFER_ASSIGN_OR_RETURN(writer, RepositoryWriter::create(repo, options.writer));
  }
  Archiver archiver(repo, writer.get(), options, excluder);
  ProgressTicker ticker(progress, archiver, sources->scan.get());
  Result<Id> root =
      targets ? archiver.run(*targets, result.parent_id ? std::optional<Id>(parent->snapshot.tree)
                                                        : std::nullopt)
              : archive_stream(archiver, *options.stdin_source, snapshot_time);
  ticker.stop();
  sources->scan.reset();
  for (auto& e : archiver.take_errors()) result.errors.push_back(std::move(e));
  result.warnings = archiver.take_warnings();
  COFFER_TRY(root);
  if (writer)
    COFFER_TRY(writer->flush());
  archiver.fill_summary(result.summary);
  result.summary.backup_end = now_local();
  if (options.dry_run)
    return result;

  Snapshot s;
  s.time = snapshot_time;
  if (result.parent_id)
    s.parent = result.parent_id;
  s.tree = *root;
  s.paths = paths;
  s.hostname = host;
  s.username = current_user_name();
  s.uid = ::getuid();
  s.gid = ::getgid();
  s.excludes = options.recorded_excludes.value_or(options.exclude.excludes);
  s.tags = options.tags;
  s.program_version = options.program_version;
  s.summary_json = summary_json(result.summary);
  COFFER_ASSIGN_OR_RETURN(result.snapshot_id,
                          writer->save_unpacked(FileKind::kSnapshot, serialize_snapshot(s)));
  return result;
}

}  // namespace coffer::repo
