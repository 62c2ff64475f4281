// The calendar side of forget: restic.Duration parsing and Go's civil-time arithmetic
// (Time.Date, ISOWeek, AddDate) on GoTime values in their own offset or the local zone.
#include <cctype>
#include <charconv>
#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include "repo/ops/forget.h"

namespace coffer::repo {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = floor_div(y, 400);
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Date {
  std::int64_t year;
  int month, day;
};

Date civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = floor_div(z, 146097);
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return Date{yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

std::int64_t local_seconds(const GoTime& t) { return t.unix_seconds + t.offset_seconds; }

// The Unix time of wall clock `wall` (seconds as if UTC) in the local zone, as Go's
// time.Date resolves it: the offset in effect at `wall`, re-looked up when the result falls
// into another zone period.
std::int64_t resolve_local(std::int64_t wall,
                           const std::function<std::int32_t(std::int64_t)>& local_offset) {
  std::int32_t offset = local_offset(wall);
  if (offset == 0)
    return wall;
  return wall - local_offset(wall - offset);
}

// One "<number><unit>" step of restic's ParseDuration; advances `s`.
Result<void> parse_duration_part(std::string_view& s, KeepDuration& d) {
  bool negative = !s.empty() && s.front() == '-';
  std::size_t digits = negative ? 1 : 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == (negative ? 1U : 0U))
    return fail(Errc::kInvalidArgument, "no number found");
  int num = 0;
  auto [end, ec] = std::from_chars(s.data() + (negative ? 1 : 0), s.data() + digits, num);
  if (ec != std::errc())
    return fail(Errc::kInvalidArgument, "number too large");
  if (digits == s.size())
    return fail(Errc::kInvalidArgument, fmt::format("no unit found after number {}", num));
  if (negative)
    return fail(Errc::kInvalidArgument, "negative durations are not supported");
  switch (s[digits]) {
    case 'y':
      d.years = num;
      break;
    case 'm':
      d.months = num;
      break;
    case 'd':
      d.days = num;
      break;
    case 'h':
      d.hours = num;
      break;
    default:
      return fail(Errc::kInvalidArgument,
                  fmt::format("invalid unit '{}' found after number {}", s[digits], num));
  }
  s.remove_prefix(digits + 1);
  return {};
}

}  // namespace

std::string KeepDuration::str() const {
  std::string s;
  if (years != 0)
    s += fmt::format("{}y", years);
  if (months != 0)
    s += fmt::format("{}m", months);
  if (days != 0)
    s += fmt::format("{}d", days);
  if (hours != 0)
    s += fmt::format("{}h", hours);
  return s;
}

Result<KeepDuration> parse_keep_duration(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0)
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0)
    text.remove_suffix(1);
  KeepDuration d;
  while (!text.empty()) COFFER_TRY(parse_duration_part(text, d));
  return d;
}

CivilTime civil_time(const GoTime& t) {
  std::int64_t local = local_seconds(t);
  std::int64_t days = floor_div(local, kSecondsPerDay);
  Date date = civil_from_days(days);
  int hour = static_cast<int>((local - days * kSecondsPerDay) / 3600);
  return CivilTime{date.year, date.month, date.day, hour};
}

std::int64_t iso_week_key(const GoTime& t) {
  std::int64_t days = floor_div(local_seconds(t), kSecondsPerDay);
  std::int64_t weekday = (days + 3) - floor_div(days + 3, 7) * 7;  // 0 = Monday (1970-01-01: Thu)
  std::int64_t thursday = days - weekday + 3;  // the ISO year is the year of this Thursday
  Date th = civil_from_days(thursday);
  std::int64_t week = (thursday - days_from_civil(th.year, 1, 1)) / 7 + 1;
  return th.year * 100 + week;
}

GoTime subtract_duration(const GoTime& latest, const KeepDuration& d, bool use_local,
                         const std::function<std::int32_t(std::int64_t)>& local_offset) {
  std::int64_t local = local_seconds(latest);
  std::int64_t days = floor_div(local, kSecondsPerDay);
  std::int64_t second_of_day = local - days * kSecondsPerDay;
  Date date = civil_from_days(days);
  // Go's time.Date normalises the month first, then counts the day from the 1st of it.
  std::int64_t month0 = date.month - 1 - std::int64_t{d.months};
  std::int64_t year = date.year - d.years + floor_div(month0, 12);
  int month = static_cast<int>(month0 - floor_div(month0, 12) * 12) + 1;
  std::int64_t new_days = days_from_civil(year, month, 1) + (date.day - 1) - d.days;
  std::int64_t wall = new_days * kSecondsPerDay + second_of_day;
  GoTime out = latest;
  if (use_local) {
    out.unix_seconds = resolve_local(wall, local_offset);
    out.offset_seconds = static_cast<std::int32_t>(wall - out.unix_seconds);
  } else {
    out.unix_seconds = wall - latest.offset_seconds;
  }
  out.unix_seconds -= std::int64_t{d.hours} * 3600;
  return out;
}

PolicyClock system_policy_clock() {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  PolicyClock c;
  c.now = GoTime{floor_div(ns, 1000000000),
                 static_cast<std::uint32_t>(ns - floor_div(ns, 1000000000) * 1000000000), 0};
  c.local_offset = [](std::int64_t unix) {
    std::time_t secs = static_cast<std::time_t>(unix);
    std::tm tm{};
    if (localtime_r(&secs, &tm) == nullptr)
      return std::int32_t{0};
    return static_cast<std::int32_t>(tm.tm_gmtoff);
  };
  return c;
}

}  // namespace coffer::repo
