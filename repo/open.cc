#include "repo/open.h"

#include <string.h>  // explicit_bzero

#include "repo/location.h"

namespace coffer::repo {

Result<std::unique_ptr<Repository>> open_repository_at(std::string_view location,
                                                       const PasswordSource& password,
                                                       const OpenOptions& options) {
  COFFER_ASSIGN_OR_RETURN(auto backend, open_backend(location));
  COFFER_ASSIGN_OR_RETURN(std::string secret, password());
  auto opened = Repository::open(std::move(backend), secret, options);
  ::explicit_bzero(secret.data(), secret.size());
  return opened;
}

}  // namespace coffer::repo
