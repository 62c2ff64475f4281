// Minimal leveled logging to stderr. Secrets must never be passed here.
//
// Thread contract: safe from any thread; the level is set once by main before threads start.
#pragma once

#include <string_view>

namespace coffer::repo::log {

enum class Level { kQuiet = 0, kNormal = 1, kVerbose = 2, kDebug = 3 };

void set_level(Level level);
Level level();
void warn(std::string_view message);   // printed unless quiet
void info(std::string_view message);   // printed when verbose
void debug(std::string_view message);  // printed when debug

}  // namespace coffer::repo::log
