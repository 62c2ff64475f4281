#include "repo/ops/snapshot_filter.h"

#include <algorithm>

namespace coffer::repo {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(',', start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos)
      break;
    start = pos + 1;
  }
  return out;
}

std::string clean_path(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

bool SnapshotFilter::matches(const Snapshot& s) const {
  if (!hosts.empty() && std::find(hosts.begin(), hosts.end(), s.hostname) == hosts.end())
    return false;
  if (!tags.empty()) {
    bool any = std::any_of(tags.begin(), tags.end(), [&](const std::string& group) {
      auto wanted = split_commas(group);
      return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& t) {
        return t.empty() || std::find(s.tags.begin(), s.tags.end(), t) != s.tags.end();
      });
    });
    if (!any)
      return false;
  }
  return std::all_of(paths.begin(), paths.end(), [&](const std::string& p) {
    return std::any_of(s.paths.begin(), s.paths.end(),
                       [&](const std::string& sp) { return clean_path(sp) == clean_path(p); });
  });
}

std::vector<SnapshotEntry> filter_snapshots(const std::vector<SnapshotEntry>& all,
                                            const SnapshotFilter& filter) {
  std::vector<SnapshotEntry> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [&](const SnapshotEntry& e) { return filter.matches(e.snapshot); });
  return out;
}

Result<SnapshotEntry> find_snapshot(const Repository& repo, std::string_view name,
                                    const SnapshotFilter& filter) {
  if (name == "latest") {
    COFFER_ASSIGN_OR_RETURN(std::vector<SnapshotEntry> all, repo.list_snapshots());
    auto matching = filter_snapshots(all, filter);
    if (matching.empty())
      return fail(Errc::kNotFound, "no snapshot found for \"latest\"");
    return matching.back();
  }
  COFFER_ASSIGN_OR_RETURN(Id id, repo.resolve(FileKind::kSnapshot, name));
  COFFER_ASSIGN_OR_RETURN(Bytes json, repo.load_unpacked(FileKind::kSnapshot, id));
  auto s = parse_snapshot(as_chars(json));
  if (!s)
    return fail(s.error().with_context("snapshot " + id.short_hex()));
  return SnapshotEntry{id, std::move(*s)};
}

}  // namespace coffer::repo
