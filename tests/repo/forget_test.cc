// Tests of forget's policy (restic 0.14's ApplyPolicy), grouping, durations and calendar
// arithmetic, of tag changes, and of lock staleness and removal on a real repository copy.
// The expected values are worked out by hand from restic's rules (restic-format.md §11, §14).
#include "repo/ops/forget.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <set>

#include <catch2/catch.hpp>
#include <unistd.h>

#include "repo/backend/local/local_backend.h"
#include "repo/compress/zstd.h"
#include "repo/lock.h"
#include "repo/ops/tag.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;

namespace {

GoTime at(const std::string& rfc3339) {
  auto t = parse_go_time(rfc3339);
  REQUIRE(t);
  return *t;
}

// A snapshot named by a one-byte id (so tests can refer to it), at `time`.
SnapshotEntry snap(int n, const std::string& time, std::vector<std::string> tags = {},
                   const std::string& host = "h", std::vector<std::string> paths = {"/data"}) {
  SnapshotEntry e;
  std::string hex(64, '0');
  hex[0] = "0123456789abcdef"[n / 16];
  hex[1] = "0123456789abcdef"[n % 16];
  e.id = *Id::parse(hex);
  e.snapshot.time = at(time);
  e.snapshot.tags = std::move(tags);
  e.snapshot.hostname = host;
  e.snapshot.paths = std::move(paths);
  return e;
}

int num(const SnapshotEntry& e) { return std::stoi(e.id.hex().substr(0, 2), nullptr, 16); }

std::vector<int> nums(const std::vector<SnapshotEntry>& list) {
  std::vector<int> out;
  for (const auto& e : list) out.push_back(num(e));
  return out;
}

PolicyClock clock_at(const std::string& now) {
  return PolicyClock{at(now), [](std::int64_t) { return std::int32_t{0}; }};
}

// A "now" after every test snapshot but the future ones (a function: at() uses REQUIRE).
PolicyClock later() { return clock_at("2030-01-01T00:00:00Z"); }

}  // namespace

TEST_CASE("durations parse and print as restic's", "[forget]") {
  auto d = parse_keep_duration(" 1y2m3d4h ");
  REQUIRE(d);
  CHECK((d->years == 1 && d->months == 2 && d->days == 3 && d->hours == 4));
  CHECK(d->str() == "1y2m3d4h");
  CHECK(parse_keep_duration("4h1d")->str() == "1d4h");
  CHECK(parse_keep_duration("1d2d")->days == 2);  // a repeated unit overwrites
  CHECK(parse_keep_duration("")->zero());
  CHECK(parse_keep_duration("0d")->zero());
  for (const char* bad : {"5", "d", "3x", "1d 2h", "-1d", "99999999999d", "1.5d"}) {
    INFO(bad);
    auto r = parse_keep_duration(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kInvalidArgument);
  }
}

TEST_CASE("calendar fields and ISO weeks use the snapshot's own offset", "[forget]") {
  auto c = civil_time(at("2024-01-01T00:30:00+02:00"));
  CHECK((c.year == 2024 && c.month == 1 && c.day == 1 && c.hour == 0));
  c = civil_time(at("2023-12-31T22:30:00Z"));  // the same instant, in UTC
  CHECK((c.year == 2023 && c.month == 12 && c.day == 31 && c.hour == 22));
  CHECK(iso_week_key(at("2024-12-30T12:00:00Z")) == 202501);  // Monday of week 1 of 2025
  CHECK(iso_week_key(at("2024-12-29T12:00:00Z")) == 202452);
  CHECK(iso_week_key(at("2021-01-03T12:00:00Z")) == 202053);  // Sunday in 2020's week 53
  CHECK(iso_week_key(at("2021-01-04T00:00:00Z")) == 202101);
  CHECK(iso_week_key(at("2026-01-01T00:00:00Z")) == 202601);  // a Thursday
  CHECK(iso_week_key(at("2027-01-01T00:00:00Z")) == 202653);  // a Friday
  // 2024-12-30T00:30Z is Monday (week 1 of 2025) in UTC but Sunday 23:30 at -01:00.
  CHECK(iso_week_key(at("2024-12-29T23:30:00-01:00")) == 202452);
  CHECK(iso_week_key(at("1969-12-31T23:59:59Z")) == 197001);  // before the epoch
  c = civil_time(at("1969-12-31T23:59:59Z"));
  CHECK((c.year == 1969 && c.month == 12 && c.day == 31 && c.hour == 23));
}

TEST_CASE("keep-last keeps the newest n with counters", "[forget]") {
  std::vector<SnapshotEntry> g = {snap(1, "2024-01-01T10:00:00Z"), snap(2, "2024-01-01T11:00:00Z"),
                                  snap(3, "2024-01-01T12:00:00Z"), snap(4, "2024-01-01T13:00:00Z")};
  ForgetPolicy p;
  p.last = 3;
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{4, 3, 2});
  CHECK(nums(r.remove) == std::vector<int>{1});
  REQUIRE(r.reasons.size() == 3);
  CHECK(r.reasons[0].matches == std::vector<std::string>{"last snapshot"});
  CHECK(r.reasons[0].counters.last == 2);
  CHECK(r.reasons[2].counters.last == 0);
}

TEST_CASE("hourly, daily, monthly and yearly keep the newest of each period", "[forget]") {
  std::vector<SnapshotEntry> g = {snap(1, "2022-06-01T10:05:00Z"), snap(2, "2023-02-01T10:40:00Z"),
                                  snap(3, "2023-02-03T10:40:00Z"), snap(4, "2023-03-03T11:10:00Z"),
                                  snap(5, "2023-03-03T11:50:00Z"), snap(6, "2023-03-03T12:00:00Z")};
  ForgetPolicy p;
  SECTION("hourly") {
    p.hourly = 3;
    CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{6, 5, 3});
  }
  SECTION("daily") {
    p.daily = 3;
    auto r = apply_policy(g, p, later());
    CHECK(nums(r.keep) == std::vector<int>{6, 3, 2});
    CHECK(r.reasons[1].matches == std::vector<std::string>{"daily snapshot"});
    CHECK(r.reasons[1].counters.daily == 1);
  }
  SECTION("monthly") {
    p.monthly = 2;
    CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{6, 3});
  }
  SECTION("yearly, more than there are years") {
    p.yearly = 10;
    auto r = apply_policy(g, p, later());
    CHECK(nums(r.keep) == std::vector<int>{6, 1});
    CHECK(r.reasons[1].counters.yearly == 8);
  }
}

TEST_CASE("weekly buckets are ISO weeks across the year end", "[forget]") {
  // Mon 2024-12-30 and Sun 2025-01-05 are ISO week 2025-01; Sun 2024-12-29 is 2024-52.
  std::vector<SnapshotEntry> g = {snap(1, "2024-12-29T12:00:00Z"), snap(2, "2024-12-30T12:00:00Z"),
                                  snap(3, "2025-01-05T12:00:00Z")};
  ForgetPolicy p;
  p.weekly = 5;
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{3, 1});
  CHECK(nums(r.remove) == std::vector<int>{2});
}

TEST_CASE("the same instant in two offsets falls into two local days", "[forget]") {
  // 2024-01-01T00:30+02:00 == 2023-12-31T22:30Z: restic sees 2024-01-01 and 2023-12-31.
  std::vector<SnapshotEntry> g = {snap(1, "2023-12-31T20:00:00Z"),
                                  snap(2, "2024-01-01T00:30:00+02:00"),
                                  snap(3, "2023-12-31T22:30:00Z")};
  ForgetPolicy p;
  p.daily = 2;
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{2, 3});  // equal instants: ordered by id
  CHECK(nums(r.remove) == std::vector<int>{1});
  p.daily = 0;
  p.yearly = 2;
  CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{2, 3});
}

TEST_CASE("rules combine and every matching rule is a reason", "[forget]") {
  std::vector<SnapshotEntry> g = {snap(1, "2024-01-01T10:00:00Z", {"a", "b"}),
                                  snap(2, "2024-01-02T10:00:00Z"),
                                  snap(3, "2024-01-02T11:00:00Z", {"b"})};
  ForgetPolicy p;
  p.last = 1;
  p.daily = 1;
  p.tags = {parse_tag_list("a, b"), parse_tag_list("")};
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{3, 2, 1});
  CHECK(r.reasons[0].matches == std::vector<std::string>{"last snapshot", "daily snapshot"});
  CHECK(r.reasons[1].matches == std::vector<std::string>{"has tags []"});  // "" = untagged
  CHECK(r.reasons[2].matches == std::vector<std::string>{"has tags [a, b]"});
  CHECK(p.describe() == "keep 1 latest, 1 daily snapshots and all snapshots with tags [[a, b] []]");
}

TEST_CASE("keep-within counts from the newest snapshot that is not in the future", "[forget]") {
  std::vector<SnapshotEntry> g = {
      snap(1, "2024-02-28T12:00:00Z"), snap(2, "2024-03-01T12:00:00Z"),
      snap(3, "2024-03-02T12:00:01Z"), snap(4, "2024-03-31T12:00:00Z"),
      snap(5, "2031-01-01T00:00:00Z")};  // in the future: kept, but not the reference
  ForgetPolicy p;
  p.within = *parse_keep_duration("1m");  // 2024-03-31 minus a month is "Feb 31" = Mar 2
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{5, 4, 3});
  CHECK(r.reasons[0].matches == std::vector<std::string>{"within 1m"});
  SECTION("no snapshot in the past: everything is within") {
    auto early = apply_policy(g, p, clock_at("2000-01-01T00:00:00Z"));
    CHECK(early.remove.empty());
  }
  SECTION("hours are subtracted after the calendar part") {
    p.within = *parse_keep_duration("29d1h");  // 2024-03-02T11:00Z
    CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{5, 4, 3});
    p.within = *parse_keep_duration("29d1h");
    g[2].snapshot.time = at("2024-03-02T11:00:00Z");  // not strictly after: removed
    CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{5, 4});
  }
}

TEST_CASE("keep-within-* keeps one snapshot per period inside the window", "[forget]") {
  std::vector<SnapshotEntry> g = {snap(1, "2024-03-01T08:00:00Z"), snap(2, "2024-03-08T08:00:00Z"),
                                  snap(3, "2024-03-09T08:00:00Z"), snap(4, "2024-03-09T09:00:00Z"),
                                  snap(5, "2024-03-10T08:00:00Z")};
  ForgetPolicy p;
  p.within_daily = *parse_keep_duration("2d");
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{5, 4});  // 3 shares 4's day; 2 is not after 03-08 08:00
  CHECK(r.reasons[0].matches == std::vector<std::string>{"daily within 2d"});
  CHECK(r.reasons[0].counters.daily == 0);
  p.within_daily = {};
  p.within_weekly = *parse_keep_duration("10d");  // all within; ISO weeks 2024-10 and 2024-09
  CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{5, 1});
  CHECK(p.describe() == "keep weekly snapshots within 10d");
}

TEST_CASE("keep-within in the local zone follows daylight saving as Go's AddDate", "[forget]") {
  // A zone at +01:00 that moves to +02:00 at 2024-03-31T01:00Z (like Europe/Berlin).
  const std::int64_t switch_at = at("2024-03-31T01:00:00Z").unix_seconds;
  PolicyClock local{at("2030-01-01T00:00:00Z"),
                    [=](std::int64_t t) { return t < switch_at ? 3600 : 7200; }};
  // Newest at 12:00 +02:00 (local); minus 7 days is 2024-03-26 12:00 local = 11:00Z.
  std::vector<SnapshotEntry> g = {snap(1, "2024-04-02T12:00:00+02:00"),
                                  snap(2, "2024-03-26T11:30:00+01:00")};  // 10:30Z
  ForgetPolicy p;
  p.within = *parse_keep_duration("7d");
  CHECK(nums(apply_policy(g, p, local).keep) == std::vector<int>{1});
  // In another zone the stored offset is fixed: 12:00+02:00 = 10:00Z, so 10:30Z is within.
  CHECK(nums(apply_policy(g, p, later()).keep) == std::vector<int>{1, 2});
  GoTime t = subtract_duration(g[0].snapshot.time, p.within, true, local.local_offset);
  CHECK(format_go_time(t) == "2024-03-26T12:00:00+01:00");
}

TEST_CASE("an empty policy keeps everything", "[forget]") {
  std::vector<SnapshotEntry> g = {snap(1, "2024-01-01T10:00:00Z"), snap(2, "2024-01-02T10:00:00Z")};
  ForgetPolicy p;
  CHECK(p.empty());
  auto r = apply_policy(g, p, later());
  CHECK(nums(r.keep) == std::vector<int>{2, 1});
  CHECK(r.reasons[1].matches == std::vector<std::string>{"policy is empty"});
  CHECK(r.remove.empty());
  p.last = 2;
  CHECK(apply_policy({}, p, later()).keep.empty());
}

TEST_CASE("policy descriptions and validation", "[forget]") {
  ForgetPolicy p;
  p.last = 1;
  p.daily = 7;
  p.yearly = 2;
  p.within_hourly = *parse_keep_duration("2d");
  p.within = *parse_keep_duration("1y");
  CHECK(p.describe() ==
        "keep 1 latest, 7 daily, 2 yearly snapshots, hourly snapshots within 2d and all "
        "snapshots within 1y of the newest");
  CHECK(validate_policy(p));
  p.weekly = -1;
  auto bad = validate_policy(p);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("--keep-weekly") != std::string::npos);
}

TEST_CASE("grouping by host, paths and tags", "[forget]") {
  std::vector<SnapshotEntry> list = {snap(1, "2024-01-01T10:00:00Z", {"y", "x"}, "a", {"/b", "/a"}),
                                     snap(2, "2024-01-02T10:00:00Z", {"x", "y"}, "a", {"/a", "/b"}),
                                     snap(3, "2024-01-03T10:00:00Z", {}, "b", {"/a", "/b"}),
                                     snap(4, "2024-01-04T10:00:00Z", {"x"}, "a", {"/a"})};
  auto by = parse_group_by("host,paths");
  REQUIRE(by);
  auto groups = group_snapshots(list, *by);
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].key.host == "a");
  CHECK(groups[0].key.paths == std::vector<std::string>{"/a"});
  CHECK(groups[1].key.paths == std::vector<std::string>{"/a", "/b"});
  CHECK(nums(groups[1].snapshots) == std::vector<int>{1, 2});
  CHECK(groups[1].snapshots[0].snapshot.paths == std::vector<std::string>{"/a", "/b"});
  CHECK(groups[1].snapshots[0].snapshot.tags == std::vector<std::string>{"y", "x"});
  CHECK(groups[1].key.tags.empty());
  groups = group_snapshots(list, *parse_group_by("tags"));
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].key.host.empty());
  CHECK(groups[0].key.tags == std::vector<std::string>{"x"});
  CHECK(groups[1].key.tags == std::vector<std::string>{"x", "y"});
  CHECK(nums(groups[1].snapshots) == std::vector<int>{1, 2});
  CHECK(groups[1].snapshots[0].snapshot.tags == std::vector<std::string>{"x", "y"});  // sorted
  CHECK(groups[2].key.tags.empty());  // untagged: restic's null key
  CHECK(nums(groups[2].snapshots) == std::vector<int>{3});
  CHECK(group_snapshots(list, *parse_group_by("")).size() == 1);
  CHECK(parse_group_by("hosts,path,tag"));
  auto bad = parse_group_by("host,color");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "unknown grouping option: 'color'");
}

TEST_CASE("tag changes follow restic's order", "[forget][tag]") {
  Snapshot s;
  s.tags = {"a", "b"};
  CHECK(change_tags(s, TagChange{{}, {"x", "y", "a"}, {"a"}}));
  CHECK(s.tags == std::vector<std::string>{"y", "b", "x"});  // "a" replaced by the last tag
  CHECK_FALSE(change_tags(s, TagChange{{}, {"b"}, {"zz"}}));
  CHECK(change_tags(s, TagChange{{"y", "b", "x"}, {}, {}}));  // --set is always a change
  CHECK(change_tags(s, TagChange{{"k"}, {}, {}}));
  CHECK(s.tags == std::vector<std::string>{"k"});
  CHECK(has_tags(s, {"k"}));
  CHECK_FALSE(has_tags(s, {""}));
  CHECK(has_tags(Snapshot{}, {""}));
}

TEST_CASE("lock staleness is restic's rule", "[forget][lock]") {
  LockInfo l;
  l.time = at("2024-01-01T12:00:00Z");
  l.hostname = "here";
  l.pid = 1234;
  auto alive = [](std::int64_t) { return true; };
  auto dead = [](std::int64_t) { return false; };
  CHECK_FALSE(lock_is_stale(l, at("2024-01-01T12:30:00Z"), "elsewhere", alive));
  CHECK(lock_is_stale(l, at("2024-01-01T12:30:00.000000001Z"), "elsewhere", alive));
  CHECK_FALSE(lock_is_stale(l, at("2024-01-01T12:10:00Z"), "elsewhere", dead));
  CHECK(lock_is_stale(l, at("2024-01-01T12:10:00Z"), "here", dead));
  CHECK_FALSE(lock_is_stale(l, at("2024-01-01T12:10:00Z"), "here", alive));
  CHECK_FALSE(lock_is_stale(l, at("2023-01-01T12:10:00Z"), "here", alive));  // from the future
  CHECK(local_process_exists(::getpid()));
  CHECK_FALSE(local_process_exists(0));
  CHECK_FALSE(local_process_exists(-1));
}

namespace {

// Writes a lock file with `info` (as another process would) and returns its id.
Id write_lock(const Repository& repo, const LockInfo& info) {
  auto plain = encode_unpacked(repo.config().version, as_bytes(serialize_lock(info)));
  REQUIRE(plain);
  auto sealed = seal(repo.key(), *plain);
  REQUIRE(sealed);
  Id id = Id::hash(*sealed);
  REQUIRE(repo.write_backend()->save(Handle{FileKind::kLock, id.hex()}, *sealed));
  return id;
}

std::string this_host() {
  std::array<char, 256> buf{};
  REQUIRE(::gethostname(buf.data(), buf.size() - 1) == 0);
  return buf.data();
}

}  // namespace

TEST_CASE("remove_locks removes stale locks, or all of them", "[forget][lock]") {
  coffer::test::TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  std::filesystem::create_directories(path + "/locks");
  auto repo =
      Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword, {});
  REQUIRE(repo);
  const Repository& r = **repo;
  auto now = system_policy_clock().now;
  GoTime old = now;
  old.unix_seconds -= 31 * 60;
  Id stale_old = write_lock(r, LockInfo{old, true, "elsewhere", "u", 1, 0, 0});
  Id stale_dead = write_lock(r, LockInfo{now, false, this_host(), "u", 0, 0, 0});
  Id live_here = write_lock(r, LockInfo{now, false, this_host(), "u", ::getpid(), 0, 0});
  Id live_remote = write_lock(r, LockInfo{now, true, "elsewhere", "u", 1, 0, 0});
  auto removed = remove_locks(r, false);
  REQUIRE(removed);
  CHECK(*removed == 2);
  auto left = r.list_ids(FileKind::kLock);
  REQUIRE(left);
  CHECK(std::set<Id>(left->begin(), left->end()) == std::set<Id>{live_here, live_remote});
  CHECK(*remove_locks(r, true) == 2);
  CHECK(r.list_ids(FileKind::kLock)->empty());
  (void)stale_old;
  (void)stale_dead;
}

TEST_CASE("rewrite_snapshot stores a new file with original and deletes the old", "[forget][tag]") {
  coffer::test::TempDir tmp;
  std::string path = coffer::test::copy_golden_repo(tmp, "v2");
  auto repo =
      Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword, {});
  REQUIRE(repo);
  const Repository& r = **repo;
  auto before = r.list_snapshots();
  REQUIRE(before);
  REQUIRE(before->size() >= 2);
  SnapshotEntry first = before->front();
  Snapshot changed = first.snapshot;
  REQUIRE(change_tags(changed, TagChange{{}, {"new-tag"}, {}}));
  auto id = rewrite_snapshot(r, first.id, changed);
  REQUIRE(id);
  auto after = r.list_snapshots();
  REQUIRE(after);
  CHECK(after->size() == before->size());
  auto it = std::find_if(after->begin(), after->end(), [&](const auto& e) { return e.id == *id; });
  REQUIRE(it != after->end());
  CHECK(it->snapshot.tags.back() == "new-tag");
  CHECK(it->snapshot.original == (first.snapshot.original ? first.snapshot.original : first.id));
  CHECK_FALSE(r.backend().stat(Handle{FileKind::kSnapshot, first.id.hex()}));
  // Removing by id.
  REQUIRE(remove_snapshot(r, *id));
  CHECK(r.list_snapshots()->size() == before->size() - 1);
  CHECK_FALSE(remove_snapshot(r, *id));
}
