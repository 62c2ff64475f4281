// RepositoryWriter: stores new blobs into packs, and packs and index files into the
// repository, in the order restic's checker demands (restic-format.md §6, §7, §16).
//
// save_blob compresses and encrypts in the calling thread (so callers on N threads use N
// cores), then writes the blob straight into the open pack of that blob type: a
// WriteBackend::begin_file PendingFile (for LocalBackend a temporary file in the repository)
// that is hashed as it is written. Each open pack has its own lock, so data and tree packs
// are written concurrently. A full pack gets its sealed header and is handed to background
// upload threads, which only commit it (LocalBackend: fsync + rename). An index file is
// written only after every pack it names is committed; a crash at any moment therefore
// leaves at worst unreferenced packs (and temporary files), never an index naming a missing
// pack. flush() closes the open packs and writes the last index.
//
// Compression (v2 only): kAuto = zstd level 3, kMax = zstd level 15, kOff = data blobs
// uncompressed; tree blobs are compressed in every mode, as restic does. A blob whose zstd
// frame is not smaller than the blob is stored uncompressed. Commit and save errors that are
// retryable are retried with backoff; the first permanent one (a failed write to a pack,
// a full disk, a failed LocalBackend commit) sticks: every later save_blob and flush
// returns it.
//
// Thread contract: save_blob, has_blob, save_unpacked and stats are safe to call
// concurrently. flush() must not race with save_blob. Memory is bounded: the writer keeps
// only header entries (37/41 bytes per blob) of its packs, plus, with the in-memory
// PendingFile of non-local backends, the open and queued packs; save_blob blocks while more
// than uploads+1 finished packs wait for commit.
// Ownership: the writer borrows the Repository (which must outlive it) and its backend.
// Destroying it without flush() removes the temporary files of unflushed packs.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/index/blob.h"
#include "repo/repository.h"

namespace coffer::repo {

enum class Compression { kAuto, kMax, kOff };

inline constexpr std::uint64_t kDefaultPackSize = 16ULL << 20;
inline constexpr std::uint64_t kMinPackSize = 4ULL << 20;
inline constexpr std::uint64_t kMaxPackSize = 128ULL << 20;

struct WriterOptions {
  std::uint64_t pack_size = kDefaultPackSize;    // bytes; kMinPackSize..kMaxPackSize
  Compression compression = Compression::kAuto;  // ignored (always off) for v1 repositories
  unsigned uploads = 0;                          // upload threads; 0 = backend max_connections
  // Store blobs even when the repository index already has them (prune's repack, which
  // copies blobs out of packs about to be deleted). Blobs this writer stored are still
  // stored once.
  bool store_duplicates = false;
};

struct WriterStats {
  std::uint64_t data_blobs = 0, tree_blobs = 0;  // new blobs stored
  std::uint64_t data_added = 0;                  // plaintext bytes of new blobs
  std::uint64_t data_added_packed = 0;  // bytes of new blobs in packs: encrypted blob plus its
                                        // header entry (37/41 B), as restic counts them
  std::uint64_t packs = 0, index_files = 0;
};

class RepositoryWriter {
 public:
  // REQUIRES: repo.load_index() done; repo.write_backend() != nullptr. Blobs stored by an
  // earlier writer on the same Repository are deduplicated only after another load_index().
  // Errors: kInvalidArgument (read-only backend, pack size out of range).
  static Result<std::unique_ptr<RepositoryWriter>> create(Repository& repo,
                                                          const WriterOptions& options);
  ~RepositoryWriter();  // joins the upload threads; unflushed blobs are dropped
  RepositoryWriter(const RepositoryWriter&) = delete;
  RepositoryWriter& operator=(const RepositoryWriter&) = delete;

  // Stores `plain` as blob `id` (REQUIRES: id == SHA-256(plain)) unless the repository
  // index or this writer already has it. Returns true when the blob was new.
  // Errors: kIo from writing or committing a pack (reported by this or a later call),
  // kCancelled.
  Result<bool> save_blob(BlobType type, const Id& id, ByteSpan plain);

  // True when the repository or this writer has blob `id` of `type`.
  Result<bool> has_blob(BlobType type, const Id& id) const;

  // Closes the open packs, waits for all uploads, writes the remaining index entries.
  // Afterwards every blob saved so far is in a stored pack named by a stored index file.
  Result<void> flush();

  // Encodes (v2: zstd), encrypts and stores an unpacked file (a snapshot) under the
  // SHA-256 of its stored bytes. Returns that id. Errors: kIo.
  Result<Id> save_unpacked(FileKind kind, std::string_view json);

  [[nodiscard]] WriterStats stats() const;

 private:
  struct State;
  explicit RepositoryWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace coffer::repo
