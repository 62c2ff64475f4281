#include "repo/cache/lmdb_handles.h"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include <lmdb.h>
#include <sys/stat.h>

namespace coffer::repo {
namespace {

// The directories claimed by this process. A process-wide registry is what LMDB's rule ("never
// open one environment twice in a process") needs; it holds no cache data.
struct ClaimRegistry {
  std::mutex mutex;
  std::set<std::string> keys;  // guarded by mutex
};

ClaimRegistry& claim_registry() {
  static ClaimRegistry registry;  // NOLINT: process-wide by design, see above
  return registry;
}

bool is_damage_code(int rc) {
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
         rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE;
}

}  // namespace

void MdbEnvCloser::operator()(MDB_env* env) const noexcept { mdb_env_close(env); }
void MdbCursorCloser::operator()(MDB_cursor* cursor) const noexcept { mdb_cursor_close(cursor); }

Error lmdb_error(int rc, std::string_view what) {
  std::string message = std::string(what) + ": " + mdb_strerror(rc);
  if (is_damage_code(rc))
    return Error{Errc::kCorrupt, "index cache damaged: " + message, false};
  return Error{Errc::kIo, "index cache: " + message, false};
}

Result<LmdbTxn> LmdbTxn::begin(MDB_env* env, unsigned flags) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, flags, &txn);
  if (rc != 0)
    return fail(lmdb_error(rc, "beginning a transaction"));
  return LmdbTxn(txn);
}

LmdbTxn::~LmdbTxn() {
  if (txn_ != nullptr)
    mdb_txn_abort(txn_);
}

Result<void> LmdbTxn::commit() {
  MDB_txn* txn = txn_;
  txn_ = nullptr;  // mdb_txn_commit frees the transaction even when it fails
  int rc = mdb_txn_commit(txn);
  if (rc != 0)
    return fail(lmdb_error(rc, "committing"));
  return {};
}

Result<MdbCursor> LmdbTxn::cursor(unsigned dbi) const {
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn_, dbi, &cursor);
  if (rc != 0)
    return fail(lmdb_error(rc, "opening a cursor"));
  return MdbCursor(cursor);
}

Result<DirClaim> DirClaim::acquire(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return fail(Errc::kIo, "index cache: stat " + dir + ": " + std::strerror(errno));
  }
  std::string key = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ClaimRegistry& registry = claim_registry();
  std::scoped_lock lock(registry.mutex);
  if (!registry.keys.insert(key).second) {
    return fail(Errc::kIo, "index cache " + dir + " is already open in this process");
  }
  return DirClaim(std::move(key));
}

DirClaim::~DirClaim() {
  if (key_.empty())
    return;
  ClaimRegistry& registry = claim_registry();
  std::scoped_lock lock(registry.mutex);
  registry.keys.erase(key_);
}

}  // namespace coffer::repo
