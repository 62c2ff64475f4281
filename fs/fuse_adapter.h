// The libfuse low-level callback table over SnapshotFs (fs/fuse_adapter.cc).
//
// Each callback decodes the request, calls SnapshotFs, and replies; none throws (an
// unexpected exception becomes EIO). The session's userdata must be the SnapshotFs*.
// Open files and directories carry a heap handle in fi->fh, freed in release/releasedir.
//
// Thread contract: callbacks run concurrently on libfuse's worker threads.
#pragma once

struct fuse_lowlevel_ops;

namespace coffer::fs {

// The operations table (static storage).
const fuse_lowlevel_ops& fuse_operations();

}  // namespace coffer::fs
