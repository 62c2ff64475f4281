// Maps repository error codes to the errno values FUSE replies carry.
//
// Thread contract: pure function.
#pragma once

#include "repo/core/error.h"

namespace coffer::fs {

// kNotFound → ENOENT, kInvalidArgument → EINVAL, kUnsupported → ENOTSUP,
// kCancelled → EINTR, kAuth → EACCES, everything else (corrupt, I/O) → EIO.
int errno_for(repo::Errc code);

}  // namespace coffer::fs
