// The storage seam: every repository byte goes through a ReadBackend or WriteBackend.
//
// Objects are keyed by (FileKind, name), never by path, so that a remote object store
// (B2) fits the same interface as a local directory. Names are 64 lowercase hex digits,
// except the config file whose name is "config".
//
// Thread contract: every method of every backend is safe to call concurrently from any
// number of threads. Backends own no caller memory; results are returned by value. A
// PendingFile is used by one thread at a time and must not outlive its backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"

namespace coffer::repo {

enum class FileKind { kConfig, kKey, kLock, kSnapshot, kIndex, kPack };

// The directory name restic uses for `kind` ("keys", "data", ...); "" for config.
const char* file_kind_dir(FileKind kind);

struct Handle {
  FileKind kind = FileKind::kConfig;
  std::string name;

  bool operator==(const Handle&) const = default;
  // "data/3f/3fa2..." style path, for messages and for path-based backends.
  [[nodiscard]] std::string path() const;
};

struct FileInfo {
  std::string name;
  std::uint64_t size = 0;
};

struct BackendProperties {
  unsigned max_connections = 4;  // parallel requests that make sense
  bool local = true;             // true when reads are cheap (no network)
};

// What a remote backend has spent so far: requests and bytes, and for backends whose calls
// are priced by class (B2) the calls per class A/B/C.
struct BackendUsage {
  std::string service;  // "B2"
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  std::uint64_t class_a = 0;
  std::uint64_t class_b = 0;
  std::uint64_t class_c = 0;
};

// A process-wide record of what remote backends spent: a remote backend calls
// record_backend_usage(location(), usage) when it is destroyed, and the command line prints
// recorded_backend_usage() once the command is done. Thread-safe.
void record_backend_usage(const std::string& location, const BackendUsage& usage);
std::vector<std::pair<std::string, BackendUsage>> recorded_backend_usage();

// Bytes a backend read: a window into a buffer that `owner` keeps alive. The window may lie
// inside a larger buffer (LocalBackend reads uncached ranges with O_DIRECT into an aligned
// one). Immutable once returned.
struct SharedBytes {
  std::shared_ptr<const void> owner;
  ByteSpan bytes;
};

class ReadBackend {
 public:
  virtual ~ReadBackend() = default;

  // Reads `length` bytes at `offset` of `h`; length 0 reads to the end of the file.
  // Errors: kNotFound (no such file), kCorrupt (file shorter than offset+length),
  // kIo (retryable when the cause is transient).
  virtual Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) = 0;

  // As load(), for readers that can use the bytes where they land: the result may be a
  // window into a larger buffer, neither zero-filled nor copied on the way. The default
  // wraps load(). Errors: as load().
  virtual Result<SharedBytes> load_shared(const Handle& h, std::uint64_t offset,
                                          std::uint64_t length);

  // Size of `h`. Errors: kNotFound, kIo.
  virtual Result<std::uint64_t> stat(const Handle& h) = 0;

  // Calls `fn` once per file of `kind` (any order). Stops and returns the error if `fn` fails.
  // Names that are not valid for the kind (temporary files, junk) are skipped.
  virtual Result<void> list(FileKind kind,
                            const std::function<Result<void>(const FileInfo&)>& fn) = 0;

  // A description of the location without secrets ("local:/srv/repo").
  [[nodiscard]] virtual std::string location() const = 0;

  [[nodiscard]] virtual BackendProperties properties() const = 0;

  // The usage of a remote backend so far; nullopt for backends that cost nothing to call
  // (local directories, memory). Safe to call at any time.
  [[nodiscard]] virtual std::optional<BackendUsage> usage() const { return std::nullopt; }
};

// A file written in pieces whose name is known only at the end (a pack, named by the hash of
// its bytes). Nothing is visible under any Handle before commit() succeeds. Destroying an
// uncommitted PendingFile abandons it: whatever it stored so far (a temporary file) is
// removed.
class PendingFile {
 public:
  virtual ~PendingFile() = default;

  // Appends `data` to the file. After a failure the file is unusable (every later call
  // fails) and whatever it held is already removed. Errors: kIo (e.g. a full disk).
  virtual Result<void> append(ByteSpan data) = 0;

  // Stores everything appended so far as `h` atomically, like WriteBackend::save(). After
  // success the object only waits to be destroyed. After a failure marked retryable the data
  // is still held and commit may be called again; after any other storage failure the file
  // is abandoned (removed, every later call fails).
  // Errors: kInvalidArgument if `h` already exists (the file is abandoned), or, with nothing
  // changed, if h.kind is not the kind given to begin_file or the file was already committed
  // or abandoned; kIo.
  virtual Result<void> commit(const Handle& h) = 0;
};

// list(kConfig) for backends that store the config as one plain file: reports "config"
// with its size when backend.stat() finds it, nothing when it does not exist.
// Errors: those of stat() other than kNotFound, and those of `fn`.
Result<void> list_config(ReadBackend& backend,
                         const std::function<Result<void>(const FileInfo&)>& fn);

class WriteBackend : public ReadBackend {
 public:
  // Starts a file of `kind` to be written with PendingFile::append and named at commit.
  // The default keeps the bytes in memory and calls save() at commit (MemBackend, remote
  // backends); LocalBackend streams into a temporary file instead.
  // Errors: kIo (LocalBackend: the temporary file cannot be created).
  virtual Result<std::unique_ptr<PendingFile>> begin_file(FileKind kind);

  // Stores `data` as `h` atomically: readers see the whole file or nothing.
  // Errors: kIo (retryable when transient); kInvalidArgument if `h` already exists.
  virtual Result<void> save(const Handle& h, ByteSpan data) = 0;

  // Deletes `h`. Errors: kNotFound, kIo.
  virtual Result<void> remove(const Handle& h) = 0;

  // Creates the empty layout (directories, buckets). Errors: kIo, kInvalidArgument if a
  // repository already exists there.
  virtual Result<void> create() = 0;

  // A hint that writes follow soon: the backend may get ready for them now (B2 fetches an
  // upload URL). Failures are not reported here; the first write meets them again.
  virtual void prepare_writes() {}
};

}  // namespace coffer::repo
