#include "repo/cache/lmdb_blob_index.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include <lmdb.h>
#include <sys/stat.h>

#include "repo/core/bytes.h"
#include "repo/core/log.h"

namespace coffer::repo {
namespace {

static_assert(std::is_same_v<MDB_dbi, unsigned>, "MDB_dbi is stored as unsigned in the header");

constexpr std::size_t kKeySize = 1 + Id::kSize;
// Value: pack id, offset, length, uncompressed length, then the check.
constexpr std::size_t kCheckedSize = Id::kSize + 3 * sizeof(std::uint32_t);
constexpr std::size_t kValueSize = kCheckedSize + 4;
// Address space only: LMDB grows the file as pages are used. 64 GiB holds 300M+ entries
// (an entry takes 90-180 bytes of file).
constexpr std::uint64_t kMapSize = sizeof(void*) >= 8 ? (std::uint64_t{64} << 30) : (1u << 30);
constexpr unsigned kMaxReaders = 256;  // concurrent lookups (FUSE workers) across processes

using Key = std::array<std::byte, kKeySize>;
using Value = std::array<std::byte, kValueSize>;

MDB_val to_val(ByteSpan bytes) {
  return MDB_val{bytes.size(), const_cast<std::byte*>(bytes.data())};  // LMDB does not write it
}

ByteSpan from_val(const MDB_val& v) {
  return {static_cast<const std::byte*>(v.mv_data), v.mv_size};
}

// FNV-1a 32 over `a` then `b`. Each step is a bijection of the state, so any single changed
// byte changes the result.
std::uint32_t fnv1a32(ByteSpan a, ByteSpan b) {
  std::uint32_t h = 2166136261u;
  for (ByteSpan part : {a, b}) {
    for (std::byte x : part) h = (h ^ std::to_integer<std::uint32_t>(x)) * 16777619u;
  }
  return h;
}

Key make_key(BlobType type, const Id& id) {
  Key key{};
  key[0] = static_cast<std::byte>(type);
  std::copy(id.bytes().begin(), id.bytes().end(), key.begin() + 1);
  return key;
}

Value make_value(const Key& key, const PackedBlob& blob) {
  Value v{};
  std::copy(blob.pack.bytes().begin(), blob.pack.bytes().end(), v.begin());
  store_le32(v.data() + Id::kSize, blob.offset);
  store_le32(v.data() + Id::kSize + 4, blob.length);
  store_le32(v.data() + Id::kSize + 8, blob.uncompressed_length);
  store_le32(v.data() + kCheckedSize, fnv1a32(key, ByteSpan(v.data(), kCheckedSize)));
  return v;
}

Result<PackedBlob> decode_value(const Key& key, const BlobHandle& handle, ByteSpan v) {
  if (v.size() != kValueSize ||
      load_le32(v.data() + kCheckedSize) != fnv1a32(key, v.first(kCheckedSize))) {
    return fail(Errc::kCorrupt, "index cache damaged: the entry for " +
                                    std::string(blob_type_name(handle.type)) + " blob " +
                                    handle.id.short_hex() + " fails its check");
  }
  return PackedBlob{handle.id,
                    handle.type,
                    Id::from_span(v.first(Id::kSize)),
                    load_le32(v.data() + Id::kSize),
                    load_le32(v.data() + Id::kSize + 4),
                    load_le32(v.data() + Id::kSize + 8)};
}

// Creates `dir` and any missing parents with mode 0700.
Result<void> make_private_dir(const std::string& dir) {
  if (dir.empty())
    return fail(Errc::kIo, "index cache: empty directory name");
  std::filesystem::path prefix;
  for (const auto& part : std::filesystem::path(dir)) {
    prefix /= part;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail(Errc::kIo, "index cache: mkdir " + prefix.string() + ": " + std::strerror(errno));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(Errc::kIo, "index cache: " + dir + " is not a directory");
  }
  return {};
}

// Errors of mdb_env_open that say nothing about the files' contents.
bool is_environmental(int rc) {
  return rc == EACCES || rc == EPERM || rc == EROFS || rc == ENOSPC || rc == EMFILE ||
         rc == ENFILE || rc == EAGAIN || rc == EIO;
}

Result<MdbEnv> open_env(const std::string& dir) {
  MDB_env* raw = nullptr;
  int rc = mdb_env_create(&raw);
  if (rc != 0)
    return fail(lmdb_error(rc, "creating the environment"));
  MdbEnv env(raw);
  if ((rc = mdb_env_set_maxdbs(raw, 3)) != 0 ||
      (rc = mdb_env_set_mapsize(raw, static_cast<std::size_t>(kMapSize))) != 0 ||
      (rc = mdb_env_set_maxreaders(raw, kMaxReaders)) != 0) {
    return fail(lmdb_error(rc, "configuring the environment"));
  }
  rc = mdb_env_open(raw, dir.c_str(), MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600);
  if (rc != 0) {
    Error e = lmdb_error(rc, "opening " + dir);
    if (!is_environmental(rc))
      e.code = Errc::kCorrupt;  // e.g. a garbage meta page
    return fail(std::move(e));
  }
  int dead = 0;
  mdb_reader_check(raw, &dead);  // frees slots of killed readers; failure is harmless
  return env;
}

// A data file shorter than its meta page says would make LMDB read past the end (SIGBUS).
Result<void> check_not_truncated(MDB_env* env, const std::string& dir) {
  MDB_envinfo info{};
  MDB_stat st{};
  struct stat file {};
  std::string path = dir + "/data.mdb";
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0 ||
      ::stat(path.c_str(), &file) != 0) {
    return fail(Errc::kIo, "index cache: cannot inspect " + path);
  }
  auto needed = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  if (static_cast<std::uint64_t>(file.st_size) < needed) {
    return fail(Errc::kCorrupt, "index cache damaged: " + path + " is truncated");
  }
  return {};
}

void remove_cache_files(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(dir) / "data.mdb", ec);
  std::filesystem::remove(std::filesystem::path(dir) / "lock.mdb", ec);
}

Result<unsigned> open_dbi(const LmdbTxn& txn, const char* name) {
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn.get(), name, MDB_CREATE, &dbi);
  if (rc != 0)
    return fail(lmdb_error(rc, std::string("opening database ") + name));
  return dbi;
}

Result<std::uint64_t> entry_count(const LmdbTxn& txn, MDB_dbi dbi) {
  MDB_stat st{};
  int rc = mdb_stat(txn.get(), dbi, &st);
  if (rc != 0)
    return fail(lmdb_error(rc, "reading statistics"));
  return st.ms_entries;
}

// Positions of `blobs` sorted by key; equal keys keep their input order (first copy first).
// Sorting (prefix, position) pairs keeps most comparisons inside one contiguous array.
std::vector<std::uint32_t> sorted_order(std::span<const PackedBlob> blobs) {
  struct Item {
    std::uint64_t prefix;  // type byte, then the first 7 id bytes, big-endian
    std::uint32_t index;
  };
  std::vector<Item> items(blobs.size());
  for (std::uint32_t i = 0; i < items.size(); ++i) {
    std::uint64_t prefix = static_cast<std::uint8_t>(blobs[i].type);
    for (std::size_t j = 0; j < 7; ++j) {
      prefix = (prefix << 8) | std::to_integer<std::uint64_t>(blobs[i].id.bytes()[j]);
    }
    items[i] = Item{prefix, i};
  }
  std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    if (a.prefix != b.prefix)
      return a.prefix < b.prefix;
    int c =
        std::memcmp(blobs[a.index].id.bytes().data(), blobs[b.index].id.bytes().data(), Id::kSize);
    return c != 0 ? c < 0 : a.index < b.index;
  });
  std::vector<std::uint32_t> order(items.size());
  std::transform(items.begin(), items.end(), order.begin(), [](const Item& x) { return x.index; });
  return order;
}

}  // namespace

LmdbBlobIndex::LmdbBlobIndex(Private, DirClaim claim, MdbEnv env)
    : claim_(std::move(claim)), env_(std::move(env)) {}

Result<std::unique_ptr<LmdbBlobIndex>> LmdbBlobIndex::open(const std::string& dir,
                                                           const Id& repo_id) {
  COFFER_TRY(make_private_dir(dir));
  for (int attempt = 0;; ++attempt) {
    COFFER_ASSIGN_OR_RETURN(DirClaim claim, DirClaim::acquire(dir));
    auto index = try_open(dir, repo_id, std::move(claim));
    if (index || index.error().code != Errc::kCorrupt)
      return index;
    if (attempt > 0)
      return fail(Errc::kIo, index.error().message);
    // The failed environment is closed and the claim released by now.
    log::warn(index.error().message + "; recreating the index cache in " + dir);
    remove_cache_files(dir);
  }
}

Result<std::unique_ptr<LmdbBlobIndex>> LmdbBlobIndex::try_open(const std::string& dir,
                                                               const Id& repo_id, DirClaim claim) {
  COFFER_ASSIGN_OR_RETURN(MdbEnv env, open_env(dir));
  COFFER_TRY(check_not_truncated(env.get(), dir));
  auto index = std::make_unique<LmdbBlobIndex>(Private{}, std::move(claim), std::move(env));
  COFFER_TRY(index->init_databases(repo_id));
  return index;
}

Result<void> LmdbBlobIndex::init_databases(const Id& repo_id) {
  COFFER_ASSIGN_OR_RETURN(LmdbTxn txn, LmdbTxn::begin(env_.get(), 0));
  COFFER_ASSIGN_OR_RETURN(meta_dbi_, open_dbi(txn, "meta"));
  COFFER_ASSIGN_OR_RETURN(blobs_dbi_, open_dbi(txn, "blobs"));
  COFFER_ASSIGN_OR_RETURN(files_dbi_, open_dbi(txn, "files"));
  COFFER_ASSIGN_OR_RETURN(bool fresh, check_meta(txn, repo_id));
  if (fresh)
    COFFER_TRY(write_meta(txn, repo_id));
  return txn.commit();
}

// True for a new, empty cache; kCorrupt if the cache must not be used for `repo_id`.
Result<bool> LmdbBlobIndex::check_meta(const LmdbTxn& txn, const Id& repo_id) const {
  MDB_val k = to_val(as_bytes("format"));
  MDB_val v{};
  int rc = mdb_get(txn.get(), meta_dbi_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    COFFER_ASSIGN_OR_RETURN(std::uint64_t blobs, entry_count(txn, blobs_dbi_));
    COFFER_ASSIGN_OR_RETURN(std::uint64_t files, entry_count(txn, files_dbi_));
    COFFER_ASSIGN_OR_RETURN(std::uint64_t metas, entry_count(txn, meta_dbi_));
    if (blobs + files + metas == 0)
      return true;
    return fail(Errc::kCorrupt, "index cache damaged: no format record");
  }
  if (rc != 0)
    return fail(lmdb_error(rc, "reading the format record"));
  if (v.mv_size != 4 || load_le32(static_cast<const std::byte*>(v.mv_data)) != kFormatVersion) {
    return fail(Errc::kCorrupt, "index cache has another format version");
  }
  k = to_val(as_bytes("repo"));
  rc = mdb_get(txn.get(), meta_dbi_, &k, &v);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return fail(lmdb_error(rc, "reading the repository id"));
  if (rc == MDB_NOTFOUND || v.mv_size != Id::kSize || Id::from_span(from_val(v)) != repo_id) {
    return fail(Errc::kCorrupt, "index cache belongs to another repository");
  }
  return false;
}

Result<void> LmdbBlobIndex::write_meta(const LmdbTxn& txn, const Id& repo_id) const {
  std::array<std::byte, 4> version{};
  store_le32(version.data(), kFormatVersion);
  MDB_val k = to_val(as_bytes("format"));
  MDB_val v = to_val(version);
  int rc = mdb_put(txn.get(), meta_dbi_, &k, &v, 0);
  if (rc == 0) {
    k = to_val(as_bytes("repo"));
    v = to_val(repo_id.span());
    rc = mdb_put(txn.get(), meta_dbi_, &k, &v, 0);
  }
  if (rc != 0)
    return fail(lmdb_error(rc, "writing the meta records"));
  return {};
}

Result<std::vector<Id>> LmdbBlobIndex::index_files() const {
  COFFER_ASSIGN_OR_RETURN(LmdbTxn txn, LmdbTxn::begin(env_.get(), MDB_RDONLY));
  COFFER_ASSIGN_OR_RETURN(MdbCursor cursor, txn.cursor(files_dbi_));
  std::vector<Id> ids;
  MDB_val k{};
  MDB_val v{};
  int rc = 0;
  while ((rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) == 0) {
    if (k.mv_size != Id::kSize)
      return fail(Errc::kCorrupt, "index cache damaged: bad file id");
    ids.push_back(Id::from_span(from_val(k)));
  }
  if (rc != MDB_NOTFOUND)
    return fail(lmdb_error(rc, "listing index files"));
  return ids;
}

Result<void> LmdbBlobIndex::add_index_file(const Id& index_id, std::span<const PackedBlob> blobs) {
  const std::string context = "adding index " + index_id.short_hex() + " to the cache";
  COFFER_ASSIGN_OR_RETURN(LmdbTxn txn, LmdbTxn::begin(env_.get(), 0));
  COFFER_TRY_CTX(put_blobs(txn, blobs), context);
  MDB_val k = to_val(index_id.span());
  MDB_val v{0, nullptr};
  int rc = mdb_put(txn.get(), files_dbi_, &k, &v, 0);
  if (rc != 0)
    return fail(lmdb_error(rc, "recording the index file").with_context(context));
  COFFER_TRY_CTX(txn.commit(), context);
  return {};
}

// Puts `blobs` in key order, which keeps the touched pages together. Keys above the database's
// last key are appended (MDB_APPEND fills pages completely; an empty database takes all).
Result<void> LmdbBlobIndex::put_blobs(const LmdbTxn& txn, std::span<const PackedBlob> blobs) const {
  std::vector<std::uint32_t> order = sorted_order(blobs);
  COFFER_ASSIGN_OR_RETURN(MdbCursor cursor, txn.cursor(blobs_dbi_));
  MDB_val last{};
  MDB_val unused{};
  int rc = mdb_cursor_get(cursor.get(), &last, &unused, MDB_LAST);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return fail(lmdb_error(rc, "reading the last entry"));
  Key last_key{};  // copied: `last` points into a page that our puts may change
  bool append = rc == MDB_NOTFOUND;
  if (!append)
    std::memcpy(last_key.data(), last.mv_data, std::min(last.mv_size, kKeySize));
  const PackedBlob* prev = nullptr;
  for (std::uint32_t i : order) {
    const PackedBlob& blob = blobs[i];
    if (prev != nullptr && prev->type == blob.type && prev->id == blob.id)
      continue;
    prev = &blob;
    Key key = make_key(blob.type, blob.id);
    Value value = make_value(key, blob);
    append = append || std::memcmp(key.data(), last_key.data(), kKeySize) > 0;
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    rc = mdb_cursor_put(cursor.get(), &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST)
      return fail(lmdb_error(rc, "writing a blob entry"));
  }
  return {};
}

Result<void> LmdbBlobIndex::clear() {
  COFFER_ASSIGN_OR_RETURN(LmdbTxn txn, LmdbTxn::begin(env_.get(), 0));
  int rc = mdb_drop(txn.get(), blobs_dbi_, 0);
  if (rc == 0)
    rc = mdb_drop(txn.get(), files_dbi_, 0);
  if (rc != 0)
    return fail(lmdb_error(rc, "clearing"));
  return txn.commit();
}

Result<std::optional<PackedBlob>> LmdbBlobIndex::lookup(const BlobHandle& blob) const {
  Key key = make_key(blob.type, blob.id);
  COFFER_ASSIGN_OR_RETURN(LmdbTxn txn, LmdbTxn::begin(env_.get(), MDB_RDONLY));
  MDB_val k = to_val(key);
  MDB_val v{};
  int rc = mdb_get(txn.get(), blobs_dbi_, &k, &v);
  if (rc == MDB_NOTFOUND)
    return std::optional<PackedBlob>{};
  if (rc != 0)
    return fail(lmdb_error(rc, "looking up blob " + blob.id.short_hex()));
  COFFER_ASSIGN_OR_RETURN(PackedBlob found, decode_value(key, blob, from_val(v)));
  return std::optional<PackedBlob>{found};
}

std::uint64_t LmdbBlobIndex::size() const {
  auto txn = LmdbTxn::begin(env_.get(), MDB_RDONLY);
  if (!txn)
    return 0;
  auto count = entry_count(*txn, blobs_dbi_);
  return count ? *count : 0;
}

}  // namespace coffer::repo
