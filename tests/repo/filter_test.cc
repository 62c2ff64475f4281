// Tests for repo/ops/filter: restic's include/exclude pattern semantics. The expected values
// are restic's and Go's documented behaviour (restic internal/filter tests, Go filepath.Match).
#include "repo/ops/filter.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace coffer::repo;

namespace {

struct Case {
  const char* pattern;
  const char* path;
  bool expect;
};

bool pattern_matches(const char* pattern, const char* path) {
  auto p = FilterPattern::parse(pattern);
  REQUIRE(p);
  return p->matches(path);
}

bool pattern_child_matches(const char* pattern, const char* path) {
  auto p = FilterPattern::parse(pattern);
  REQUIRE(p);
  return p->child_may_match(path);
}

ListMatch list(const std::vector<std::string>& patterns, const char* path) {
  std::vector<FilterPattern> parsed;
  for (const auto& text : patterns) {
    auto p = FilterPattern::parse(text);
    REQUIRE(p);
    parsed.push_back(*p);
  }
  return match_list(parsed, path, true);
}

}  // namespace

TEST_CASE("glob matches single components like Go filepath.Match", "[filter]") {
  auto c = GENERATE(values<Case>({
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"a*", "ab/c", false},
      {"a*/b", "abc/b", true},
      {"a*/b", "a/c/b", false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"a*b?c*x", "abxbbxdbxebxczzy", false},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^b-d]", "abc", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a[^a]b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a???b",
       "a\xe2\x98\xba"
       "b",
       false},
      {"[a-\xce\xb6]*", "\xce\xb1", true},
      {"*[a-\xce\xb6]", "A", false},
      {"a?b", "a/b", false},
      {"a*b", "a/b", false},
      {"[\\]a]", "]", true},
      {"[\\-]", "-", true},
      {"[x\\-]", "x", true},
      {"[x\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"[\\-x]", "a", false},
      {"*x", "xxx", true},
      {"x*y*z", "xaybz", true},
      {"x*y*z", "xaybza", false},
      {"?", "", false},
      {"*", "", true},
      {"a?", "a\xff", true},
  }));
  CAPTURE(c.pattern, c.path);
  auto r = glob_match(c.pattern, c.path);
  REQUIRE(r);
  CHECK(*r == c.expect);
}

TEST_CASE("malformed globs are rejected", "[filter]") {
  auto bad = GENERATE(as<std::string>{}, "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^",
                      "[^bc", "a[", "[\xff]");
  CAPTURE(bad);
  CHECK_FALSE(glob_match(bad, "a"));
  auto p = FilterPattern::parse("/dir/" + bad);
  REQUIRE_FALSE(p);
  CHECK(p.error().code == Errc::kInvalidArgument);
}

TEST_CASE("clean_path behaves like Go path.Clean", "[filter]") {
  CHECK(clean_path("") == ".");
  CHECK(clean_path("/") == "/");
  CHECK(clean_path("/foo///bar/") == "/foo/bar");
  CHECK(clean_path("/foo/../bar") == "/bar");
  CHECK(clean_path("/../x") == "/x");
  CHECK(clean_path("a/./b/..") == "a");
  CHECK(clean_path("a/..") == ".");
  CHECK(clean_path("../../a") == "../../a");
  CHECK(clean_path("a/b/../../..") == "..");
}

TEST_CASE("patterns match restic's table", "[filter]") {
  auto c = GENERATE(values<Case>({
      {"*.go", "/foo/bar/test.go", true},
      {"*.c", "/foo/bar/test.go", false},
      {"*", "/foo/bar/test.go", true},
      {"**", "/foo/bar/test.go", true},
      {"foo*", "/foo/bar/test.go", true},
      {"bar*", "/foo/bar/test.go", true},
      {"/bar*", "/foo/bar/test.go", false},
      {"bar/*", "/foo/bar/test.go", true},
      {"baz/*", "/foo/bar/test.go", false},
      {"bar/test.go", "/foo/bar/test.go", true},
      {"ba*/*.go", "/foo/bar/test.go", true},
      {"bb*/*.go", "/foo/bar/test.go", false},
      {"tesT.*", "/foo/bar/test.go", false},
      {"bar", "/foo/bar", true},
      {"/foo/bar", "/foo/bar", true},
      {"/foo/bar/", "/foo/bar", true},
      {"/foo/bar", "/foo/baz", false},
      {"/foo///bar", "/foo/bar", true},
      {"/foo/../bar", "/foo/bar", false},
      {"/foo/../bar", "/bar", true},
      {"/foo", "/foo/baz", true},
      {"/foo/*", "/foo", false},
      {"/foo/*", "/foo/baz", true},
      {"bar", "/foo/bar/baz", true},
      {"/foo/*test.*", "/foo/bar/test.go", false},
      {"/foo/*/test.*", "/foo/bar/test.go", true},
      {"/*/*/bar/test.*", "/foo/bar/baz/test.go", false},
      {"/*/*/baz/test.*", "/foo/bar/baz/test.go", true},
      {"/foo/bar/test.*", "bar/baz/test.go", false},
      {"baz/test.*", "bar/baz/test.go", true},
      {"sdk", "/foo/bar/sdk/test/sdk_foo.go", true},
      {"sdk/*/cpp/*/*vars*.html", "/usr/share/doc/libreoffice/sdk/docs/cpp/ref/a00517.html", false},
      {"foo/**/bar/*.go", "/home/user/foo/work/special/project/bar/test.go", true},
      {"foo/**/bar/*.go", "/home/user/foo/bar/test.go", true},
      {"foo/**/bar/*.go", "foo/bar/baz/bar/test.go", true},
      {"foo/**/bar/*.go", "/home/user/foo/test.c", false},
      {"foo/**/bar/*.go", "bar/foo/main.go", false},
      {"foo/**/bar/*.go", "bar/main.go", false},
      {"foo/**/bar", "/home/user/foo/x/y/bar/main.go", true},
      {"foo/**/bar/**/x", "/home/user/foo/blaaa/blaz/bar/shared/work/x", true},
      {"user/**/important*", "/home/user/work/x/y/hidden/x", false},
      {"user/**/hidden*/**/c", "/home/user/work/x/y/hidden/z/a/b/c", true},
      {"/home/[uU]ser/?.go", "/home/user/F.go", true},
      {"/**/x", "/x", true},
      {"/**/x", "/a/b/x/y", true},
      {"/**/x", "/a/b/y", false},
  }));
  CAPTURE(c.pattern, c.path);
  CHECK(pattern_matches(c.pattern, c.path) == c.expect);
}

TEST_CASE("child matches follow restic's table", "[filter]") {
  auto c = GENERATE(values<Case>({
      {"foo/bar", "/foo", true},
      {"bar", "/foo", true},
      {"*", "/foo/bar", true},
      {"/foo/bar", "/foo", true},
      {"/foo/bar/baz", "/foo/bar", true},
      {"/foo/bar/baz", "/foo/baz", false},
      {"/foo/**/baz", "/foo/bar/baz", true},
      {"/foo/**/qux", "/foo/bar/baz/boo", true},
      {"/foo/*/qux", "/foo/bar", true},
      {"/foo/*/qux", "/foo/bar/boo", false},
      {"/foo/*/qux", "/foo/bar/boo/xx", false},
      {"/baz/bar", "/foo", false},
      {"/foo", "/foo/bar", true},
      {"/*", "/foo/bar", true},
      {"/**", "/foo", true},
      {"/*/bar", "/foo", true},
      {"/bar/*", "/foo", false},
      {"/foo/*/baz", "/foo/baz", true},
      {"/foo/*/baz", "/bar/baz", false},
      {"/**/bar", "/foo/bar", true},
  }));
  CAPTURE(c.pattern, c.path);
  CHECK(pattern_child_matches(c.pattern, c.path) == c.expect);
}

TEST_CASE("pattern lists combine matches and negations", "[filter]") {
  SECTION("plain lists") {
    auto m = list({"*.go"}, "/foo/bar");
    CHECK_FALSE(m.matched);
    CHECK(m.child_may_match);
    m = list({"/*/*/bar/test.*"}, "/foo/bar/test.go");
    CHECK_FALSE(m.matched);
    CHECK_FALSE(m.child_may_match);
    m = list({"/*/*/bar/test.*", "*.go"}, "/foo/bar/test.go");
    CHECK(m.matched);
    m = list({"/foo/*/test.c"}, "/foo/bar/foo/bar/test.c");
    CHECK_FALSE(m.matched);
    CHECK_FALSE(m.child_may_match);
  }
  SECTION("a later negated pattern removes a match, an earlier one does not") {
    CHECK_FALSE(list({"*.tmp", "!keep.tmp"}, "/a/keep.tmp").matched);
    CHECK(list({"*.tmp", "!keep.tmp"}, "/a/other.tmp").matched);
    CHECK(list({"!keep.tmp", "*.tmp"}, "/a/keep.tmp").matched);
    CHECK(list({"/data/*", "!/data/keep", "/data/keep/x"}, "/data/keep/x").matched);
  }
}

TEST_CASE("path filter decides selection and descent like restic restore", "[filter]") {
  SECTION("no patterns select everything") {
    PathFilter f;
    auto d = f.decide("/x/y", true);
    CHECK(d.selected);
    CHECK(d.descend);
    CHECK_FALSE(f.decide("/x/y", false).descend);
  }
  SECTION("includes select the match, everything below it, and walk the way there") {
    auto f = PathFilter::create({"/home/a"}, {});
    REQUIRE(f);
    auto home = f->decide("/home", true);
    CHECK_FALSE(home.selected);
    CHECK(home.descend);
    CHECK(f->decide("/home/a", true).selected);
    CHECK(f->decide("/home/a/deep/file.txt", false).selected);
    CHECK_FALSE(f->decide("/home/b", true).selected);
    CHECK_FALSE(f->decide("/home/b", true).descend);
    CHECK_FALSE(f->decide("/etc", true).descend);
  }
  SECTION("excluded directories are not entered") {
    auto f = PathFilter::create({}, {"cache", "*.tmp", "!/work/keep.tmp"});
    REQUIRE(f);
    auto d = f->decide("/home/cache", true);
    CHECK_FALSE(d.selected);
    CHECK_FALSE(d.descend);
    CHECK_FALSE(f->decide("/work/x.tmp", false).selected);
    CHECK(f->decide("/work/keep.tmp", false).selected);
    CHECK(f->decide("/work/x.txt", false).selected);
  }
  SECTION("includes and excludes together") {
    auto f = PathFilter::create({"*.txt"}, {"/secret"});
    REQUIRE(f);
    CHECK(f->decide("/a/b.txt", false).selected);
    CHECK_FALSE(f->decide("/a/b.bin", false).selected);
    CHECK(f->decide("/a", true).descend);
    CHECK_FALSE(f->decide("/secret/b.txt", false).selected);
    CHECK_FALSE(f->decide("/secret", true).descend);
  }
  SECTION("a bad pattern is reported") {
    auto f = PathFilter::create({"ok", "bad["}, {});
    REQUIRE_FALSE(f);
    CHECK(f.error().code == Errc::kInvalidArgument);
    CHECK(f.error().message.find("bad[") != std::string::npos);
  }
}
