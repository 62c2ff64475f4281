// Facts about the running process that repository files record: host and user names.
//
// Thread contract: stateless functions, safe to call concurrently.
#pragma once

#include <string>

namespace coffer::repo {

// This machine's host name; "" if it cannot be read.
std::string host_name();

// The name of the process's real user; "" if it has none.
std::string current_user_name();

}  // namespace coffer::repo
