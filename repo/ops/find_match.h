// Path patterns as restic 0.14's `find` matches them (internal/filter and Go's
// path/filepath.Match), and Go's strings.ToLower for --ignore-case.
//
// A pattern is cleaned (filepath.Clean) and split at '/'. A pattern starting with '/' must match
// a path from its root; any other pattern matches any run of consecutive path components
// ("foo" matches "/a/foo" and everything below it). "**" stands for any number of components.
// A leading '!' is dropped and otherwise ignored, as restic's find does.
//
// Thread contract: FindPattern is an immutable value after construction; functions are pure.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "repo/core/error.h"

namespace coffer::repo {

// Go's path/filepath.Match on one path component. Errors: kInvalidArgument with Go's text
// "syntax error in pattern" for a malformed pattern.
Result<bool> go_filepath_match(std::string_view pattern, std::string_view name);

// Go's path.Clean (lexical: "//", ".", ".." and trailing '/' removed; "" gives ".").
std::string go_clean_path(std::string_view path);

// Go's strings.ToLower: Unicode simple lower-casing; invalid UTF-8 bytes become U+FFFD.
std::string go_to_lower(std::string_view s);

// Splits a slash path as restic's filter does: "/a/b" gives {"/", "a", "b"}.
std::vector<std::string> split_filter_path(std::string_view path);

class FindPattern {
 public:
  // REQUIRES: nothing; "" matches everything, as in restic.
  explicit FindPattern(std::string_view pattern);

  // filter.Match against a path split by split_filter_path. REQUIRES: !path.empty().
  // Errors: kInvalidArgument "Match: syntax error in pattern".
  [[nodiscard]] Result<bool> match(std::span<const std::string> path) const;
  // filter.ChildMatch: whether something below `path` can match. Errors: as match.
  [[nodiscard]] Result<bool> child_match(std::span<const std::string> path) const;
  // Whether the pattern is rooted ("/...") and so can rule out whole subtrees.
  [[nodiscard]] bool absolute() const { return !everything_ && parts_[0].text == "/"; }

  struct Part {
    std::string text;  // "" for "**"
    bool simple = true;
  };

 private:
  std::vector<Part> parts_;
  bool everything_ = false;  // the empty pattern
};

}  // namespace coffer::repo
