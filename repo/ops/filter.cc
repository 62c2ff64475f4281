#include "repo/ops/filter.h"

#include <algorithm>
#include <cstddef>
#include <span>

namespace coffer::repo {
namespace {

constexpr char32_t kRuneError = 0xFFFD;

struct Rune {
  char32_t value = kRuneError;
  std::size_t width = 1;
};

// Go utf8.DecodeRuneInString: invalid or truncated sequences decode as U+FFFD, width 1.
Rune decode_rune(std::string_view s, std::size_t i) {
  auto byte_at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte_at(i);
  if (b0 < 0x80)
    return {b0, 1};
  std::size_t need = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : b0 >= 0xC2 ? 1 : 0;
  if (need == 0 || b0 > 0xF4 || i + need >= s.size())
    return {};
  char32_t value = b0 & (0x3F >> need);
  for (std::size_t k = 1; k <= need; ++k) {
    unsigned char b = byte_at(i + k);
    if ((b & 0xC0) != 0x80)
      return {};
    value = (value << 6) | (b & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (value < kMin[need] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
    return {};
  return {value, need + 1};
}

// Go filepath getEsc: one (possibly escaped) class character at `pos`.
Result<char32_t> class_char(std::string_view p, std::size_t& pos) {
  auto bad = [&] { return fail(Errc::kInvalidArgument, "bad pattern " + std::string(p)); };
  if (pos >= p.size() || p[pos] == '-' || p[pos] == ']')
    return bad();
  if (p[pos] == '\\' && ++pos >= p.size())
    return bad();
  Rune r = decode_rune(p, pos);
  if (r.value == kRuneError && r.width == 1)
    return bad();
  pos += r.width;
  if (pos >= p.size())
    return bad();
  return r.value;
}

// Parses a character class; `pos` is just after '['.
Result<Glob::Token> parse_class(std::string_view p, std::size_t& pos) {
  Glob::Token t;
  t.kind = Glob::TokenKind::kClass;
  if (pos < p.size() && p[pos] == '^') {
    t.negated = true;
    ++pos;
  }
  while (true) {
    if (pos < p.size() && p[pos] == ']' && !t.ranges.empty()) {
      ++pos;
      return t;
    }
    COFFER_ASSIGN_OR_RETURN(char32_t lo, class_char(p, pos));
    char32_t hi = lo;
    if (p[pos] == '-') {
      ++pos;
      COFFER_ASSIGN_OR_RETURN(hi, class_char(p, pos));
    }
    t.ranges.push_back({lo, hi});
  }
}

// Does token `t` match at name[i]? Sets `width` to the bytes consumed.
bool token_matches(const Glob::Token& t, std::string_view name, std::size_t i, std::size_t& width) {
  if (t.kind == Glob::TokenKind::kByte) {
    width = 1;
    return name[i] == t.byte;
  }
  Rune r = decode_rune(name, i);
  width = r.width;
  if (t.kind == Glob::TokenKind::kAnyRune)
    return name[i] != '/';
  bool in = std::any_of(t.ranges.begin(), t.ranges.end(),
                        [&](const Glob::Range& g) { return g.lo <= r.value && r.value <= g.hi; });
  return in != t.negated;
}

bool is_marker(std::string_view comp) { return comp == "/"; }

// Splits a clean '/'-separated path: "/a/b" -> {"/", "a", "b"}; "a/b" -> {"a", "b"}.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  if (!path.empty() && path[0] == '/') {
    out.emplace_back("/");
    pos = 1;
  }
  while (pos < path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos)
      end = path.size();
    if (end > pos)
      out.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

using Part = FilterPattern::Part;
using PartKind = FilterPattern::PartKind;
using Comps = std::span<const std::string_view>;

bool part_matches(const Part& p, std::string_view comp) {
  switch (p.kind) {
    case PartKind::kRoot:
      return is_marker(comp);
    case PartKind::kLiteral:
      return p.text == comp;
    case PartKind::kGlob:
      return !is_marker(comp) && p.glob.match(comp);
    case PartKind::kDoubleStar:
      return !is_marker(comp);
  }
  return false;
}

// Matches parts[pi..] against a window of comps starting at `si`; the window may end before
// the path does but must hold at least one component (from `start`). `**` takes 0+ comps.
bool match_window(std::span<const Part> parts, std::size_t pi, Comps comps, std::size_t si,
                  std::size_t start) {
  if (pi == parts.size())
    return si > start;
  const Part& p = parts[pi];
  if (p.kind == PartKind::kDoubleStar) {
    for (std::size_t k = si; k <= comps.size(); ++k) {
      if (k > si && is_marker(comps[k - 1]))
        break;
      if (match_window(parts, pi + 1, comps, k, start))
        return true;
    }
    return false;
  }
  if (si == comps.size() || !part_matches(p, comps[si]))
    return false;
  return match_window(parts, pi + 1, comps, si + 1, start);
}

// restic filter.match over pre-split components.
bool match_parts(std::span<const Part> parts, Comps comps) {
  if (parts.empty() || comps.empty())
    return parts.empty() && comps.empty();
  if (parts[0].kind == PartKind::kRoot)
    return match_window(parts, 0, comps, 0, 0);
  std::size_t first = is_marker(comps[0]) ? 1 : 0;
  for (std::size_t off = first; off < comps.size(); ++off) {
    if (match_window(parts, 0, comps, off, off))
      return true;
  }
  return false;
}

// restic filter.childMatch over pre-split components.
bool child_match_parts(std::span<const Part> parts, Comps comps) {
  if (parts.empty() || parts[0].kind != PartKind::kRoot)
    return true;
  auto ds = std::find_if(parts.begin(), parts.end(),
                         [](const Part& p) { return p.kind == PartKind::kDoubleStar; });
  std::size_t limit = std::min(comps.size(), static_cast<std::size_t>(ds - parts.begin()));
  for (std::size_t i = 0; i < limit; ++i) {
    if (!part_matches(parts[i], comps[i]))
      return false;
  }
  return true;
}

}  // namespace

Result<Glob> Glob::compile(std::string_view pattern) {
  Glob g;
  for (std::size_t pos = 0; pos < pattern.size();) {
    Token t;
    char c = pattern[pos++];
    if (c == '*') {
      t.kind = TokenKind::kStar;
    } else if (c == '?') {
      t.kind = TokenKind::kAnyRune;
    } else if (c == '[') {
      COFFER_ASSIGN_OR_RETURN(t, parse_class(pattern, pos));
    } else if (c == '\\') {
      if (pos >= pattern.size()) {
        return fail(Errc::kInvalidArgument, "bad pattern " + std::string(pattern));
      }
      t.byte = pattern[pos++];
    } else {
      t.byte = c;
    }
    g.tokens_.push_back(std::move(t));
  }
  return g;
}

bool Glob::match(std::string_view name) const {
  std::size_t ti = 0, ni = 0;
  std::size_t star_ti = std::string_view::npos, star_ni = 0;
  while (ni < name.size()) {
    std::size_t width = 0;
    if (ti < tokens_.size() && tokens_[ti].kind == TokenKind::kStar) {
      star_ti = ti++;
      star_ni = ni;
    } else if (ti < tokens_.size() && token_matches(tokens_[ti], name, ni, width)) {
      ++ti;
      ni += width;
    } else if (star_ti != std::string_view::npos && name[star_ni] != '/') {
      ti = star_ti + 1;
      ni = ++star_ni;
    } else {
      return false;
    }
  }
  while (ti < tokens_.size() && tokens_[ti].kind == TokenKind::kStar) ++ti;
  return ti == tokens_.size();
}

Result<bool> glob_match(std::string_view pattern, std::string_view name) {
  COFFER_ASSIGN_OR_RETURN(Glob g, Glob::compile(pattern));
  return g.match(name);
}

std::string clean_path(std::string_view path) {
  if (path.empty())
    return ".";
  const bool rooted = path[0] == '/';
  std::string out = rooted ? "/" : "";
  std::size_t dotdot = out.size();  // out[:dotdot] cannot be backtracked over
  std::size_t r = rooted ? 1 : 0;
  const std::size_t n = path.size();
  while (r < n) {
    std::size_t end = path.find('/', r);
    if (end == std::string_view::npos)
      end = n;
    std::string_view elem = path.substr(r, end - r);
    r = end < n ? end + 1 : n;
    if (elem.empty() || elem == ".")
      continue;
    if (elem == "..") {
      if (out.size() > dotdot) {
        std::size_t w = out.size() - 1;
        while (w > dotdot && out[w] != '/') --w;
        out.resize(w);
      } else if (!rooted) {
        if (!out.empty())
          out += '/';
        out += "..";
        dotdot = out.size();
      }
      continue;
    }
    if (out.size() != (rooted ? 1U : 0U))
      out += '/';
    out += elem;
  }
  return out.empty() ? "." : out;
}

Result<FilterPattern> FilterPattern::parse(std::string_view text) {
  FilterPattern fp;
  fp.original_ = std::string(text);
  if (!text.empty() && text[0] == '!') {
    fp.negated_ = true;
    text.remove_prefix(1);
  }
  if (text.empty())
    return fail(Errc::kInvalidArgument, "empty pattern \"" + fp.original_ + "\"");
  std::string cleaned = clean_path(text);
  for (std::string_view comp : split_path(cleaned)) {
    Part part;
    if (is_marker(comp)) {
      part.kind = PartKind::kRoot;
    } else if (comp == "**") {
      part.kind = PartKind::kDoubleStar;
    } else if (comp.find_first_of("\\[]*?") == std::string_view::npos) {
      part.text = std::string(comp);
    } else {
      part.kind = PartKind::kGlob;
      auto glob = Glob::compile(comp);
      if (!glob)
        return fail(glob.error().with_context("pattern \"" + fp.original_ + "\""));
      part.glob = std::move(*glob);
    }
    fp.parts_.push_back(std::move(part));
  }
  return fp;
}

bool FilterPattern::matches(std::string_view path) const {
  auto comps = split_path(path);
  return match_parts(parts_, comps);
}

bool FilterPattern::child_may_match(std::string_view path) const {
  auto comps = split_path(path);
  return child_match_parts(parts_, comps);
}

namespace {

ListMatch list_comps(const std::vector<FilterPattern>& patterns, Comps comps, bool with_child) {
  ListMatch out;
  if (patterns.empty())
    return out;
  const bool any_negated = std::any_of(patterns.begin(), patterns.end(),
                                       [](const FilterPattern& p) { return p.negated(); });
  for (const FilterPattern& p : patterns) {
    bool m = match_parts(p.parts(), comps);
    if (p.negated()) {
      out.matched = out.matched && !m;
      out.child_may_match = out.child_may_match && !m;
      continue;
    }
    out.matched = out.matched || m;
    out.child_may_match =
        out.child_may_match || (!with_child || child_match_parts(p.parts(), comps));
    if (out.matched && out.child_may_match && !any_negated)
      break;
  }
  return out;
}

}  // namespace

ListMatch match_list(const std::vector<FilterPattern>& patterns, std::string_view path,
                     bool with_child) {
  auto comps = split_path(path);
  return list_comps(patterns, comps, with_child);
}

Result<PathFilter> PathFilter::create(const std::vector<std::string>& includes,
                                      const std::vector<std::string>& excludes) {
  PathFilter f;
  for (const auto* list : {&includes, &excludes}) {
    auto& dest = list == &includes ? f.includes_ : f.excludes_;
    for (const std::string& text : *list) {
      if (text.empty())
        continue;
      COFFER_ASSIGN_OR_RETURN(FilterPattern p, FilterPattern::parse(text));
      dest.push_back(std::move(p));
    }
  }
  return f;
}

FilterDecision PathFilter::decide(std::string_view path, bool is_dir) const {
  if (selects_all())
    return {true, is_dir};
  auto comps = split_path(path);
  if (!excludes_.empty() && list_comps(excludes_, comps, false).matched)
    return {false, false};
  if (includes_.empty())
    return {true, is_dir};
  ListMatch m = list_comps(includes_, comps, true);
  return {m.matched, is_dir && m.child_may_match};
}

}  // namespace coffer::repo
