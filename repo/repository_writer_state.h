// Private to repository_writer*.cc: the shared state of a RepositoryWriter and its upload
// threads. Not a public header; nothing outside the writer includes it.
//
// Data flow: save_blob (caller threads) → the open pack of its blob type, a PackWriter
// streaming into a PendingFile (blob bytes are written and hashed as they arrive) → when
// full, finish (sealed header + trailer appended, hash = pack id) → `queue` of closed packs
// → upload threads (commit with retry: fsync + rename for LocalBackend) → `pending` index
// entries → index file once 50 000 entries are pending, and at flush().
//
// Locks: an OpenPack's `mutex` (one per blob type) is held while that pack's bytes are
// hashed and written, and while its saver waits for room in `queue`; `mutex` (bookkeeping)
// may be taken inside it, never the reverse, and is never held during a write or other
// backend IO. No thread holds two OpenPack locks. `known_mutex` is never held with another
// lock. No lock is held while compressing or encrypting.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "repo/pack/pack_writer.h"
#include "repo/repository_writer.h"

namespace coffer::repo {

// restic writes an index file once this many blobs are pending (0.17+; 0.14 v1 too).
inline constexpr std::size_t kIndexFullBlobs = 50000;
// ... or once the oldest pending entry is this old, so an interrupted long backup leaves
// most of its packs indexed (restic does the same).
inline constexpr std::chrono::minutes kIndexMaxAge{10};
// zstd levels: restic's "auto" is klauspost SpeedDefault (≈ zstd 3); its "max" is
// SpeedBestCompression (≈ zstd 11 and slower). Level 15 still runs at ~40 MB/s per core on
// incompressible input (zstd CLI, this machine); level 19 drops to ~5 MB/s.
inline constexpr int kZstdAutoLevel = 3;
inline constexpr int kZstdMaxLevel = 15;
// Uploads: attempts for a retryable error, and the first backoff (doubled each time).
inline constexpr int kSaveAttempts = 4;
inline constexpr std::chrono::milliseconds kSaveBackoff{100};

struct BlobHandleHash {
  std::size_t operator()(const BlobHandle& h) const noexcept {
    return IdHash{}(h.id) ^ static_cast<std::size_t>(h.type);
  }
};

// A blob after compression and encryption, ready to be appended to a pack.
struct SealedBlob {
  Bytes data;                           // IV ‖ ct ‖ MAC
  std::uint32_t uncompressed_length{};  // 0 = stored uncompressed
};

// The pack being filled for one blob type.
struct OpenPack {
  std::mutex mutex;                   // guards file, pack; held across their writes
  std::unique_ptr<PendingFile> file;  // where `pack` streams to
  std::optional<PackWriter> pack;     // empty: no pack open
};

// A finished pack waiting for an upload thread to commit it.
struct ClosedPack {
  std::unique_ptr<PendingFile> file;  // complete; destroying it uncommitted removes it
  Id id;
  std::uint64_t size = 0;
  std::vector<PackedBlob> blobs;
};

struct RepositoryWriter::State {
  State(Repository& r, WriteBackend& b, const WriterOptions& o);

  // --- blob path (repository_writer.cc) ---
  bool claim(const BlobHandle& h);  // true if this call made `h` known
  void unclaim(const BlobHandle& h);
  [[nodiscard]] bool known_contains(const BlobHandle& h) const;
  [[nodiscard]] int compression_level(BlobType type) const;  // 0 = store uncompressed
  Result<SealedBlob> encode_blob(BlobType type, ByteSpan plain) const;
  Result<void> append(BlobType type, const Id& id, const SealedBlob& blob, std::size_t plain);
  Result<void> wait_for_room();
  Result<void> open_pack(OpenPack& op);   // REQUIRES: op.mutex held, no pack open
  Result<void> close_pack(OpenPack& op);  // REQUIRES: op.mutex held, pack not empty
  void count_blob(BlobType type, const SealedBlob& blob, std::size_t plain);
  void record_error(const Error& e);
  Result<void> sticky_error() const;

  // --- upload side (repository_writer_upload.cc) ---
  void start_uploads(unsigned count);
  void stop_uploads();  // drops queued packs, joins the threads
  void upload_loop();
  void run_job(ClosedPack& job, bool skip);
  Result<void> commit_pack(ClosedPack& job);
  Result<void> write_index(const std::vector<PackedBlob>& blobs);
  Result<Id> save_unpacked(FileKind kind, std::string_view json);
  Result<void> with_retry(const Handle& h, std::uint64_t size,
                          const std::function<Result<void>()>& attempt);
  Result<void> flush();

  Repository& repo;       // outlives the writer
  WriteBackend& backend;  // owned by repo
  const MasterKey& key;   // owned by repo
  const WriterOptions options;
  const unsigned version;  // repository version: 1 never compresses
  std::size_t max_queue = 1;

  mutable std::mutex known_mutex;                        // guards known
  std::unordered_set<BlobHandle, BlobHandleHash> known;  // accepted by this writer

  std::array<OpenPack, 2> open;  // indexed by type_slot(BlobType); each has its own lock

  mutable std::mutex mutex;         // guards everything below
  std::condition_variable work_cv;  // queue not empty, or stopping
  std::condition_variable room_cv;  // queue has room, or an error was recorded
  std::condition_variable idle_cv;  // an upload job ended
  std::condition_variable stop_cv;  // stopping was set (ends retry backoffs)
  std::deque<ClosedPack> queue;     // finished packs waiting for commit (<= max_queue)
  unsigned busy = 0;                // upload jobs running
  bool stopping = false;
  std::optional<Error> error;       // first permanent failure
  std::vector<PackedBlob> pending;  // blobs of stored packs not yet in an index file
  std::chrono::steady_clock::time_point pending_since;  // when `pending` became non-empty
  WriterStats stats;

  std::vector<std::thread> threads;  // joined by stop_uploads()
};

}  // namespace coffer::repo
