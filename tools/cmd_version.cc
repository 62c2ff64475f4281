// coffer version: the version and how this binary was built, in restic's shape
// ("restic 0.14.0 compiled with go1.19.8 on linux/amd64"); --json gives the same as one object.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/version.h"

namespace coffer::tools {
namespace {

#if defined(__clang__)
const std::string kCompiler =
    fmt::format("clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
const std::string kCompiler =
    fmt::format("gcc {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
const std::string kCompiler = "an unknown compiler";
#endif

#if defined(__x86_64__)
constexpr const char* kArch = "amd64";
#elif defined(__aarch64__)
constexpr const char* kArch = "arm64";
#elif defined(__arm__)
constexpr const char* kArch = "arm";
#elif defined(__i386__)
constexpr const char* kArch = "386";
#else
constexpr const char* kArch = "unknown";
#endif

repo::Result<int> run(const GlobalOptions& g) {
  if (g.json) {
    nlohmann::ordered_json j;
    j["message_type"] = "version";
    j["version"] = kVersion;
    j["compiler"] = kCompiler;
    j["os"] = "linux";
    j["arch"] = kArch;
    out_line(j.dump());
  } else {
    out_line(fmt::format("coffer {} compiled with {} on linux/{}", kVersion, kCompiler, kArch));
  }
  return kExitOk;
}

}  // namespace

Command add_version_command(CLI::App& app, const GlobalOptions& g) {
  CLI::App* sub = app.add_subcommand("version", "Print version information");
  return Command{sub, [&g] { return run(g); }};
}

}  // namespace coffer::tools
