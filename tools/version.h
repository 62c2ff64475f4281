// coffer's version, as `coffer version`, `--version` and snapshots' program_version show it.
// Keep it equal to project(VERSION) in CMakeLists.txt.
#pragma once

namespace coffer::tools {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace coffer::tools
