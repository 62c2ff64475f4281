// Differential tests of the single-pass tree blob parser (repo/tree/tree_parse.h) against the
// nlohmann DOM parser it replaced: restic-made trees (golden files and the restic-made test
// repositories), hand-written edge cases, every truncation of valid blobs, and seeded random
// trees that must round-trip byte for byte.
#include "repo/tree/tree_parse.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "repo/backend/local/local_backend.h"
#include "repo/index/index_file.h"
#include "repo/repository.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

std::filesystem::path data_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data";
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<Tree> fast(const std::string& s) { return detail::parse_tree_fast(s); }
Result<Tree> ref(const std::string& s) { return detail::parse_tree_reference(as_bytes(s)); }

// The text with non-printable bytes as \xNN, for failure messages.
std::string shown(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 600)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    }
  }
  return s.size() > 600 ? out + "..." : out;
}

// Old and new agree: both accept with equal trees, or both fail with kCorrupt.
// Returns whether the text was accepted.
bool same(const std::string& text) {
  INFO(shown(text));
  auto a = ref(text);
  auto b = fast(text);
  REQUIRE(a.has_value() == b.has_value());
  if (!a) {
    CHECK(a.error().code == Errc::kCorrupt);
    CHECK(b.error().code == Errc::kCorrupt);
    return false;
  }
  CHECK(a->nodes == b->nodes);
  return true;
}

constexpr const char* kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string node(const std::string& fields) { return "{\"nodes\":[{" + fields + "}]}\n"; }
std::string typed(const std::string& fields) { return node(R"("type":"file",)" + fields); }

}  // namespace

TEST_CASE("tree parser: golden restic trees parse as before", "[tree]") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir() / "trees")) {
    if (e.path().extension() != ".json")
      continue;
    REQUIRE(same(slurp(e.path())));
    ++n;
  }
  CHECK(n >= 10);
}

TEST_CASE("tree parser: every tree of the restic-made repositories parses as before", "[tree]") {
  TempDir tmp;
  auto version = GENERATE(1U, 2U);
  std::string path = coffer::test::copy_golden_repo(tmp, "v" + std::to_string(version));
  auto repo = Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword,
                               OpenOptions{.cache_dir = "", .no_cache = true});
  REQUIRE(repo);
  REQUIRE((*repo)->load_index());
  auto files = (*repo)->list_ids(FileKind::kIndex);
  REQUIRE(files);
  int trees = 0;
  for (const Id& f : *files) {
    auto json = (*repo)->load_unpacked(FileKind::kIndex, f);
    REQUIRE(json);
    auto parsed = parse_index(as_chars(*json));
    REQUIRE(parsed);
    for (const auto& b : parsed->blobs) {
      if (b.type != BlobType::kTree)
        continue;
      auto blob = (*repo)->load_blob(BlobHandle{b.id, BlobType::kTree});
      REQUIRE(blob);
      REQUIRE(same(to_string(*blob)));
      ++trees;
    }
  }
  CHECK(trees >= 2);
}

TEST_CASE("tree parser: strings, escapes, surrogates and UTF-8 as before", "[tree]") {
  // clang-format off
  const std::vector<std::string> values = {
      R"("plain")", R"("\u00e9\ud83d\ude00\/\b\f\n\r\t\\\"")", R"("\uD83D\uDE00\u0000")",
      R"("\ud800")", R"("\udc00")", R"("\ud800\u0041")", R"("\ud800x")", R"("\ud800\")",
      R"("\u12g4")", R"("\u12")", R"("\x")", "\"\x01\"", "\"\x7f\"", "\"\xff\"", "\"\xc0\x80\"",
      "\"\xc2\xa9\"", "\"\xed\xa0\x80\"", "\"\xed\x9f\xbf\"", "\"\xf4\x90\x80\x80\"",
      "\"\xf4\x8f\xbf\xbf\"", "\"\xe2\x82\"", "\"\xf0\x9f\x98\x80\"", "\"\xe0\x9f\x80\"",
      "\"\xef\xbf\xbd\"", R"("\ufffd")", "\"\t\"", R"("unterminated)", "null", "1", "[]"};
  // clang-format on

  for (const auto& v : values) {
    for (const char* key : {"user", "linktarget", "name", "zz_unknown"}) {
      same(typed(std::string("\"") + key + "\":" + v));
    }
    same(node("\"n\\u0061me\":\"x\",\"typ\\u0065\":\"dir\",\"user\":" + v));
    same(typed(R"("extended_attributes":[{"name":)" + v + R"(,"value":"YQ=="}])"));
    same(typed(R"("generic_attributes":{"k":)" + v + "}"));
  }
  // Go-quoted names: escapes a Go string literal allows, and ones it does not.
  for (const char* name : {R"(a\\nb)", R"(\\x41\\u00e9\\U0001F600)", R"(\\377\\xff)", R"(\\q)",
                           R"(\")", R"(a\\)", R"(\\ud800)"}) {
    same(typed(std::string("\"name\":\"") + name + "\""));
  }
}

TEST_CASE("tree parser: whitespace, BOM and top-level shapes as before", "[tree]") {
  const std::string full = std::string(R"({"nodes":[{"name":"a","type":"dir","mode":2147484141,)") +
                           R"("subtree":")" + kId + R"(","content":null,"uid":1},{"name":"b",)" +
                           R"("type":"file","content":[")" + kId + R"("],"size":3}]})";
  REQUIRE(same(full));
  std::string spaced;
  for (char c : full) {
    if (std::string_view("{}[],:").find(c) != std::string_view::npos)
      spaced += std::string(" \t\r\n") + c + "\n\t \r";
    else
      spaced += c;
  }
  CHECK(same(spaced));
  for (const std::string& t : {std::string("\xEF\xBB\xBF") + full,
                               std::string("\xEF\xBB\xBF \n") + full,
                               " \xEF\xBB\xBF" + full,
                               "\xEF\xBB" + full,
                               full + "\f",
                               "\f" + full,
                               full + "\v",
                               full + "x",
                               full + full,
                               full + std::string(1, '\0'),
                               full + " " + std::string(1, '\0') + "junk",
                               std::string(1, '\0') + full,
                               std::string(""),
                               std::string(" "),
                               std::string("{}"),
                               std::string("[]"),
                               std::string("null"),
                               std::string("{\"nodes\":null}"),
                               std::string("{\"nodes\":{}}"),
                               std::string("{\"nodes\":[null]}"),
                               std::string("{\"nodes\":[1]}"),
                               std::string("{\"nodes\":[{}]}"),
                               std::string("{\"nodes\":[],\"x\":{\"y\":[1,2,{}]}}"),
                               std::string("{\"nodes\":[],}"),
                               std::string("{\"nodes\":[,]}"),
                               std::string("{\"nodes\":[{\"type\":\"dir\"},]}"),
                               std::string("{\"nodes\" [] }"),
                               std::string("{'nodes':[]}"),
                               std::string("{\"nodes\":[]")}) {
    same(t);
  }
}

TEST_CASE("tree parser: numbers as before", "[tree]") {
  // clang-format off
  const std::vector<std::string> values = {
      "0", "1", "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
      "99999999999999999999999999999", "-1", "-0", "01", "00", "1.0", "1.", ".5", "1e2", "1E2",
      "1e", "1e+", "1e400", "-1e400", "1e-400", "1.5e-7", "+1", "-", "0x10", "NaN", "Infinity",
      "null", "true", "\"1\"", "[1]", "1 2", "2e308", "1" + std::string(400, '0'),
      "9223372036854775808", "-9223372036854775809"};
  // clang-format on
  for (const std::string& v : values) {
    for (const char* key :
         {"mode", "uid", "gid", "size", "inode", "device", "device_id", "links", "zz_unknown"}) {
      same(typed(std::string("\"") + key + "\":" + v));
    }
    same(typed(R"("generic_attributes":{"n":)" + v + "}"));
  }
}

TEST_CASE("tree parser: nulls, ids, times, base64 and types as before", "[tree]") {
  // clang-format off
  for (const char* key : {"name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user",
                          "group", "inode", "device_id", "size", "links", "linktarget",
                          "linktarget_raw", "extended_attributes", "generic_attributes", "device",
                          "content", "subtree", "zz"}) {
    // clang-format on

    same(typed(std::string("\"") + key + "\":null"));
    same(node(std::string("\"") + key + "\":null"));
  }
  const std::string id = std::string("\"") + kId + "\"";
  std::string upper = id;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  for (const std::string& f : std::vector<std::string>{
           "\"subtree\":" + id,
           "\"subtree\":" + upper,
           R"("subtree":"abc")",
           R"("subtree":1)",
           "\"content\":[" + id + "," + upper + "]",
           "\"content\":[" + id + ",null]",
           "\"content\":[]",
           "\"content\":" + id,
           "\"content\":[" + id + ",]",
           R"("mtime":"2021-03-04T05:06:07.123456789+01:00")",
           R"("mtime":"2021-13-04T05:06:07Z")",
           R"("atime":"x")",
           R"("ctime":5)",
           R"("linktarget_raw":"YWJj")",
           R"("linktarget_raw":"@@")",
           R"("linktarget_raw":"",)"
           R"("linktarget":"x")",
           R"("linktarget":"x","linktarget_raw":"eQ==")",
           R"("extended_attributes":[null,{}])",
           R"("extended_attributes":[{"name":"a","value":"YQ==","other":[{}]}])",
           R"("extended_attributes":[{"name":"a","value":"!"}])",
           R"("extended_attributes":{})",
           R"("extended_attributes":[1])",
           R"("extended_attributes":[{"value":null,"name":null}])",
           R"("generic_attributes":{"b":1,"a":{"y":[1,{}],"x":"\u00e9"}})",
           R"("generic_attributes":{})",
           R"("generic_attributes":[])",
           R"("generic_attributes":"s")",
           R"("generic_attributes":{"a":1,"a":2})"}) {
    same(typed(f));
  }
  for (const char* t : {"file", "dir", "symlink", "dev", "chardev", "fifo", "socket", "irregular",
                        "File", "", "unknown"}) {
    same(node(std::string(R"("type":")") + t + "\""));
  }
}

TEST_CASE("tree parser: key order, duplicate keys and unknown fields as before", "[tree]") {
  const std::vector<std::string> cases = {
      R"("subtree":null,"content":[],"size":1,"type":"dir","name":"z","mode":5)",
      R"("type":"file","mode":"x","mode":1)",
      R"("type":"file","mode":1,"mode":"x")",
      R"("type":"bogus","type":"dir")",
      R"("type":"dir","type":"bogus")",
      R"("type":"file","name":"\\q","name":"ok")",
      R"("type":"file","name":"ok","name":"\\q")",
      R"("type":"file","zz":1,"a":2,"zz":[3],"b":{"c":[{"d":null}]})",
      R"("type":"file","zz":1,"zz":1e400)",
      R"("type":"file","size":1e400,"size":1)",
      R"("type":"file","size":01,"size":1)",
      R"("type":"file","user":1,"user":"u")",
      R"("type":"file","linktarget_raw":"YQ==","linktarget_raw":null,"linktarget":"b")",
      R"("type":"file","generic_attributes":[],"generic_attributes":{"a":1})",
      R"("type":"file","content":[1],"content":null)",
      R"("type":"file","extended_attributes":[{"name":1,"name":"a"}])",
      R"("type":"file","extended_attributes":[{"name":"a","name":1}])",
      R"("type":"file","extended_attributes":[{"value":"!","value":"YQ=="}])",
      R"("type":"file","extended_attributes":[{"name":1}],"extended_attributes":[])",
      R"("type":"file","arr":[[],{},[[]],"s",true,false,null,-1,1.5,1e5],"obj":{"":{}})",
      R"("type":"file","nodes":[{"type":"bogus"}])"};
  for (const auto& c : cases) same(node(c));
  for (const std::string& t :
       {std::string(R"({"nodes":[{"type":"x"}],"nodes":[]})"),
        std::string(R"({"nodes":[],"nodes":[{"type":"x"}]})"),
        std::string(R"({"nodes":[{"type":"dir"}],"other":1,"nodes":null})"),
        std::string(R"({"nodes":[{"type":"dir","size":1e999}],"nodes":[]})")}) {
    same(t);
  }
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  same(typed("\"zz\":" + deep));
  same(typed("\"zz\":" + deep.substr(1)));
  same(typed("\"generic_attributes\":{\"a\":" + deep + "}"));
}

namespace {

// Seeded random trees whose serialization parses back to the same nodes.
class TreeGen {
 public:
  explicit TreeGen(std::uint32_t seed) : rng_(seed) {}

  Tree tree() {
    Tree t;
    const int n = pick(0, 12);
    for (int i = 0; i < n; ++i) t.nodes.push_back(node());
    return t;
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::uint64_t u64() {
    switch (pick(0, 3)) {
      case 0:
        return 0;
      case 1:
        return static_cast<std::uint64_t>(pick(1, 1000));
      case 2:
        return UINT64_MAX;
      default:
        return rng_() | (static_cast<std::uint64_t>(rng_()) << 32);
    }
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u64()); }

  // Arbitrary bytes (names and raw link targets round-trip any bytes).
  std::string bytes() {
    std::string s(static_cast<std::size_t>(pick(0, 12)), '\0');
    for (char& c : s) c = static_cast<char>(pick(0, 3) == 0 ? pick(0, 255) : pick('a', 'z'));
    return s;
  }
  // Valid UTF-8 without U+FFFD (plain JSON strings round-trip exactly those).
  std::string text() {
    // clang-format off
    static const std::vector<std::string> kPieces = {
        "a", "Z", " ", "\"", "\\", "/", "<", "&", "\n", "\x01", "\x7f", "\xc3\xa9",
        "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "\xe4\xb8\xad", "\t"};
    // clang-format on

    std::string s;
    for (int i = pick(0, 8); i > 0; --i)
      s += kPieces[static_cast<std::size_t>(pick(0, static_cast<int>(kPieces.size()) - 1))];
    return s;
  }
  Id id() {
    Bytes b(32);
    for (auto& x : b) x = static_cast<std::byte>(pick(0, 255));
    return Id::from_span(b);
  }
  GoTime time() {
    static constexpr std::int32_t kOffsets[] = {0, 3600, -18000, 19800, 50400, -43200};
    return GoTime{static_cast<std::int64_t>(rng_() % 4000000000u),
                  static_cast<std::uint32_t>(pick(0, 3) == 0 ? 0 : rng_() % 1000000000u),
                  kOffsets[pick(0, 5)]};
  }
  Node node();
  void extras(Node& n);

  std::mt19937 rng_;
};

Node TreeGen::node() {
  Node n;
  n.name = bytes();
  n.type = static_cast<NodeType>(pick(0, 7));
  n.mode = u32();
  n.mtime = time();
  n.atime = time();
  n.ctime = time();
  n.uid = u32();
  n.gid = u32();
  n.user = text();
  n.group = text();
  n.inode = u64();
  n.device_id = u64();
  n.size = u64();
  n.links = u64();
  n.device = u64();
  if (n.type == NodeType::kFile) {
    for (int i = pick(0, 3); i > 0; --i) n.content.push_back(id());
  }
  if (n.type == NodeType::kDir && pick(0, 3) > 0)
    n.subtree = id();
  extras(n);
  return n;
}

void TreeGen::extras(Node& n) {
  n.has_linktarget_raw = pick(0, 2) == 0;
  n.linktarget = n.has_linktarget_raw ? bytes() : text();
  n.has_linktarget_raw = n.has_linktarget_raw && !n.linktarget.empty();
  for (int i = pick(0, 2); i > 0; --i) {
    const std::string v = bytes();
    const ByteSpan raw = as_bytes(v);
    n.xattrs.push_back({text(), Bytes(raw.begin(), raw.end())});
  }
  static const std::vector<std::string> kGeneric = {
      "", R"({"a":1})", R"({"a":{"z":[1,"x",null],"b":true},"b":"\u003c"})"};
  static const std::vector<std::string> kUnknown = {"", R"({"zz_future":[1,{"k":"v"}]})",
                                                    R"({"b_new":-5,"a_new":{"x":[]},"c_new":"é"})"};
  n.generic_attributes_json = kGeneric[static_cast<std::size_t>(pick(0, 2))];
  n.unknown_fields_json = kUnknown[static_cast<std::size_t>(pick(0, 2))];
}

// The same tree with each node's keys shuffled and nlohmann's pretty-printed whitespace.
std::string shuffled(const std::string& blob, std::mt19937& rng) {
  auto j = nlohmann::ordered_json::parse(blob);
  for (auto& n : j["nodes"]) {
    std::vector<std::pair<std::string, nlohmann::ordered_json>> items;
    for (auto it = n.begin(); it != n.end(); ++it) items.emplace_back(it.key(), it.value());
    std::shuffle(items.begin(), items.end(), rng);
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (auto& [k, v] : items) o[k] = v;
    n = o;
  }
  return j.dump(1, '\t');
}

}  // namespace

TEST_CASE("tree parser: random trees round-trip and match the reference", "[tree]") {
  TreeGen gen(20261126);
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    Tree t = gen.tree();
    const std::string blob = serialize_tree(t);
    INFO(shown(blob));
    auto parsed = fast(blob);
    REQUIRE(parsed);
    REQUIRE(parsed->nodes == t.nodes);
    REQUIRE(serialize_tree(*parsed) == blob);
    REQUIRE(same(blob));
    REQUIRE(same(shuffled(blob, rng)));
  }
}

TEST_CASE("tree parser: every truncation of a valid tree is kCorrupt", "[tree]") {
  TreeGen gen(99);
  Tree t;
  while (t.nodes.size() < 4) t = gen.tree();
  std::vector<std::string> blobs = {serialize_tree(t),
                                    slurp(data_dir() / "trees" / "s0_data.json")};
  std::mt19937 rng(3);
  blobs.push_back(shuffled(blobs[0], rng));
  for (std::size_t b = 0; b < blobs.size(); ++b) {
    const std::string& blob = blobs[b];
    REQUIRE(same(blob));
    const std::size_t end = blob.rfind('}');
    // Every offset of the compact blobs; every 5th of the (long) pretty-printed one.
    for (std::size_t len = 0; len < end; len += b == 2 ? 5 : 1) {
      const std::string cut = blob.substr(0, len);
      auto r = fast(cut);
      if (r || r.error().code != Errc::kCorrupt)
        FAIL("accepted or not kCorrupt: " << shown(cut));
      if (len % 29 == 0)
        same(cut);
    }
  }
}
