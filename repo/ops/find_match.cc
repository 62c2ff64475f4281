// Follows Go 1.19's path/filepath/match.go and restic 0.14's internal/filter/filter.go.
#include "repo/ops/find_match.h"

#include <clocale>
#include <cwctype>
#include <optional>

#include <locale.h>

namespace coffer::repo {

namespace {

constexpr char32_t kRuneError = 0xFFFD;

struct Rune {
  char32_t r;
  std::size_t width;
};

// Go's utf8.DecodeRuneInString: an invalid byte is RuneError of width 1. REQUIRES: !s.empty().
Rune decode_rune(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned c = b(0);
  if (c < 0x80)
    return {c, 1};
  auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1))
    return {((c & 0x1F) << 6) | (b(1) & 0x3F), 2};
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    char32_t r = ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (r >= 0x800 && (r < 0xD800 || r > 0xDFFF))
      return {r, 3};
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    char32_t r = ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (r >= 0x10000 && r <= 0x10FFFF)
      return {r, 4};
  }
  return {kRuneError, 1};
}

void append_utf8(std::string& out, char32_t r) {
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xC0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xE0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  }
}

Error bad_pattern() { return Error{Errc::kInvalidArgument, "syntax error in pattern", false}; }

struct Chunk {
  bool star;
  std::string_view chunk, rest;
};

Chunk scan_chunk(std::string_view pattern) {
  bool star = false;
  while (!pattern.empty() && pattern[0] == '*') {
    pattern.remove_prefix(1);
    star = true;
  }
  bool in_range = false;
  std::size_t i = 0;
  for (; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      if (i + 1 < pattern.size())
        ++i;
    } else if (c == '[') {
      in_range = true;
    } else if (c == ']') {
      in_range = false;
    } else if (c == '*' && !in_range) {
      break;
    }
  }
  return {star, pattern.substr(0, i), pattern.substr(i)};
}

// Go's getEsc: one (possibly escaped) character of a range.
Result<char32_t> get_esc(std::string_view& chunk) {
  if (chunk.empty() || chunk[0] == '-' || chunk[0] == ']')
    return fail(bad_pattern());
  if (chunk[0] == '\\') {
    chunk.remove_prefix(1);
    if (chunk.empty())
      return fail(bad_pattern());
  }
  Rune r = decode_rune(chunk);
  chunk.remove_prefix(r.width);
  if ((r.r == kRuneError && r.width == 1) || chunk.empty())
    return fail(bad_pattern());
  return r.r;
}

// Parses a character class at chunk ("[...": the '[' already consumed); true if `r` is in it.
Result<bool> match_class(std::string_view& chunk, char32_t r) {
  bool negated = false;
  if (!chunk.empty() && chunk[0] == '^') {
    negated = true;
    chunk.remove_prefix(1);
  }
  bool matched = false;
  for (int n = 0;; ++n) {
    if (!chunk.empty() && chunk[0] == ']' && n > 0) {
      chunk.remove_prefix(1);
      break;
    }
    COFFER_ASSIGN_OR_RETURN(char32_t lo, get_esc(chunk));
    char32_t hi = lo;
    if (chunk[0] == '-') {
      chunk.remove_prefix(1);
      COFFER_ASSIGN_OR_RETURN(hi, get_esc(chunk));
    }
    if (lo <= r && r <= hi)
      matched = true;
  }
  return matched != negated;
}

// Go's matchChunk: on success the rest of `s` after the chunk. The whole chunk is checked for
// syntax even after a mismatch.
Result<std::optional<std::string_view>> match_chunk(std::string_view chunk, std::string_view s) {
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty())
      failed = true;
    char c = chunk[0];
    if (c == '[') {
      char32_t r = 0;
      if (!failed) {
        Rune d = decode_rune(s);
        r = d.r;
        s.remove_prefix(d.width);
      }
      chunk.remove_prefix(1);
      COFFER_ASSIGN_OR_RETURN(bool in, match_class(chunk, r));
      failed = failed || !in;
      continue;
    }
    if (c == '?') {
      if (!failed) {
        failed = s[0] == '/';
        s.remove_prefix(decode_rune(s).width);
      }
      chunk.remove_prefix(1);
      continue;
    }
    if (c == '\\') {
      chunk.remove_prefix(1);
      if (chunk.empty())
        return fail(bad_pattern());
    }
    if (!failed) {
      failed = chunk[0] != s[0];
      s.remove_prefix(1);
    }
    chunk.remove_prefix(1);
  }
  if (failed)
    return std::optional<std::string_view>();
  return std::optional<std::string_view>(s);
}

// After a mismatch Go checks that the rest of the pattern is well-formed.
Result<bool> no_match_checked(std::string_view pattern) {
  while (!pattern.empty()) {
    Chunk c = scan_chunk(pattern);
    pattern = c.rest;
    COFFER_TRY(match_chunk(c.chunk, ""));
  }
  return false;
}

}  // namespace

Result<bool> go_filepath_match(std::string_view pattern, std::string_view name) {
  while (!pattern.empty()) {
    Chunk c = scan_chunk(pattern);
    pattern = c.rest;
    if (c.star && c.chunk.empty())
      return name.find('/') == std::string_view::npos;
    COFFER_ASSIGN_OR_RETURN(auto t, match_chunk(c.chunk, name));
    if (t && (t->empty() || !pattern.empty())) {
      name = *t;
      continue;
    }
    bool advanced = false;
    if (c.star) {
      for (std::size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        COFFER_ASSIGN_OR_RETURN(auto t2, match_chunk(c.chunk, name.substr(i + 1)));
        if (t2) {
          if (pattern.empty() && !t2->empty())
            continue;
          name = *t2;
          advanced = true;
          break;
        }
      }
    }
    if (!advanced)
      return no_match_checked(pattern);
  }
  return name.empty();
}

std::string go_clean_path(std::string_view path) {
  if (path.empty())
    return ".";
  bool rooted = path[0] == '/';
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    std::string_view comp = path.substr(pos, next - pos);
    pos = next + 1;
    if (comp.empty() || comp == ".")
      continue;
    if (comp == "..") {
      if (!out.empty() && out.back() != "..")
        out.pop_back();
      else if (!rooted)
        out.push_back(comp);
      continue;
    }
    out.push_back(comp);
  }
  std::string result = rooted ? "/" : "";
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i > 0)
      result += '/';
    result += out[i];
  }
  return result.empty() ? "." : result;
}

std::string go_to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
      ++i;
      continue;
    }
    Rune r = decode_rune(s.substr(i));
    i += r.width;
    char32_t lower = r.r;
    if (utf8 != nullptr && r.r != kRuneError)
      lower = static_cast<char32_t>(towlower_l(static_cast<wint_t>(r.r), utf8));
    append_utf8(out, lower);
  }
  return out;
}

std::vector<std::string> split_filter_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (true) {
    std::size_t next = path.find('/', pos);
    parts.emplace_back(path.substr(pos, next == std::string_view::npos ? next : next - pos));
    if (next == std::string_view::npos)
      break;
    pos = next + 1;
  }
  if (parts[0].empty())
    parts[0] = "/";
  return parts;
}

FindPattern::FindPattern(std::string_view pattern) {
  if (pattern.empty()) {
    everything_ = true;
    return;
  }
  if (pattern[0] == '!')
    pattern.remove_prefix(1);
  for (std::string& part : split_filter_path(go_clean_path(pattern))) {
    bool simple = part.find_first_of("\\[]*?") == std::string::npos;
    if (part == "**")
      part.clear();
    parts_.push_back(Part{std::move(part), simple});
  }
}

namespace {

using Parts = std::span<const FindPattern::Part>;
using Strs = std::span<const std::string>;

Result<bool> match_parts(Parts parts, Strs strs);

// "**" at `pos`: tries it as 0, 1, 2, ... single-component wildcards.
Result<bool> match_double_star(Parts parts, std::size_t pos, Strs strs) {
  std::vector<FindPattern::Part> expanded(parts.begin(), parts.begin() + static_cast<long>(pos));
  auto limit = static_cast<long>(strs.size()) - static_cast<long>(parts.size()) + 1;
  for (long i = 0; i <= limit; ++i) {
    std::vector<FindPattern::Part> p = expanded;
    p.insert(p.end(), static_cast<std::size_t>(i), FindPattern::Part{"*", false});
    p.insert(p.end(), parts.begin() + static_cast<long>(pos) + 1, parts.end());
    COFFER_ASSIGN_OR_RETURN(bool m, match_parts(p, strs));
    if (m)
      return true;
  }
  return false;
}

Result<bool> match_parts(Parts parts, Strs strs) {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].text.empty())
      return match_double_star(parts, i, strs);
  }
  if (parts.empty())
    return strs.empty();
  if (parts.size() > strs.size())
    return false;
  std::size_t min_offset = 0;
  std::size_t max_offset = strs.size() - parts.size();
  if (parts[0].text == "/")
    max_offset = 0;
  else if (strs[0] == "/")
    min_offset = 1;
  for (std::size_t offset = max_offset + 1; offset-- > min_offset;) {
    bool all = true;
    for (std::size_t i = parts.size(); i-- > 0 && all;) {
      if (parts[i].simple) {
        all = parts[i].text == strs[offset + i];
      } else {
        auto m = go_filepath_match(parts[i].text, strs[offset + i]);
        if (!m)
          return fail(Errc::kInvalidArgument, "Match: " + m.error().message);
        all = *m;
      }
    }
    if (all)
      return true;
  }
  return false;
}

}  // namespace

Result<bool> FindPattern::match(std::span<const std::string> path) const {
  if (everything_)
    return true;
  return match_parts(parts_, path);
}

Result<bool> FindPattern::child_match(std::span<const std::string> path) const {
  if (everything_ || parts_[0].text != "/")
    return true;
  std::size_t pos = 0;
  bool has_double = false;
  for (std::size_t i = 0; i < parts_.size() && !has_double; ++i) {
    if (parts_[i].text.empty()) {
      has_double = true;
      pos = i;
    }
  }
  if (has_double && path.size() >= pos)
    path = path.first(pos);
  std::size_t l = std::min(path.size(), parts_.size());
  return match_parts(Parts(parts_).first(l), path);
}

}  // namespace coffer::repo
