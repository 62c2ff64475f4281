// Restore's file system side (internal to repo/ops/restore): creating directories, files,
// special nodes and hard links, writing at offsets, restoring metadata, resume and verify
// checks. POSIX calls only; paths are raw bytes.
//
// Nothing here follows a symlink that is in the way: existing non-directories at a target
// path are replaced, files are opened with O_NOFOLLOW.
//
// Thread contract: free functions, safe to call concurrently on different paths.
// Ownership: UniqueFd owns its descriptor and closes it on destruction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "repo/core/bytes.h"
#include "repo/core/error.h"
#include "repo/core/id.h"
#include "repo/tree/node.h"

namespace coffer::repo::restore_detail {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// "path: what: strerror(errno)" as an Error of code kIo.
Error errno_error(const std::string& path, const char* what);

// Creates every missing directory of `path` with mode 0700. Errors: kIo.
Result<void> make_dirs(const std::string& path);
// Creates directory `path` (mode 0700) unless a directory is there; a non-directory in the
// way is removed first. Errors: kIo.
Result<void> make_dir(const std::string& path);

// Creates (or truncates to empty) regular file `path` with mode 0600; the caller writes the
// contents and finalize_file() sets the final size (so unwritten ranges are holes). A symlink
// or special file in the way is replaced. `absent` says the path was seen not to exist, which
// allows a faster exclusive create (falling back to the careful path if it exists after all).
// Errors: kIo.
Result<UniqueFd> create_file(const std::string& path, bool absent);
// Opens existing regular file `path` for writing. Errors: kIo.
Result<UniqueFd> open_for_write(const std::string& path);
// Writes all of `data` at `offset`. Errors: kIo naming `path`.
Result<void> write_at(int fd, ByteSpan data, std::uint64_t offset, const std::string& path);
// True when every byte of `data` is zero.
bool is_all_zero(ByteSpan data);

// Creates a symlink, fifo or device node for `node` at `path`, replacing a non-directory in
// the way. Errors: kIo (kUnsupported for other node types).
Result<void> create_special(const std::string& path, const Node& node);
// Makes `path` a hard link to `existing`, replacing what is at `path` unless it is already
// that file. Errors: kIo.
Result<void> make_hardlink(const std::string& existing, const std::string& path);
// Removes `path` if it is not a directory; errors are ignored.
void remove_path(const std::string& path);

// Restores ownership (numeric; permission errors ignored when not root), mode (not for
// symlinks), xattrs, then atime and mtime. Returns one message per failed step (empty when
// all succeeded); later steps are attempted after a failure.
std::vector<std::string> apply_metadata(const std::string& path, const Node& node);
// The same for a regular file open as `fd` (no path look-ups), first setting its size to
// node.size; ownership and mode are only changed when they differ. `path` is for messages.
std::vector<std::string> finalize_file(int fd, const std::string& path, const Node& node);
// Opens `path` (not following a symlink; for writing when `writable`, needed to fix the
// size) to apply metadata through the descriptor; invalid when it cannot be opened.
UniqueFd open_for_metadata(const std::string& path, bool writable);

struct Chunk {
  Id id;
  std::uint32_t size = 0;
};

// What is at a target path: nothing, something that is not a usable regular file (a
// directory, symlink, device, or, unless `allow_links`, a file with other hard links), or a
// regular file of `size` bytes whose chunks match the snapshot where `matches` is true
// (chunks past the end never match).
struct ExistingFile {
  enum class State { kAbsent, kOther, kRegular };
  State state = State::kAbsent;
  std::uint64_t size = 0;
  std::vector<bool> matches;
  [[nodiscard]] bool all_match() const;
};
// Looks at `path` and, for a usable regular file, hashes it chunk by chunk. Errors: kIo.
Result<ExistingFile> compare_existing(const std::string& path, const std::vector<Chunk>& chunks,
                                      bool allow_links);
// Prepares an existing regular file for an in-place update: its mtime becomes "now" (so it
// cannot look complete until the restore sets it) and its size `size`. Errors: kIo.
Result<void> prepare_in_place(const std::string& path, std::uint64_t size);
// Makes [offset, offset+length) of `fd` read as zeros, as a hole when the file system can.
// Errors: kIo.
Result<void> zero_range(int fd, std::uint64_t offset, std::uint64_t length,
                        const std::string& path);

// Re-reads `path` and checks its size and each chunk's SHA-256. Errors: kCorrupt naming the
// file and the first bad chunk, kIo.
Result<void> verify_file(const std::string& path, const std::vector<Chunk>& chunks,
                         std::uint64_t size);

}  // namespace coffer::repo::restore_detail
