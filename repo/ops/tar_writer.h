// TarWriter: writes a POSIX pax tar stream (for `coffer dump` of a directory).
//
// Long or non-ASCII names, link targets, large sizes and ids, nanosecond mtimes and
// xattrs (SCHILY.xattr.*) go into pax extended headers, so nothing is truncated.
//
// Thread contract: one writer per stream, used from one thread.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "repo/core/error.h"
#include "repo/tree/node.h"

namespace coffer::repo {

class TarWriter {
 public:
  using Sink = std::function<Result<void>(ByteSpan)>;
  explicit TarWriter(Sink sink) : sink_(std::move(sink)) {}

  // Writes the header of `node` stored under `name` (no leading '/'). For a regular file
  // the caller then writes exactly node.size bytes with write_data(). `hardlink_target`,
  // when not empty, writes a hard-link entry instead.
  Result<void> write_header(const std::string& name, const Node& node,
                            const std::string& hardlink_target = "");
  Result<void> write_data(ByteSpan data);
  // Pads the current file to a 512-byte boundary.
  Result<void> end_file();
  // Writes the two zero blocks that end the archive.
  Result<void> finish();

 private:
  Result<void> write_block_header(const std::string& name, char type, std::uint64_t size,
                                  const Node& node, const std::string& link);
  Result<void> write_pax(const std::string& name, const std::string& records);

  Sink sink_;
  std::uint64_t written_in_file_ = 0;
};

}  // namespace coffer::repo
