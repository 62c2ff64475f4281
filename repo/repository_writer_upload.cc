// RepositoryWriter: upload threads, index files, unpacked files and flush.
//
// Ordering guarantee: a blob enters `pending` only after its pack was committed, and an index
// file is built from `pending` only, so no index file ever names a pack that is not stored.
//
// Retries: a commit that fails with a retryable error is tried again. Only a PendingFile
// that still holds its data marks an error retryable (the in-memory default, whose save()
// may fail transiently); LocalBackend's commit failures are permanent because its temporary
// file is gone (or a failed fsync may have dropped data), so the pack's blobs are lost and
// the error sticks.
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
  std::deque<ClosedPack> dropped;  // unflushed packs: their temporary files are removed
  {
    std::scoped_lock lock(mutex);
    stopping = true;
    dropped.swap(queue);  // running commits finish atomically
    work_cv.notify_all();
    room_cv.notify_all();
    stop_cv.notify_all();
  }
  dropped.clear();
  for (std::thread& t : threads) t.join();
  threads.clear();
}

void RepositoryWriter::State::upload_loop() {
  for (;;) {
    std::optional<ClosedPack> job;
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
    job.reset();  // an uncommitted pack's temporary file is removed outside the lock
    std::scoped_lock lock(mutex);
    --busy;
    idle_cv.notify_all();
  }
}

// Commits one pack, moves its entries to `pending`, and writes an index file when full.
// Runs without the lock except for the bookkeeping.
void RepositoryWriter::State::run_job(ClosedPack& job, bool skip) {
  if (skip)
    return;
  auto stored = commit_pack(job);
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
    pending.insert(pending.end(), job.blobs.begin(), job.blobs.end());
    if (pending.size() >= kIndexFullBlobs || now - pending_since >= kIndexMaxAge)
      batch.swap(pending);
  }
  if (batch.empty())
    return;
  auto written = write_index(batch);
  if (!written)
    record_error(written.error());
}

Result<void> RepositoryWriter::State::commit_pack(ClosedPack& job) {
  Handle h{FileKind::kPack, job.id.hex()};
  COFFER_TRY_CTX(with_retry(h, job.size, [&] { return job.file->commit(h); }),
                 "storing pack " + job.id.short_hex());
  return {};
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
  COFFER_TRY_CTX(with_retry(h, sealed.size(), [&] { return backend.save(h, sealed); }),
                 "saving " + h.path());
  return id;
}

// Runs `attempt` (which stores `size` bytes as `h`), retrying retryable errors with
// exponential backoff. A retry that finds the file already there with the right size counts
// as success: names are hashes of the content, and an earlier attempt may have stored it
// before its reply was lost.
Result<void> RepositoryWriter::State::with_retry(const Handle& h, std::uint64_t size,
                                                 const std::function<Result<void>()>& attempt) {
  auto delay = kSaveBackoff;
  for (int n = 1;; ++n) {
    auto saved = attempt();
    if (saved)
      return {};
    if (n > 1 && saved.error().code == Errc::kInvalidArgument) {
      auto found = backend.stat(h);
      if (found && *found == size)
        return {};
    }
    if (!saved.error().retryable || n >= kSaveAttempts)
      return saved;
    std::unique_lock lock(mutex);
    if (stop_cv.wait_for(lock, delay, [&] { return stopping; }))
      return fail(Errc::kCancelled, "writer closed while retrying " + h.path());
    delay *= 2;
  }
}

// Closes the open packs (each under its own lock, in slot order), then waits for the queue.
Result<void> RepositoryWriter::State::flush() {
  for (OpenPack& op : open) {
    std::scoped_lock pack_lock(op.mutex);
    if (op.pack && !op.pack->empty()) {
      auto closed = close_pack(op);
      if (!closed)
        record_error(closed.error().with_context("closing a pack"));
    }
    op.pack.reset();
    op.file.reset();
  }
  std::vector<PackedBlob> batch;
  std::optional<Error> failed;
  {
    std::unique_lock lock(mutex);
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
