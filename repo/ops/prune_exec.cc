// prune: carrying out a plan in the crash-safe order of prune.h (restic 0.14's doPrune).
#include <algorithm>
#include <cerrno>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <unistd.h>

#include "repo/backend/local/local_backend.h"
#include "repo/core/parallel.h"
#include "repo/ops/prune_internal.h"

namespace coffer::repo {
namespace {

using prune_detail::BlobSet;
using prune_detail::emit;
using prune_detail::IdSet;
using prune_detail::is_cancelled;

Result<void> check_cancel(const PruneEvents& events) {
  if (is_cancelled(events))
    return fail(Errc::kCancelled, "interrupted");
  return {};
}

// Removes the temporary files a killed writer left (LocalBackend paths, see prune_internal.h).
void remove_temp_files(const Repository& repo, const std::vector<std::string>& paths,
                       const PruneEvents& events) {
  const auto* local = dynamic_cast<const LocalBackend*>(&repo.backend());
  if (local == nullptr)
    return;
  for (const std::string& p : paths) {
    std::string full = local->root() + "/" + p;
    if (::unlink(full.c_str()) != 0 && errno != ENOENT)
      emit(events.warn, "unable to remove temporary file " + p);
  }
}

struct Repacker {
  Repository& repo;
  RepositoryWriter& writer;
  std::mutex mutex;  // guards pending
  BlobSet pending;   // blobs still to copy
};

// The blob's plaintext from its bytes in the loaded pack, or else from another copy.
Result<Bytes> blob_plaintext(const Repository& repo, const PackedBlob& b, const Bytes& pack) {
  if (static_cast<std::uint64_t>(b.offset) + b.length <= pack.size()) {
    auto plain = repo.decode_blob(b, ByteSpan(pack).subspan(b.offset, b.length));
    if (plain)
      return plain;
  }
  auto other = repo.load_blob(BlobHandle{b.id, b.type});
  if (!other) {
    return fail(Errc::kCorrupt,
                fmt::format("{} blob {} of pack {} cannot be read: {}", blob_type_name(b.type),
                            b.id.hex(), b.pack.hex(), other.error().message));
  }
  return other;
}

// Copies the wanted blobs of one pack (all entries of `blobs` are in that pack).
Result<void> repack_pack(Repacker& r, const std::vector<PackedBlob>& blobs,
                         const PruneEvents& events) {
  COFFER_TRY(check_cancel(events));
  const Id& pack = blobs.front().pack;
  COFFER_ASSIGN_OR_RETURN(Bytes data,
                          r.repo.backend().load(Handle{FileKind::kPack, pack.hex()}, 0, 0));
  for (const PackedBlob& b : blobs) {
    {
      std::scoped_lock lock(r.mutex);
      if (r.pending.erase(BlobHandle{b.id, b.type}) == 0)
        continue;
    }
    COFFER_ASSIGN_OR_RETURN(Bytes plain, blob_plaintext(r.repo, b, data));
    COFFER_TRY(r.writer.save_blob(b.type, b.id, plain));
  }
  return {};
}

// Step 2: the used blobs of the packs to repack go into new packs, flushed with their index.
Result<void> repack(Repository& repo, const PrunePlan& plan, const PruneOptions& o,
                    const PruneEvents& events) {
  std::map<Id, std::vector<PackedBlob>> by_pack;
  for (const PackedBlob& b : plan.keep) by_pack[b.pack].push_back(b);
  std::vector<const std::vector<PackedBlob>*> work;
  for (const auto& [id, blobs] : by_pack) work.push_back(&blobs);
  WriterOptions wo;
  wo.pack_size = std::clamp(o.pack_size, kMinPackSize, kMaxPackSize);
  wo.store_duplicates = true;
  COFFER_ASSIGN_OR_RETURN(auto writer, RepositoryWriter::create(repo, wo));
  Repacker r{repo, *writer, {}, {}};
  for (const PackedBlob& b : plan.keep) r.pending.insert(BlobHandle{b.id, b.type});
  unsigned workers = std::max(1U, repo.backend().properties().max_connections - 1);
  auto copied = parallel_for(work.size(), std::min(workers, 4U),
                             [&](std::size_t i) { return repack_pack(r, *work[i], events); });
  if (!copied)
    return copied;  // the writer's destructor drops the unflushed packs
  COFFER_TRY(writer->flush());
  if (!r.pending.empty())
    return fail(Errc::kCorrupt, "internal error: blobs were not repacked");
  if (events.counted)
    events.counted("packs repacked", plan.repack.size());
  return {};
}

// Steps 3 and 4: the new index without the dropped packs, then the old index files go.
Result<void> rebuild_index(Repository& repo, const IdSet& drop, const PruneEvents& events) {
  emit(events.step, "rebuilding index");
  COFFER_ASSIGN_OR_RETURN(prune_detail::LoadedIndex index, prune_detail::load_all_index(repo));
  COFFER_ASSIGN_OR_RETURN(std::uint64_t packs, prune_detail::write_new_index(repo, index, drop));
  if (events.counted)
    events.counted("packs processed", packs);
  COFFER_TRY(check_cancel(events));
  emit(events.step, "deleting obsolete index files");
  return prune_detail::delete_files(repo, FileKind::kIndex, index.files, true, events);
}

}  // namespace

Result<void> execute_prune(Repository& repo, const PrunePlan& plan, const PruneOptions& options,
                           const PruneEvents& events) {
  if (options.dry_run)
    return {};
  if (repo.write_backend() == nullptr)
    return fail(Errc::kUnsupported, "the repository backend is read-only");
  if (!plan.remove_first.empty()) {
    emit(events.step, "deleting unreferenced packs");
    COFFER_TRY(prune_detail::delete_files(repo, FileKind::kPack, plan.remove_first, false, events));
  }
  if (!plan.temp_files.empty()) {
    emit(events.step, fmt::format("removing {} leftover temporary files", plan.temp_files.size()));
    remove_temp_files(repo, plan.temp_files, events);
  }
  COFFER_TRY(check_cancel(events));
  if (!plan.repack.empty()) {
    emit(events.step, "repacking packs");
    COFFER_TRY(repack(repo, plan, options, events));
  }
  IdSet drop(plan.ignore.begin(), plan.ignore.end());
  drop.insert(plan.remove.begin(), plan.remove.end());
  drop.insert(plan.repack.begin(), plan.repack.end());
  COFFER_TRY(check_cancel(events));
  if (!drop.empty())
    COFFER_TRY(rebuild_index(repo, drop, events));
  std::vector<Id> packs(plan.remove.begin(), plan.remove.end());
  packs.insert(packs.end(), plan.repack.begin(), plan.repack.end());
  std::sort(packs.begin(), packs.end());
  if (!packs.empty()) {
    emit(events.step, fmt::format("removing {} old packs", packs.size()));
    COFFER_TRY(prune_detail::delete_files(repo, FileKind::kPack, packs, false, events));
  }
  emit(events.step, "done");
  return {};
}

}  // namespace coffer::repo
