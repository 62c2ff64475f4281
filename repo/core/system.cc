// Host and user names (see system.h).
#include "repo/core/system.h"

#include <array>
#include <vector>

#include <pwd.h>
#include <unistd.h>

namespace coffer::repo {

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0)
    return "";
  return buf.data();
}

std::string current_user_name() {
  passwd pw{};
  passwd* out = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &out) != 0 || out == nullptr)
    return "";
  return out->pw_name;
}

}  // namespace coffer::repo
