// tag: changing the tags of a snapshot as restic 0.14's `tag` command does.
//
// A snapshot file is named by the hash of its bytes, so a changed snapshot is stored as a
// new file (with "original" naming the first version) and the old file is deleted.
//
// Thread contract: change_tags is a pure function; rewrite_snapshot uses the Repository
// (safe to call concurrently) and must run under an exclusive lock.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"

namespace coffer::repo {

// The tags of --set, --add and --remove, each flattened (all lists joined, empty tags
// dropped), as restic's TagLists.Flatten gives them.
struct TagChange {
  std::vector<std::string> set, add, remove;
};

// Applies `change` to `s` as restic 0.14's changeTags: a non-empty `set` replaces the tags;
// otherwise `add` appends missing tags and `remove` deletes each named tag by moving the last
// tag into its place (restic's order). Returns whether anything changed (a non-empty `set`
// always counts as a change).
bool change_tags(Snapshot& s, const TagChange& change);

// Stores `changed` (the new content of snapshot `old`) as a new snapshot file, with
// "original" set to `old` unless it already names one, then deletes `old`. Returns the new id.
// REQUIRES: an exclusive lock. Errors: kUnsupported (read-only backend), kIo, kNotFound.
Result<Id> rewrite_snapshot(const Repository& repo, const Id& old, Snapshot changed);

// Encodes (v2: zstd), encrypts and stores `s` as a snapshot file; returns its id.
// Errors: kUnsupported (read-only backend), kIo.
Result<Id> save_snapshot(const Repository& repo, const Snapshot& s);

}  // namespace coffer::repo
