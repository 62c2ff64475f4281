// RepositoryWriter: upload threads, index files, unpacked files and flush.
//
// Ordering guarantee: a blob enters `pending` only after its pack was stored, and an index
// file is built from `pending` only, so no index file ever names a pack that is not stored.
#include <fmt/format.h>

#include "repo/compress/zstd.h"
#include "repo/crypto/crypto.h"
#include "repo/index/index_file.h"
#include "repo/repository_writer_state.h"

namespace coffer::repo {

void RepositoryWriter::State::start_uploads(unsigned count) {
  threads.reserve(count);
  for (unsigned i = 0; i < count; ++i) threads.emplace_back([this] { upload_loop(); });
}

void RepositoryWriter::State::stop_uploads() {
  {
    std::scoped_lock lock(mutex);
    stopping = true;
    queue.clear();  // unflushed packs are dropped; running uploads finish atomically
    work_cv.notify_all();
    room_cv.notify_all();
    stop_cv.notify_all();
  }
  for (std::thread& t : threads) t.join();
  threads.clear();
}

void RepositoryWriter::State::upload_loop() {
  for (;;) {
    std::optional<PackWriter> job;
    bool skip = false;
    {
      std::unique_lock lock(mutex);
      work_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty())
        return;
      job.emplace(std::move(queue.front()));
      queue.pop_front();
      ++busy;
      skip = error.has_value();  // after a permanent failure, remaining packs are dropped
      room_cv.notify_all();
    }
    run_job(*job, skip);
    std::scoped_lock lock(mutex);
    --busy;
    idle_cv.notify_all();
  }
}

// Uploads one pack, moves its entries to `pending`, and writes an index file when full.
// Runs without the lock except for the bookkeeping.
void RepositoryWriter::State::run_job(PackWriter& job, bool skip) {
  if (skip)
    return;
  auto stored = upload_pack(job);
  std::vector<PackedBlob> batch;
  {
    std::scoped_lock lock(mutex);
    if (!stored) {
      if (!error)
        error = stored.error();
      room_cv.notify_all();
      return;
    }
    ++stats.packs;
    auto now = std::chrono::steady_clock::now();
    if (pending.empty())
      pending_since = now;
    pending.insert(pending.end(), stored->begin(), stored->end());
    if (pending.size() >= kIndexFullBlobs || now - pending_since >= kIndexMaxAge)
      batch.swap(pending);
  }
  if (batch.empty())
    return;
  auto written = write_index(batch);
  if (!written)
    record_error(written.error());
}

Result<std::vector<PackedBlob>> RepositoryWriter::State::upload_pack(PackWriter& job) {
  COFFER_ASSIGN_OR_RETURN(FinishedPack pack, job.finish(key));
  Handle h{FileKind::kPack, pack.id.hex()};
  auto saved = save_with_retry(h, pack.data);
  recycle(std::move(pack.data));
  if (!saved)
    return fail(saved.error().with_context("uploading pack " + pack.id.short_hex()));
  return std::move(pack.blobs);
}

Result<void> RepositoryWriter::State::write_index(const std::vector<PackedBlob>& blobs) {
  IndexFile file;
  file.blobs = blobs;
  COFFER_TRY(save_unpacked(FileKind::kIndex, serialize_index(file)));
  std::scoped_lock lock(mutex);
  ++stats.index_files;
  return {};
}

Result<Id> RepositoryWriter::State::save_unpacked(FileKind kind, std::string_view json) {
  COFFER_ASSIGN_OR_RETURN(Bytes plain, encode_unpacked(version, as_bytes(json)));
  COFFER_ASSIGN_OR_RETURN(Bytes sealed, seal(key, plain));
  Id id = Id::hash(sealed);
  Handle h{kind, id.hex()};
  COFFER_TRY_CTX(save_with_retry(h, sealed), "saving " + h.path());
  return id;
}

// Saves `data` as `h`, retrying retryable errors with exponential backoff. A retry that
// finds the file already there with the right size counts as success: names are hashes of
// the content, and an earlier attempt may have stored it before its reply was lost.
Result<void> RepositoryWriter::State::save_with_retry(const Handle& h, ByteSpan data) {
  auto delay = kSaveBackoff;
  for (int attempt = 1;; ++attempt) {
    auto saved = backend.save(h, data);
    if (saved)
      return {};
    if (attempt > 1 && saved.error().code == Errc::kInvalidArgument) {
      auto size = backend.stat(h);
      if (size && *size == data.size())
        return {};
    }
    if (!saved.error().retryable || attempt >= kSaveAttempts)
      return saved;
    std::unique_lock lock(mutex);
    if (stop_cv.wait_for(lock, delay, [&] { return stopping; }))
      return fail(Errc::kCancelled, "writer closed while retrying " + h.path());
    delay *= 2;
  }
}

Result<void> RepositoryWriter::State::flush() {
  std::vector<PackedBlob> batch;
  std::optional<Error> failed;
  {
    std::unique_lock lock(mutex);
    for (std::optional<PackWriter>& slot : open) {
      if (slot && !slot->empty())
        enqueue_locked(slot);
      slot.reset();
    }
    idle_cv.wait(lock, [&] { return queue.empty() && busy == 0; });
    batch.swap(pending);
    failed = error;
  }
  // Blobs of packs that were stored are indexed even after a failure, so a later run can
  // use them; the failure is still reported.
  if (!batch.empty()) {
    auto written = write_index(batch);
    if (!written) {
      record_error(written.error());
      if (!failed)
        failed = written.error();
    }
  }
  if (failed)
    return fail(*failed);
  return {};
}

}  // namespace coffer::repo
