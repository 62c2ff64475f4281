// Backup exclusion rules (see backup_exclude.h).
#include "repo/ops/backup_exclude.h"

#include <algorithm>
#include <cctype>

#include <fcntl.h>
#include <unistd.h>

namespace coffer::repo {

namespace {

constexpr const char* kCacheDirTag = "CACHEDIR.TAG";
constexpr const char* kCacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Result<std::vector<FilterPattern>> parse_all(const std::vector<std::string>& texts, bool fold) {
  std::vector<FilterPattern> out;
  for (const auto& text : texts) {
    if (text.empty())
      continue;
    auto p = FilterPattern::parse(fold ? lower(text) : text);
    if (!p)
      return fail(Errc::kInvalidArgument,
                  "bad exclude pattern \"" + text + "\": " + p.error().message);
    out.push_back(std::move(*p));
  }
  return out;
}

// True when `path` exists and (if `header` is set) starts with it.
bool marker_present(const std::string& path, const std::string& header) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return errno != ENOENT && errno != ENOTDIR && header.empty();
  bool ok = true;
  if (!header.empty()) {
    std::string buf(header.size(), '\0');
    std::size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n <= 0)
        break;
      got += static_cast<std::size_t>(n);
    }
    ok = got == buf.size() && buf == header;
  }
  ::close(fd);
  return ok;
}

}  // namespace

Result<Excluder> Excluder::create(const ExcludeOptions& options) {
  Excluder e;
  COFFER_ASSIGN_OR_RETURN(e.patterns_, parse_all(options.excludes, false));
  COFFER_ASSIGN_OR_RETURN(e.ipatterns_, parse_all(options.iexcludes, true));
  for (const auto& spec : options.exclude_if_present) {
    auto colon = spec.find(':');
    if (spec.empty() || colon == 0)
      return fail(Errc::kInvalidArgument, "bad --exclude-if-present \"" + spec + "\"");
    e.markers_.push_back(
        {spec.substr(0, colon), colon == std::string::npos ? "" : spec.substr(colon + 1)});
  }
  if (options.exclude_caches)
    e.markers_.push_back({kCacheDirTag, kCacheDirSignature});
  e.larger_than_ = options.exclude_larger_than;
  e.one_file_system_ = options.one_file_system;
  return e;
}

bool Excluder::excluded(const std::string& path, const struct stat& st) const {
  if (larger_than_ != 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) > larger_than_)
    return true;
  if (!patterns_.empty() && match_list(patterns_, path, false).matched)
    return true;
  return !ipatterns_.empty() && match_list(ipatterns_, lower(path), false).matched;
}

void Excluder::drop_marked(const std::string& path, std::vector<std::string>& names) const {
  std::vector<std::string> present;
  for (const auto& m : markers_)
    if (marker_present(path + "/" + m.file, m.header))
      present.push_back(m.file);
  if (present.empty())
    return;
  std::erase_if(names, [&](const std::string& n) {
    return std::any_of(present.begin(), present.end(), [&](const auto& f) { return f != n; });
  });
}

bool Excluder::other_filesystem(const struct stat& st) const {
  return one_file_system_ && S_ISDIR(st.st_mode) && devices_.count(st.st_dev) == 0;
}

}  // namespace coffer::repo
