// Internal to repo/tree and repo/snapshot: Go's text rules that restic's JSON depends on.
//
// UTF-8 decoding with Go's utf8.DecodeRuneInString semantics (each invalid byte is its own
// RuneError of width 1; surrogates and overlong forms are invalid), strconv.IsPrint, and
// encoding/json's string escaping.
//
// Printability: restic 0.14 is built with Go 1.19, whose Unicode tables are version 13.0.0.
// go_print_table.cc is generated from Python 3.9's unicodedata (also 13.0.0) by
// gen_go_print_table.py with Go's rule "category L, M, N, P or S, or U+0020". Runes assigned
// after Unicode 13 are therefore escaped exactly as that restic build escapes them.
//
// Thread contract: pure functions; the range table is immutable.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace coffer::repo::detail {

inline constexpr char32_t kRuneError = 0xFFFD;

struct CodeRange {
  char32_t lo, hi;  // inclusive
};

struct DecodedRune {
  char32_t rune;      // kRuneError when invalid
  std::size_t width;  // 1 when invalid
  bool valid;
};

// Decodes the rune at s[pos]. REQUIRES: pos < s.size().
DecodedRune decode_rune(std::string_view s, std::size_t pos);

// Appends the UTF-8 encoding of `r`. REQUIRES: r is a valid Unicode scalar value.
void append_utf8(std::string& out, char32_t r);

// Go strconv.IsPrint.
bool go_is_print(char32_t r);

// The sorted ranges behind go_is_print (generated table).
std::span<const CodeRange> go_print_ranges();

// Appends `raw` as Go's encoding/json (HTML escaping on, Go 1.19) writes a string, quotes
// included. With `escape_fffd`, a valid U+FFFD is also written as the escape `\ufffd`, which
// is how Go writes an invalid byte: used where a decoded U+FFFD most likely stood for one.
void append_go_json_string(std::string& out, std::string_view raw, bool escape_fffd = false);

}  // namespace coffer::repo::detail
