// Tree blob JSON <-> Tree (restic-format.md §9), byte-compatible with restic 0.14.
#include "repo/tree/node.h"

#include <array>
#include <utility>

#include <sys/stat.h>

#include "repo/tree/go_json.h"
#include "repo/tree/go_text.h"
#include "repo/tree/tree_parse.h"

namespace coffer::repo {
namespace {

using detail::append_key;
using detail::Json;

// Go os.FileMode bits restic keeps.
constexpr std::uint32_t kModeDir = 1u << 31;
constexpr std::uint32_t kModeSymlink = 1u << 27;
constexpr std::uint32_t kModeDevice = 1u << 26;
constexpr std::uint32_t kModeNamedPipe = 1u << 25;
constexpr std::uint32_t kModeSocket = 1u << 24;
constexpr std::uint32_t kModeSetuid = 1u << 23;
constexpr std::uint32_t kModeSetgid = 1u << 22;
constexpr std::uint32_t kModeCharDevice = 1u << 21;
constexpr std::uint32_t kModeSticky = 1u << 20;

constexpr std::array<const char*, 8> kTypeNames = {"file",    "dir",  "symlink", "dev",
                                                   "chardev", "fifo", "socket",  "irregular"};

// Every key a node may carry, in restic's serialization order.
// clang-format off
constexpr std::array<std::string_view, 21> kNodeKeys = {
    "name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group", "inode",
    "device_id", "size", "links", "linktarget", "linktarget_raw", "extended_attributes",
    "generic_attributes", "device", "content", "subtree"};
// clang-format on

constexpr std::pair<std::string_view, std::uint32_t Node::*> kU32Fields[] = {
    {"mode", &Node::mode}, {"uid", &Node::uid}, {"gid", &Node::gid}};
constexpr std::pair<std::string_view, std::uint64_t Node::*> kU64Fields[] = {
    {"inode", &Node::inode},
    {"device_id", &Node::device_id},
    {"size", &Node::size},
    {"links", &Node::links},
    {"device", &Node::device}};
constexpr std::pair<std::string_view, GoTime Node::*> kTimeFields[] = {
    {"mtime", &Node::mtime}, {"atime", &Node::atime}, {"ctime", &Node::ctime}};
constexpr std::pair<std::string_view, std::string Node::*> kStringFields[] = {
    {"user", &Node::user}, {"group", &Node::group}, {"linktarget", &Node::linktarget}};

Result<NodeType> parse_type(const Json& v) {
  COFFER_ASSIGN_OR_RETURN(std::string name, detail::json_to_string(v));
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (name == kTypeNames[i])
      return static_cast<NodeType>(i);
  }
  return fail(Errc::kCorrupt, "unknown node type \"" + name.substr(0, 64) + "\"");
}

Result<Bytes> parse_base64(const Json& v) {
  COFFER_ASSIGN_OR_RETURN(std::string text, detail::json_to_string(v));
  Bytes out;
  if (!base64_decode(text, out))
    return fail(Errc::kCorrupt, "invalid base64");
  return out;
}

// A `null` value (a Go nil slice) reads as empty and is written back as "" (restic 0.14 on
// Linux writes "" for an empty value, never null).
Result<std::vector<ExtendedAttribute>> parse_xattrs(const Json& v) {
  std::vector<ExtendedAttribute> out;
  if (v.is_null())
    return out;
  if (!v.is_array())
    return fail(Errc::kCorrupt, "extended_attributes is not a list");
  for (const Json& e : v) {
    if (!e.is_object() && !e.is_null())
      return fail(Errc::kCorrupt, "xattr is not an object");
    ExtendedAttribute xa;
    if (auto it = e.find("name"); e.is_object() && it != e.end()) {
      COFFER_ASSIGN_OR_RETURN(xa.name, detail::json_to_string(*it));
    }
    if (auto it = e.find("value"); e.is_object() && it != e.end()) {
      COFFER_ASSIGN_OR_RETURN(xa.value, parse_base64(*it));
    }
    out.push_back(std::move(xa));
  }
  return out;
}

struct NodeParse {
  Node node;
  std::optional<Bytes> linktarget_raw;
  Json unknown = Json::object();
};

// Handles the keys that are not plain numbers, times or strings.
Result<void> set_special_field(NodeParse& p, const std::string& key, const Json& v) {
  Node& n = p.node;
  if (key == "name") {
    COFFER_ASSIGN_OR_RETURN(std::string quoted, detail::json_to_string(v));
    COFFER_ASSIGN_OR_RETURN(n.name, go_unquote(quoted));
  } else if (key == "type") {
    COFFER_ASSIGN_OR_RETURN(n.type, parse_type(v));
  } else if (key == "linktarget_raw") {
    p.linktarget_raw.reset();
    if (!v.is_null()) {
      COFFER_ASSIGN_OR_RETURN(p.linktarget_raw, parse_base64(v));
    }
  } else if (key == "extended_attributes") {
    COFFER_ASSIGN_OR_RETURN(n.xattrs, parse_xattrs(v));
  } else if (key == "generic_attributes") {
    COFFER_ASSIGN_OR_RETURN(n.generic_attributes_json, detail::json_object_text(v, true));
  } else if (key == "content") {
    COFFER_ASSIGN_OR_RETURN(n.content, detail::json_to_ids(v));
  } else if (key == "subtree") {
    COFFER_ASSIGN_OR_RETURN(n.subtree, detail::json_to_optional_id(v));
  } else {
    p.unknown[key] = v;
  }
  return {};
}

Result<void> set_field(NodeParse& p, const std::string& key, const Json& v) {
  for (const auto& [k, member] : kU32Fields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(auto n, detail::json_to_uint(v, UINT32_MAX));
    p.node.*member = static_cast<std::uint32_t>(n);
    return {};
  }
  for (const auto& [k, member] : kU64Fields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.node.*member, detail::json_to_uint(v, UINT64_MAX));
    return {};
  }
  for (const auto& [k, member] : kTimeFields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.node.*member, detail::json_to_time(v));
    return {};
  }
  for (const auto& [k, member] : kStringFields) {
    if (key != k)
      continue;
    COFFER_ASSIGN_OR_RETURN(p.node.*member, detail::json_to_string(v));
    return {};
  }
  return set_special_field(p, key, v);
}

Result<Node> parse_node(const Json& j) {
  if (!j.is_object())
    return fail(Errc::kCorrupt, "node is not an object");
  NodeParse p;
  // Go leaves absent times at its zero time.
  p.node.mtime = p.node.atime = p.node.ctime = GoTime{detail::kGoZeroTimeUnix, 0, 0};
  bool has_type = false;
  for (const auto& [key, value] : j.items()) {
    has_type = has_type || key == "type";
    COFFER_TRY_CTX(set_field(p, key, value), "field \"" + key + "\"");
  }
  if (!has_type)
    return fail(Errc::kCorrupt, "node has no type");
  if (p.linktarget_raw) {
    p.node.linktarget = to_string(*p.linktarget_raw);
    p.node.has_linktarget_raw = true;
  }
  COFFER_ASSIGN_OR_RETURN(p.node.unknown_fields_json, detail::json_object_text(p.unknown, false));
  return std::move(p.node);
}

// Appends `,"key":`.
void next_key(std::string& out, std::string_view key) {
  out.push_back(',');
  append_key(out, key);
}

void append_ids(std::string& out, const std::vector<Id>& ids) {
  out.push_back('[');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    out.push_back('"');
    out += ids[i].hex();
    out.push_back('"');
  }
  out.push_back(']');
}

void append_uint_if(std::string& out, std::string_view key, std::uint64_t v) {
  if (v == 0)
    return;
  next_key(out, key);
  out += std::to_string(v);
}

void append_string_if(std::string& out, std::string_view key, std::string_view v,
                      bool escape_fffd = false) {
  if (v.empty())
    return;
  next_key(out, key);
  detail::append_go_json_string(out, v, escape_fffd);
}

// name ... group (fields 1-10 of §9).
void append_node_head(std::string& out, const Node& n) {
  out += "{";
  append_key(out, "name");
  detail::append_go_json_string(out, go_quote(n.name));
  next_key(out, "type");
  detail::append_go_json_string(out, node_type_name(n.type));
  append_uint_if(out, "mode", n.mode);
  for (const auto& [key, member] : kTimeFields) {
    next_key(out, key);
    detail::append_go_json_string(out, format_go_time(n.*member));
  }
  next_key(out, "uid");
  out += std::to_string(n.uid);
  next_key(out, "gid");
  out += std::to_string(n.gid);
  append_string_if(out, "user", n.user);
  append_string_if(out, "group", n.group);
}

void append_xattrs(std::string& out, const std::vector<ExtendedAttribute>& xattrs) {
  if (xattrs.empty())
    return;
  next_key(out, "extended_attributes");
  out.push_back('[');
  for (std::size_t i = 0; i < xattrs.size(); ++i) {
    out += i > 0 ? ",{" : "{";
    append_key(out, "name");
    detail::append_go_json_string(out, xattrs[i].name, /*escape_fffd=*/true);
    next_key(out, "value");
    out += '"' + base64_encode(xattrs[i].value) + "\"}";
  }
  out.push_back(']');
}

// inode ... subtree, then unknown fields (fields 11-21 of §9).
void append_node_tail(std::string& out, const Node& n) {
  append_uint_if(out, "inode", n.inode);
  append_uint_if(out, "device_id", n.device_id);
  append_uint_if(out, "size", n.size);
  append_uint_if(out, "links", n.links);
  // restic < 0.16 stores each invalid byte of a target as `\ufffd`; JSON decoding turns that
  // into U+FFFD, so without the raw bytes U+FFFD is written back as the escape (a genuine
  // U+FFFD in a target, which Go would write literally, is the rare loser).
  append_string_if(out, "linktarget", n.linktarget, !n.has_linktarget_raw);
  if (n.has_linktarget_raw)
    append_string_if(out, "linktarget_raw", base64_encode(as_bytes(n.linktarget)));
  append_xattrs(out, n.xattrs);
  if (auto generic = detail::canonical_object_text(n.generic_attributes_json, true);
      !generic.empty()) {
    next_key(out, "generic_attributes");
    out += generic;
  }
  append_uint_if(out, "device", n.device);
  // Files always get a list ("[]" when empty), everything else null: a file read with
  // `"content":null` (which restic's check rejects) comes back as "[]".
  next_key(out, "content");
  if (n.type == NodeType::kFile || !n.content.empty()) {
    append_ids(out, n.content);
  } else {
    out += "null";
  }
  if (n.subtree)
    append_string_if(out, "subtree", n.subtree->hex());
  detail::append_unknown_fields(out, n.unknown_fields_json, kNodeKeys);
  out.push_back('}');
}

}  // namespace

const char* node_type_name(NodeType t) {
  auto i = static_cast<std::size_t>(t);
  return i < kTypeNames.size() ? kTypeNames[i] : "irregular";
}

// `irregular` has no POSIX kind; it is presented as a regular file.
std::uint32_t Node::unix_mode() const {
  std::uint32_t m = mode & 0777;
  if (mode & kModeSetuid)
    m |= S_ISUID;
  if (mode & kModeSetgid)
    m |= S_ISGID;
  if (mode & kModeSticky)
    m |= S_ISVTX;
  switch (type) {
    case NodeType::kDir:
      return m | S_IFDIR;
    case NodeType::kSymlink:
      return m | S_IFLNK;
    case NodeType::kDev:
      return m | S_IFBLK;
    case NodeType::kCharDev:
      return m | S_IFCHR;
    case NodeType::kFifo:
      return m | S_IFIFO;
    case NodeType::kSocket:
      return m | S_IFSOCK;
    case NodeType::kFile:
    case NodeType::kIrregular:
      break;
  }
  return m | S_IFREG;
}

std::uint32_t go_mode_from_unix(std::uint32_t st_mode) {
  std::uint32_t m = st_mode & 0777;
  switch (st_mode & S_IFMT) {
    case S_IFDIR:
      m |= kModeDir;
      break;
    case S_IFLNK:
      m |= kModeSymlink;
      break;
    case S_IFBLK:
      m |= kModeDevice;
      break;
    case S_IFCHR:
      m |= kModeDevice | kModeCharDevice;
      break;
    case S_IFIFO:
      m |= kModeNamedPipe;
      break;
    case S_IFSOCK:
      m |= kModeSocket;
      break;
    default:
      break;
  }
  if (st_mode & S_ISUID)
    m |= kModeSetuid;
  if (st_mode & S_ISGID)
    m |= kModeSetgid;
  if (st_mode & S_ISVTX)
    m |= kModeSticky;
  return m;
}

Result<Tree> parse_tree(ByteSpan blob) { return detail::parse_tree_fast(as_chars(blob)); }

// The former DOM-based parser, kept only as the reference of tests/repo/tree_parse_test.cc.
Result<Tree> detail::parse_tree_reference(ByteSpan blob) {
  COFFER_ASSIGN_OR_RETURN(Json j, detail::parse_json(as_chars(blob), "tree blob"));
  if (!j.is_object())
    return fail(Errc::kCorrupt, "tree blob: not a JSON object");
  Tree tree;
  auto it = j.find("nodes");
  if (it == j.end() || it->is_null())
    return tree;
  if (!it->is_array())
    return fail(Errc::kCorrupt, "tree blob: \"nodes\" is not a list");
  tree.nodes.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    auto node = parse_node((*it)[i]);
    if (!node)
      return fail(node.error().with_context("tree blob: node " + std::to_string(i)));
    tree.nodes.push_back(std::move(*node));
  }
  return tree;
}

std::string serialize_tree(const Tree& tree) {
  std::string out = "{\"nodes\":[";
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    if (i > 0)
      out.push_back(',');
    append_node_head(out, tree.nodes[i]);
    append_node_tail(out, tree.nodes[i]);
  }
  out += "]}\n";
  return out;
}

}  // namespace coffer::repo
