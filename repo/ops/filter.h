// Path filters: restic's include/exclude pattern semantics (internal/filter), used by
// restore (and anything else that selects snapshot paths).
//
// A pattern is cleaned like Go's filepath.Clean and split on '/'. Each component is a Go
// filepath.Match glob (`*`, `?`, `[...]`/`[^...]`, `\` escapes; never crossing a '/'),
// `**` matches any number of components (also none). A pattern starting with '/' is
// anchored at the root and matches a path prefix; any other pattern matches any run of
// consecutive components, so a pattern that matches a directory also matches everything
// below it. A leading '!' negates: a later negated pattern that matches removes an earlier
// match ("exclude everything but ..."). Empty patterns are ignored.
//
// Paths are snapshot paths like "/home/a/b.txt" (raw bytes, '/'-separated).
//
// Thread contract: a PathFilter is immutable after create(); const methods are safe to call
// concurrently. Values only, no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "repo/core/error.h"

namespace coffer::repo {

// One compiled Go filepath.Match glob for a single path component (no '/').
class Glob {
 public:
  // Errors: kInvalidArgument for a malformed pattern (unclosed '[', empty class, trailing
  // '\', a '-' or ']' where a class character is due, invalid UTF-8 inside a class).
  static Result<Glob> compile(std::string_view pattern);
  [[nodiscard]] bool match(std::string_view name) const;

  struct Range {
    char32_t lo = 0, hi = 0;
  };
  enum class TokenKind { kStar, kAnyRune, kClass, kByte };
  struct Token {
    TokenKind kind = TokenKind::kByte;
    char byte = 0;
    bool negated = false;       // kClass: [^...]
    std::vector<Range> ranges;  // kClass
  };

 private:
  std::vector<Token> tokens_;
};

// One parsed pattern (see the file comment).
class FilterPattern {
 public:
  // Parses `text`. Errors: kInvalidArgument for an empty pattern or a malformed glob
  // (unclosed '[', trailing '\', bad range).
  static Result<FilterPattern> parse(std::string_view text);

  // restic filter.Match: does `path` (or a directory above it) match?
  // REQUIRES: path is non-empty.
  [[nodiscard]] bool matches(std::string_view path) const;
  // restic filter.ChildMatch: could something below `path` match?
  [[nodiscard]] bool child_may_match(std::string_view path) const;

  [[nodiscard]] bool negated() const { return negated_; }
  [[nodiscard]] const std::string& original() const { return original_; }

  enum class PartKind { kRoot, kDoubleStar, kLiteral, kGlob };
  struct Part {
    PartKind kind = PartKind::kLiteral;
    std::string text;  // kLiteral
    Glob glob;         // kGlob
  };
  // The cleaned pattern split into components ("/" first when anchored).
  [[nodiscard]] const std::vector<Part>& parts() const { return parts_; }

 private:
  std::string original_;
  std::vector<Part> parts_;
  bool negated_ = false;
};

// Go filepath.Match of one path component against one glob component (no '/' in either).
// Errors: kInvalidArgument for a malformed pattern.
Result<bool> glob_match(std::string_view pattern, std::string_view name);

// Go path.Clean of a '/'-separated path ("" becomes ".").
std::string clean_path(std::string_view path);

// What a filter decides for one snapshot path.
struct FilterDecision {
  bool selected = false;  // restore this node itself
  bool descend = false;   // walk into this directory: something below may be selected
};

// Include and exclude lists combined as restic's restore does: a node is selected when no
// exclude list entry matches it (after negations) and, if there are includes, an include
// matches it; a directory is descended into when it is not excluded and (no includes or)
// an include could match something below it.
class PathFilter {
 public:
  PathFilter() = default;  // selects everything
  // Errors: kInvalidArgument naming the first bad pattern.
  static Result<PathFilter> create(const std::vector<std::string>& includes,
                                   const std::vector<std::string>& excludes);

  // REQUIRES: path starts with '/'.
  [[nodiscard]] FilterDecision decide(std::string_view path, bool is_dir) const;
  // True when the filter has neither includes nor excludes.
  [[nodiscard]] bool selects_all() const { return includes_.empty() && excludes_.empty(); }

 private:
  std::vector<FilterPattern> includes_;
  std::vector<FilterPattern> excludes_;
};

// restic filter.list: returns {matched, child_may_match} of `path` against `patterns`,
// honouring negation (a later matching '!' pattern clears both). child_may_match is only
// computed when `with_child` (it is then true for any relative pattern).
struct ListMatch {
  bool matched = false;
  bool child_may_match = false;
};
ListMatch match_list(const std::vector<FilterPattern>& patterns, std::string_view path,
                     bool with_child);

}  // namespace coffer::repo
