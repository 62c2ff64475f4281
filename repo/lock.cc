#include "repo/lock.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <future>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <unistd.h>

#include "repo/compress/zstd.h"
#include "repo/core/log.h"
#include "repo/core/system.h"

namespace coffer::repo {
namespace {

constexpr auto kRefreshInterval = std::chrono::minutes(5);
constexpr auto kRecheckDelay = std::chrono::milliseconds(200);
constexpr std::int64_t kStaleSeconds = 30 * 60;

GoTime now_time() {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return GoTime{ns / 1000000000, static_cast<std::uint32_t>(ns % 1000000000), 0};
}

// Returns a message naming a lock that conflicts with a new lock of kind `exclusive`, or "".
Result<std::string> find_conflict(const Repository& repo, bool exclusive, const Id& own) {
  // The listing's sizes, not a stat per lock: one round trip fewer per lock over a remote.
  std::vector<Id> ids;
  COFFER_TRY(repo.backend().list(FileKind::kLock, [&](const FileInfo& f) -> Result<void> {
    auto id = Id::parse(f.name);
    if (id && *id != own && f.size != 0)  // empty: ignored, as restic 0.15.1+
      ids.push_back(*id);
    return {};
  }));
  std::sort(ids.begin(), ids.end());
  for (const Id& id : ids) {
    auto data = repo.load_unpacked(FileKind::kLock, id);
    if (!data && data.error().code == Errc::kNotFound)
      continue;  // released since the listing
    if (!data) {
      log::warn("ignoring unreadable lock " + id.short_hex() + ": " + data.error().message);
      continue;
    }
    auto lock = parse_lock(as_chars(*data));
    if (!lock)
      continue;
    if (exclusive || lock->exclusive) {
      return fmt::format("repository is already locked {}by PID {} on {} by {} (lock {}, since {})",
                         lock->exclusive ? "exclusively " : "", lock->pid, lock->hostname,
                         lock->username, id.short_hex(), format_go_time(lock->time)) +
             "; if it is stale, remove it with `restic unlock`";
    }
  }
  return std::string();
}

}  // namespace

Result<LockInfo> parse_lock(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(Errc::kCorrupt, "lock is not valid JSON");
  LockInfo l;
  auto t = j.find("time");
  if (t == j.end() || !t->is_string())
    return fail(Errc::kCorrupt, "lock without time");
  COFFER_ASSIGN_OR_RETURN(l.time, parse_go_time(t->get<std::string>()));
  l.exclusive = j.value("exclusive", false);
  l.hostname = j.value("hostname", "");
  l.username = j.value("username", "");
  l.pid = j.value("pid", std::int64_t{0});
  l.uid = j.value("uid", 0U);
  l.gid = j.value("gid", 0U);
  return l;
}

std::string serialize_lock(const LockInfo& l) {
  std::string out =
      fmt::format(R"({{"time":"{}","exclusive":{},"hostname":{},"username":{},"pid":{})",
                  format_go_time(l.time), l.exclusive ? "true" : "false",
                  go_json_string(l.hostname), go_json_string(l.username), l.pid);
  if (l.uid != 0)
    out += fmt::format(",\"uid\":{}", l.uid);
  if (l.gid != 0)
    out += fmt::format(",\"gid\":{}", l.gid);
  return out + "}";
}

bool lock_is_stale(const LockInfo& lock, const GoTime& now, std::string_view host,
                   const std::function<bool(std::int64_t)>& process_exists) {
  // time.Since(l.Time) > 30 min, to the nanosecond.
  std::int64_t secs = now.unix_seconds - lock.time.unix_seconds;
  std::int64_t nanos = std::int64_t{now.nanos} - std::int64_t{lock.time.nanos};
  if (secs > kStaleSeconds || (secs == kStaleSeconds && nanos > 0))
    return true;
  if (host.empty() || host != lock.hostname)
    return false;  // made elsewhere (or this host is unknown): assume it is alive
  return !process_exists(lock.pid);
}

bool local_process_exists(std::int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max())
    return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

Result<std::size_t> remove_locks(const Repository& repo, bool all) {
  WriteBackend* backend = repo.write_backend();
  if (backend == nullptr)
    return fail(Errc::kUnsupported, "the repository backend is read-only; cannot remove locks");
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> ids, repo.list_ids(FileKind::kLock));
  std::string host = host_name();
  std::size_t removed = 0;
  for (const Id& id : ids) {
    if (!all) {
      auto data = repo.load_unpacked(FileKind::kLock, id);
      auto lock = data ? parse_lock(as_chars(*data)) : Result<LockInfo>(fail(data.error()));
      if (!lock) {
        log::debug("ignoring lock " + id.short_hex() + ": " + lock.error().message);
        continue;
      }
      if (!lock_is_stale(*lock, now_time(), host, local_process_exists))
        continue;
    }
    auto gone = backend->remove(Handle{FileKind::kLock, id.hex()});
    if (!gone && gone.error().code == Errc::kNotFound)
      continue;  // released meanwhile
    if (!gone)
      return fail(gone.error().with_context("removing lock " + id.short_hex()));
    ++removed;
  }
  return removed;
}

Result<std::unique_ptr<RepoLock>> RepoLock::acquire(const Repository& repo, bool exclusive) {
  if (repo.write_backend() == nullptr) {
    return fail(Errc::kUnsupported, "the repository backend is read-only; cannot lock");
  }
  std::unique_ptr<RepoLock> lock(new RepoLock(repo));
  lock->info_ = LockInfo{now_time(),
                         exclusive,
                         host_name(),
                         current_user_name(),
                         ::getpid(),
                         static_cast<std::uint32_t>(::getuid()),
                         static_cast<std::uint32_t>(::getgid())};
  COFFER_ASSIGN_OR_RETURN(SealedLock sealed, lock->seal_lock_file());
  // restic looks for conflicting locks, writes its own, waits and looks again. The first look
  // runs while the lock file is written (over a remote that is one round trip or more
  // instead of two); a conflict it finds removes the lock again.
  auto first_look = std::async(std::launch::async, [&repo, exclusive, id = sealed.id] {
    return find_conflict(repo, exclusive, id);
  });
  Result<void> written = lock->save_lock_file(sealed);
  Result<std::string> conflict = first_look.get();
  if (written)
    lock->current_ = sealed.id;
  if (!conflict || !conflict->empty() || !written) {
    lock->release_file();
    if (!conflict)
      return fail(conflict.error());
    if (!conflict->empty())
      return fail(Errc::kLocked, *conflict);
    return fail(written.error());
  }
  std::this_thread::sleep_for(kRecheckDelay);
  auto again = find_conflict(repo, exclusive, lock->current_);
  if (!again || !again->empty()) {
    lock->release_file();
    if (!again)
      return fail(again.error());
    return fail(Errc::kLocked, *again);
  }
  lock->refresher_ =
      std::jthread([l = lock.get()](const std::stop_token& st) { l->refresh_loop(st); });
  return lock;
}

Result<RepoLock::SealedLock> RepoLock::seal_lock_file() {
  info_.time = now_time();
  std::string json = serialize_lock(info_);
  COFFER_ASSIGN_OR_RETURN(Bytes plain, encode_unpacked(repo_.config().version, to_bytes(json)));
  COFFER_ASSIGN_OR_RETURN(Bytes sealed, seal(repo_.key(), plain));
  Id id = Id::hash(sealed);
  return SealedLock{id, std::move(sealed)};
}

Result<void> RepoLock::save_lock_file(const SealedLock& lock) {
  COFFER_TRY_CTX(repo_.write_backend()->save(Handle{FileKind::kLock, lock.id.hex()}, lock.bytes),
                 "writing lock");
  return {};
}

Result<Id> RepoLock::write_lock_file() {
  COFFER_ASSIGN_OR_RETURN(SealedLock sealed, seal_lock_file());
  COFFER_TRY(save_lock_file(sealed));
  return sealed.id;
}

void RepoLock::release_file() {
  if (current_.is_zero())
    return;
  (void)repo_.write_backend()->remove(Handle{FileKind::kLock, current_.hex()});
  current_ = Id();
}

void RepoLock::refresh_loop(const std::stop_token& stop) {
  std::unique_lock guard(mutex_);
  while (true) {
    wake_.wait_for(guard, stop, kRefreshInterval, [] { return false; });
    if (stop.stop_requested())
      return;
    auto fresh = write_lock_file();
    if (!fresh) {
      log::warn("refreshing the repository lock failed: " + fresh.error().message);
      continue;
    }
    (void)repo_.write_backend()->remove(Handle{FileKind::kLock, current_.hex()});
    current_ = *fresh;
  }
}

RepoLock::~RepoLock() {
  if (refresher_.joinable()) {
    refresher_.request_stop();
    refresher_.join();
  }
  std::scoped_lock guard(mutex_);
  if (!current_.is_zero()) {
    auto r = repo_.write_backend()->remove(Handle{FileKind::kLock, current_.hex()});
    if (!r)
      log::warn("removing the repository lock failed: " + r.error().message);
  }
}

}  // namespace coffer::repo
