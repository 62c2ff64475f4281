// Tests of the tree blob codec: golden blobs written by restic 0.14 (tests/data/trees, made by
// tests/data/make_golden.sh), hand-written nodes, unknown fields and malformed input.
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "repo/tree/node.h"

using namespace coffer::repo;

namespace {

std::filesystem::path data_dir() {
  // Tests run from the build tree; the golden files live next to this source file.
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "file id" lines of a MANIFEST.
std::map<std::string, std::string> read_manifest(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  std::istringstream lines(read_file(dir / "MANIFEST"));
  std::string file, id;
  while (lines >> file >> id) out[file] = id;
  return out;
}

Tree load_tree(const std::string& file) {
  auto tree = parse_tree(as_bytes(read_file(data_dir() / "trees" / file)));
  REQUIRE(tree);
  return *tree;
}

const Node& find(const Tree& t, const std::string& raw_name) {
  for (const auto& n : t.nodes) {
    if (n.name == raw_name)
      return n;
  }
  FAIL("no node named " << raw_name);
  static const Node kNone;
  return kNone;
}

std::string xattr(const Node& n, const std::string& name) {
  for (const auto& xa : n.xattrs) {
    if (xa.name == name)
      return to_string(xa.value);
  }
  FAIL("no xattr " << name);
  return {};
}

std::int64_t utc(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(timegm(&tm));
}

Result<Tree> parse_text(const std::string& s) { return parse_tree(as_bytes(s)); }

std::string one_node(const std::string& fields) { return "{\"nodes\":[{" + fields + "}]}\n"; }

constexpr const char* kTimes =
    R"("mtime":"2021-03-04T05:06:07.5+01:00","atime":"2021-03-04T05:06:07.5+01:00",)"
    R"("ctime":"2022-01-01T00:00:00Z")";

}  // namespace

TEST_CASE("golden restic trees round-trip byte for byte", "[tree][golden]") {
  auto manifest = read_manifest(data_dir() / "trees");
  REQUIRE(manifest.size() >= 8);
  for (const auto& [file, id] : manifest) {
    INFO(file);
    std::string blob = read_file(data_dir() / "trees" / file);
    CHECK(Id::hash(as_bytes(blob)).hex() == id);
    auto tree = parse_tree(as_bytes(blob));
    REQUIRE(tree);
    std::string again = serialize_tree(*tree);
    CHECK(again == blob);
    CHECK(Id::hash(as_bytes(again)).hex() == id);
    for (std::size_t i = 1; i < tree->nodes.size(); ++i) {
      CHECK(tree->nodes[i - 1].name < tree->nodes[i].name);  // restic sorts by raw bytes
    }
  }
}

TEST_CASE("golden tree: awkward names decode to raw bytes", "[tree][golden]") {
  Tree t = load_tree("s0_data.json");
  for (const char* name :
       {"nl\nname", "name_\xff.txt", "q\"uo\\te<&>.txt", "with space.txt", "привет.txt", "文件.txt",
        "😀.txt", "ctl\t\x7f\x01_ \u00a0\u200b\u2028\ue000",
        "sup_\U000e0001\U0001fae0_ok\u0301\u00e9"}) {
    CHECK(find(t, name).type == NodeType::kFile);
  }
  CHECK(find(t, std::string(251, 'L') + ".txt").size == 1);
}

TEST_CASE("golden tree: metadata of special files", "[tree][golden]") {
  Tree t = load_tree("s0_data.json");
  auto trees = read_manifest(data_dir() / "trees");

  const Node& bad = find(t, "link_bad");
  CHECK(bad.type == NodeType::kSymlink);
  CHECK(bad.linktarget == "target_\xef\xbf\xbd\xef\xbf\xbd/x");  // 0.14 keeps only U+FFFD
  CHECK_FALSE(bad.has_linktarget_raw);
  CHECK(bad.unix_mode() == (S_IFLNK | 0777));
  CHECK(find(t, "link_ok").linktarget == "plain.txt");

  const Node& plain = find(t, "plain.txt");
  CHECK(xattr(plain, "user.test") == std::string("val\0u", 5));
  CHECK(xattr(plain, "user.empty").empty());
  CHECK(xattr(plain, "user.utf") == "ünï<&>");
  CHECK(plain.size == 6);
  CHECK(plain.content.size() == 1);
  CHECK(plain.mtime == GoTime{utc(2021, 3, 4, 4, 6, 7), 123456789, 3600});
  CHECK(plain.atime == plain.mtime);
  CHECK(xattr(find(t, "sub"), "user.dirattr") == "1");

  const Node& null_dev = find(t, "null_dev");
  CHECK(null_dev.type == NodeType::kCharDev);
  CHECK(null_dev.device == makedev(1, 3));
  CHECK(null_dev.unix_mode() == (S_IFCHR | 0644));
  const Node& loop_dev = find(t, "loop_dev");
  CHECK(loop_dev.type == NodeType::kDev);
  CHECK(loop_dev.device == makedev(7, 200));
  CHECK(loop_dev.unix_mode() == (S_IFBLK | 0600));
  CHECK(find(t, "fifo").unix_mode() == (S_IFIFO | 0644));
  CHECK(find(t, "fifo").links == 0);  // restic does not set links for fifos

  const Node& h1 = find(t, "hard1");
  const Node& h2 = find(t, "hard2");
  CHECK(h1.links == 3);
  CHECK(h1.inode == h2.inode);
  CHECK(h1.device_id == h2.device_id);
  CHECK(find(load_tree("s0_data_sub.json"), "hard3").inode == h1.inode);

  CHECK(find(t, "suid").unix_mode() == (S_IFREG | 04755));
  CHECK(find(t, "sgid_dir").unix_mode() == (S_IFDIR | 02750));
  const Node& sticky = find(t, "sticky");
  CHECK(sticky.unix_mode() == (S_IFDIR | 01777));
  REQUIRE(sticky.subtree);
  CHECK(sticky.subtree->hex() == trees.at("s0_data_sticky.json"));
  CHECK(sticky.content.empty());

  const Node& empty = find(t, "empty");
  CHECK(empty.size == 0);
  CHECK(empty.content.empty());
  CHECK(empty.mtime == GoTime{utc(1999, 12, 31, 23, 0, 0), 0, 3600});
  const Node& owned = find(t, "owned");
  CHECK(owned.uid == 12345);
  CHECK(owned.gid == 54321);
  CHECK(owned.user.empty());
  CHECK(find(t, "big.bin").content.size() >= 2);
  CHECK(find(t, "big.bin").size == 3000000);
}

TEST_CASE("golden trees: times in several zones", "[tree][golden][time]") {
  Tree berlin = load_tree("s0_data.json");
  // 1890 Berlin is LMT +00:53:28; Go writes "+00:53", so the text is the truth we keep.
  CHECK(find(berlin, "suid").mtime == GoTime{utc(1890, 5, 5, 9, 7, 0), 250000000, 3180});
  CHECK(find(berlin, "with space.txt").mtime == GoTime{utc(2021, 7, 4, 3, 6, 7), 120000000, 7200});
  CHECK(find(load_tree("s0_data_sub_deeper.json"), "file.bin").mtime ==
        GoTime{utc(9999, 12, 31, 22, 59, 59), 999999999, 3600});

  Tree monrovia = load_tree("s1_dev_shm_coffer-golden_src_data.json");
  CHECK(find(monrovia, "owned").mtime == GoTime{utc(1960, 6, 1, 10, 59, 30), 500000000, -2640});
  CHECK(find(monrovia, "suid").mtime.offset_seconds == -43 * 60);
  CHECK(find(monrovia, "plain.txt").mtime == GoTime{utc(2021, 3, 4, 4, 6, 7), 123456789, 0});
}

TEST_CASE("serialize_tree writes restic's layout for hand-built nodes", "[tree]") {
  CHECK(serialize_tree(Tree{}) == "{\"nodes\":[]}\n");
  CHECK(Id::hash(as_bytes(serialize_tree(Tree{}))).hex().substr(0, 8) == "ac08ce34");

  Id blob = Id::hash(as_bytes(std::string("x")));
  Node file;
  file.name = "a<b>\n";
  file.mode = 0644;
  file.mtime = file.atime = GoTime{1, 500, 0};
  file.ctime = GoTime{1, 0, 3600};
  file.user = "ü";
  file.size = 1;
  file.links = 1;
  file.xattrs = {{"user.x", to_bytes("hi")}};
  file.content = {blob};
  Node empty_dir;
  empty_dir.name = "d";
  empty_dir.type = NodeType::kDir;
  empty_dir.subtree = blob;
  empty_dir.uid = 7;
  Tree t{{file, empty_dir}};
  std::string expected =
      R"({"nodes":[{"name":"a\u003cb\u003e\\n","type":"file","mode":420,)"
      R"("mtime":"1970-01-01T00:00:01.0000005Z","atime":"1970-01-01T00:00:01.0000005Z",)"
      R"("ctime":"1970-01-01T01:00:01+01:00","uid":0,"gid":0,"user":"ü","size":1,"links":1,)"
      R"("extended_attributes":[{"name":"user.x","value":"aGk="}],"content":[")" +
      blob.hex() +
      R"("]},{"name":"d","type":"dir","mtime":"1970-01-01T00:00:00Z",)"
      R"("atime":"1970-01-01T00:00:00Z","ctime":"1970-01-01T00:00:00Z","uid":7,"gid":0,)"
      R"("content":null,"subtree":")" +
      blob.hex() + "\"}]}\n";
  CHECK(serialize_tree(t) == expected);
  auto back = parse_text(expected);
  REQUIRE(back);
  REQUIRE(back->nodes.size() == 2);
  CHECK(back->nodes[0] == file);
  CHECK(back->nodes[1] == empty_dir);

  Node empty_file;
  empty_file.name = "e";
  CHECK(serialize_tree(Tree{{empty_file}}).find(R"("content":[])") != std::string::npos);
}

TEST_CASE("linktarget_raw (restic 0.16+) overrides linktarget", "[tree]") {
  std::string text =
      one_node(std::string(R"("name":"l","type":"symlink","mode":134218239,)") + kTimes +
               R"(,"uid":0,"gid":0,"links":1,"linktarget":"a\ufffd",)"
               R"("linktarget_raw":"Yf8=","content":null)");
  auto t = parse_text(text);
  REQUIRE(t);
  CHECK(t->nodes[0].linktarget == "a\xff");
  CHECK(t->nodes[0].has_linktarget_raw);
  CHECK(serialize_tree(*t) == text);
  t->nodes[0].has_linktarget_raw = false;  // as restic 0.14 would write it
  CHECK(serialize_tree(*t).find("linktarget_raw") == std::string::npos);
  CHECK(serialize_tree(*t).find(R"("linktarget":"a\ufffd",)") != std::string::npos);
}

TEST_CASE("U+FFFD in link targets and xattr names is written as restic 0.14 wrote it", "[tree]") {
  Node link;
  link.name = "l";
  link.type = NodeType::kSymlink;
  link.linktarget = "x\xef\xbf\xbd";  // what decoding restic 0.14's "x\ufffd" gives
  link.xattrs = {{"user.\xef\xbf\xbd", {}}, {"user.\xfe", {}}};
  std::string out = serialize_tree(Tree{{link}});
  CHECK(out.find(R"("linktarget":"x\ufffd",)") != std::string::npos);
  CHECK(out.find(R"({"name":"user.\ufffd","value":""},{"name":"user.\ufffd","value":""})") !=
        std::string::npos);
  // With the raw bytes known (restic 0.16+), Go's own rules apply: valid UTF-8 is literal.
  link.has_linktarget_raw = true;
  out = serialize_tree(Tree{{link}});
  CHECK(out.find("\"linktarget\":\"x\xef\xbf\xbd\",\"linktarget_raw\":\"eO+/vQ==\"") !=
        std::string::npos);
}

TEST_CASE("unknown fields and generic_attributes are kept", "[tree]") {
  std::string known =
      std::string(R"("name":"f","type":"file",)") + kTimes + R"(,"uid":0,"gid":0,"size":3)";
  std::string tail = R"("content":[],"error":"x\u003c","zz":{"b":[1,-2,true,null],"a":"é"}})";
  std::string generic =
      R"("generic_attributes":{"windows.creation_time":{"LowDateTime":1,"HighDateTime":2},)"
      R"("windows.file_attributes":32},)";
  std::string text = "{\"nodes\":[{" + known + "," + generic + tail + "]}\n";
  auto t = parse_text(text);
  REQUIRE(t);
  const Node& n = t->nodes[0];
  CHECK(n.unknown_fields_json == R"({"error":"x\u003c","zz":{"b":[1,-2,true,null],"a":"é"}})");
  CHECK(serialize_tree(*t) == text);

  // Unknown keys before known ones move behind them; Go map keys come out sorted.
  std::string shuffled = R"({"nodes":[{"new":1,)" + known +
                         R"(,"generic_attributes":{"windows.file_attributes":32,)"
                         R"("windows.creation_time":{"LowDateTime":1,"HighDateTime":2}},)"
                         R"("content":[]}]})";
  auto t2 = parse_text(shuffled);
  REQUIRE(t2);
  CHECK(serialize_tree(*t2) ==
        "{\"nodes\":[{" + known + "," + generic + R"("content":[],"new":1}]})" + "\n");
}

TEST_CASE("Go decoding leniency: null and absent fields", "[tree]") {
  auto t = parse_text(one_node(
      R"("name":null,"type":"fifo","mode":null,"uid":null,"user":null,"content":null,)"
      R"("subtree":null,"extended_attributes":null,"generic_attributes":null,"mtime":null)"));
  REQUIRE(t);
  const Node& n = t->nodes[0];
  CHECK(n.name.empty());
  CHECK(n.mode == 0);
  CHECK(format_go_time(n.mtime) == "0001-01-01T00:00:00Z");  // Go's zero time
  CHECK(format_go_time(n.ctime) == "0001-01-01T00:00:00Z");
  CHECK_FALSE(n.subtree);
  CHECK(n.generic_attributes_json.empty());
  CHECK(parse_text("{\"nodes\":null}")->nodes.empty());
  CHECK(parse_text("{}")->nodes.empty());
  CHECK(parse_text("{\"nodes\":[],\"other\":1}\n")->nodes.empty());
}

TEST_CASE("malformed tree blobs are kCorrupt", "[tree]") {
  const std::string base = std::string(R"("name":"n","type":"file",)") + kTimes;
  const std::string bad[] = {
      "",
      "null",
      "[]",
      "{\"nodes\":[",
      "{\"nodes\":{}}",
      "{\"nodes\":[1]}",
      "{\"nodes\":[null]}",
      "{\"nodes\":[{\"name\":\"x\"}]}",  // no type
      "{\"nodes\":[]}\xff",
      "{\"nodes\":[{\"name\":\"\xff\",\"type\":\"file\"}]}",  // invalid UTF-8 in JSON
      one_node(R"("name":"n","type":"door")"),
      one_node(R"("name":"n","type":7)"),
      one_node(R"("name":"bad\\q","type":"file")"),
      one_node(R"("name":"quo\"te","type":"file")"),
      one_node(R"("name":"\\ud800","type":"file")"),
      one_node(R"("name":5,"type":"file")"),
      one_node(base + R"(,"mode":-1)"),
      one_node(base + R"(,"mode":"420")"),
      one_node(base + R"(,"mode":1.5)"),
      one_node(base + R"(,"mode":4294967296)"),
      one_node(base + R"(,"uid":4294967296)"),
      one_node(base + R"(,"size":18446744073709551616)"),
      one_node(base + R"(,"mtime":"yesterday")"),
      one_node(base + R"(,"atime":12)"),
      one_node(base + R"(,"content":["abc"])"),
      one_node(base + R"(,"content":"abc")"),
      one_node(base + R"(,"content":[null])"),
      one_node(base + R"(,"content":[")" + std::string(63, 'a') + "g\"]"),
      one_node(base + R"(,"subtree":12)"),
      one_node(base + R"(,"subtree":")" + std::string(62, 'a') + "\""),
      one_node(base + R"(,"extended_attributes":{})"),
      one_node(base + R"(,"extended_attributes":[{"name":"a","value":"!!"}])"),
      one_node(base + R"(,"extended_attributes":[{"name":1,"value":""}])"),
      one_node(base + R"(,"extended_attributes":[7])"),
      one_node(base + R"(,"linktarget_raw":"@@@")"),
      one_node(base + R"(,"generic_attributes":[1])"),
      one_node(base + R"(,"user":[])"),
  };
  for (const auto& s : bad) {
    INFO(s);
    auto t = parse_text(s);
    REQUIRE_FALSE(t);
    CHECK(t.error().code == Errc::kCorrupt);
    CHECK_FALSE(t.error().message.empty());
  }
}

TEST_CASE("damaged golden blobs never crash the parser", "[tree][golden]") {
  const std::string blob = read_file(data_dir() / "trees" / "s0_data.json");
  for (std::size_t cut = 0; cut + 1 < blob.size(); cut += 13) {  // all but "\n" is valid
    auto t = parse_text(blob.substr(0, cut));
    REQUIRE_FALSE(t);
    CHECK(t.error().code == Errc::kCorrupt);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string damaged = blob;
    for (int k = 0; k < 3; ++k) {
      damaged[rng() % damaged.size()] = static_cast<char>(rng() & 0xff);
    }
    auto t = parse_text(damaged);
    if (!t)
      CHECK(t.error().code == Errc::kCorrupt);
  }
}
