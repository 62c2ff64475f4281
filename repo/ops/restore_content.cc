// The content phase of restore: locating blobs, grouping them into pack range jobs, and the
// workers that fetch, decode and write them.
#include <algorithm>
#include <limits>
#include <optional>

#include "repo/core/parallel.h"
#include "repo/ops/restore_exec.h"
#include "repo/repository.h"

namespace coffer::repo::restore_detail {
namespace {

// Two needed blobs of a pack are read with one request when at most this many unneeded
// bytes lie between them.
constexpr std::uint64_t kMaxGapBytes = 256 * 1024;
constexpr std::uint32_t kNoFile = std::numeric_limits<std::uint32_t>::max();

}  // namespace

// Keeps one writable descriptor of the file a worker wrote to last, because consecutive
// blobs of a pack mostly belong to the same file.
class FdCache {
 public:
  explicit FdCache(Restorer& r) : restorer_(r) {}

  Result<int> get(std::uint32_t file) {
    if (file == file_)
      return fd_.get();
    drop();
    COFFER_ASSIGN_OR_RETURN(fd_, restorer_.open_file(file));
    file_ = file;
    return fd_.get();
  }
  void drop() {
    fd_.reset();
    file_ = kNoFile;
  }
  void drop(std::uint32_t file) {
    if (file == file_)
      drop();
  }
  // The cached descriptor of `file`, or -1.
  [[nodiscard]] int peek(std::uint32_t file) const { return file == file_ ? fd_.get() : -1; }

 private:
  Restorer& restorer_;  // outlives the cache
  UniqueFd fd_;
  std::uint32_t file_ = kNoFile;
};

Result<void> Restorer::locate_blobs() {
  for (std::size_t f = 0; f < plan_.files.size(); ++f) {
    const PlannedFile& file = plan_.files[f];
    if (file.primary != kNoPrimary)
      continue;
    for (const Id& id : file.node.content) {
      auto [it, inserted] = blob_index_.try_emplace(id, static_cast<std::uint32_t>(blobs_.size()));
      if (!inserted)
        continue;
      blobs_.emplace_back();
      blobs_.back().blob.id = id;
    }
  }
  std::vector<std::optional<Error>> errs(blobs_.size());
  auto looked_up = parallel_for(blobs_.size(), workers_, [&](std::size_t i) -> Result<void> {
    COFFER_TRY(check_cancel());
    auto found = repo_.lookup({blobs_[i].blob.id, BlobType::kData});
    if (!found) {
      errs[i] = found.error();
    } else if (*found) {
      blobs_[i].blob = **found;
      blobs_[i].found = true;
    }
    return {};
  });
  if (!looked_up)
    return looked_up;
  for (std::size_t i = 0; i < errs.size(); ++i) {
    if (errs[i])
      report("looking up blob " + blobs_[i].blob.id.hex() + ": " + errs[i]->message);
  }
  return {};
}

bool Restorer::chunks_of(const Node& node, std::vector<Chunk>& out) const {
  out.clear();
  for (const Id& id : node.content) {
    auto it = blob_index_.find(id);
    if (it == blob_index_.end() || !blobs_[it->second].found)
      return false;
    out.push_back({id, blobs_[it->second].blob.plain_size()});
  }
  return true;
}

Result<void> Restorer::check_existing() {
  keep_.resize(plan_.files.size());
  return parallel_for(plan_.files.size(), workers_, [&](std::size_t i) -> Result<void> {
    COFFER_TRY(check_cancel());
    if (plan_.files[i].primary == kNoPrimary)
      check_existing_file(static_cast<std::uint32_t>(i));
    return {};
  });
}

// Resume: compares a file already at the target path with the snapshot. A file that is
// right is skipped; one that differs is updated in place where possible (only the chunks
// that differ are fetched); anything else is replaced by a new file.
void Restorer::check_existing_file(std::uint32_t file) {
  const PlannedFile& f = plan_.files[file];
  FileState& st = states_[file];
  std::vector<Chunk> chunks;
  if (!chunks_of(f.node, chunks))
    return;  // fails later, in add_placements
  auto existing = compare_existing(f.path, chunks, f.node.links > 1);
  if (!existing || existing->state != ExistingFile::State::kRegular) {
    st.absent = existing && existing->state == ExistingFile::State::kAbsent;
    return;  // create anew
  }
  if (existing->all_match() && existing->size == f.node.size) {
    st.skip = true;
    return;
  }
  if (!prepare_in_place(f.path, f.node.size))
    return;
  st.in_place = true;
  st.created.store(true, std::memory_order_relaxed);
  keep_[file] = std::move(existing->matches);
}

// Records where each blob of `file` goes, or fails the file if a blob is not indexed.
void Restorer::add_placements(std::uint32_t file) {
  const Node& node = plan_.files[file].node;
  FileState& st = states_[file];
  if (st.skip) {
    plain_files_.push_back(file);
    return;
  }
  for (const Id& id : node.content) {
    if (!blobs_[blob_index_.at(id)].found) {
      fail_file(file, plan_.files[file].path + ": blob " + id.hex() + " not found in index");
      plain_files_.push_back(file);
      return;
    }
  }
  std::uint64_t offset = 0;
  std::uint32_t count = 0;
  for (std::size_t i = 0; i < node.content.size(); ++i) {
    NeededBlob& nb = blobs_[blob_index_.at(node.content[i])];
    if (!st.in_place || !keep_[file][i]) {
      nb.placements.push_back({file, offset});
      ++count;
    } else {
      progress_.bytes_done.fetch_add(nb.blob.plain_size(), std::memory_order_relaxed);
    }
    offset += nb.blob.plain_size();
  }
  st.remaining.store(count, std::memory_order_relaxed);
  if (count == 0)
    plain_files_.push_back(file);
}

void Restorer::build_jobs() {
  std::unordered_map<Id, std::vector<std::uint32_t>, IdHash> by_pack;
  for (std::uint32_t i = 0; i < blobs_.size(); ++i) {
    if (!blobs_[i].placements.empty())
      by_pack[blobs_[i].blob.pack].push_back(i);
  }
  for (auto& [pack, list] : by_pack) {
    std::sort(list.begin(), list.end(), [&](std::uint32_t a, std::uint32_t b) {
      return blobs_[a].blob.offset < blobs_[b].blob.offset;
    });
    PackJob job;
    for (std::uint32_t i : list) {
      const PackedBlob& b = blobs_[i].blob;
      const std::uint64_t end = std::uint64_t{b.offset} + b.length;
      const bool fits = !job.blobs.empty() && b.offset <= job.start + job.length + kMaxGapBytes &&
                        end - job.start <= kMaxRangeBytes;
      if (!job.blobs.empty() && !fits)
        jobs_.push_back(std::exchange(job, PackJob{}));
      if (job.blobs.empty())
        job = PackJob{pack, b.offset, 0, kNoFile, {}};
      job.blobs.push_back(i);
      job.length = std::max(job.length, end - job.start);
      job.priority = std::min(job.priority, blobs_[i].placements.front().file);
    }
    if (!job.blobs.empty())
      jobs_.push_back(std::move(job));
  }
  std::sort(jobs_.begin(), jobs_.end(), [](const PackJob& a, const PackJob& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.start < b.start;
  });
}

Result<void> Restorer::restore_contents() {
  const std::size_t plain = plain_files_.size();
  return parallel_for(plain + jobs_.size(), workers_, [&](std::size_t i) -> Result<void> {
    COFFER_TRY(check_cancel());
    if (i < plain) {
      finish_file(plain_files_[i], -1);
      return {};
    }
    return run_pack_job(jobs_[i - plain]);
  });
}

Result<void> Restorer::run_pack_job(const PackJob& job) {
  const Handle handle{FileKind::kPack, job.pack.hex()};
  auto data = repo_.backend().load(handle, job.start, job.length);
  if (data && data->size() < job.length) {
    data = fail(Errc::kCorrupt, "short read (" + std::to_string(data->size()) + " bytes)");
  }
  FdCache cache(*this);
  for (std::uint32_t idx : job.blobs) {
    COFFER_TRY(check_cancel());
    const NeededBlob& nb = blobs_[idx];
    if (data) {
      process_blob(nb, ByteSpan(*data).subspan(nb.blob.offset - job.start, nb.blob.length), cache);
      continue;
    }
    // The range failed (e.g. a truncated pack): fetch blob by blob to save what is readable.
    auto one = job.blobs.size() == 1 ? Result<Bytes>(fail(data.error()))
                                     : repo_.backend().load(handle, nb.blob.offset, nb.blob.length);
    if (one) {
      process_blob(nb, *one, cache);
    } else {
      fail_placements(nb, "loading pack " + job.pack.hex() + ": " + one.error().message);
    }
  }
  return {};
}

void Restorer::process_blob(const NeededBlob& nb, ByteSpan encrypted, FdCache& cache) {
  auto plain = repo_.decode_blob(nb.blob, encrypted);
  if (!plain) {
    fail_placements(nb, "blob " + nb.blob.id.hex() + " in pack " + nb.blob.pack.hex() + ": " +
                            plain.error().message);
    return;
  }
  const bool zero = is_all_zero(*plain);
  for (const Placement& p : nb.placements) place(p, *plain, zero, cache);
}

// Writes one use of a blob (all-zero blobs are holes already) and finishes the file when
// this was its last outstanding blob.
void Restorer::place(const Placement& p, ByteSpan plain, bool zero, FdCache& cache) {
  FileState& st = states_[p.file];
  if (!st.failed.load(std::memory_order_relaxed) && (!zero || st.in_place || !st.created.load())) {
    const std::string& path = plan_.files[p.file].path;
    auto fd = cache.get(p.file);
    Result<void> written = fd ? Result<void>{} : Result<void>(fail(fd.error()));
    if (fd && !zero)
      written = write_at(*fd, plain, p.offset, path);
    if (fd && zero && st.in_place)
      written = zero_range(*fd, p.offset, plain.size(), path);
    if (!written)
      fail_file(p.file, written.error().message);
    if (written && !zero)
      progress_.bytes_written.fetch_add(plain.size());
  }
  progress_.bytes_done.fetch_add(plain.size(), std::memory_order_relaxed);
  if (st.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    finish_file(p.file, cache.peek(p.file));
    cache.drop(p.file);
  }
}

void Restorer::fail_placements(const NeededBlob& nb, const std::string& message) {
  for (const Placement& p : nb.placements) {
    fail_file(p.file, plan_.files[p.file].path + ": " + message);
    FileState& st = states_[p.file];
    if (st.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1)
      finish_file(p.file, -1);
  }
}

Result<UniqueFd> Restorer::open_file(std::uint32_t file) {
  FileState& st = states_[file];
  const PlannedFile& f = plan_.files[file];
  if (!st.created.load(std::memory_order_acquire)) {
    std::scoped_lock lock(stripes_[file % kStripes]);
    if (!st.created.load(std::memory_order_relaxed)) {
      COFFER_ASSIGN_OR_RETURN(UniqueFd fd, create_file(f.path, st.absent));
      st.created.store(true, std::memory_order_release);
      return fd;
    }
  }
  return open_for_write(f.path);
}

void Restorer::fail_file(std::uint32_t file, const std::string& message) {
  if (!states_[file].failed.exchange(true))
    report(message);
}

// Called once per file when nothing is outstanding, with the finishing worker's descriptor
// of it (or -1): creates content-less files, sets size and metadata, or removes a failed
// file so that it never looks complete.
void Restorer::finish_file(std::uint32_t file, int fd) {
  FileState& st = states_[file];
  const PlannedFile& f = plan_.files[file];
  UniqueFd own;
  if (!st.failed.load() && !st.skip && !st.created.load()) {
    auto made = create_file(f.path, st.absent);
    if (made)
      own = std::move(*made);
    else
      fail_file(file, made.error().message);
  }
  if (st.failed.load()) {
    remove_path(f.path);
    return;
  }
  if (fd < 0 && !own.valid())
    own = open_for_metadata(f.path, !st.skip);
  if (fd < 0)
    fd = own.get();
  if (st.skip)
    progress_.bytes_done.fetch_add(f.node.size, std::memory_order_relaxed);
  for (const std::string& e :
       fd >= 0 ? finalize_file(fd, f.path, f.node) : apply_metadata(f.path, f.node))
    report(e);
  st.ok.store(true, std::memory_order_release);
  progress_.files_done.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace coffer::repo::restore_detail
