// Sizes as restic's options spell them (see size.h).
#include "repo/core/size.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include <fmt/format.h>

namespace coffer::repo {
namespace {

// Go's strconv.ParseInt(s, 10, 64) for the non-negative values a size can take.
Result<std::uint64_t> parse_decimal(const std::string& s) {
  std::size_t start = (!s.empty() && s[0] == '+') ? 1 : 0;
  bool digits =
      s.size() > start && std::all_of(s.begin() + static_cast<std::ptrdiff_t>(start), s.end(),
                                      [](char c) { return c >= '0' && c <= '9'; });
  if (!digits)
    return fail(Errc::kInvalidArgument, fmt::format("parsing \"{}\": invalid syntax", s));
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str() + start, nullptr, 10);
  if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX))
    return fail(Errc::kInvalidArgument, fmt::format("parsing \"{}\": value out of range", s));
  return static_cast<std::uint64_t>(v);
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
  std::string s(text);
  if (s.empty())
    return fail(Errc::kInvalidArgument, "expected size, got empty string");
  std::uint64_t unit = 1;
  std::string num = s.substr(0, s.size() - 1);
  switch (s.back()) {
    case 'b':
    case 'B':
      break;
    case 'k':
    case 'K':
      unit = 1ULL << 10;
      break;
    case 'm':
    case 'M':
      unit = 1ULL << 20;
      break;
    case 'g':
    case 'G':
      unit = 1ULL << 30;
      break;
    case 't':
    case 'T':
      unit = 1ULL << 40;
      break;
    default:
      num = s;
  }
  COFFER_ASSIGN_OR_RETURN(std::uint64_t v, parse_decimal(num));
  if (v != 0 && unit > std::numeric_limits<std::uint64_t>::max() / v)
    return fail(Errc::kInvalidArgument, fmt::format("size \"{}\" is too large", s));
  return v * unit;
}

}  // namespace coffer::repo
