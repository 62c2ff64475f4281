// RAII over LMDB handles, internal to repo/cache/: the environment, cursors, transactions
// (LmdbTxn aborts in its destructor unless committed), and the per-process claim on a cache
// directory (LMDB forbids opening one environment twice in a process). <lmdb.h> stays in the
// .cc files; the LMDB types are only forward-declared here.
//
// Thread contract: an LmdbTxn or cursor is used by one thread at a time (MDB_NOTLS lets a read
// transaction move between threads). DirClaim::acquire is safe from any thread.
// Ownership: each handle owns what it wraps. A write transaction's cursor must be destroyed
// before the transaction commits or aborts (LMDB frees it at the end of the transaction).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "repo/core/error.h"

struct MDB_env;
struct MDB_txn;
struct MDB_cursor;

namespace coffer::repo {

struct MdbEnvCloser {
  void operator()(MDB_env* env) const noexcept;
};
struct MdbCursorCloser {
  void operator()(MDB_cursor* cursor) const noexcept;
};
using MdbEnv = std::unique_ptr<MDB_env, MdbEnvCloser>;
using MdbCursor = std::unique_ptr<MDB_cursor, MdbCursorCloser>;

// The Error for LMDB return code `rc` while doing `what`: kCorrupt ("index cache damaged: ...")
// for codes that mean the files are broken, kIo for everything else.
Error lmdb_error(int rc, std::string_view what);

class LmdbTxn {
 public:
  // Begins a transaction; `flags` is 0 (read-write) or MDB_RDONLY. Errors: kIo, kCorrupt.
  static Result<LmdbTxn> begin(MDB_env* env, unsigned flags);
  LmdbTxn(LmdbTxn&& other) noexcept : txn_(other.txn_) { other.txn_ = nullptr; }
  LmdbTxn& operator=(LmdbTxn&&) = delete;
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;
  ~LmdbTxn();

  [[nodiscard]] MDB_txn* get() const { return txn_; }
  // Commits; the transaction is over either way. Errors: kIo (e.g. map full), kCorrupt.
  Result<void> commit();
  // Opens a cursor on database `dbi`. Errors: kIo.
  [[nodiscard]] Result<MdbCursor> cursor(unsigned dbi) const;

 private:
  explicit LmdbTxn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_;
};

// Marks a directory (by device and inode) as opened by this process until destroyed.
class DirClaim {
 public:
  // Errors: kIo if `dir` cannot be stat'ed or is already claimed in this process.
  static Result<DirClaim> acquire(const std::string& dir);
  DirClaim(DirClaim&& other) noexcept : key_(std::move(other.key_)) { other.key_.clear(); }
  DirClaim& operator=(DirClaim&&) = delete;
  DirClaim(const DirClaim&) = delete;
  DirClaim& operator=(const DirClaim&) = delete;
  ~DirClaim();

 private:
  explicit DirClaim(std::string key) : key_(std::move(key)) {}
  std::string key_;  // "dev:ino"; empty once moved from
};

}  // namespace coffer::repo
