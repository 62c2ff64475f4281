#include "tools/format.h"

#include <cmath>
#include <ctime>

#include <fmt/format.h>

namespace coffer::tools {

std::string go_mode_string(std::uint32_t m) {
  // One letter per set type bit in the order "dalTLDpSugct?", then rwx bits.
  static constexpr char kLetters[] = "dalTLDpSugct?";
  std::string s;
  for (int i = 0; i < 13; ++i) {
    if ((m & (1U << (31 - i))) != 0)
      s += kLetters[i];
  }
  if (s.empty())
    s = "-";
  static constexpr char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (m & (1U << (8 - i))) != 0 ? kRwx[i] : '-';
  return s;
}

std::string permissions_string(const repo::Node& node) {
  std::uint32_t m = node.mode;
  if ((m & 0xffff0000U) == 0)
    m = repo::go_mode_from_unix(node.unix_mode());
  return go_mode_string(m);
}

std::string local_time(const repo::GoTime& t) {
  std::time_t secs = static_cast<std::time_t>(t.unix_seconds);
  std::tm tm{};
  localtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  return buf.data();
}

std::string go_time_string(const repo::GoTime& t) {
  std::time_t secs = static_cast<std::time_t>(t.unix_seconds + t.offset_seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  std::string out = buf.data();
  if (t.nanos != 0) {
    std::string frac = fmt::format("{:09}", t.nanos);
    while (frac.back() == '0') frac.pop_back();
    out += "." + frac;
  }
  int off = t.offset_seconds;
  char sign = off < 0 ? '-' : '+';
  off = std::abs(off);
  std::string zone = fmt::format("{}{:02}{:02}", sign, off / 3600, off % 3600 / 60);
  // Go prints the local zone's abbreviation when the stored offset is the local one then.
  std::time_t instant = static_cast<std::time_t>(t.unix_seconds);
  std::tm local{};
  localtime_r(&instant, &local);
  std::string name = zone;
  if (t.offset_seconds == 0) {
    name = "UTC";
  } else if (local.tm_gmtoff == t.offset_seconds && local.tm_zone != nullptr) {
    name = local.tm_zone;
  }
  return out + " " + zone + " " + name;
}

std::string printable(std::string_view raw) {
  nlohmann::json j = std::string(raw);
  std::string dumped = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json back = nlohmann::json::parse(dumped, nullptr, false);
  return back.is_string() ? back.get<std::string>() : std::string(raw);
}

nlohmann::ordered_json snapshot_json(const repo::SnapshotEntry& e) {
  auto j = nlohmann::ordered_json::parse(repo::serialize_snapshot(e.snapshot), nullptr, false);
  if (j.is_discarded())
    j = nlohmann::ordered_json::object();
  j["id"] = e.id.hex();
  j["short_id"] = e.id.short_hex();
  return j;
}

nlohmann::ordered_json node_json(const std::string& path, const repo::Node& n) {
  nlohmann::ordered_json j;
  j["name"] = printable(n.name);
  j["type"] = repo::node_type_name(n.type);
  j["path"] = printable(path);
  j["uid"] = n.uid;
  j["gid"] = n.gid;
  if (n.type == repo::NodeType::kFile || n.size != 0)
    j["size"] = n.size;
  if (n.mode != 0)
    j["mode"] = n.mode;
  j["permissions"] = permissions_string(n);
  j["mtime"] = repo::format_go_time(n.mtime);
  j["atime"] = repo::format_go_time(n.atime);
  j["ctime"] = repo::format_go_time(n.ctime);
  j["struct_type"] = "node";
  return j;
}

std::string format_bytes(std::uint64_t n) {
  // restic's formatBytes: a unit once the count exceeds it (1024 bytes are "1024 B").
  static constexpr const char* kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; ++i) {
    int shift = 40 - 10 * i;
    if (n > (std::uint64_t{1} << shift))
      return fmt::format("{:.3f} {}", std::ldexp(static_cast<double>(n), -shift), kUnits[i]);
  }
  return fmt::format("{} B", n);
}

repo::Result<repo::GoTime> parse_local_time(const std::string& text) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
  if (end == nullptr || *end != '\0')
    return repo::fail(repo::Errc::kInvalidArgument,
                      "invalid time \"" + text + "\" (want YYYY-MM-DD HH:MM:SS)");
  tm.tm_isdst = -1;
  std::time_t secs = std::mktime(&tm);
  repo::GoTime t;
  t.unix_seconds = secs;
  t.offset_seconds = static_cast<std::int32_t>(tm.tm_gmtoff);
  return t;
}

}  // namespace coffer::tools
