// Go strconv.Quote / Unquote and encoding/json string escaping over raw bytes.
#include <algorithm>

#include "repo/tree/go_text.h"
#include "repo/tree/node.h"

namespace coffer::repo {
namespace detail {
namespace {

constexpr char kLowerHex[] = "0123456789abcdef";

unsigned byte_at(std::string_view s, std::size_t i) { return static_cast<unsigned char>(s[i]); }

bool in_range(unsigned b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; }

// Accepted range of the second byte after a given lead byte (Go's utf8 acceptRanges).
void second_byte_range(unsigned lead, unsigned& lo, unsigned& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (lead == 0xE0)
    lo = 0xA0;
  if (lead == 0xED)
    hi = 0x9F;
  if (lead == 0xF0)
    lo = 0x90;
  if (lead == 0xF4)
    hi = 0x8F;
}

void append_hex(std::string& out, char32_t v, int digits) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) {
    out.push_back(kLowerHex[(v >> shift) & 0xF]);
  }
}

}  // namespace

DecodedRune decode_rune(std::string_view s, std::size_t pos) {
  const DecodedRune bad{kRuneError, 1, false};
  unsigned b0 = byte_at(s, pos);
  if (b0 < 0x80)
    return {b0, 1, true};
  std::size_t need = b0 >= 0xC2 && b0 <= 0xDF   ? 2
                     : b0 >= 0xE0 && b0 <= 0xEF ? 3
                     : b0 >= 0xF0 && b0 <= 0xF4 ? 4
                                                : 0;
  if (need == 0 || pos + need > s.size())
    return bad;
  unsigned lo = 0;
  unsigned hi = 0;
  second_byte_range(b0, lo, hi);
  if (!in_range(byte_at(s, pos + 1), lo, hi))
    return bad;
  char32_t r = b0 & (need == 2 ? 0x1Fu : need == 3 ? 0x0Fu : 0x07u);
  for (std::size_t i = 1; i < need; ++i) {
    unsigned b = byte_at(s, pos + i);
    if (!in_range(b, 0x80, 0xBF))
      return bad;
    r = (r << 6) | (b & 0x3F);
  }
  return {r, need, true};
}

void append_utf8(std::string& out, char32_t r) {
  auto put = [&out](char32_t v) { out.push_back(static_cast<char>(v)); };
  if (r < 0x80) {
    put(r);
  } else if (r < 0x800) {
    put(0xC0 | (r >> 6));
    put(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    put(0xE0 | (r >> 12));
    put(0x80 | ((r >> 6) & 0x3F));
    put(0x80 | (r & 0x3F));
  } else {
    put(0xF0 | (r >> 18));
    put(0x80 | ((r >> 12) & 0x3F));
    put(0x80 | ((r >> 6) & 0x3F));
    put(0x80 | (r & 0x3F));
  }
}

bool go_is_print(char32_t r) {
  auto ranges = go_print_ranges();
  auto it = std::upper_bound(ranges.begin(), ranges.end(), r,
                             [](char32_t v, const CodeRange& cr) { return v < cr.lo; });
  return it != ranges.begin() && r <= std::prev(it)->hi;
}

void append_go_json_string(std::string& out, std::string_view raw, bool escape_fffd) {
  out.push_back('"');
  for (std::size_t i = 0; i < raw.size();) {
    unsigned b = byte_at(raw, i);
    if (b < 0x80) {
      if (b == '"' || b == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(b));
      } else if (b == '\n' || b == '\r' || b == '\t') {
        out.push_back('\\');
        out.push_back(b == '\n' ? 'n' : b == '\r' ? 'r' : 't');
      } else if (b < 0x20 || b == '<' || b == '>' || b == '&') {
        out += "\\u00";
        append_hex(out, b, 2);
      } else {
        out.push_back(static_cast<char>(b));
      }
      ++i;
      continue;
    }
    DecodedRune d = decode_rune(raw, i);
    if (!d.valid || (escape_fffd && d.rune == kRuneError)) {
      out += "\\ufffd";
    } else if (d.rune == 0x2028 || d.rune == 0x2029) {
      out += "\\u";
      append_hex(out, d.rune, 4);
    } else {
      out.append(raw.substr(i, d.width));
    }
    i += d.width;
  }
  out.push_back('"');
}

}  // namespace detail

namespace {

// Go strconv appendEscapedRune for a double-quoted string (not ASCII-only, not graphic-only).
void append_escaped_rune(std::string& out, char32_t r) {
  if (r == '"' || r == '\\') {
    out.push_back('\\');
    out.push_back(static_cast<char>(r));
    return;
  }
  if (detail::go_is_print(r)) {
    detail::append_utf8(out, r);
    return;
  }
  static constexpr std::string_view kShort = "abtnvfr";  // \a=7 ... \r=13
  if (r >= 7 && r <= 13) {
    out.push_back('\\');
    out.push_back(kShort[r - 7]);
  } else if (r < ' ' || r == 0x7F) {
    out += "\\x";
    detail::append_hex(out, r, 2);
  } else if (r < 0x10000) {
    out += "\\u";
    detail::append_hex(out, r, 4);
  } else {
    out += "\\U";
    detail::append_hex(out, r, 8);
  }
}

bool valid_rune(char32_t r) { return r <= 0x10FFFF && (r < 0xD800 || r > 0xDFFF); }

Error bad_quote(std::string_view quoted, std::string_view why) {
  return Error{Errc::kCorrupt, "invalid Go-quoted name \"" + std::string(quoted.substr(0, 120)) +
                                   "\": " + std::string(why)};
}

// \xhh, \uhhhh or \Uhhhhhhhh; s[i] is the first hex digit. Advances i past the escape.
Result<void> unescape_hex(std::string_view s, char kind, std::size_t& i, std::string& out) {
  const std::size_t n = kind == 'x' ? 2 : kind == 'u' ? 4 : 8;
  if (i + n > s.size())
    return fail(bad_quote(s, "short escape"));
  char32_t v = 0;
  for (std::size_t j = 0; j < n; ++j) {
    int h = hex_digit_value(s[i + j]);
    if (h < 0)
      return fail(bad_quote(s, "bad hex digit in escape"));
    v = (v << 4) | static_cast<char32_t>(h);
  }
  i += n;
  if (kind == 'x') {
    out.push_back(static_cast<char>(v));  // a single byte, possibly not UTF-8
  } else if (!valid_rune(v)) {
    return fail(bad_quote(s, "escape is not a valid code point"));
  } else {
    detail::append_utf8(out, v);
  }
  return {};
}

// \ooo (three octal digits, at most \377); s[i] is the second digit. Advances i past it.
Result<void> unescape_octal(std::string_view s, char first, std::size_t& i, std::string& out) {
  if (i + 2 > s.size())
    return fail(bad_quote(s, "short octal escape"));
  unsigned v = static_cast<unsigned>(first - '0');
  for (std::size_t j = 0; j < 2; ++j, ++i) {
    if (s[i] < '0' || s[i] > '7')
      return fail(bad_quote(s, "bad octal digit"));
    v = (v << 3) | static_cast<unsigned>(s[i] - '0');
  }
  if (v > 255)
    return fail(bad_quote(s, "octal escape above \\377"));
  out.push_back(static_cast<char>(v));
  return {};
}

// Decodes the escape starting at s[i] == '\\'; advances i past it. Go strconv.UnquoteChar.
Result<void> unescape(std::string_view s, std::size_t& i, std::string& out) {
  if (i + 1 >= s.size())
    return fail(bad_quote(s, "trailing backslash"));
  char c = s[i + 1];
  i += 2;
  static constexpr std::string_view kSimple = "abfnrtv\\\"";
  static constexpr std::string_view kValues = "\a\b\f\n\r\t\v\\\"";
  if (auto k = kSimple.find(c); k != std::string_view::npos) {
    out.push_back(kValues[k]);
    return {};
  }
  if (c == 'x' || c == 'u' || c == 'U')
    return unescape_hex(s, c, i, out);
  if (c >= '0' && c <= '7')
    return unescape_octal(s, c, i, out);
  return fail(bad_quote(s, "unknown escape"));
}

}  // namespace

std::string go_quote(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + 2);
  for (std::size_t i = 0; i < raw.size();) {
    detail::DecodedRune d = detail::decode_rune(raw, i);
    if (!d.valid) {
      out += "\\x";
      detail::append_hex(out, static_cast<unsigned char>(raw[i]), 2);
    } else {
      append_escaped_rune(out, d.rune);
    }
    i += d.width;
  }
  return out;
}

Result<std::string> go_unquote(std::string_view quoted) {
  std::string out;
  out.reserve(quoted.size());
  for (std::size_t i = 0; i < quoted.size();) {
    char c = quoted[i];
    if (c == '"')
      return fail(bad_quote(quoted, "unescaped '\"'"));
    if (c == '\n')
      return fail(bad_quote(quoted, "raw newline"));
    if (c == '\\') {
      COFFER_TRY(unescape(quoted, i, out));
      continue;
    }
    detail::DecodedRune d = detail::decode_rune(quoted, i);
    // Go's slow path turns each invalid byte into U+FFFD; valid text is copied unchanged.
    detail::append_utf8(out, d.rune);
    i += d.width;
  }
  return out;
}

std::string go_json_string(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + 2);
  detail::append_go_json_string(out, raw);
  return out;
}

}  // namespace coffer::repo
