#include "repo/location.h"

#include "repo/backend/local/local_backend.h"

namespace coffer::repo {

Result<std::unique_ptr<WriteBackend>> open_backend(std::string_view location) {
  if (location.empty()) {
    return fail(
        Errc::kInvalidArgument,
        "please specify the repository location (-r or COFFER_REPOSITORY/RESTIC_REPOSITORY)");
  }
  if (location.rfind("local:", 0) == 0)
    location.remove_prefix(6);
  auto colon = location.find(':');
  auto slash = location.find('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    std::string scheme(location.substr(0, colon));
    return fail(Errc::kInvalidArgument,
                "unsupported repository location scheme \"" + scheme + ":\"");
  }
  if (location.empty())
    return fail(Errc::kInvalidArgument, "empty local repository path");
  return std::unique_ptr<WriteBackend>(std::make_unique<LocalBackend>(std::string(location)));
}

}  // namespace coffer::repo
