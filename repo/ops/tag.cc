#include "repo/ops/tag.h"

#include <algorithm>

#include "repo/compress/zstd.h"

namespace coffer::repo {

bool change_tags(Snapshot& s, const TagChange& change) {
  if (!change.set.empty()) {
    s.tags = change.set;
    return true;
  }
  bool changed = false;
  for (const auto& tag : change.add) {
    if (std::find(s.tags.begin(), s.tags.end(), tag) == s.tags.end()) {
      s.tags.push_back(tag);
      changed = true;
    }
  }
  for (const auto& tag : change.remove) {
    auto it = std::find(s.tags.begin(), s.tags.end(), tag);
    if (it == s.tags.end())
      continue;
    *it = s.tags.back();
    s.tags.pop_back();
    changed = true;
  }
  return changed;
}

Result<Id> save_snapshot(const Repository& repo, const Snapshot& s) {
  WriteBackend* backend = repo.write_backend();
  if (backend == nullptr)
    return fail(Errc::kUnsupported, "the repository backend is read-only");
  std::string json = serialize_snapshot(s);
  COFFER_ASSIGN_OR_RETURN(Bytes plain, encode_unpacked(repo.config().version, as_bytes(json)));
  COFFER_ASSIGN_OR_RETURN(Bytes sealed, seal(repo.key(), plain));
  Id id = Id::hash(sealed);
  COFFER_TRY_CTX(backend->save(Handle{FileKind::kSnapshot, id.hex()}, sealed), "saving snapshot");
  return id;
}

Result<Id> rewrite_snapshot(const Repository& repo, const Id& old, Snapshot changed) {
  if (!changed.original)
    changed.original = old;
  COFFER_ASSIGN_OR_RETURN(Id id, save_snapshot(repo, changed));
  COFFER_TRY_CTX(repo.write_backend()->remove(Handle{FileKind::kSnapshot, old.hex()}),
                 "removing snapshot " + old.short_hex());
  return id;
}

}  // namespace coffer::repo
