#include "fs/errno_map.h"

#include <cerrno>

namespace coffer::fs {

int errno_for(repo::Errc code) {
  switch (code) {
    case repo::Errc::kNotFound:
      return ENOENT;
    case repo::Errc::kInvalidArgument:
      return EINVAL;
    case repo::Errc::kUnsupported:
      return ENOTSUP;
    case repo::Errc::kCancelled:
      return EINTR;
    case repo::Errc::kAuth:
      return EACCES;
    default:
      return EIO;
  }
}

}  // namespace coffer::fs
