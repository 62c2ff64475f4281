#include "repo/ops/restore.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <thread>

#include <unistd.h>

#include "repo/core/log.h"
#include "repo/core/parallel.h"
#include "repo/ops/filter.h"
#include "repo/ops/restore_exec.h"
#include "repo/ops/restore_fs.h"
#include "repo/ops/restore_plan.h"
#include "repo/repository.h"

namespace coffer::repo {
namespace restore_detail {
namespace {

using Clock = std::chrono::steady_clock;

// Indices of `items` grouped by depth, shallowest first.
std::vector<std::vector<std::size_t>> by_depth(const std::vector<PlannedDir>& dirs) {
  std::vector<std::vector<std::size_t>> levels;
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    if (dirs[i].depth >= levels.size())
      levels.resize(dirs[i].depth + 1);
    levels[dirs[i].depth].push_back(i);
  }
  return levels;
}

std::string human_bytes(double b) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t u = 0;
  while (b >= 1024 && u + 1 < std::size(kUnits)) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, kUnits[u]);
  return buf;
}

std::string clock_text(double seconds) {
  auto s = static_cast<long long>(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

}  // namespace

Restorer::Restorer(const Repository& repo, const Plan& plan, const RestoreOptions& options,
                   unsigned workers)
    : repo_(repo),
      plan_(plan),
      options_(options),
      workers_(workers),
      states_(std::make_unique<FileState[]>(plan.files.size())) {
  for (const PlannedFile& f : plan.files) {
    if (f.primary != kNoPrimary)
      continue;
    ++progress_.files_total;
    progress_.bytes_total += f.node.size;
  }
  show_progress_ = options.progress && ::isatty(STDERR_FILENO) != 0;
}

bool Restorer::cancelled() const {
  return options_.cancel != nullptr && options_.cancel->load(std::memory_order_relaxed);
}

Result<void> Restorer::check_cancel() const {
  if (cancelled())
    return fail(Errc::kCancelled, "restore cancelled");
  return {};
}

void Restorer::report(const std::string& message) {
  std::scoped_lock lock(errors_mutex_);
  ++stats_.errors;
  if (stats_.error_messages.size() < kMaxErrorMessages)
    stats_.error_messages.push_back(message);
  if (!options_.on_error)
    return;
  if (show_progress_)
    std::fputs("\r\033[K", stderr);
  options_.on_error(message);
}

Result<RestoreStats> Restorer::run() {
  for (const std::string& e : plan_.errors) report(e);
  std::jthread progress;
  if (show_progress_)
    progress = std::jthread([this](std::stop_token st) { progress_loop(st); });
  Result<void> done = run_phases();
  if (progress.joinable()) {
    progress.request_stop();
    progress.join();
    print_progress(true);
  }
  if (!done)
    return fail(done.error());
  return collect_stats();
}

Result<void> Restorer::run_phases() {
  auto timed = [this](const char* name, auto&& phase) -> Result<void> {
    const auto t0 = Clock::now();
    Result<void> r = phase();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    log::debug(std::string("restore: ") + name + " took " + std::to_string(ms.count()) + " ms");
    if (!r)
      return r;
    return check_cancel();
  };
  COFFER_TRY(timed("directories", [&] { return create_dirs(); }));
  COFFER_TRY(timed("special files", [&] { return create_others(); }));
  COFFER_TRY(timed("blob lookups", [&] { return locate_blobs(); }));
  COFFER_TRY(timed("existing files", [&] { return check_existing(); }));
  COFFER_TRY(timed("planning reads", [&]() -> Result<void> {
    for (std::uint32_t f = 0; f < plan_.files.size(); ++f) {
      if (plan_.files[f].primary == kNoPrimary)
        add_placements(f);
    }
    build_jobs();
    return {};
  }));
  COFFER_TRY(timed("contents", [&] { return restore_contents(); }));
  COFFER_TRY(timed("hard links", [&] { return link_hardlinks(); }));
  if (options_.verify)
    COFFER_TRY(timed("verify", [&] { return verify_files(); }));
  return timed("directory metadata", [&] { return finish_dirs(); });
}

Result<void> Restorer::create_dirs() {
  dir_failed_.assign(plan_.dirs.size(), 0);
  for (const auto& level : by_depth(plan_.dirs)) {
    auto done = parallel_for(level.size(), workers_, [&](std::size_t i) -> Result<void> {
      COFFER_TRY(check_cancel());
      auto made = make_dir(plan_.dirs[level[i]].path);
      if (!made) {
        dir_failed_[level[i]] = 1;  // distinct elements per thread
        report(made.error().message);
      }
      return {};
    });
    if (!done)
      return done;
  }
  return {};
}

Result<void> Restorer::create_others() {
  return parallel_for(plan_.others.size(), workers_, [&](std::size_t i) -> Result<void> {
    COFFER_TRY(check_cancel());
    const PlannedOther& o = plan_.others[i];
    auto made = create_special(o.path, o.node);
    if (!made) {
      report(made.error().message);
      return {};
    }
    for (const std::string& e : apply_metadata(o.path, o.node)) report(e);
    others_done_.fetch_add(1, std::memory_order_relaxed);
    return {};
  });
}

Result<void> Restorer::link_hardlinks() {
  for (std::size_t i = 0; i < plan_.files.size(); ++i) {
    COFFER_TRY(check_cancel());
    const PlannedFile& f = plan_.files[i];
    if (f.primary == kNoPrimary)
      continue;
    const std::string& target = plan_.files[f.primary].path;
    if (!states_[f.primary].ok.load()) {
      report(f.path + ": hard link not created, " + target + " was not restored");
      continue;
    }
    auto linked = make_hardlink(target, f.path);
    if (!linked) {
      report(linked.error().message);
      continue;
    }
    links_done_.fetch_add(1, std::memory_order_relaxed);
  }
  return {};
}

Result<void> Restorer::verify_files() {
  return parallel_for(plan_.files.size(), workers_, [&](std::size_t i) -> Result<void> {
    COFFER_TRY(check_cancel());
    const PlannedFile& f = plan_.files[i];
    if (f.primary != kNoPrimary || !states_[i].ok.load())
      return {};
    std::vector<Chunk> chunks;
    if (!chunks_of(f.node, chunks)) {
      report(f.path + ": cannot verify, a blob is not in the index");
      return {};
    }
    auto checked = verify_file(f.path, chunks, f.node.size);
    if (!checked)
      report("verify: " + checked.error().message);
    return {};
  });
}

Result<void> Restorer::finish_dirs() {
  auto levels = by_depth(plan_.dirs);
  for (auto level = levels.rbegin(); level != levels.rend(); ++level) {
    auto done = parallel_for(level->size(), workers_, [&](std::size_t i) -> Result<void> {
      COFFER_TRY(check_cancel());
      const PlannedDir& d = plan_.dirs[(*level)[i]];
      if (dir_failed_[(*level)[i]] != 0)
        return {};
      for (const std::string& e : apply_metadata(d.path, d.node)) report(e);
      dirs_done_.fetch_add(1, std::memory_order_relaxed);
      return {};
    });
    if (!done)
      return done;
  }
  return {};
}

void Restorer::progress_loop(std::stop_token stop) const {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  while (!stop.stop_requested()) {
    print_progress(false);
    cv.wait_for(lock, stop, std::chrono::milliseconds(500), [] { return false; });
  }
}

void Restorer::print_progress(bool final) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const double done = static_cast<double>(progress_.bytes_done.load());
  const double rate = elapsed > 0 ? done / elapsed : 0;
  std::string eta = "--:--";
  if (rate > 0 && !final) {
    eta = clock_text((static_cast<double>(progress_.bytes_total) - done) / rate);
  }
  std::fprintf(stderr, "\r\033[K[%s] %llu / %llu files, %s / %s, %s/s, ETA %s%s",
               clock_text(elapsed).c_str(),
               static_cast<unsigned long long>(progress_.files_done.load()),
               static_cast<unsigned long long>(progress_.files_total), human_bytes(done).c_str(),
               human_bytes(static_cast<double>(progress_.bytes_total)).c_str(),
               human_bytes(rate).c_str(), eta.c_str(), final ? "\n" : "");
}

RestoreStats Restorer::collect_stats() {
  std::scoped_lock lock(errors_mutex_);
  RestoreStats s = std::move(stats_);
  for (std::size_t i = 0; i < plan_.files.size(); ++i) {
    if (plan_.files[i].primary != kNoPrimary || !states_[i].ok.load())
      continue;
    ++s.files;
    s.bytes += plan_.files[i].node.size;
    if (states_[i].skip)
      ++s.files_skipped;
  }
  s.hardlinks = links_done_.load();
  s.dirs = dirs_done_.load();
  s.others = others_done_.load();
  s.bytes_written = progress_.bytes_written.load();
  return s;
}

}  // namespace restore_detail

namespace {

// Twice the backend's connections; for a local backend also at most what the CPUs can
// decode (more threads only add memory and contention there).
unsigned default_workers(const Repository& repo) {
  const BackendProperties props = repo.backend().properties();
  unsigned n = std::max(2U, 2 * props.max_connections);
  if (props.local)
    n = std::min(n, std::max(4U, 2 * std::thread::hardware_concurrency()));
  return n;
}

std::string clean_target(const std::string& target) {
  std::string t = target;
  while (t.size() > 1 && t.back() == '/') t.pop_back();
  return t;
}

}  // namespace

Result<RestoreStats> restore_snapshot(const Repository& repo, const Snapshot& snapshot,
                                      const RestoreOptions& options) {
  if (options.target.empty())
    return fail(Errc::kInvalidArgument, "no target directory given");
  COFFER_ASSIGN_OR_RETURN(PathFilter filter,
                          PathFilter::create(options.includes, options.excludes));
  const unsigned workers = options.workers != 0 ? options.workers : default_workers(repo);
  const std::string target = clean_target(options.target);
  restore_detail::PlanInput in{&repo,   snapshot.tree, options.subpath, target,
                               &filter, workers,       options.cancel};
  const auto t0 = std::chrono::steady_clock::now();
  COFFER_ASSIGN_OR_RETURN(restore_detail::Plan plan, restore_detail::build_plan(in));
  log::debug("restore: walking trees took " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - t0)
                                .count()) +
             " ms");
  if (options.before_writing)
    COFFER_TRY(options.before_writing());
  COFFER_TRY(restore_detail::make_dirs(target));
  restore_detail::Restorer restorer(repo, plan, options, workers);
  return restorer.run();
}

}  // namespace coffer::repo
