// The process exit statuses coffer documents (README "Exit codes", man/coffer.1), which are
// restic's, and the status for each error code. Shared by the coffer and coffer-mount mains.
//
// Thread contract: constants and a pure function.
#pragma once

#include "repo/core/error.h"

namespace coffer::repo {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitPartial = 3;
inline constexpr int kExitNoRepository = 10;
inline constexpr int kExitLocked = 11;
inline constexpr int kExitWrongPassword = 12;
inline constexpr int kExitInterrupted = 130;

// The exit status for a command that failed with `code`.
inline int exit_status(Errc code) {
  switch (code) {
    case Errc::kNoRepository:
      return kExitNoRepository;
    case Errc::kLocked:
      return kExitLocked;
    case Errc::kAuth:
      return kExitWrongPassword;
    case Errc::kCancelled:
      return kExitInterrupted;
    default:
      return kExitError;
  }
}

}  // namespace coffer::repo
