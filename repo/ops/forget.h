// forget: restic 0.14's snapshot expiry (restic-format.md §14), as library functions.
//
// Snapshots are grouped (group_snapshots, default by host and paths), then apply_policy
// decides per group which to keep, with restic's reasons and counters. Bucket values (hour,
// day, ISO week, month, year) are computed in each snapshot's own stored UTC offset, as
// restic does. Removing is deleting the snapshot files (remove_snapshot); the caller holds
// an exclusive lock.
//
// Deliberate difference: restic 0.14 accepts negative counts and durations and then keeps
// nothing under that rule (removing everything else); validate_policy rejects them instead.
//
// Thread contract: pure functions over caller-owned values, except remove_snapshot and
// resolve_snapshot_args, which use the Repository (safe to call concurrently).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "repo/ops/snapshot_filter.h"
#include "repo/repository.h"

namespace coffer::repo {

// A calendar span like "1y2m3d4h" (restic.Duration): counted in calendar units.
struct KeepDuration {
  int years = 0, months = 0, days = 0, hours = 0;
  [[nodiscard]] bool zero() const { return years == 0 && months == 0 && days == 0 && hours == 0; }
  // restic's String(): "1y2m3d4h", zero parts left out; "" for zero.
  [[nodiscard]] std::string str() const;
};

// Parses "6y5m234d37h" as restic 0.14 does: number-unit pairs in any order (a repeated unit
// overwrites), surrounding blanks ignored, "" is zero. Errors: kInvalidArgument (no number,
// no or unknown unit, a negative number, a number too large).
Result<KeepDuration> parse_keep_duration(std::string_view text);

// A tag list "a,b" (restic.TagList): all of these tags.
using TagList = std::vector<std::string>;

// Splits "a, b" at commas and trims blanks around each tag, as restic's splitTagList.
TagList parse_tag_list(std::string_view text);

// restic's Snapshot.HasTags: `s` has every tag of `l`; an empty tag matches only a snapshot
// without tags.
bool has_tags(const Snapshot& s, const TagList& l);

// restic 0.14's snapshot filter, which forget and tag use: the host is one of f.hosts; some
// entry of f.tags, split by parse_tag_list, satisfies has_tags; every path of f.paths is one
// of the snapshot's paths, compared as strings. (SnapshotFilter::matches is more lenient: an
// empty tag matches any snapshot there, and trailing slashes are ignored.) Empty lists pass.
bool restic_filter_matches(const Snapshot& s, const SnapshotFilter& f);

// The snapshots of `all` that restic_filter_matches, in the same order.
std::vector<SnapshotEntry> restic_filter(const std::vector<SnapshotEntry>& all,
                                         const SnapshotFilter& f);

struct ForgetPolicy {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  KeepDuration within, within_hourly, within_daily, within_weekly, within_monthly, within_yearly;
  std::vector<TagList> tags;  // --keep-tag: keep snapshots having all tags of any list

  // No keep rule at all (restic then removes nothing).
  [[nodiscard]] bool empty() const;
  // restic's ExpirePolicy.String(): "keep 2 daily snapshots and all snapshots with tags [[a]]".
  [[nodiscard]] std::string describe() const;
};

// Errors: kInvalidArgument naming the option when a count or duration is negative.
Result<void> validate_policy(const ForgetPolicy& p);

// The counters after a kept snapshot was evaluated (restic's KeepReason.Counters).
struct KeepCounters {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
};

struct KeepReason {
  std::vector<std::string> matches;  // "daily snapshot", "has tags [a]", "within 3d", ...
  KeepCounters counters;
};

struct PolicyResult {
  std::vector<SnapshotEntry> keep;    // newest first
  std::vector<KeepReason> reasons;    // reasons[i] belongs to keep[i]
  std::vector<SnapshotEntry> remove;  // newest first
};

// What apply_policy needs to know about "now" and the local time zone.
struct PolicyClock {
  GoTime now;
  // Offset (seconds east of UTC) of the local zone at a Unix time. restic parses a stored time
  // whose offset is the local zone's at that instant as a local time, so --keep-within
  // calendar arithmetic on it follows the local zone's daylight-saving rules.
  std::function<std::int32_t(std::int64_t)> local_offset;
};

// The system clock and the process's local zone (TZ).
PolicyClock system_policy_clock();

// restic 0.14's ApplyPolicy on one group: sorts newest first (equal times by id), then keeps
// per rule. An empty policy keeps everything with the reason "policy is empty".
PolicyResult apply_policy(std::vector<SnapshotEntry> group, const ForgetPolicy& p,
                          const PolicyClock& clock);

struct GroupBy {
  bool host = false, paths = false, tags = false;
};

// Parses restic's --group-by: comma-separated host(s), path(s), tag(s); "" groups nothing.
// Errors: kInvalidArgument ("unknown grouping option: 'x'").
Result<GroupBy> parse_group_by(std::string_view text);

// A group's key; an empty list stands for Go's nil (printed as null).
struct GroupKey {
  std::string host;
  std::vector<std::string> paths, tags;
};

struct SnapshotGroup {
  GroupKey key;
  std::vector<SnapshotEntry> snapshots;  // in the order given to group_snapshots
};

// restic's GroupSnapshots. Like restic, it sorts every snapshot's paths, and its tags when
// grouping by tags (restic sorts them in place, so its output shows them sorted). Groups are
// ordered by their key.
std::vector<SnapshotGroup> group_snapshots(std::vector<SnapshotEntry> list, const GroupBy& by);

// Calendar fields of `t` in its own stored offset.
struct CivilTime {
  std::int64_t year = 0;
  int month = 0, day = 0, hour = 0;
};
CivilTime civil_time(const GoTime& t);

// Go's Time.ISOWeek of `t` in its own offset, as year * 100 + week.
std::int64_t iso_week_key(const GoTime& t);

// `latest` minus `d` as restic computes it (AddDate(-y, -m, -d) then minus d.hours hours), in
// latest's own offset or, with `use_local`, in the local zone given by `local_offset`.
GoTime subtract_duration(const GoTime& latest, const KeepDuration& d, bool use_local,
                         const std::function<std::int32_t(std::int64_t)>& local_offset);

// Snapshots named on the command line: "latest" (the newest passing restic_filter), full ids
// or unique prefixes; duplicates removed. Names that match nothing are reported through `warn` and
// skipped, as restic does. Errors: kIo, kCorrupt (an unreadable snapshot).
Result<std::vector<SnapshotEntry>> resolve_snapshot_args(
    const Repository& repo, const std::vector<std::string>& names, const SnapshotFilter& filter,
    const std::function<void(const std::string&)>& warn);

// Deletes snapshot file `id`. REQUIRES: an exclusive lock is held.
// Errors: kUnsupported (read-only backend), kNotFound, kIo.
Result<void> remove_snapshot(const Repository& repo, const Id& id);

}  // namespace coffer::repo
