#include "repo/ops/forget.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "repo/tree/node.h"

namespace coffer::repo {
namespace {

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0)
      out += sep;
    out += parts[i];
  }
  return out;
}

// Go's %v of a restic.TagList: "[a, b]".
std::string tag_list_string(const TagList& l) { return "[" + join(l, ", ") + "]"; }

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return std::string(s);
}

// A bucket value for a snapshot (restic's bucker functions); `nr` is its position.
using Bucker = std::int64_t (*)(const GoTime& t, std::int64_t nr);

std::int64_t bucket_always(const GoTime& /*t*/, std::int64_t nr) { return nr; }
std::int64_t bucket_hour(const GoTime& t, std::int64_t /*nr*/) {
  CivilTime c = civil_time(t);
  return c.year * 1000000 + c.month * 10000 + c.day * 100 + c.hour;
}
std::int64_t bucket_day(const GoTime& t, std::int64_t /*nr*/) {
  CivilTime c = civil_time(t);
  return c.year * 10000 + c.month * 100 + c.day;
}
std::int64_t bucket_week(const GoTime& t, std::int64_t /*nr*/) { return iso_week_key(t); }
std::int64_t bucket_month(const GoTime& t, std::int64_t /*nr*/) {
  CivilTime c = civil_time(t);
  return c.year * 100 + c.month;
}
std::int64_t bucket_year(const GoTime& t, std::int64_t /*nr*/) { return civil_time(t).year; }

struct CountBucket {
  int count;
  Bucker bucker;
  std::int64_t last;
  const char* reason;
};

struct WithinBucket {
  KeepDuration within;
  Bucker bucker;
  std::int64_t last;
  const char* reason;
};

// restic's findLatestTimestamp: the newest time that is not in the future.
std::optional<GoTime> latest_time(const std::vector<SnapshotEntry>& list, const GoTime& now) {
  std::optional<GoTime> latest;
  for (const auto& e : list) {
    const GoTime& t = e.snapshot.time;
    if ((!latest || t > *latest) && t < now)
      latest = t;
  }
  return latest;
}

// The instant after which a snapshot is "within" `d` of `latest`. Without a latest time
// (all snapshots in the future) restic measures from year 1, so everything is within.
std::optional<GoTime> within_threshold(const std::optional<GoTime>& latest, const KeepDuration& d,
                                       const PolicyClock& clock) {
  if (!latest)
    return std::nullopt;
  bool local = latest->offset_seconds != 0 && clock.local_offset &&
               clock.local_offset(latest->unix_seconds) == latest->offset_seconds;
  return subtract_duration(*latest, d, local, clock.local_offset);
}

bool is_within(const GoTime& t, const std::optional<GoTime>& threshold) {
  return !threshold || t > *threshold;
}

// State of one ApplyPolicy run over a sorted group.
class PolicyRun {
 public:
  PolicyRun(const ForgetPolicy& p, std::optional<GoTime> latest, const PolicyClock& clock)
      : p_(p),
        counts_{{{p.last, bucket_always, -1, "last snapshot"},
                 {p.hourly, bucket_hour, -1, "hourly snapshot"},
                 {p.daily, bucket_day, -1, "daily snapshot"},
                 {p.weekly, bucket_week, -1, "weekly snapshot"},
                 {p.monthly, bucket_month, -1, "monthly snapshot"},
                 {p.yearly, bucket_year, -1, "yearly snapshot"}}},
        withins_{{{p.within_hourly, bucket_hour, -1, "hourly within"},
                  {p.within_daily, bucket_day, -1, "daily within"},
                  {p.within_weekly, bucket_week, -1, "weekly within"},
                  {p.within_monthly, bucket_month, -1, "monthly within"},
                  {p.within_yearly, bucket_year, -1, "yearly within"}}} {
    if (!p.within.zero())
      within_ = within_threshold(latest, p.within, clock);
    for (std::size_t i = 0; i < withins_.size(); ++i) {
      if (!withins_[i].within.zero())
        within_thresholds_[i] = within_threshold(latest, withins_[i].within, clock);
    }
  }

  // The reasons to keep snapshot number `nr` (empty: remove it); updates the buckets.
  std::vector<std::string> evaluate(const Snapshot& s, std::int64_t nr) {
    std::vector<std::string> reasons;
    for (const auto& l : p_.tags) {
      if (has_tags(s, l))
        reasons.push_back("has tags " + tag_list_string(l));
    }
    if (!p_.within.zero() && is_within(s.time, within_))
      reasons.push_back("within " + p_.within.str());
    for (auto& b : counts_) {
      if (b.count <= 0)
        continue;
      std::int64_t v = b.bucker(s.time, nr);
      if (v != b.last) {
        b.last = v;
        --b.count;
        reasons.emplace_back(b.reason);
      }
    }
    for (std::size_t i = 0; i < withins_.size(); ++i) {
      auto& b = withins_[i];
      if (b.within.zero() || !is_within(s.time, within_thresholds_[i]))
        continue;
      std::int64_t v = b.bucker(s.time, nr);
      if (v != b.last) {
        b.last = v;
        reasons.push_back(std::string(b.reason) + " " + b.within.str());
      }
    }
    return reasons;
  }

  [[nodiscard]] KeepCounters counters() const {
    return KeepCounters{counts_[0].count, counts_[1].count, counts_[2].count,
                        counts_[3].count, counts_[4].count, counts_[5].count};
  }

 private:
  const ForgetPolicy& p_;
  std::array<CountBucket, 6> counts_;
  std::array<WithinBucket, 5> withins_;
  std::optional<GoTime> within_;
  std::array<std::optional<GoTime>, 5> within_thresholds_{};
};

// restic's warning when "latest" names nothing: Go's %v of the filter lists.
std::string latest_warning(const SnapshotFilter& f) {
  std::vector<std::string> lists;
  for (const auto& t : f.tags) lists.push_back(tag_list_string(parse_tag_list(t)));
  return fmt::format(
      "Ignoring \"latest\", no snapshot matched given filter (Paths:[{}] Tags:[{}] Hosts:[{}])",
      join(f.paths, " "), join(lists, " "), join(f.hosts, " "));
}

// The newest snapshot passing restic_filter. Errors: kNotFound, kIo, kCorrupt.
Result<SnapshotEntry> latest_snapshot(const Repository& repo, const SnapshotFilter& filter) {
  COFFER_ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
  auto matching = restic_filter(all, filter);
  if (matching.empty())
    return fail(Errc::kNotFound, "no snapshot matched the given filter");
  return matching.back();
}

}  // namespace

TagList parse_tag_list(std::string_view text) {
  TagList out;
  while (true) {
    auto pos = text.find(',');
    out.push_back(trim(text.substr(0, pos)));
    if (pos == std::string_view::npos)
      break;
    text.remove_prefix(pos + 1);
  }
  return out;
}

bool has_tags(const Snapshot& s, const TagList& l) {
  for (const auto& tag : l) {
    if (tag.empty() && s.tags.empty())
      return true;
    if (std::find(s.tags.begin(), s.tags.end(), tag) == s.tags.end())
      return false;
  }
  return true;
}

bool restic_filter_matches(const Snapshot& s, const SnapshotFilter& f) {
  if (!f.hosts.empty() && std::find(f.hosts.begin(), f.hosts.end(), s.hostname) == f.hosts.end())
    return false;
  if (!f.tags.empty() && std::none_of(f.tags.begin(), f.tags.end(), [&](const std::string& l) {
        return has_tags(s, parse_tag_list(l));
      })) {
    return false;
  }
  return std::all_of(f.paths.begin(), f.paths.end(), [&](const std::string& p) {
    return std::find(s.paths.begin(), s.paths.end(), p) != s.paths.end();
  });
}

std::vector<SnapshotEntry> restic_filter(const std::vector<SnapshotEntry>& all,
                                         const SnapshotFilter& f) {
  std::vector<SnapshotEntry> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [&](const SnapshotEntry& e) { return restic_filter_matches(e.snapshot, f); });
  return out;
}

bool ForgetPolicy::empty() const {
  return tags.empty() && last == 0 && hourly == 0 && daily == 0 && weekly == 0 && monthly == 0 &&
         yearly == 0 && within.zero() && within_hourly.zero() && within_daily.zero() &&
         within_weekly.zero() && within_monthly.zero() && within_yearly.zero();
}

std::string ForgetPolicy::describe() const {
  std::vector<std::string> keeps, keepw;
  const std::array<std::pair<int, const char*>, 6> counts = {{{last, "latest"},
                                                              {hourly, "hourly"},
                                                              {daily, "daily"},
                                                              {weekly, "weekly"},
                                                              {monthly, "monthly"},
                                                              {yearly, "yearly"}}};
  for (const auto& [n, name] : counts) {
    if (n > 0)
      keeps.push_back(fmt::format("{} {}", n, name));
  }
  const std::array<std::pair<const KeepDuration*, const char*>, 5> withins = {
      {{&within_hourly, "hourly"},
       {&within_daily, "daily"},
       {&within_weekly, "weekly"},
       {&within_monthly, "monthly"},
       {&within_yearly, "yearly"}}};
  for (const auto& [d, name] : withins) {
    if (!d->zero())
      keepw.push_back(fmt::format("{} snapshots within {}", name, d->str()));
  }
  std::string s;
  if (!keeps.empty())
    s = join(keeps, ", ") + " snapshots";
  if (!keepw.empty())
    s += (s.empty() ? "" : ", ") + join(keepw, ", ");
  if (!tags.empty()) {
    std::vector<std::string> lists;
    for (const auto& l : tags) lists.push_back(tag_list_string(l));
    s += (s.empty() ? "" : " and ") + fmt::format("all snapshots with tags [{}]", join(lists, " "));
  }
  if (!within.zero())
    s += (s.empty() ? "" : " and ") +
         fmt::format("all snapshots within {} of the newest", within.str());
  return "keep " + s;
}

Result<void> validate_policy(const ForgetPolicy& p) {
  const std::array<std::pair<int, const char*>, 6> counts = {{{p.last, "--keep-last"},
                                                              {p.hourly, "--keep-hourly"},
                                                              {p.daily, "--keep-daily"},
                                                              {p.weekly, "--keep-weekly"},
                                                              {p.monthly, "--keep-monthly"},
                                                              {p.yearly, "--keep-yearly"}}};
  for (const auto& [n, name] : counts) {
    if (n < 0) {
      return fail(Errc::kInvalidArgument,
                  fmt::format("{} {}: negative values are not supported (restic 0.14 has no "
                              "\"unlimited\" and would remove every snapshot)",
                              name, n));
    }
  }
  for (const KeepDuration* d : {&p.within, &p.within_hourly, &p.within_daily, &p.within_weekly,
                                &p.within_monthly, &p.within_yearly}) {
    if (d->years < 0 || d->months < 0 || d->days < 0 || d->hours < 0)
      return fail(Errc::kInvalidArgument, "negative durations are not supported");
  }
  return {};
}

PolicyResult apply_policy(std::vector<SnapshotEntry> group, const ForgetPolicy& p,
                          const PolicyClock& clock) {
  std::stable_sort(group.begin(), group.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    if (a.snapshot.time != b.snapshot.time)
      return a.snapshot.time > b.snapshot.time;
    return a.id < b.id;
  });
  PolicyResult r;
  if (p.empty()) {
    r.reasons.assign(group.size(), KeepReason{{"policy is empty"}, {}});
    r.keep = std::move(group);
    return r;
  }
  PolicyRun run(p, latest_time(group, clock.now), clock);
  for (std::size_t nr = 0; nr < group.size(); ++nr) {
    auto reasons = run.evaluate(group[nr].snapshot, static_cast<std::int64_t>(nr));
    if (reasons.empty()) {
      r.remove.push_back(std::move(group[nr]));
      continue;
    }
    r.keep.push_back(std::move(group[nr]));
    r.reasons.push_back(KeepReason{std::move(reasons), run.counters()});
  }
  return r;
}

Result<GroupBy> parse_group_by(std::string_view text) {
  GroupBy by;
  while (true) {
    auto pos = text.find(',');
    std::string_view option = text.substr(0, pos);
    if (option == "host" || option == "hosts") {
      by.host = true;
    } else if (option == "path" || option == "paths") {
      by.paths = true;
    } else if (option == "tag" || option == "tags") {
      by.tags = true;
    } else if (!option.empty()) {
      return fail(Errc::kInvalidArgument, "unknown grouping option: '" + std::string(option) + "'");
    }
    if (pos == std::string_view::npos)
      break;
    text.remove_prefix(pos + 1);
  }
  return by;
}

std::vector<SnapshotGroup> group_snapshots(std::vector<SnapshotEntry> list, const GroupBy& by) {
  std::map<std::string, SnapshotGroup> groups;  // keyed by restic's JSON group key
  for (auto& e : list) {
    Snapshot& s = e.snapshot;
    std::sort(s.paths.begin(), s.paths.end());
    if (by.tags)
      std::sort(s.tags.begin(), s.tags.end());
    GroupKey key{by.host ? s.hostname : "", by.paths ? s.paths : std::vector<std::string>{},
                 by.tags ? s.tags : std::vector<std::string>{}};
    std::string k = go_json_string(key.host);
    for (const auto* l : {&key.paths, &key.tags}) {
      k += l->empty() ? "\nnull" : "\n[";
      for (const auto& x : *l) k += go_json_string(x) + ",";
    }
    auto [it, fresh] = groups.try_emplace(k);
    if (fresh)
      it->second.key = std::move(key);
    it->second.snapshots.push_back(std::move(e));
  }
  std::vector<SnapshotGroup> out;
  for (auto& [k, g] : groups) out.push_back(std::move(g));
  return out;
}

Result<std::vector<SnapshotEntry>> resolve_snapshot_args(
    const Repository& repo, const std::vector<std::string>& names, const SnapshotFilter& filter,
    const std::function<void(const std::string&)>& warn) {
  std::vector<SnapshotEntry> out;
  bool used_filter = false;
  for (const auto& name : names) {
    used_filter = used_filter || name == "latest";
    auto e = name == "latest" ? latest_snapshot(repo, filter) : find_snapshot(repo, name, {});
    if (!e) {
      if (e.error().code != Errc::kNotFound && e.error().code != Errc::kInvalidArgument)
        return fail(e.error());
      warn(name == "latest"
               ? latest_warning(filter)
               : fmt::format("Ignoring {}: {}", go_json_string(name), e.error().message));
      continue;
    }
    bool seen = std::any_of(out.begin(), out.end(), [&](const auto& x) { return x.id == e->id; });
    if (!seen)
      out.push_back(std::move(*e));
  }
  if (!used_filter && !(filter.hosts.empty() && filter.tags.empty() && filter.paths.empty()))
    warn("Ignoring filters as there are explicit snapshot ids given");
  return out;
}

Result<void> remove_snapshot(const Repository& repo, const Id& id) {
  WriteBackend* backend = repo.write_backend();
  if (backend == nullptr)
    return fail(Errc::kUnsupported, "the repository backend is read-only");
  return backend->remove(Handle{FileKind::kSnapshot, id.hex()});
}

}  // namespace coffer::repo
