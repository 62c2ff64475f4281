// RepositoryWriter: the blob path (dedup, compress, encrypt, append to the open pack).
// The upload threads, index files and flush live in repository_writer_upload.cc.
#include "repo/repository_writer.h"

#include <limits>

#include <fmt/format.h>

#include "repo/compress/zstd.h"
#include "repo/crypto/crypto.h"
#include "repo/pack/pack_format.h"
#include "repo/repository_writer_state.h"

namespace coffer::repo {
namespace {

std::size_t type_slot(BlobType type) { return type == BlobType::kTree ? 1 : 0; }

}  // namespace

RepositoryWriter::State::State(Repository& r, WriteBackend& b, const WriterOptions& o)
    : repo(r), backend(b), key(r.key()), options(o), version(r.config().version) {}

bool RepositoryWriter::State::claim(const BlobHandle& h) {
  std::scoped_lock lock(known_mutex);
  return known.insert(h).second;
}

void RepositoryWriter::State::unclaim(const BlobHandle& h) {
  std::scoped_lock lock(known_mutex);
  known.erase(h);
}

bool RepositoryWriter::State::known_contains(const BlobHandle& h) const {
  std::scoped_lock lock(known_mutex);
  return known.count(h) != 0;
}

int RepositoryWriter::State::compression_level(BlobType type) const {
  if (version < 2)
    return 0;
  switch (options.compression) {
    case Compression::kMax:
      return kZstdMaxLevel;
    case Compression::kOff:  // restic still compresses trees in a v2 repository
      return type == BlobType::kTree ? kZstdAutoLevel : 0;
    case Compression::kAuto:
      break;
  }
  return kZstdAutoLevel;
}

Result<SealedBlob> RepositoryWriter::State::encode_blob(BlobType type, ByteSpan plain) const {
  SealedBlob out;
  int level = compression_level(type);
  if (level > 0 && !plain.empty()) {
    COFFER_ASSIGN_OR_RETURN(Bytes packed, zstd_compress(plain, level));
    if (packed.size() < plain.size()) {
      COFFER_ASSIGN_OR_RETURN(out.data, seal(key, packed));
      out.uncompressed_length = static_cast<std::uint32_t>(plain.size());
      return out;
    }
  }
  COFFER_ASSIGN_OR_RETURN(out.data, seal(key, plain));
  return out;
}

Result<void> RepositoryWriter::State::wait_for_room() {
  std::unique_lock lock(mutex);
  room_cv.wait(lock, [&] { return error.has_value() || queue.size() < max_queue; });
  if (error)
    return fail(*error);
  return {};
}

Result<void> RepositoryWriter::State::open_pack(OpenPack& op) {
  COFFER_ASSIGN_OR_RETURN(op.file, backend.begin_file(FileKind::kPack));
  PendingFile* file = op.file.get();  // owned by op, which also owns the PackWriter
  op.pack.emplace([file](ByteSpan bytes) { return file->append(bytes); });
  return {};
}

// Writes the header and trailer (under op.mutex only) and queues the pack for commit.
Result<void> RepositoryWriter::State::close_pack(OpenPack& op) {
  auto finished = op.pack->finish(key);
  op.pack.reset();
  if (!finished) {
    op.file.reset();  // removes the temporary file
    return fail(finished.error());
  }
  ClosedPack closed{std::move(op.file), finished->id, finished->size, std::move(finished->blobs)};
  std::scoped_lock lock(mutex);
  queue.push_back(std::move(closed));
  work_cv.notify_one();
  return {};
}

void RepositoryWriter::State::count_blob(BlobType type, const SealedBlob& blob, std::size_t plain) {
  bool compressed = blob.uncompressed_length != 0;
  std::scoped_lock lock(mutex);
  (type == BlobType::kTree ? stats.tree_blobs : stats.data_blobs)++;
  stats.data_added += plain;
  stats.data_added_packed +=
      blob.data.size() + (compressed ? kPackEntrySizeCompressed : kPackEntrySize);
}

// Appends one blob to the open pack of its type, holding that pack's lock (not `mutex`)
// while the bytes are written. A failed write loses the whole pack: the error sticks.
Result<void> RepositoryWriter::State::append(BlobType type, const Id& id, const SealedBlob& blob,
                                             std::size_t plain) {
  OpenPack& op = open[type_slot(type)];
  std::scoped_lock pack_lock(op.mutex);
  COFFER_TRY(wait_for_room());
  bool compressed = blob.uncompressed_length != 0;
  if (op.pack && !op.pack->empty() && !op.pack->fits(blob.data.size(), compressed))
    COFFER_TRY(close_pack(op));
  if (!op.pack)
    COFFER_TRY(open_pack(op));
  auto added = op.pack->add(type, id, blob.data, blob.uncompressed_length);
  if (!added) {
    op.pack.reset();
    op.file.reset();  // the blobs already in this pack are lost; the caller records the error
    return added;
  }
  count_blob(type, blob, plain);
  if (op.pack->file_size() >= options.pack_size)
    COFFER_TRY(close_pack(op));
  return {};
}

void RepositoryWriter::State::record_error(const Error& e) {
  std::scoped_lock lock(mutex);
  if (!error)
    error = e;
  room_cv.notify_all();
}

Result<void> RepositoryWriter::State::sticky_error() const {
  std::scoped_lock lock(mutex);
  if (error)
    return fail(*error);
  return {};
}

Result<std::unique_ptr<RepositoryWriter>> RepositoryWriter::create(Repository& repo,
                                                                   const WriterOptions& options) {
  WriteBackend* backend = repo.write_backend();
  if (backend == nullptr)
    return fail(Errc::kInvalidArgument, "the repository backend is read-only");
  if (options.pack_size < kMinPackSize || options.pack_size > kMaxPackSize) {
    return fail(Errc::kInvalidArgument,
                fmt::format("pack size {} is outside {} MiB ... {} MiB", options.pack_size,
                            kMinPackSize >> 20, kMaxPackSize >> 20));
  }
  COFFER_TRY(repo.lookup(BlobHandle{}));  // fails unless load_index() was done
  auto state = std::make_unique<State>(repo, *backend, options);
  unsigned uploads = options.uploads != 0 ? options.uploads : backend->properties().max_connections;
  uploads = std::max(1U, uploads);
  state->max_queue = uploads + 1;
  state->start_uploads(uploads);
  return std::unique_ptr<RepositoryWriter>(new RepositoryWriter(std::move(state)));
}

RepositoryWriter::RepositoryWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

RepositoryWriter::~RepositoryWriter() { state_->stop_uploads(); }

Result<bool> RepositoryWriter::save_blob(BlobType type, const Id& id, ByteSpan plain) {
  COFFER_TRY(state_->sticky_error());
  if (plain.size() > std::numeric_limits<std::uint32_t>::max() - kCryptoOverhead) {
    return fail(Errc::kInvalidArgument, "blob " + id.short_hex() + " is larger than 4 GiB");
  }
  BlobHandle handle{id, type};
  COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> existing, state_->repo.lookup(handle));
  if ((existing && !state_->options.store_duplicates) || !state_->claim(handle))
    return false;
  // From here on other savers of `id` rely on this call: any failure must stick.
  auto encoded = state_->encode_blob(type, plain);
  Result<void> added = encoded ? state_->append(type, id, *encoded, plain.size())
                               : Result<void>(fail(encoded.error()));
  if (!added) {
    Error e = added.error().with_context(
        fmt::format("saving {} blob {}", blob_type_name(type), id.short_hex()));
    state_->unclaim(handle);
    state_->record_error(e);
    return fail(e);
  }
  if (type == BlobType::kTree)
    state_->repo.remember_tree(id, encoded->data);  // the next run's parent, kept locally
  return true;
}

Result<bool> RepositoryWriter::has_blob(BlobType type, const Id& id) const {
  BlobHandle handle{id, type};
  if (state_->known_contains(handle))
    return true;
  COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> existing, state_->repo.lookup(handle));
  return existing.has_value();
}

Result<void> RepositoryWriter::flush() { return state_->flush(); }

Result<Id> RepositoryWriter::save_unpacked(FileKind kind, std::string_view json) {
  return state_->save_unpacked(kind, json);
}

WriterStats RepositoryWriter::stats() const {
  std::scoped_lock lock(state_->mutex);
  return state_->stats;
}

}  // namespace coffer::repo
