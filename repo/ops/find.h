// find: searching snapshots for paths matching patterns, or for blob, tree and pack ids, with
// restic 0.14's `find` semantics (cmd/restic/cmd_find.go, internal/walker), quirks included:
//   * the walk visits tree nodes sorted by name; a directory is entered unless no pattern can
//     match below it (FindPattern::child_match);
//   * a subtree all of whose nodes were "ignored" (not matched, or out of the time range) is
//     remembered by id and skipped, with its directory node, wherever it shows up again in this
//     run, in the same snapshot or a later one (restic's ignoreTrees set);
//   * an id search by tree stops a snapshot's walk once as many tree hits were counted over the
//     whole run as distinct tree ids were asked for; a short (8 digit) blob id that matched is
//     replaced by the full id.
// Unlike restic, trees are loaded on parallel workers, level by level before the walk, and
// decoded trees are kept for the whole run while they fit in a cache (64 MiB by default);
// the walks run over the decoded trees and load those that did not fit when they reach them.
// Data blobs are never loaded.
//
// Thread contract: a Finder is used by one thread (it starts and joins its own workers).
// Ownership: borrows the Repository and the sink, which must outlive it.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "repo/repository.h"

namespace coffer::repo {

struct NameQuery {
  std::vector<std::string> patterns;  // restic filter patterns, as given
  bool ignore_case = false;           // lower-case patterns and paths (Go strings.ToLower)
  std::optional<GoTime> oldest;       // skip nodes modified before this instant
  std::optional<GoTime> newest;       // skip nodes modified after this instant
};

struct IdQuery {
  // Ids as given: 64 hex digits, or restic's 8-digit short form (other prefixes never match).
  // nullopt: not searching for that kind. find_ids replaces matched short blob ids by full ones.
  std::optional<std::vector<std::string>> blobs;
  std::optional<std::vector<std::string>> trees;
};

// What a search reports, in walk order.
class FindSink {
 public:
  virtual ~FindSink() = default;
  // A node at `path` matched the name query.
  virtual void on_match(const SnapshotEntry& sn, const std::string& path, const Node& node) = 0;
  // A searched tree (`parent_tree` empty) or a data blob of a file in tree `parent_tree`.
  virtual void on_object(const SnapshotEntry& sn, bool is_tree, const Id& id,
                         const std::string& path, const std::optional<Id>& parent_tree) = 0;
  // A tree below `parent_tree` (restic names the parent, not the tree) could not be loaded;
  // the walk goes on without it.
  virtual void on_tree_error(const SnapshotEntry& sn, const Id& parent_tree) = 0;
};

class Finder {
 public:
  // REQUIRES: repo.load_index() done. `cancel`, if given, is polled. `tree_cache_bytes`:
  // how much decoded trees may occupy (0: the default).
  Finder(const Repository& repo, FindSink& sink, const std::atomic<bool>* cancel = nullptr,
         std::uint64_t tree_cache_bytes = 0);
  ~Finder();
  Finder(const Finder&) = delete;
  Finder& operator=(const Finder&) = delete;

  // Walks `snapshots` in order for nodes matching `query`.
  // Errors: kInvalidArgument "Match: syntax error in pattern" (at the first node tested),
  // kCorrupt (a snapshot without tree, a directory without subtree), kCancelled.
  Result<void> find_names(const std::vector<SnapshotEntry>& snapshots, const NameQuery& query);

  // Walks `snapshots` in order for the ids of `query`. Errors: as find_names.
  Result<void> find_ids(const std::vector<SnapshotEntry>& snapshots, IdQuery& query);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PackBlobs {
  std::vector<std::string> blob_ids;  // full hex ids of the packs' blobs (index order, unique)
  std::vector<Id> missing_packs;      // listed by the index but absent from the backend
};

// The blobs of the packs named in `packs` (full ids or 8-digit short ids), from the index files.
// Errors: kNotFound "unable to find pack(s): [id ...]" for names neither the backend nor the
// index knows (sorted, as given); kIo, kCorrupt loading the index.
Result<PackBlobs> blobs_of_packs(const Repository& repo, const std::vector<std::string>& packs);

}  // namespace coffer::repo
