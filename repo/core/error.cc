#include "repo/core/error.h"

namespace coffer::repo {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kNotFound:
      return "not found";
    case Errc::kCorrupt:
      return "corrupt";
    case Errc::kIo:
      return "I/O error";
    case Errc::kAuth:
      return "wrong password";
    case Errc::kInvalidArgument:
      return "invalid argument";
    case Errc::kUnsupported:
      return "unsupported";
    case Errc::kLocked:
      return "locked";
    case Errc::kCancelled:
      return "cancelled";
    case Errc::kNoRepository:
      return "no repository";
    case Errc::kAccessDenied:
      return "access denied";
  }
  return "error";
}

}  // namespace coffer::repo
