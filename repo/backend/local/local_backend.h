// LocalBackend: a repository in a local directory, laid out as restic does (§1).
//
// Writes go to "<final>-tmp-<random>" in the same directory, are fsynced, renamed into
// place, the directory is fsynced, and the file is made read-only (0400). Reads use
// pread on a fresh descriptor, so any number of threads may read at once.
//
// load_shared() reads a large range of a pack that is not all in the page cache with
// O_DIRECT, into an aligned buffer that is neither zero-filled nor copied: the kernel neither
// copies the bytes nor fills its page cache with packs (a mount streaming a disk image would
// evict everything else). Ranges the page cache holds, small ranges, and file systems that
// refuse O_DIRECT take the buffered path.
//
// begin_file streams into "<kind dir>/pending-tmp-<random>" (0600, the same file system as
// the final name, a name list() skips); commit fsyncs it, makes it 0400, renames it into
// place without replacing an existing file, and fsyncs the directory. A failed write or
// commit, or destroying the PendingFile uncommitted, unlinks the temporary file. Commit
// failures are never retryable: after a failed fsync Linux may have dropped the dirty
// pages, so a second fsync could report success for lost data.
//
// Thread contract: every method is safe to call concurrently.
#pragma once

#include <string>

#include "repo/backend/backend.h"

namespace coffer::repo {

class LocalBackend final : public WriteBackend {
 public:
  explicit LocalBackend(std::string root);

  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  Result<SharedBytes> load_shared(const Handle& h, std::uint64_t offset,
                                  std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override { return "local:" + root_; }
  [[nodiscard]] BackendProperties properties() const override { return {8, true}; }

  Result<void> save(const Handle& h, ByteSpan data) override;
  Result<std::unique_ptr<PendingFile>> begin_file(FileKind kind) override;
  Result<void> remove(const Handle& h) override;
  Result<void> create() override;

  [[nodiscard]] const std::string& root() const { return root_; }

 private:
  [[nodiscard]] std::string path_of(const Handle& h) const { return root_ + "/" + h.path(); }
  [[nodiscard]] std::string dir_of(FileKind kind) const;
  Result<void> list_dir(const std::string& dir, FileKind kind,
                        const std::function<Result<void>(const FileInfo&)>& fn);

  std::string root_;
};

// True if `name` is a valid file name for `kind` (64 lowercase/uppercase hex, or "config").
bool valid_file_name(FileKind kind, std::string_view name);

}  // namespace coffer::repo
