#include "repo/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace coffer::repo::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kNormal)};  // NOLINT: set once by main
std::mutex g_mutex;                                          // NOLINT: guards stderr lines

void emit(std::string_view message) {
  std::scoped_lock lock(g_mutex);
  std::string line(message);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

void set_level(Level l) { g_level = static_cast<int>(l); }
Level level() { return static_cast<Level>(g_level.load()); }
void warn(std::string_view m) {
  if (g_level >= static_cast<int>(Level::kNormal))
    emit(m);
}
void info(std::string_view m) {
  if (g_level >= static_cast<int>(Level::kVerbose))
    emit(m);
}
void debug(std::string_view m) {
  if (g_level >= static_cast<int>(Level::kDebug))
    emit(m);
}

}  // namespace coffer::repo::log
