// JSON lexing for the tree blob parser (see json_scanner.h).
#include "repo/tree/json_scanner.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "repo/core/bytes.h"
#include "repo/tree/go_text.h"

namespace coffer::repo::detail {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
char closer(char open) { return open == '{' ? '}' : ']'; }

}  // namespace

bool Scanner::string(std::string_view& out, std::string& buf) {
  if (!eat('"'))
    return false;
  const char* start = p_;
  bool copied = false;
  while (p_ < end_) {
    const auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      out = copied ? std::string_view(buf) : std::string_view(start, p_ - start);
      ++p_;
      return true;
    }
    if (c == '\\') {
      if (!copied)
        buf.assign(start, p_);
      copied = true;
      ++p_;
      if (!escape(buf))
        return false;
      continue;
    }
    const char* s = p_;
    if (c < 0x20 || !utf8())
      return false;
    if (copied)
      buf.append(s, p_);
  }
  return false;
}

bool Scanner::hex4(char32_t& out) {
  if (end_ - p_ < 4)
    return false;
  out = 0;
  for (int i = 0; i < 4; ++i) {
    const int v = hex_digit_value(*p_++);
    if (v < 0)
      return false;
    out = out * 16 + static_cast<char32_t>(v);
  }
  return true;
}

bool Scanner::escape(std::string& buf) {
  if (p_ == end_)
    return false;
  static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
  const char c = *p_++;
  if (auto i = kFrom.find(c); i != std::string_view::npos) {
    buf.push_back(kTo[i]);
    return true;
  }
  char32_t cp = 0;
  if (c != 'u' || !hex4(cp))
    return false;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    char32_t lo = 0;
    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
      return false;
    p_ += 2;
    if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF)
      return false;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
    return false;
  }
  append_utf8(buf, cp);
  return true;
}

// One UTF-8 sequence, well-formed per RFC 3629 (what nlohmann's lexer accepts).
bool Scanner::utf8() {
  const auto c = static_cast<unsigned char>(*p_);
  if (c < 0x80) {
    ++p_;
    return true;
  }
  unsigned char lo = 0x80, hi = 0xBF;
  int n = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 2;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 3;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    return false;
  }
  if (end_ - p_ <= n)
    return false;
  const auto b1 = static_cast<unsigned char>(p_[1]);
  if (b1 < lo || b1 > hi)
    return false;
  for (int i = 2; i <= n; ++i) {
    const auto b = static_cast<unsigned char>(p_[i]);
    if (b < 0x80 || b > 0xBF)
      return false;
  }
  p_ += n + 1;
  return true;
}

bool Scanner::digits() {
  const char* s = p_;
  while (p_ < end_ && is_digit(*p_)) ++p_;
  return p_ != s;
}

// nlohmann keeps integers that fit 64 bits; anything else becomes a double that must be
// finite.
bool Scanner::number() {
  const char* s = p_;
  const bool neg = p_ < end_ && *p_ == '-';
  p_ += neg ? 1 : 0;
  if (p_ == end_ || !is_digit(*p_))
    return false;
  if (*p_ == '0')
    ++p_;
  else
    digits();
  bool is_float = false;
  if (p_ < end_ && *p_ == '.') {
    ++p_;
    if (!digits())
      return false;
    is_float = true;
  }
  if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
    ++p_;
    if (p_ < end_ && (*p_ == '+' || *p_ == '-'))
      ++p_;
    if (!digits())
      return false;
    is_float = true;
  }
  if (!is_float) {
    std::uint64_t u = 0;
    std::int64_t i = 0;
    if (neg ? std::from_chars(s, p_, i).ec == std::errc()
            : std::from_chars(s, p_, u).ec == std::errc())
      return true;
  }
  const std::string token(s, p_);
  return std::isfinite(std::strtod(token.c_str(), nullptr));
}

bool Scanner::uint(std::uint64_t max, std::uint64_t& out) {
  out = 0;
  if (peek() == 'n')
    return literal("null");
  const char* s = p_;
  if (!digits() || (*s == '0' && p_ - s > 1))
    return false;
  if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))
    return false;
  return std::from_chars(s, p_, out).ec == std::errc() && out <= max;
}

bool Scanner::skip_scalar() {
  std::string buf;
  std::string_view s;
  switch (peek()) {
    case '"':
      return string(s, buf);
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default:
      return number();
  }
}

// After a complete value inside `open`: 1 when the outermost value is done, 0 when another
// value follows, -1 on a syntax error.
int Scanner::after_value(std::vector<char>& open) {
  std::string buf;
  std::string_view key;
  while (!open.empty()) {
    if (eat(',')) {
      if (open.back() == '{' && (!string(key, buf) || !eat(':')))
        return -1;
      return 0;
    }
    if (!eat(closer(open.back())))
      return -1;
    open.pop_back();
  }
  return 1;
}

bool Scanner::skip_value() {
  broken_ = broken_ || !skip_any();
  return !broken_;
}

bool Scanner::skip_any() {
  std::vector<char> open;
  std::string buf;
  std::string_view key;
  for (;;) {
    const char c = peek();
    if (c == '{' || c == '[') {
      ++p_;
      open.push_back(c);
      if (!eat(closer(c))) {
        if (c == '{' && (!string(key, buf) || !eat(':')))
          return false;
        continue;
      }
      open.pop_back();
    } else if (!skip_scalar()) {
      return false;
    }
    const int r = after_value(open);
    if (r != 0)
      return r == 1;
  }
}

}  // namespace coffer::repo::detail
