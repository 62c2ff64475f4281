// dump: stream a file's contents, or a directory as a tar archive, to a sink.
//
// File contents are fetched with a few blobs in flight at once (ordered output), so a
// large file streams at several times the speed of one-blob-at-a-time reading.
//
// Thread contract: one call per stream; internally uses worker threads that only read
// the (thread-safe) Repository.
#pragma once

#include <atomic>
#include <functional>

#include "repo/ops/tar_writer.h"
#include "repo/repository.h"

namespace coffer::repo {

using ByteSink = std::function<Result<void>(ByteSpan)>;

struct DumpOptions {
  unsigned blobs_in_flight = 8;
  const std::atomic<bool>* cancel = nullptr;
};

// Writes the contents of file `node` to `sink` in order. Errors: load errors, kCorrupt when
// the blobs do not add up to node.size, kCancelled.
Result<void> dump_file(const Repository& repo, const Node& node, const ByteSink& sink,
                       const DumpOptions& options);

// Writes `dir` (at snapshot path `dir_path`) as a tar stream of its contents; member
// names are snapshot paths without the leading '/'.
Result<void> dump_tar(const Repository& repo, const Node& dir, const std::string& dir_path,
                      const ByteSink& sink, const DumpOptions& options);

}  // namespace coffer::repo
