// Tests of the Go text rules behind tree/snapshot JSON: strconv.Quote/Unquote, encoding/json
// strings, RFC 3339 times and os.FileMode conversion. Expected values follow Go 1.19's
// documented behaviour (restic 0.14's build), not this implementation.
#include <ctime>
#include <random>
#include <string>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "repo/tree/node.h"

using namespace coffer::repo;

TEST_CASE("go_quote escapes like strconv.Quote", "[tree][quote]") {
  struct Case {
    std::string raw, quoted;
  };
  const Case cases[] = {
      {"", ""},
      {"plain.txt", "plain.txt"},
      {"with space", "with space"},
      {"name_\xff.txt", "name_\\xff.txt"},
      {"nl\nname", "nl\\nname"},
      {"\a\b\f\n\r\t\v", "\\a\\b\\f\\n\\r\\t\\v"},
      {std::string("\x00\x01\x1f\x7f", 4), "\\x00\\x01\\x1f\\x7f"},
      {"q\"uo\\te", "q\\\"uo\\\\te"},
      {"'<&>`", "'<&>`"},
      {"привет 文件 😀 é", "привет 文件 😀 é"},
      {"e\xcc\x81", "e\xcc\x81"},                      // combining mark (Mn) is printable
      {"\xc2\xa0", "\\u00a0"},                         // NBSP (Zs) is not
      {"\xc2\xad", "\\u00ad"},                         // soft hyphen (Cf)
      {"\xe2\x80\x8b", "\\u200b"},                     // zero width space (Cf)
      {"\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029"},  // Zl, Zp
      {"\xe3\x80\x80", "\\u3000"},                     // ideographic space (Zs)
      {"\xef\xbb\xbf", "\\ufeff"},                     // BOM (Cf)
      {"\xee\x80\x80", "\\ue000"},                     // private use
      {"\xef\xbf\xbd", "\xef\xbf\xbd"},                // a real U+FFFD is printable
      {"\xf3\xa0\x80\x81", "\\U000e0001"},             // language tag (Cf)
      {"\xf4\x8f\xbf\xbf", "\\U0010ffff"},             // non-character
      {"\xf0\x9f\xab\xa0", "\\U0001fae0"},             // assigned in Unicode 14, after Go 1.19
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},             // encoded surrogate: 3 bad bytes
      {"\xc0\xaf", "\\xc0\\xaf"},                      // overlong
      {"\xe2\x82", "\\xe2\\x82"},                      // truncated sequence
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},    // above U+10FFFF
      {"\x80x", "\\x80x"},                             // lone continuation byte
  };
  for (const auto& c : cases) {
    INFO("raw: " << c.raw);
    CHECK(go_quote(c.raw) == c.quoted);
    auto back = go_unquote(c.quoted);
    REQUIRE(back);
    CHECK(*back == c.raw);
  }
}

TEST_CASE("go_unquote accepts every strconv escape", "[tree][quote]") {
  struct Case {
    std::string quoted, raw;
  };
  const Case cases[] = {
      {"\\101\\040\\377\\000", std::string("A \xff\x00", 4)},
      {"\\x41\\xFf", "A\xff"},
      {"\\u00e9\\u00E9", "\xc3\xa9\xc3\xa9"},
      {"\\U0001F600", "\xf0\x9f\x98\x80"},
      {"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"", "\a\b\f\n\r\t\v\\\""},
      {"tab\tand\rcr", "tab\tand\rcr"},        // raw control characters other than \n are fine
      {"bad\xffutf8", "bad\xef\xbf\xbdutf8"},  // Go replaces invalid bytes with U+FFFD
  };
  for (const auto& c : cases) {
    INFO("quoted: " << c.quoted);
    auto raw = go_unquote(c.quoted);
    REQUIRE(raw);
    CHECK(*raw == c.raw);
  }
}

TEST_CASE("go_unquote rejects what strconv.Unquote rejects", "[tree][quote]") {
  const std::string bad[] = {
      "raw\nnewline", "un\"escaped", "trailing\\",  "\\q",     "\\'",   "\\400",
      "\\8",          "\\12",        "\\x4",        "\\xZZ",   "\\u12", "\\ud800",
      "\\udfff",      "\\U00110000", "\\Uffffffff", "\\u00g0", "ok\\",  "\\ ",
  };
  for (const auto& s : bad) {
    INFO("quoted: " << s);
    auto r = go_unquote(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kCorrupt);
  }
}

TEST_CASE("go_quote/go_unquote round-trip random bytes", "[tree][quote]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> len(0, 40);
  std::uniform_int_distribution<int> byte(0, 255);
  const std::string utf8_bits[] = {"é", "😀", "\xe2\x80\xa8", "文", "\xf3\xa0\x80\x81", "\xcc\x81"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string raw;
    for (int i = len(rng); i > 0; --i) {
      int b = byte(rng);
      if (b < 40) {
        raw += utf8_bits[static_cast<std::size_t>(b) % 6];
      } else {
        raw.push_back(static_cast<char>(b));
      }
    }
    std::string q = go_quote(raw);
    CHECK(q.find('\n') == std::string::npos);
    auto back = go_unquote(q);
    REQUIRE(back);
    CHECK(*back == raw);
  }
}

TEST_CASE("go_json_string escapes like encoding/json", "[tree][json]") {
  struct Case {
    std::string raw, json;
  };
  const Case cases[] = {
      {"", "\"\""},
      {"a\"b\\c", "\"a\\\"b\\\\c\""},
      {"\n\r\t", "\"\\n\\r\\t\""},
      {std::string("\x00\x01\x08\x0c\x1f", 5), "\"\\u0000\\u0001\\u0008\\u000c\\u001f\""},
      {"<a href='x'>&</a>", "\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\""},
      {"\xe2\x80\xa8|\xe2\x80\xa9", "\"\\u2028|\\u2029\""},
      {"\x7f/", "\"\x7f/\""},
      {"é€😀\xef\xbf\xbd", "\"é€😀\xef\xbf\xbd\""},
      {"target_\xfe\xff/x", "\"target_\\ufffd\\ufffd/x\""},
      {"\xe2\x82!", "\"\\ufffd\\ufffd!\""},
      {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
  };
  for (const auto& c : cases) {
    INFO("raw: " << c.raw);
    CHECK(go_json_string(c.raw) == c.json);
  }
}

TEST_CASE("Go times parse and format with offsets and fractions", "[tree][time]") {
  struct Case {
    std::string text;
    std::int64_t unix_seconds;
    std::uint32_t nanos;
    std::int32_t offset;
  };
  const Case cases[] = {
      {"1970-01-01T00:00:00Z", 0, 0, 0},
      {"2021-03-04T05:06:07.123456789+01:00", 1614830767, 123456789, 3600},
      {"2021-07-04T05:06:07.12+02:00", 1625367967, 120000000, 7200},
      {"1969-12-31T23:59:59.5Z", -1, 500000000, 0},
      {"1960-06-01T10:15:30.5-00:44", -302446830, 500000000, -2640},
      {"0001-01-01T00:00:00Z", -62135596800, 0, 0},
      {"9999-12-31T23:59:59.999999999+01:00", 253402297199, 999999999, 3600},
      {"2000-02-29T12:00:00.000000001-09:30", 951859800, 1, -34200},
      {"2026-11-26T10:03:50.692513699+14:00", 1795637030, 692513699, 50400},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto t = parse_go_time(c.text);
    REQUIRE(t);
    CHECK(t->unix_seconds == c.unix_seconds);
    CHECK(t->nanos == c.nanos);
    CHECK(t->offset_seconds == c.offset);
    CHECK(format_go_time(*t) == c.text);
  }
}

TEST_CASE("Go time text normalisation and Go's offset quirks", "[tree][time]") {
  // Trailing zeros of the fraction are dropped; a zero fraction disappears.
  CHECK(format_go_time(*parse_go_time("2020-01-01T00:00:00.100Z")) == "2020-01-01T00:00:00.1Z");
  CHECK(format_go_time(*parse_go_time("2020-01-01T00:00:00.000Z")) == "2020-01-01T00:00:00Z");
  CHECK(format_go_time(*parse_go_time("2020-01-01T00:00:00+00:00")) == "2020-01-01T00:00:00Z");
  // More than nine digits: Go keeps the first nine.
  CHECK(parse_go_time("2020-01-01T00:00:00.1234567899Z")->nanos == 123456789);
  // Offsets with seconds (LMT): the clock shows them, the zone is truncated to minutes.
  CHECK(format_go_time(GoTime{-2513775208, 250000000, 3208}) == "1890-05-05T10:00:00.25+00:53");
  CHECK(format_go_time(GoTime{0, 0, -30}) == "1969-12-31T23:59:30+00:00");
  CHECK(format_go_time(GoTime{0, 0, -2670}) == "1969-12-31T23:15:30-00:44");
}

TEST_CASE("format_go_time agrees with gmtime for random instants", "[tree][time]") {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<std::int64_t> secs(-62135596800, 253402300799);
  for (int i = 0; i < 20000; ++i) {
    GoTime t{secs(rng), 0, 0};
    std::time_t tt = static_cast<std::time_t>(t.unix_seconds);
    std::tm tm{};
    REQUIRE(gmtime_r(&tt, &tm) != nullptr);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    REQUIRE(format_go_time(t) == buf);
    GoTime shifted{t.unix_seconds, static_cast<std::uint32_t>(i * 7919), (i % 1681 - 840) * 60};
    auto back = parse_go_time(format_go_time(shifted));
    REQUIRE(back);
    REQUIRE(*back == shifted);
  }
}

TEST_CASE("malformed times are kCorrupt", "[tree][time]") {
  const std::string bad[] = {
      "",
      "2021-03-04",
      "2021-03-04 05:06:07Z",
      "2021-03-04T05:06:07",
      "2021-03-04t05:06:07Z",
      "2021-03-04T05:06:07z",
      "2021-13-01T00:00:00Z",
      "2021-00-01T00:00:00Z",
      "2021-02-29T00:00:00Z",
      "2021-04-31T00:00:00Z",
      "2021-01-01T24:00:00Z",
      "2021-01-01T00:60:00Z",
      "2021-01-01T00:00:60Z",
      "2021-01-01T00:00:00.Z",
      "2021-01-01T00:00:00+1:00",
      "2021-01-01T00:00:00+0100",
      "2021-01-01T00:00:00+24:00",
      "2021-01-01T00:00:00Zjunk",
      "21-01-01T00:00:00Z",
      "-001-01-01T00:00:00Z",
      "+2021-01-01T00:00:00Z",
  };
  for (const auto& s : bad) {
    INFO(s);
    auto t = parse_go_time(s);
    REQUIRE_FALSE(t);
    CHECK(t.error().code == Errc::kCorrupt);
  }
}

TEST_CASE("FileMode conversion matches restic's observed values", "[tree][mode]") {
  CHECK(go_mode_from_unix(S_IFREG | 0644) == 420);
  CHECK(go_mode_from_unix(S_IFDIR | 0755) == 2147484141u);
  CHECK(go_mode_from_unix(S_IFDIR | 01777) == 2148532735u);
  CHECK(go_mode_from_unix(S_IFREG | 04755) == 8389101);
  CHECK(go_mode_from_unix(S_IFLNK | 0777) == 134218239);
  CHECK(go_mode_from_unix(S_IFIFO | 0644) == 33554852);
  CHECK(go_mode_from_unix(S_IFCHR | 0644) == 69206436);
  CHECK(go_mode_from_unix(S_IFBLK | 0600) == 67109248);
  CHECK(go_mode_from_unix(S_IFSOCK | 0755) == ((1u << 24) | 0755));
  CHECK(go_mode_from_unix(S_IFDIR | 02750) == 2151678440u);

  const struct {
    NodeType type;
    std::uint32_t st_mode;
  } kinds[] = {{NodeType::kFile, S_IFREG | 04755},   {NodeType::kDir, S_IFDIR | 03777},
               {NodeType::kSymlink, S_IFLNK | 0777}, {NodeType::kDev, S_IFBLK | 0600},
               {NodeType::kCharDev, S_IFCHR | 0644}, {NodeType::kFifo, S_IFIFO | 0640},
               {NodeType::kSocket, S_IFSOCK | 0755}};
  for (const auto& k : kinds) {
    Node n;
    n.type = k.type;
    n.mode = go_mode_from_unix(k.st_mode);
    CHECK(n.unix_mode() == k.st_mode);
  }
  // The kind comes from `type`: rustic writes chardev modes without type bits.
  Node chardev;
  chardev.type = NodeType::kCharDev;
  chardev.mode = 0644;
  CHECK(chardev.unix_mode() == (S_IFCHR | 0644));
  Node odd;
  odd.type = NodeType::kFile;
  odd.mode = (1u << 31) | 0600;  // dir bit, but type says file
  CHECK(odd.unix_mode() == (S_IFREG | 0600));
}
