// Internal to repo/ops/backup*: the archiver that turns a set of targets into tree blobs.
//
// One walker thread (the caller of run()) lists directories and lstat()s entries; reader
// threads read and chunk files; blob threads hash, compress, encrypt and store chunks. A
// DirJob counts its undelivered children; whoever delivers the last one writes the
// directory's tree blob and delivers the directory to its parent.
//
// Thread contract: run() is called once, from one thread. Everything else is internal.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "repo/chunker/chunker.h"
#include "repo/ops/backup.h"
#include "repo/ops/backup_exclude.h"
#include "repo/ops/backup_node.h"
#include "repo/ops/work_pool.h"

namespace coffer::repo::detail {

// The command-line targets as a tree of names: inner nodes are directories on the way to a
// target (saved with their own metadata, holding only the targets below them).
struct TargetNode {
  std::string path;   // absolute filesystem path
  bool full = false;  // a target itself: everything below is backed up
  std::map<std::string, TargetNode> children;
};

struct DirJob {
  Node node;                                  // the directory's own metadata
  std::vector<std::optional<Node>> children;  // one slot per entry, in name order
  std::atomic<std::size_t> pending{1};        // undelivered slots + the walker's hold
  std::shared_ptr<DirJob> parent;             // nullptr for the root
  std::size_t slot = 0;                       // our slot in the parent
  std::optional<Id> old_subtree;              // the parent snapshot's tree of this directory
  bool had_old = false;                       // the parent snapshot has this directory
};

struct FileJob {
  Node node;
  std::string path;
  std::shared_ptr<DirJob> dir;
  std::size_t slot = 0;
  bool had_old = false;
  std::deque<Id> content;               // filled by blob jobs (references stay valid)
  std::uint64_t bytes = 0;              // bytes fed to the chunker (reader thread only)
  std::atomic<std::size_t> pending{1};  // chunks in flight + the reader's hold
  std::atomic<bool> failed{false};
};

class Archiver {
 public:
  // `writer` is nullptr on a dry run. All references must outlive the Archiver.
  Archiver(Repository& repo, RepositoryWriter* writer, const BackupOptions& options,
           const Excluder& excluder);
  ~Archiver();

  // Backs up `root` (the virtual root, or a real directory when root.full) against the
  // parent snapshot's root tree (nullptr: none). Returns the root tree id.
  Result<Id> run(const TargetNode& root, const std::optional<Id>& parent_tree);

  // Reads `fd` (a pipe or file) as the snapshot's only file; returns the root tree id.
  Result<Id> run_stream(int fd, Node node);

  void fill_summary(BackupSummary& s) const;
  [[nodiscard]] BackupProgress progress() const;
  std::vector<std::string> take_errors();
  std::vector<std::string> take_warnings();

 private:
  // Walking (backup_archiver.cc).
  void walk_virtual(const std::shared_ptr<DirJob>& dir, const TargetNode& target,
                    const Tree* old_tree);
  void walk_dir(const std::shared_ptr<DirJob>& dir, const std::string& path, const Tree* old_tree);
  void walk_subdir(const std::shared_ptr<DirJob>& dir, const std::string& path);
  void process_entry(const std::shared_ptr<DirJob>& dir, std::size_t slot, const std::string& path,
                     std::string name, const Node* old);
  void process_dir(const std::shared_ptr<DirJob>& dir, std::size_t slot, const std::string& path,
                   Node node, const Node* old, const struct stat& st);
  void process_file(const std::shared_ptr<DirJob>& dir, std::size_t slot, const std::string& path,
                    Node node, const Node* old);
  std::optional<Tree> load_old_tree(const std::optional<Id>& id, const std::string& path);
  void deliver(const std::shared_ptr<DirJob>& dir, std::size_t slot, std::optional<Node> node);
  void release(const std::shared_ptr<DirJob>& dir);
  void drain();             // waits for every job, in pipeline order
  Result<Id> finish_run();  // drain(), then the root tree id or the first fatal error
  void finish_dir(const std::shared_ptr<DirJob>& dir);
  [[nodiscard]] bool unchanged(const Node& now, const Node* old) const;

  // Reading files (backup_file.cc).
  void read_file(const std::shared_ptr<FileJob>& job);
  // Reads `fd` to its end; with `sparse_size`, walks its data extents up to that size.
  Result<void> read_stream(const std::shared_ptr<FileJob>& job, int fd,
                           std::optional<std::uint64_t> sparse_size);
  Result<void> read_data(const std::shared_ptr<FileJob>& job, int fd, std::uint64_t offset,
                         std::uint64_t end, Chunker& chunker, std::unique_ptr<PooledBuffer>& buf);
  void read_hole(const std::shared_ptr<FileJob>& job, std::uint64_t count, Chunker& chunker,
                 std::unique_ptr<PooledBuffer>& buf);
  void emit(const std::shared_ptr<FileJob>& job, std::unique_ptr<PooledBuffer> chunk);
  void emit_zeros(const std::shared_ptr<FileJob>& job, std::uint64_t size);
  void save_chunk(const std::shared_ptr<FileJob>& job, Id* slot, ByteSpan data, bool known_id);
  void chunk_done(const std::shared_ptr<FileJob>& job);
  void finish_file(const std::shared_ptr<FileJob>& job);

  // Shared state.
  Result<bool> store(BlobType type, const Id& id, ByteSpan data);
  void set_fatal(const Error& e);
  bool stopping();
  void error(const std::string& message);
  void warning(const std::string& message);

  Repository& repo_;
  RepositoryWriter* writer_;  // nullptr on a dry run
  const BackupOptions& options_;
  const Excluder& excluder_;
  NameCache names_;
  Polynomial polynomial_;

  mutable std::mutex mutex_;  // guards fatal_, errors_, warnings_, seen_, root_id_, current_
  std::optional<Error> fatal_;
  std::atomic<bool> has_fatal_{false};
  std::vector<std::string> errors_, warnings_;
  std::set<Id> seen_;  // dry run: blobs "stored" so far
  std::optional<Id> root_id_;
  std::vector<std::string> current_;

  std::atomic<std::uint64_t> files_new_{0}, files_changed_{0}, files_unmodified_{0};
  std::atomic<std::uint64_t> dirs_new_{0}, dirs_changed_{0}, dirs_unmodified_{0};
  std::atomic<std::uint64_t> bytes_done_{0}, dry_blobs_{0}, dry_bytes_{0}, dry_trees_{0};
  std::atomic<std::uint64_t> error_count_{0};

  std::shared_ptr<BufferPool> buffers_;
  std::unique_ptr<WorkPool> blob_pool_;    // destroyed after readers_ (they submit to it)
  std::unique_ptr<WorkPool> reader_pool_;  // destroyed after walk_pool_ (it feeds readers)
  std::unique_ptr<WorkPool> walk_pool_;    // lists and lstat()s subdirectories in parallel
};

}  // namespace coffer::repo::detail
