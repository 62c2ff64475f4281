// prune: option parsing and the helpers shared by planning and executing (prune_internal.h).
#include "repo/ops/prune.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <mutex>

#include <dirent.h>
#include <fmt/format.h>

#include "repo/backend/local/local_backend.h"
#include "repo/core/parallel.h"
#include "repo/core/size.h"
#include "repo/ops/prune_internal.h"

namespace coffer::repo {
namespace {

std::string trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

std::uint64_t MaxUnused::limit(std::uint64_t used) const {
  switch (kind) {
    case Kind::kUnlimited:
      return std::numeric_limits<std::uint64_t>::max();
    case Kind::kBytes:
      return bytes;
    case Kind::kPercent:
      break;
  }
  return static_cast<std::uint64_t>(percent / (100 - percent) * static_cast<double>(used));
}

Result<MaxUnused> parse_max_unused(std::string_view text) {
  std::string s = trim(text);
  MaxUnused m;
  if (s.empty())
    return fail(Errc::kInvalidArgument,
                fmt::format("invalid value for --max-unused: \"{}\"", text));
  if (s == "unlimited") {
    m.kind = MaxUnused::Kind::kUnlimited;
    return m;
  }
  if (s.back() == '%') {
    std::string p = s.substr(0, s.size() - 1);
    char* end = nullptr;
    double v = std::strtod(p.c_str(), &end);
    if (p.empty() || end != p.c_str() + p.size() || std::isnan(v)) {
      return fail(Errc::kInvalidArgument,
                  fmt::format("invalid percentage \"{}\" passed for --max-unused", text));
    }
    if (v < 0)
      return fail(Errc::kInvalidArgument, "percentage for --max-unused must be positive");
    if (v >= 100)
      return fail(Errc::kInvalidArgument, "percentage for --max-unused must be below 100%");
    m.percent = v;
    return m;
  }
  auto bytes = parse_size(s);
  if (!bytes) {
    return fail(Errc::kInvalidArgument, fmt::format("invalid number of bytes \"{}\" for "
                                                    "--max-unused: {}",
                                                    text, bytes.error().message));
  }
  m.kind = MaxUnused::Kind::kBytes;
  m.bytes = *bytes;
  return m;
}

namespace prune_detail {

void emit(const std::function<void(const std::string&)>& fn, const std::string& text) {
  if (fn)
    fn(text);
}

bool is_cancelled(const PruneEvents& events) { return events.cancelled && events.cancelled(); }

namespace {

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return names;
  while (const dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..")
      names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool is_temp_name(const std::string& name) {
  return name.rfind("pending-tmp-", 0) == 0 || name.find("-tmp-") != std::string::npos;
}

}  // namespace

std::vector<std::string> leftover_temp_files(const Repository& repo) {
  std::vector<std::string> found;
  const auto* local = dynamic_cast<const LocalBackend*>(&repo.backend());
  if (local == nullptr)
    return found;
  for (const char* kind : {"data", "index", "snapshots", "keys"}) {
    std::string dir = local->root() + "/" + kind;
    for (const std::string& name : dir_entries(dir)) {
      if (is_temp_name(name)) {
        found.push_back(std::string(kind) + "/" + name);
      } else if (std::string(kind) == "data" && name.size() == 2) {
        for (const std::string& inner : dir_entries(dir + "/" + name))
          if (is_temp_name(inner))
            found.push_back("data/" + name + "/" + inner);
      }
    }
  }
  return found;
}

Result<void> delete_files(const Repository& repo, FileKind kind, const std::vector<Id>& ids,
                          bool checked, const PruneEvents& events) {
  WriteBackend* backend = repo.write_backend();
  if (backend == nullptr)
    return fail(Errc::kUnsupported, "the repository backend is read-only");
  std::mutex mutex;  // guards failed
  std::vector<std::string> failed;
  unsigned workers = std::max(1U, backend->properties().max_connections);
  COFFER_TRY(parallel_for(ids.size(), workers, [&](std::size_t i) -> Result<void> {
    if (is_cancelled(events))
      return fail(Errc::kCancelled, "interrupted");
    Handle h{kind, ids[i].hex()};
    auto removed = backend->remove(h);
    if (!removed && removed.error().code != Errc::kNotFound) {
      if (checked)
        return fail(removed.error().with_context("unable to remove " + h.path()));
      std::scoped_lock lock(mutex);
      failed.push_back("unable to remove " + h.path() + " from the repository");
    }
    return {};
  }));
  for (const auto& f : failed) emit(events.warn, f);
  if (events.counted)
    events.counted("files deleted", ids.size());
  return {};
}

}  // namespace prune_detail
}  // namespace coffer::repo
