// Private to repository_writer*.cc: the shared state of a RepositoryWriter and its upload
// threads. Not a public header; nothing outside the writer includes it.
//
// Data flow: save_blob (caller threads) → open PackWriter per blob type → `queue` of full
// packs → upload threads (finish = seal header + hash, save with retry) → `pending` index
// entries → index file once 50 000 entries are pending, and at flush().
//
// Locks: `known_mutex` and `mutex` are never held at the same time. No lock is held while
// compressing, encrypting, hashing or doing backend IO.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
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
// Buffers of uploaded packs kept for new packs (saves the page faults of fresh memory).
inline constexpr std::size_t kSpareBuffers = 2;

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

struct RepositoryWriter::State {
  State(Repository& r, WriteBackend& b, const WriterOptions& o);

  // --- blob path (repository_writer.cc) ---
  bool claim(const BlobHandle& h);  // true if this call made `h` known
  void unclaim(const BlobHandle& h);
  [[nodiscard]] bool known_contains(const BlobHandle& h) const;
  [[nodiscard]] int compression_level(BlobType type) const;  // 0 = store uncompressed
  Result<SealedBlob> encode_blob(BlobType type, ByteSpan plain) const;
  Result<void> append(BlobType type, const Id& id, const SealedBlob& blob, std::size_t plain);
  void enqueue_locked(std::optional<PackWriter>& slot);  // REQUIRES: mutex held
  Bytes take_buffer_locked();                            // REQUIRES: mutex held
  void recycle(Bytes buffer);
  void record_error(const Error& e);
  Result<void> sticky_error() const;

  // --- upload side (repository_writer_upload.cc) ---
  void start_uploads(unsigned count);
  void stop_uploads();  // drops queued packs, joins the threads
  void upload_loop();
  void run_job(PackWriter& job, bool skip);
  Result<std::vector<PackedBlob>> upload_pack(PackWriter& job);
  Result<void> write_index(const std::vector<PackedBlob>& blobs);
  Result<Id> save_unpacked(FileKind kind, std::string_view json);
  Result<void> save_with_retry(const Handle& h, ByteSpan data);
  Result<void> flush();

  Repository& repo;       // outlives the writer
  WriteBackend& backend;  // owned by repo
  const MasterKey& key;   // owned by repo
  const WriterOptions options;
  const unsigned version;  // repository version: 1 never compresses
  std::size_t max_queue = 1;
  std::size_t pack_reserve = 0;

  mutable std::mutex known_mutex;                        // guards known
  std::unordered_set<BlobHandle, BlobHandleHash> known;  // accepted by this writer

  mutable std::mutex mutex;                       // guards everything below
  std::condition_variable work_cv;                // queue not empty, or stopping
  std::condition_variable room_cv;                // queue has room, or an error was recorded
  std::condition_variable idle_cv;                // an upload job ended
  std::condition_variable stop_cv;                // stopping was set (ends retry backoffs)
  std::array<std::optional<PackWriter>, 2> open;  // indexed by BlobType
  std::deque<PackWriter> queue;                   // full packs waiting for upload
  unsigned busy = 0;                              // upload jobs running
  bool stopping = false;
  std::optional<Error> error;       // first permanent failure
  std::vector<PackedBlob> pending;  // blobs of stored packs not yet in an index file
  std::chrono::steady_clock::time_point pending_since;  // when `pending` became non-empty
  std::vector<Bytes> spare;  // at most kSpareBuffers pack buffers for reuse
  WriterStats stats;

  std::vector<std::thread> threads;  // joined by stop_uploads()
};

}  // namespace coffer::repo
