// Every entry of every index file, read straight from the index files (not the LMDB cache):
// what `list blobs` prints and what a pack search looks through.
//
// Thread contract: a function; it starts and joins its own workers. The Repository must
// outlive the call.
#pragma once

#include <vector>

#include "repo/index/blob.h"
#include "repo/repository.h"

namespace coffer::repo {

// The entries of all index files, file by file in listing order, each file's entries in its
// own order (a blob stored in two packs appears twice). Index files load on `workers` threads.
// Errors: kIo, kCorrupt naming the index file, kCancelled when the cancel flag is set.
Result<std::vector<PackedBlob>> load_index_entries(const Repository& repo, unsigned workers);

}  // namespace coffer::repo
