// Single-pass tree blob parser (see tree_parse.h). Every reader returns false on any
// problem; where the last of duplicate keys decides (node fields, xattr fields, "nodes"),
// the caller rewinds, checks the value is at least well-formed JSON with skip_value, and
// keeps the failure pending until a later duplicate replaces the value.
#include "repo/tree/tree_parse.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "repo/tree/go_json.h"
#include "repo/tree/go_text.h"
#include "repo/tree/json_scanner.h"

namespace coffer::repo::detail {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// ---- tree blob structure ----

enum Key : int {
  kName,
  kType,
  kMode,
  kMtime,
  kAtime,
  kCtime,
  kUid,
  kGid,
  kUser,
  kGroup,
  kInode,
  kDeviceId,
  kSize,
  kLinks,
  kLinktarget,
  kLinktargetRaw,
  kXattrs,
  kGeneric,
  kDevice,
  kContent,
  kSubtree,
  kUnknown
};

// clang-format off
constexpr std::array<std::string_view, kUnknown> kKeyNames = {
    "name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group", "inode",
    "device_id", "size", "links", "linktarget", "linktarget_raw", "extended_attributes",
    "generic_attributes", "device", "content", "subtree"};
// clang-format on

Key key_of(std::string_view k) {
  for (std::size_t i = 0; i < kKeyNames.size(); ++i) {
    if (kKeyNames[i] == k)
      return static_cast<Key>(i);
  }
  return kUnknown;
}

struct NodeState {
  Node node;
  std::optional<Bytes> linktarget_raw;
  std::optional<Json> unknown;
  std::uint32_t bad = 0;  // bit per Key whose last value was invalid
  bool has_type = false;
};

bool read_string(Scanner& s, std::string& out, std::string& buf) {
  if (s.peek() == 'n') {
    out.clear();
    return s.literal("null");
  }
  std::string_view v;
  if (!s.string(v, buf))
    return false;
  out.assign(v);
  return true;
}

bool read_base64(Scanner& s, Bytes& out, std::string& buf) {
  std::string text;
  out.clear();
  return read_string(s, text, buf) && base64_decode(text, out);
}

bool read_id(Scanner& s, Id& out, std::string& buf) {
  std::string_view v;
  if (!s.string(v, buf))
    return false;
  auto id = Id::parse(v);
  if (id)
    out = *id;
  return id.has_value();
}

bool read_time(Scanner& s, GoTime& out, std::string& buf) {
  if (s.peek() == 'n') {
    out = GoTime{kGoZeroTimeUnix, 0, 0};
    return s.literal("null");
  }
  std::string_view v;
  if (!s.string(v, buf))
    return false;
  auto t = parse_go_time(v);
  if (t)
    out = *t;
  return t.has_value();
}

bool read_type(Scanner& s, NodeType& out, std::string& buf) {
  std::string name;
  if (!read_string(s, name, buf))
    return false;
  for (int i = 0; i <= static_cast<int>(NodeType::kIrregular); ++i) {
    if (name == node_type_name(static_cast<NodeType>(i))) {
      out = static_cast<NodeType>(i);
      return true;
    }
  }
  return false;
}

bool read_name(Scanner& s, std::string& out, std::string& buf) {
  std::string quoted;
  if (!read_string(s, quoted, buf))
    return false;
  auto name = go_unquote(quoted);
  if (name)
    out = std::move(*name);
  return name.has_value();
}

// Reads the value at the cursor with `read`; if that fails, the value must still be
// well-formed JSON (then the failure is returned in `ok`, else the call fails).
template <typename F>
bool guarded(Scanner& s, bool& ok, F&& read) {
  const char* start = s.pos();
  ok = read();
  if (ok)
    return true;
  if (s.broken())
    return false;
  s.rewind(start);
  return s.skip_value();
}

// `{...}` or `null` in an extended_attributes list.
bool read_xattr(Scanner& s, ExtendedAttribute& xa, std::string& buf) {
  if (s.peek() == 'n')
    return s.literal("null");
  if (!s.eat('{'))
    return false;
  if (s.eat('}'))
    return true;
  bool name_ok = true, value_ok = true;
  do {
    std::string_view k;
    if (!s.string(k, buf))
      return false;
    const int which = k == "name" ? 0 : k == "value" ? 1 : 2;
    if (!s.eat(':'))
      return false;
    s.peek();
    if (which == 2 && !s.skip_value())
      return false;
    if (which == 0 && !guarded(s, name_ok, [&] { return read_string(s, xa.name, buf); }))
      return false;
    if (which == 1 && !guarded(s, value_ok, [&] { return read_base64(s, xa.value, buf); }))
      return false;
  } while (s.eat(','));
  return s.eat('}') && name_ok && value_ok;
}

bool read_xattrs(Scanner& s, std::vector<ExtendedAttribute>& out, std::string& buf) {
  out.clear();
  if (s.peek() == 'n')
    return s.literal("null");
  if (!s.eat('['))
    return false;
  if (s.eat(']'))
    return true;
  do {
    ExtendedAttribute xa;
    if (!read_xattr(s, xa, buf))
      return false;
    out.push_back(std::move(xa));
  } while (s.eat(','));
  return s.eat(']');
}

bool read_ids(Scanner& s, std::vector<Id>& out, std::string& buf) {
  out.clear();
  if (s.peek() == 'n')
    return s.literal("null");
  if (!s.eat('['))
    return false;
  if (s.eat(']'))
    return true;
  do {
    Id id;
    if (!read_id(s, id, buf))
      return false;
    out.push_back(id);
  } while (s.eat(','));
  return s.eat(']');
}

// The raw text of the next value, parsed by nlohmann.
bool read_raw(Scanner& s, Json& out) {
  s.peek();
  const char* start = s.pos();
  if (!s.skip_value())
    return false;
  auto j = parse_json(std::string_view(start, s.pos() - start), "value");
  if (j)
    out = std::move(*j);
  return j.has_value();
}

bool read_number_field(Scanner& s, Key k, Node& n) {
  std::uint64_t v = 0;
  const bool narrow = k == kMode || k == kUid || k == kGid;
  if (!s.uint(narrow ? UINT32_MAX : UINT64_MAX, v))
    return false;
  switch (k) {
    case kMode:
      n.mode = static_cast<std::uint32_t>(v);
      break;
    case kUid:
      n.uid = static_cast<std::uint32_t>(v);
      break;
    case kGid:
      n.gid = static_cast<std::uint32_t>(v);
      break;
    case kInode:
      n.inode = v;
      break;
    case kDeviceId:
      n.device_id = v;
      break;
    case kSize:
      n.size = v;
      break;
    case kLinks:
      n.links = v;
      break;
    default:
      n.device = v;
      break;
  }
  return true;
}

bool read_generic(Scanner& s, std::string& out) {
  Json j;
  if (!read_raw(s, j))
    return false;
  auto text = json_object_text(j, /*sort_keys=*/true);
  if (text)
    out = std::move(*text);
  return text.has_value();
}

// The value of known key `k`.
bool read_known(Scanner& s, Key k, NodeState& st, std::string& buf) {
  Node& n = st.node;
  switch (k) {
    case kName:
      return read_name(s, n.name, buf);
    case kType:
      return read_type(s, n.type, buf);
    case kMtime:
      return read_time(s, n.mtime, buf);
    case kAtime:
      return read_time(s, n.atime, buf);
    case kCtime:
      return read_time(s, n.ctime, buf);
    case kUser:
      return read_string(s, n.user, buf);
    case kGroup:
      return read_string(s, n.group, buf);
    case kLinktarget:
      return read_string(s, n.linktarget, buf);
    case kXattrs:
      return read_xattrs(s, n.xattrs, buf);
    case kGeneric:
      return read_generic(s, n.generic_attributes_json);
    case kContent:
      return read_ids(s, n.content, buf);
    case kLinktargetRaw:
      st.linktarget_raw.reset();
      if (s.peek() == 'n')
        return s.literal("null");
      st.linktarget_raw.emplace();
      return read_base64(s, *st.linktarget_raw, buf);
    case kSubtree:
      n.subtree.reset();
      if (s.peek() == 'n')
        return s.literal("null");
      n.subtree.emplace();
      return read_id(s, *n.subtree, buf);
    default:
      return read_number_field(s, k, n);
  }
}

// One `"key":value` member of a node object.
bool read_member(Scanner& s, NodeState& st, std::string& buf) {
  std::string_view kv;
  if (!s.string(kv, buf))
    return false;
  const Key k = key_of(kv);
  if (k == kUnknown) {
    std::string key(kv);
    Json v;
    if (!s.eat(':') || !read_raw(s, v))
      return false;
    if (!st.unknown)
      st.unknown = Json::object();
    (*st.unknown)[key] = std::move(v);
    return true;
  }
  if (!s.eat(':'))
    return false;
  s.peek();
  bool ok = false;
  if (!guarded(s, ok, [&] { return read_known(s, k, st, buf); }))
    return false;
  st.bad = ok ? st.bad & ~(1u << k) : st.bad | (1u << k);
  st.has_type = st.has_type || k == kType;
  return true;
}

bool read_node(Scanner& s, Node& out, std::string& buf) {
  if (!s.eat('{'))
    return false;
  NodeState st;
  // Go leaves absent times at its zero time.
  st.node.mtime = st.node.atime = st.node.ctime = GoTime{kGoZeroTimeUnix, 0, 0};
  if (!s.eat('}')) {
    do {
      if (!read_member(s, st, buf))
        return false;
    } while (s.eat(','));
    if (!s.eat('}'))
      return false;
  }
  if (st.bad != 0 || !st.has_type)
    return false;
  if (st.linktarget_raw) {
    st.node.linktarget = to_string(*st.linktarget_raw);
    st.node.has_linktarget_raw = true;
  }
  if (st.unknown) {
    auto text = json_object_text(*st.unknown, /*sort_keys=*/false);
    if (!text)
      return false;
    st.node.unknown_fields_json = std::move(*text);
  }
  out = std::move(st.node);
  return true;
}

bool read_nodes(Scanner& s, Tree& tree, std::string& buf) {
  tree.nodes.clear();
  if (s.peek() == 'n')
    return s.literal("null");
  if (!s.eat('['))
    return false;
  if (s.eat(']'))
    return true;
  do {
    tree.nodes.emplace_back();
    if (!read_node(s, tree.nodes.back(), buf))
      return false;
  } while (s.eat(','));
  return s.eat(']');
}

// The members of the top-level object; `nodes_ok` tells whether the last "nodes" was valid.
bool read_top(Scanner& s, Tree& tree, bool& nodes_ok) {
  std::string buf;
  if (!s.eat('{'))
    return false;
  if (s.eat('}'))
    return true;
  do {
    std::string_view key;
    if (!s.string(key, buf) || !s.eat(':'))
      return false;
    s.peek();
    if (key != "nodes") {
      if (!s.skip_value())
        return false;
    } else if (!guarded(s, nodes_ok, [&] { return read_nodes(s, tree, buf); })) {
      return false;
    }
  } while (s.eat(','));
  return s.eat('}');
}

}  // namespace

Result<Tree> parse_tree_fast(std::string_view text) {
  if (text.starts_with(kBom))
    text.remove_prefix(kBom.size());
  Scanner s(text);
  Tree tree;
  bool nodes_ok = true;
  if (!read_top(s, tree, nodes_ok) || !s.at_end())
    return fail(Errc::kCorrupt, "tree blob: malformed JSON");
  if (!nodes_ok && tree.nodes.empty())
    return fail(Errc::kCorrupt, "tree blob: \"nodes\" is not a list");
  if (!nodes_ok) {  // the failed read stopped at the node it could not read
    return fail(Errc::kCorrupt, "tree blob: node " + std::to_string(tree.nodes.size() - 1) +
                                    ": invalid or missing field");
  }
  return tree;
}

}  // namespace coffer::repo::detail
