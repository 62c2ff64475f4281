// Repository: index loading (LMDB cache or memory) and blob/tree/snapshot access.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <unistd.h>

#include "repo/cache/lmdb_blob_index.h"
#include "repo/cache/object_cache.h"
#include "repo/compress/zstd.h"
#include "repo/core/log.h"
#include "repo/core/parallel.h"
#include "repo/index/blob_index.h"
#include "repo/repository.h"

namespace coffer::repo {
namespace {

// Failures of the local cache itself (not of the repository): the cache can be skipped.
bool cache_unusable(const Error& e) {
  return e.message.rfind("opening index cache", 0) == 0 ||
         e.message.rfind("cannot create cache directory", 0) == 0;
}

unsigned decode_workers() { return std::max(2U, std::thread::hardware_concurrency()); }

std::string cache_base(const std::string& configured) {
  if (!configured.empty())
    return configured;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/coffer";
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return std::string(h) + "/.cache/coffer";
  }
  return "/var/cache/coffer";
}

}  // namespace

Result<IndexFile> Repository::load_index_file(const Id& id) const {
  COFFER_ASSIGN_OR_RETURN(Bytes json, load_unpacked(FileKind::kIndex, id));
  auto parsed = parse_index(as_chars(json));
  if (!parsed)
    return fail(parsed.error().with_context("index/" + id.hex()));
  if (config_.version < 2) {
    for (const PackedBlob& b : parsed->blobs) {
      if (b.compressed()) {
        return fail(Errc::kCorrupt,
                    "index/" + id.hex() + ": compressed blob in a version 1 repository");
      }
    }
  }
  return parsed;
}

Result<void> Repository::load_index() {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> files, list_ids(FileKind::kIndex));
  if (options_.no_cache)
    return load_index_into_memory(files);
  auto cached = load_index_into_cache(files, false);
  if (cached || !cache_unusable(cached.error()))
    return cached;
  // Like restic: an unusable cache directory costs speed, not the command.
  log::warn("cache unusable (" + cached.error().message + "); continuing without it");
  options_.no_cache = true;
  return load_index_into_memory(files);
}

Result<void> Repository::reload_index() {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> files, list_ids(FileKind::kIndex));
  if (options_.no_cache)
    return load_index_into_memory(files);
  return load_index_into_cache(files, true);
}

Result<void> Repository::load_index_into_memory(const std::vector<Id>& files) {
  COFFER_ASSIGN_OR_RETURN(index_, build_memory_index(files));
  return {};
}

Result<std::unique_ptr<BlobIndex>> Repository::build_memory_index(
    const std::vector<Id>& files) const {
  auto index = std::make_unique<MemoryBlobIndex>();
  std::mutex mutex;  // guards index
  COFFER_TRY(parallel_for(files.size(), decode_workers(), [&](std::size_t i) -> Result<void> {
    COFFER_ASSIGN_OR_RETURN(IndexFile f, load_index_file(files[i]));
    std::scoped_lock lock(mutex);
    for (const PackedBlob& b : f.blobs) index->add(b);
    return {};
  }));
  return std::unique_ptr<BlobIndex>(std::move(index));
}

Result<void> Repository::load_index_into_cache(const std::vector<Id>& files, bool force_rebuild) {
  std::string dir = cache_base(options_.cache_dir) + "/" + config_.id.hex();
  COFFER_TRY(ensure_cache_dir(cache_base(options_.cache_dir), dir));
  index_.reset();
  damaged_marker_ = dir + "/index-damaged";
  if (::access(damaged_marker_.c_str(), F_OK) == 0) {
    log::warn("the index cache was found damaged last time; rebuilding it");
    force_rebuild = true;
  }
  auto opened = LmdbBlobIndex::open(dir + "/index.lmdb", config_.id);
  if (!opened)
    return fail(opened.error().with_context("opening index cache"));
  LmdbBlobIndex& cache = **opened;
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> known, cache.index_files());
  std::set<Id> present(files.begin(), files.end());
  bool stale =
      std::any_of(known.begin(), known.end(), [&](const Id& k) { return !present.count(k); });
  if (stale || force_rebuild) {
    log::debug("index cache is stale; rebuilding");
    COFFER_TRY(cache.clear());
    known.clear();
  }
  std::set<Id> have(known.begin(), known.end());
  std::vector<Id> missing;
  for (const Id& f : files) {
    if (!have.count(f))
      missing.push_back(f);
  }
  std::mutex mutex;  // serializes LMDB write transactions
  COFFER_TRY(parallel_for(missing.size(), decode_workers(), [&](std::size_t i) -> Result<void> {
    COFFER_ASSIGN_OR_RETURN(IndexFile f, load_index_file(missing[i]));
    std::scoped_lock lock(mutex);
    return cache.add_index_file(missing[i], f.blobs);
  }));
  index_ = std::move(*opened);
  ::unlink(damaged_marker_.c_str());
  return {};
}

std::uint64_t Repository::index_size() const { return index_ ? index_->size() : 0; }

Result<std::optional<PackedBlob>> Repository::lookup(const BlobHandle& blob) const {
  if (!index_)
    return fail(Errc::kInvalidArgument, "index not loaded");
  if (!fallback_ready_) {
    auto found = index_->lookup(blob);
    if (found || found.error().code != Errc::kCorrupt)
      return found;
    COFFER_TRY(use_fallback_index(found.error()));
  }
  return fallback_->lookup(blob);
}

Result<void> Repository::use_fallback_index(const Error& cause) const {
  std::scoped_lock lock(fallback_mutex_);
  if (fallback_ready_)
    return {};
  log::warn("index cache damaged (" + cause.message + "); using the repository index directly");
  if (!damaged_marker_.empty()) {
    if (FILE* f = std::fopen(damaged_marker_.c_str(), "w"); f != nullptr)
      std::fclose(f);
  }
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> files, list_ids(FileKind::kIndex));
  COFFER_ASSIGN_OR_RETURN(fallback_, build_memory_index(files));
  fallback_ready_ = true;
  return {};
}

namespace {

std::string blob_where(const PackedBlob& blob) {
  return fmt::format("pack {} blob {} ({})", blob.pack.hex(), blob.id.hex(),
                     blob_type_name(blob.type));
}

// The checks that come before any buffer is sized from the index entry.
Result<void> check_sealed_size(const PackedBlob& blob, ByteSpan encrypted) {
  if (encrypted.size() != blob.length)
    return fail(Errc::kCorrupt, blob_where(blob) + ": wrong encrypted length");
  if (blob.length < kCryptoOverhead)
    return fail(Errc::kCorrupt, blob_where(blob) + ": shorter than its encryption overhead");
  return {};
}

}  // namespace

Result<Bytes> Repository::decode_blob(const PackedBlob& blob, ByteSpan encrypted) const {
  COFFER_TRY(check_sealed_size(blob, encrypted));
  Bytes data(blob.plain_size());
  COFFER_TRY(decode_blob_into(blob, encrypted, data));
  return data;
}

Result<void> Repository::decode_blob_into(const PackedBlob& blob, ByteSpan encrypted,
                                          std::span<std::byte> out) const {
  COFFER_TRY(check_sealed_size(blob, encrypted));
  if (out.size() != blob.plain_size())
    return fail(Errc::kInvalidArgument, blob_where(blob) + ": output buffer of the wrong size");
  if (blob.compressed()) {
    std::size_t n = encrypted.size() - kCryptoOverhead;
    std::unique_ptr<std::byte[]> plain(new std::byte[n]);  // not zero-filled: overwritten
    auto r = open_sealed_into(key_, encrypted, {plain.get(), n});
    if (r)
      r = zstd_decompress_into({plain.get(), n}, out);
    if (!r)
      return fail(r.error().with_context(blob_where(blob)));
  } else if (auto r = open_sealed_into(key_, encrypted, out); !r) {
    return fail(r.error().with_context(blob_where(blob)));
  }
  if (Id::hash(out) != blob.id)
    return fail(Errc::kCorrupt, blob_where(blob) + ": content hash mismatch");
  return {};
}

Result<Bytes> Repository::load_blob(const BlobHandle& blob) const {
  COFFER_ASSIGN_OR_RETURN(std::optional<PackedBlob> where, lookup(blob));
  if (!where) {
    return fail(Errc::kNotFound, fmt::format("{} blob {} not found in index",
                                             blob_type_name(blob.type), blob.id.hex()));
  }
  bool cached = objects_ && blob.type == BlobType::kTree;
  if (cached) {
    if (auto hit = objects_->get(CachedKind::kTree, blob.id)) {
      if (auto plain = decode_blob(*where, *hit))
        return plain;
      objects_->remove(CachedKind::kTree, blob.id);  // damaged copy: fetch it again
    }
  }
  COFFER_ASSIGN_OR_RETURN(Bytes sealed, load_sealed_blob(blob, *where));
  auto plain = decode_blob(*where, sealed);
  if (plain && cached)
    objects_->put(CachedKind::kTree, blob.id, sealed);
  return plain;
}

Result<Bytes> Repository::load_sealed_blob(const BlobHandle& blob, const PackedBlob& where) const {
  auto sealed =
      backend_->load(Handle{FileKind::kPack, where.pack.hex()}, where.offset, where.length);
  if (!sealed) {
    return fail(sealed.error().with_context(
        fmt::format("loading blob {} from pack {}", blob.id.hex(), where.pack.hex())));
  }
  return sealed;
}

void Repository::remember_tree(const Id& id, ByteSpan sealed) const {
  if (objects_)
    objects_->put(CachedKind::kTree, id, sealed);
}

void Repository::open_object_cache() {
  if (options_.no_cache || backend_->properties().local)
    return;
  std::string base = cache_base(options_.cache_dir);
  std::string dir = base + "/" + config_.id.hex();
  auto made = ensure_cache_dir(base, dir);
  auto cache = made ? ObjectCache::open(dir + "/objects")
                    : Result<std::unique_ptr<ObjectCache>>(fail(made.error()));
  if (!cache) {
    log::warn("no local cache of snapshots and trees: " + cache.error().message);
    return;
  }
  objects_ = std::move(*cache);
}

Result<Tree> Repository::load_tree(const Id& id) const {
  COFFER_ASSIGN_OR_RETURN(Bytes data, load_blob(BlobHandle{id, BlobType::kTree}));
  auto tree = parse_tree(data);
  if (!tree)
    return fail(tree.error().with_context("tree " + id.hex()));
  return tree;
}

Result<std::vector<SnapshotEntry>> Repository::list_snapshots() const {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> ids, list_ids(FileKind::kSnapshot));
  if (objects_)
    objects_->retain_snapshots(ids);  // forgotten snapshots leave the cache
  std::vector<SnapshotEntry> out(ids.size());
  COFFER_TRY(parallel_for(ids.size(), decode_workers(), [&](std::size_t i) -> Result<void> {
    COFFER_ASSIGN_OR_RETURN(Bytes json, load_unpacked(FileKind::kSnapshot, ids[i]));
    auto s = parse_snapshot(as_chars(json));
    if (!s)
      return fail(s.error().with_context("snapshot " + ids[i].short_hex()));
    out[i] = SnapshotEntry{ids[i], std::move(*s)};
    return {};
  }));
  std::stable_sort(out.begin(), out.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    if (a.snapshot.time != b.snapshot.time)
      return a.snapshot.time < b.snapshot.time;
    return a.id < b.id;
  });
  return out;
}

Result<Id> Repository::resolve(FileKind kind, std::string_view prefix) const {
  std::string p(prefix);
  std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return std::tolower(c); });
  if (p.empty())
    return fail(Errc::kInvalidArgument, "empty id");
  if (p.size() == 64) {
    COFFER_ASSIGN_OR_RETURN(Id id, Id::parse(p));
    COFFER_TRY(backend_->stat(Handle{kind, id.hex()}));
    return id;
  }
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> ids, list_ids(kind));
  std::vector<Id> matches;
  for (const Id& id : ids) {
    if (id.hex().compare(0, p.size(), p) == 0)
      matches.push_back(id);
  }
  if (matches.empty())
    return fail(Errc::kNotFound,
                fmt::format("no {} file matches id \"{}\"", file_kind_dir(kind), p));
  if (matches.size() > 1) {
    return fail(Errc::kInvalidArgument,
                fmt::format("id prefix \"{}\" is ambiguous ({} matches)", p, matches.size()));
  }
  return matches.front();
}

}  // namespace coffer::repo
