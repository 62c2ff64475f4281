#include "fs/snapshot_layout.h"

#include <catch2/catch.hpp>

using coffer::fs::clean_layout_path;
using coffer::fs::expand_template;
using coffer::fs::MetaDir;
using coffer::fs::MetaEntry;
using coffer::fs::snapshot_time_name;
using coffer::fs::SnapshotLayout;
using coffer::fs::SnapshotPtr;
using namespace coffer::repo;

namespace {

std::string hex_byte(unsigned char b) {
  const char* digits = "0123456789abcdef";
  return {digits[b >> 4], digits[b & 15]};
}

// An id whose hex starts with `prefix` (padded with the byte `fill`).
Id make_id(const std::string& prefix, unsigned char fill) {
  std::string hex = prefix;
  while (hex.size() < 64) hex += hex_byte(fill);
  return *Id::parse(hex);
}

SnapshotPtr snap(const Id& id, std::int64_t secs, std::uint32_t nanos, std::int32_t offset,
                 const std::string& host, std::vector<std::string> tags = {}) {
  Snapshot s;
  s.time = GoTime{secs, nanos, offset};
  s.hostname = host;
  s.tags = std::move(tags);
  s.username = "alice";
  return std::make_shared<const SnapshotEntry>(SnapshotEntry{id, s});
}

std::vector<std::string> names(const MetaDir* dir) {
  REQUIRE(dir != nullptr);
  std::vector<std::string> out;
  for (const auto& [name, entry] : dir->entries) out.push_back(name);
  return out;
}

const MetaEntry& entry(const SnapshotLayout& l, const std::string& dir, const std::string& name) {
  const MetaDir* d = l.dir(dir);
  REQUIRE(d != nullptr);
  auto it = d->entries.find(name);
  REQUIRE(it != d->entries.end());
  return it->second;
}

constexpr std::int64_t kNoon = 1704110400;  // 2024-01-01T12:00:00Z

}  // namespace

TEST_CASE("snapshot times are named in their own offset without fraction", "[layout]") {
  CHECK(snapshot_time_name(GoTime{kNoon, 500000000, 0}) == "2024-01-01T12:00:00Z");
  CHECK(snapshot_time_name(GoTime{kNoon, 0, 7200}) == "2024-01-01T14:00:00+02:00");
  CHECK(snapshot_time_name(GoTime{kNoon, 1, -16200}) == "2024-01-01T07:30:00-04:30");
}

TEST_CASE("layout paths are cleaned like Go's path.Clean", "[layout]") {
  CHECK(clean_layout_path("") == "");
  CHECK(clean_layout_path("snapshots//x") == "/snapshots/x");
  CHECK(clean_layout_path("tags//2024") == "/tags/2024");
  CHECK(clean_layout_path("tags/./a/../b/") == "/tags/b");
  CHECK(clean_layout_path("../x") == "/x");
}

TEST_CASE("templates expand per variable and fan out over several tags", "[layout]") {
  auto s = snap(make_id("abcdef01", 0x11), kNoon, 0, 0, "host1", {"a/b", ".."});
  std::string suffix;
  CHECK(expand_template("ids/%i", *s, suffix) == std::vector<std::string>{"ids/abcdef01"});
  CHECK(suffix.empty());
  CHECK(expand_template("hosts/%h/%T", *s, suffix) == std::vector<std::string>{"hosts/host1/"});
  CHECK(suffix == "2024-01-01T12:00:00Z");
  CHECK(expand_template("tags/%t/%T", *s, suffix) ==
        std::vector<std::string>{"tags/a_b/", "tags/__/"});
  CHECK(expand_template("u/%u/%I", *s, suffix) ==
        std::vector<std::string>{"u/alice/" + s->id.hex()});
  auto untagged = snap(make_id("00", 0x22), kNoon, 0, 0, "h");
  CHECK(expand_template("tags/%t/%T", *untagged, suffix).empty());
}

TEST_CASE("equal times get -1, -2 suffixes and latest points at the last", "[layout]") {
  // Three snapshots in the same second, sorted by (time, id) as the repository lists them.
  std::vector<SnapshotPtr> list = {snap(make_id("01", 1), kNoon, 100, 0, "h"),
                                   snap(make_id("02", 2), kNoon, 200, 0, "h"),
                                   snap(make_id("03", 3), kNoon, 300, 0, "h")};
  auto l = SnapshotLayout::build(list);
  CHECK(names(l.dir("")) == std::vector<std::string>{"hosts", "ids", "snapshots", "tags"});
  CHECK(names(l.dir("/snapshots")) == std::vector<std::string>{"2024-01-01T12:00:00Z",
                                                               "2024-01-01T12:00:00Z-1",
                                                               "2024-01-01T12:00:00Z-2", "latest"});
  CHECK(entry(l, "/snapshots", "2024-01-01T12:00:00Z").snapshot == list[0]);
  CHECK(entry(l, "/snapshots", "2024-01-01T12:00:00Z-2").snapshot == list[2]);
  const MetaEntry& latest = entry(l, "/snapshots", "latest");
  CHECK(latest.kind == MetaEntry::Kind::kSymlink);
  CHECK(latest.target == "2024-01-01T12:00:00Z-2");
  CHECK(entry(l, "/hosts/h", "latest").target == "2024-01-01T12:00:00Z-2");
  CHECK(l.dir("/tags")->entries.empty());
  CHECK(l.dir("/snapshots")->newest == GoTime{kNoon, 300, 0});
  CHECK(l.dir("")->subdirs == 4);
}

TEST_CASE("short id clashes, hosts and tags follow restic's rules", "[layout]") {
  std::vector<SnapshotPtr> list = {
      snap(make_id("deadbeef", 0x01), kNoon, 0, 0, "alpha", {"nightly"}),
      snap(make_id("deadbeef", 0x02), kNoon + 60, 0, 3600, "beta", {"x/y"}),
      snap(make_id("cafe0000", 0x03), kNoon + 120, 0, 0, "alpha", {"a", "b/c"}),
      snap(make_id("cafe0001", 0x04), kNoon + 180, 0, 0, "alpha", {""}),
  };
  auto l = SnapshotLayout::build(list);
  CHECK(names(l.dir("/ids")) ==
        std::vector<std::string>{"cafe0000", "cafe0001", "deadbeef", "deadbeef-1"});
  CHECK(entry(l, "/ids", "deadbeef-1").snapshot == list[1]);
  CHECK(names(l.dir("/hosts")) == std::vector<std::string>{"alpha", "beta"});
  CHECK(names(l.dir("/hosts/beta")) ==
        std::vector<std::string>{"2024-01-01T13:01:00+01:00", "latest"});
  CHECK(entry(l, "/hosts/alpha", "latest").target == "2024-01-01T12:03:00Z");
  // A single tag is used raw ("/" nests, "" collapses into tags/); several are sanitized.
  CHECK(names(l.dir("/tags")) ==
        std::vector<std::string>{"2024-01-01T12:03:00Z", "a", "b_c", "latest", "nightly", "x"});
  CHECK(names(l.dir("/tags/x/y")) ==
        std::vector<std::string>{"2024-01-01T13:01:00+01:00", "latest"});
  CHECK(entry(l, "/tags", "latest").target == "2024-01-01T12:03:00Z");
  CHECK(entry(l, "/tags/b_c", "2024-01-01T12:02:00Z").snapshot == list[2]);
  CHECK(l.dir("/tags/x")->subdirs == 1);
  CHECK(l.dir("/nothing") == nullptr);
}

TEST_CASE("an empty repository still has the four top directories", "[layout]") {
  auto l = SnapshotLayout::build({});
  CHECK(names(l.dir("")) == std::vector<std::string>{"hosts", "ids", "snapshots", "tags"});
  CHECK(l.dir("/snapshots")->entries.empty());
}
