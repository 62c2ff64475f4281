// Follows Go 1.19's time/format.go (Parse, skip, getnum, parseTimeZone) for the elements used.
#include "tools/go_time_parse.h"

#include <array>
#include <cctype>
#include <ctime>
#include <optional>

namespace coffer::tools {

namespace {

constexpr std::array<std::string_view, 11> kLayouts = {
    "2006-01-02",
    "2006-01-02 15:04",
    "2006-01-02 15:04:05",
    "2006-01-02 15:04:05 -0700",
    "2006-01-02 15:04:05 MST",
    "02.01.2006",
    "02.01.2006 15:04",
    "02.01.2006 15:04:05",
    "02.01.2006 15:04:05 -0700",
    "02.01.2006 15:04:05 MST",
    "Mon Jan 2 15:04:05 -0700 MST 2006",
};
constexpr std::array<std::string_view, 11> kElements = {"2006", "-0700", "MST", "Mon", "Jan", "01",
                                                        "02",   "15",    "04",  "05",  "2"};
constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                      "jul", "aug", "sep", "oct", "nov", "dec"};

struct Fields {
  int year = 0, month = 1, day = 1, hour = 0, min = 0, sec = 0;
  std::uint32_t nanos = 0;
  std::optional<int> offset;  // numeric zone, seconds east
  std::string zone_name;      // "MST" element
  bool utc = false;
};

bool digit(std::string_view s, std::size_t i) {
  return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0;
}

// Go's getnum: one or two digits (exactly two when `fixed`).
std::optional<int> getnum(std::string_view& s, bool fixed) {
  if (!digit(s, 0))
    return std::nullopt;
  if (!digit(s, 1)) {
    if (fixed)
      return std::nullopt;
    int v = s[0] - '0';
    s.remove_prefix(1);
    return v;
  }
  int v = (s[0] - '0') * 10 + (s[1] - '0');
  s.remove_prefix(2);
  return v;
}

// Go's skip: a layout space matches any run of spaces.
bool skip_literal(std::string_view& value, std::string_view prefix) {
  while (!prefix.empty()) {
    if (prefix[0] == ' ') {
      if (!value.empty() && value[0] != ' ')
        return false;
      while (!prefix.empty() && prefix[0] == ' ') prefix.remove_prefix(1);
      while (!value.empty() && value[0] == ' ') value.remove_prefix(1);
      continue;
    }
    if (value.empty() || value[0] != prefix[0])
      return false;
    value.remove_prefix(1);
    prefix.remove_prefix(1);
  }
  return true;
}

template <std::size_t N>
std::optional<int> lookup_name(std::string_view& s, const std::array<std::string_view, N>& names) {
  for (std::size_t i = 0; i < N; ++i) {
    if (s.size() >= 3) {
      bool eq = true;
      for (std::size_t k = 0; k < 3; ++k)
        eq = eq && std::tolower(static_cast<unsigned char>(s[k])) == names[i][k];
      if (eq) {
        s.remove_prefix(3);
        return static_cast<int>(i);
      }
    }
  }
  return std::nullopt;
}

// Go's parseTimeZone for plain abbreviations: 3 upper-case letters, or 4-5 ending in 'T'.
std::optional<std::size_t> zone_length(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && std::isupper(static_cast<unsigned char>(s[n])) != 0) ++n;
  if (n == 3)
    return n;
  if ((n == 4 || n == 5) && s[n - 1] == 'T')
    return n;
  return std::nullopt;
}

bool parse_zone_offset(std::string_view& v, Fields& f) {
  if (v.size() < 5 || (v[0] != '+' && v[0] != '-') || !digit(v, 1) || !digit(v, 2) ||
      !digit(v, 3) || !digit(v, 4))
    return false;
  int hh = (v[1] - '0') * 10 + (v[2] - '0');
  int mm = (v[3] - '0') * 10 + (v[4] - '0');
  int off = (hh * 60 + mm) * 60;
  f.offset = v[0] == '-' ? -off : off;
  v.remove_prefix(5);
  return true;
}

bool parse_fraction(std::string_view& v, Fields& f) {
  if (v.size() < 2 || (v[0] != '.' && v[0] != ',') || !digit(v, 1))
    return true;
  std::size_t n = 1;
  std::uint64_t ns = 0;
  int digits = 0;
  for (; digit(v, n); ++n) {
    if (digits < 9) {
      ns = ns * 10 + static_cast<std::uint64_t>(v[n] - '0');
      ++digits;
    }
  }
  if (n - 1 > 9)
    return false;  // Go: fractional second out of range
  for (; digits < 9; ++digits) ns *= 10;
  f.nanos = static_cast<std::uint32_t>(ns);
  v.remove_prefix(n);
  return true;
}

bool parse_element(std::string_view element, std::string_view& v, Fields& f) {
  std::optional<int> n;
  if (element == "2006") {
    if (v.size() < 4 || !digit(v, 0) || !digit(v, 1) || !digit(v, 2) || !digit(v, 3))
      return false;
    f.year = std::stoi(std::string(v.substr(0, 4)));
    v.remove_prefix(4);
    return true;
  }
  if (element == "-0700")
    return parse_zone_offset(v, f);
  if (element == "MST") {
    if (v.substr(0, 3) == "UTC") {
      f.utc = true;
      v.remove_prefix(3);
      return true;
    }
    auto len = zone_length(v);
    if (!len)
      return false;
    f.zone_name = std::string(v.substr(0, *len));
    v.remove_prefix(*len);
    return true;
  }
  if (element == "Mon")
    return lookup_name(v, kDays).has_value();
  if (element == "Jan") {
    n = lookup_name(v, kMonths);
    if (n)
      f.month = *n + 1;
    return n.has_value();
  }
  n = getnum(v, element != "15" && element != "2");
  if (!n)
    return false;
  if (element == "01") {
    f.month = *n;
  } else if (element == "02" || element == "2") {
    f.day = *n;
  } else if (element == "15") {
    f.hour = *n;
  } else if (element == "04") {
    f.min = *n;
  } else {
    f.sec = *n;
    return parse_fraction(v, f);
  }
  return true;
}

int days_in(int month, int year) {
  static constexpr int kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDaysIn[month - 1];
}

bool in_range(const Fields& f) {
  return f.month >= 1 && f.month <= 12 && f.day >= 1 && f.day <= days_in(f.month, f.year) &&
         f.hour < 24 && f.min < 60 && f.sec < 60;
}

// The parsed wall time as a struct tm (no zone, tm_isdst unknown).
std::tm wall_tm(const Fields& f) {
  std::tm tm{};
  tm.tm_year = f.year - 1900;
  tm.tm_mon = f.month - 1;
  tm.tm_mday = f.day;
  tm.tm_hour = f.hour;
  tm.tm_min = f.min;
  tm.tm_sec = f.sec;
  tm.tm_isdst = -1;
  return tm;
}

std::int64_t wall_as_utc(const Fields& f) {
  std::tm tm = wall_tm(f);
  return static_cast<std::int64_t>(timegm(&tm));
}

// The instant of the parsed wall time, as ParseInLocation(..., time.Local) resolves it.
repo::GoTime resolve(const Fields& f) {
  repo::GoTime t;
  t.nanos = f.nanos;
  std::int64_t wall = wall_as_utc(f);
  if (f.utc) {
    t.unix_seconds = wall;
  } else if (f.offset) {
    t.unix_seconds = wall - *f.offset;
    t.offset_seconds = *f.offset;
  } else {
    std::tm tm = wall_tm(f);
    std::time_t local = std::mktime(&tm);
    // A zone abbreviation the local zone does not use at that time means UTC in Go.
    if (!f.zone_name.empty() && (tm.tm_zone == nullptr || f.zone_name != tm.tm_zone)) {
      t.unix_seconds = wall;
    } else {
      t.unix_seconds = static_cast<std::int64_t>(local);
      t.offset_seconds = static_cast<std::int32_t>(tm.tm_gmtoff);
    }
  }
  return t;
}

}  // namespace

repo::Result<repo::GoTime> go_parse_in_local(std::string_view layout, std::string_view text) {
  Fields f;
  std::string_view v = text;
  while (!layout.empty()) {
    std::size_t best = layout.size();
    std::string_view element;
    for (auto e : kElements) {
      auto pos = layout.find(e);
      if (pos < best) {
        best = pos;
        element = e;
      }
    }
    if (!skip_literal(v, layout.substr(0, best)))
      return repo::fail(repo::Errc::kInvalidArgument, "cannot parse");
    layout.remove_prefix(best);
    if (element.empty())
      break;
    layout.remove_prefix(element.size());
    if (!parse_element(element, v, f))
      return repo::fail(repo::Errc::kInvalidArgument, "cannot parse");
  }
  if (!v.empty() || !in_range(f))
    return repo::fail(repo::Errc::kInvalidArgument, "cannot parse");
  return resolve(f);
}

repo::Result<repo::GoTime> parse_find_time(const std::string& text) {
  for (auto layout : kLayouts) {
    auto t = go_parse_in_local(layout, text);
    if (t)
      return t;
  }
  return repo::fail(repo::Errc::kInvalidArgument,
                    "unable to parse time: \"" + repo::go_quote(text) + "\"");
}

}  // namespace coffer::tools
