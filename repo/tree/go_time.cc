// Go time.Time JSON text (RFC 3339 / RFC3339Nano) <-> GoTime.

#include "repo/tree/node.h"

namespace coffer::repo {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` decimal digits at text[pos]; advances pos.
bool read_digits(std::string_view text, std::size_t& pos, std::size_t n, unsigned& out) {
  if (pos + n > text.size())
    return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c)
    return false;
  ++pos;
  return true;
}

// Fraction after '.': any number of digits (Go keeps the first nine).
bool read_fraction(std::string_view text, std::size_t& pos, std::uint32_t& nanos) {
  nanos = 0;
  if (pos >= text.size() || text[pos] != '.')
    return true;
  std::size_t digits = 0;
  for (++pos; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits) {
    if (digits < 9)
      nanos = nanos * 10 + static_cast<std::uint32_t>(text[pos] - '0');
  }
  for (std::size_t i = digits; i < 9; ++i) nanos *= 10;
  return digits > 0;
}

// 'Z' or ±HH:MM, which must end the text.
bool read_offset(std::string_view text, std::size_t& pos, std::int32_t& offset) {
  offset = 0;
  if (expect(text, pos, 'Z'))
    return pos == text.size();
  if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-'))
    return false;
  const bool negative = text[pos++] == '-';
  unsigned hh = 0;
  unsigned mm = 0;
  if (!read_digits(text, pos, 2, hh) || !expect(text, pos, ':') || !read_digits(text, pos, 2, mm) ||
      hh > 23 || mm > 59 || pos != text.size()) {
    return false;
  }
  offset = static_cast<std::int32_t>((hh * 60 + mm) * 60) * (negative ? -1 : 1);
  return true;
}

}  // namespace

Result<GoTime> parse_go_time(std::string_view text) {
  std::size_t pos = 0;
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  GoTime t;
  bool ok =
      read_digits(text, pos, 4, y) && expect(text, pos, '-') && read_digits(text, pos, 2, mo) &&
      expect(text, pos, '-') && read_digits(text, pos, 2, d) && expect(text, pos, 'T') &&
      read_digits(text, pos, 2, h) && expect(text, pos, ':') && read_digits(text, pos, 2, mi) &&
      expect(text, pos, ':') && read_digits(text, pos, 2, s) && read_fraction(text, pos, t.nanos) &&
      read_offset(text, pos, t.offset_seconds);
  ok = ok && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h < 24 && mi < 60 &&
       s < 60;
  if (!ok) {
    return fail(Errc::kCorrupt,
                "invalid RFC 3339 time \"" + std::string(text.substr(0, 64)) + "\"");
  }
  t.unix_seconds =
      days_from_civil(y, mo, d) * kSecondsPerDay + h * 3600 + mi * 60 + s - t.offset_seconds;
  return t;
}

namespace {

// Appends v in decimal, zero-padded to at least `width` digits.
void append_padded(std::string& out, std::uint64_t v, int width) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = n; i < width; ++i) out += '0';
  while (n > 0) out += digits[--n];
}

}  // namespace

std::string format_go_time(const GoTime& t) {
  const std::int64_t local = t.unix_seconds + t.offset_seconds;
  std::int64_t days = local / kSecondsPerDay;
  std::int64_t secs = local % kSecondsPerDay;
  if (secs < 0) {
    secs += kSecondsPerDay;
    --days;
  }
  const Civil c = civil_from_days(days);
  std::string out;
  out.reserve(40);
  if (c.year < 0)
    out += '-';
  const std::int64_t year = c.year;
  append_padded(out, static_cast<std::uint64_t>(year < 0 ? -year : year), 4);
  out += '-';
  append_padded(out, c.month, 2);
  out += '-';
  append_padded(out, c.day, 2);
  out += 'T';
  append_padded(out, static_cast<std::uint64_t>(secs / 3600), 2);
  out += ':';
  append_padded(out, static_cast<std::uint64_t>(secs / 60 % 60), 2);
  out += ':';
  append_padded(out, static_cast<std::uint64_t>(secs % 60), 2);
  if (const std::uint32_t nanos = t.nanos % 1000000000u; nanos != 0) {
    out += '.';
    append_padded(out, nanos, 9);
    while (out.back() == '0') out.pop_back();
  }
  if (t.offset_seconds == 0)
    return out + "Z";
  // Go prints whole minutes of the offset (truncated toward zero); the sign follows them.
  const std::int32_t zone = t.offset_seconds / 60;
  const std::int32_t abs_zone = zone < 0 ? -zone : zone;
  out += zone < 0 ? '-' : '+';
  append_padded(out, static_cast<std::uint64_t>(abs_zone / 60), 2);
  out += ':';
  append_padded(out, static_cast<std::uint64_t>(abs_zone % 60), 2);
  return out;
}

}  // namespace coffer::repo
