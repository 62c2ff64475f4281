// coffer find: restic 0.14's `find` (cmd/restic/cmd_find.go), same text and --json output.
// The search itself is repo/ops/find.h; this file selects snapshots and prints.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "repo/ops/find.h"
#include "tools/commands.h"
#include "tools/format.h"
#include "tools/go_time_parse.h"

namespace coffer::tools {

namespace {

struct FindOptions {
  std::vector<std::string> patterns;
  std::string oldest, newest;
  std::vector<std::string> snapshots;
  bool blob = false, tree = false, pack = false, show_pack_id = false;
  bool ignore_case = false, long_format = false;
  repo::SnapshotFilter filter;
};

// The Go os.FileMode type bits restic's formatNode adds for a node type.
std::uint32_t type_bits(repo::NodeType t) {
  constexpr std::uint32_t kDir = 1U << 31, kSymlink = 1U << 27, kDevice = 1U << 26,
                          kPipe = 1U << 25, kSocket = 1U << 24, kCharDevice = 1U << 21;
  switch (t) {
    case repo::NodeType::kDir:
      return kDir;
    case repo::NodeType::kSymlink:
      return kSymlink;
    case repo::NodeType::kDev:
      return kDevice;
    case repo::NodeType::kCharDev:
      return kDevice | kCharDevice;
    case repo::NodeType::kFifo:
      return kPipe;
    case repo::NodeType::kSocket:
      return kSocket;
    default:
      return 0;
  }
}

// restic's formatNode(path, node, long) (ls -l and find -l).
std::string format_node(const std::string& path, const repo::Node& n, bool long_format) {
  if (!long_format)
    return path;
  std::string line =
      fmt::format("{} {:5} {:5} {:6} {} {}", go_mode_string(type_bits(n.type) | n.mode), n.uid,
                  n.gid, n.size, local_time(n.mtime), path);
  if (n.type == repo::NodeType::kSymlink)
    line += " -> " + n.linktarget;
  return line;
}

// The "error" field restic 0.14 knows but coffer's Node keeps among the unknown fields.
std::string node_error(const repo::Node& n) {
  if (n.unknown_fields_json.empty())
    return "";
  auto j = nlohmann::json::parse(n.unknown_fields_json, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_string())
    return "";
  return j["error"].get<std::string>();
}

// A match as restic's find --json writes it: path and permissions, then the node's fields
// without name, inode, extended_attributes, device, content and subtree.
std::string match_json(const std::string& path, const repo::Node& n) {
  using repo::go_json_string;
  std::string j = "{\"path\":" + go_json_string(path) + ",\"permissions\":\"" +
                  go_mode_string(n.mode) + "\",\"type\":\"" + repo::node_type_name(n.type) + "\"";
  if (n.mode != 0)
    j += fmt::format(",\"mode\":{}", n.mode);
  j += ",\"mtime\":\"" + repo::format_go_time(n.mtime) + "\",\"atime\":\"" +
       repo::format_go_time(n.atime) + "\",\"ctime\":\"" + repo::format_go_time(n.ctime) + "\"";
  j += fmt::format(",\"uid\":{},\"gid\":{}", n.uid, n.gid);
  if (!n.user.empty())
    j += ",\"user\":" + go_json_string(n.user);
  if (!n.group.empty())
    j += ",\"group\":" + go_json_string(n.group);
  if (n.device_id != 0)
    j += fmt::format(",\"device_id\":{}", n.device_id);
  if (n.size != 0)
    j += fmt::format(",\"size\":{}", n.size);
  if (n.links != 0)
    j += fmt::format(",\"links\":{}", n.links);
  if (!n.linktarget.empty())
    j += ",\"linktarget\":" + go_json_string(n.linktarget);
  if (std::string e = node_error(n); !e.empty())
    j += ",\"error\":" + go_json_string(e);
  return j + "}";
}

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

// restic's statefulOutput: per-snapshot headers (text) or the streamed JSON array.
class Output : public repo::FindSink {
 public:
  Output(bool json, bool quiet, bool long_format)
      : json_(json), quiet_(quiet), long_(long_format) {}

  void on_match(const repo::SnapshotEntry& sn, const std::string& path,
                const repo::Node& node) override {
    if (json_) {
      open_array();
      if (&sn != last_) {
        if (last_ != nullptr)
          print(fmt::format("],\"hits\":{},\"snapshot\":\"{}\"}},", hits_, last_->id.hex()));
        print("{\"matches\":[");
        last_ = &sn;
        hits_ = 0;
      }
      print((hits_ > 0 ? "," : "") + match_json(path, node));
      ++hits_;
      return;
    }
    if (&sn != last_) {
      if (last_ != nullptr && !quiet_)
        print("\n");
      last_ = &sn;
      if (!quiet_)
        print(fmt::format("Found matching entries in snapshot {} from {}\n", sn.id.short_hex(),
                          local_time(sn.snapshot.time)));
    }
    print(format_node(path, node, long_) + "\n");
  }

  void on_object(const repo::SnapshotEntry& sn, bool is_tree, const repo::Id& id,
                 const std::string& path, const std::optional<repo::Id>& parent) override {
    const char* kind = is_tree ? "tree" : "blob";
    if (json_) {
      open_array();
      std::string j = fmt::format("{{\"object_type\":\"{}\",\"id\":\"{}\",\"path\":{}", kind,
                                  id.hex(), repo::go_json_string(path));
      if (parent)
        j += ",\"parent_tree\":\"" + parent->hex() + "\"";
      j += ",\"snapshot\":\"" + sn.id.hex() + "\",\"time\":\"" +
           repo::format_go_time(sn.snapshot.time) + "\"}";
      print((hits_ > 0 ? "," : "") + j);
      ++hits_;
      return;
    }
    std::string s = fmt::format("Found {} {}\n", kind, id.hex());
    if (parent)
      s += " ... in file " + path + "\n     (tree " + parent->hex() + ")\n";
    else
      s += " ... path " + path + "\n";
    s += fmt::format(" ... in snapshot {} ({})\n", sn.id.short_hex(), local_time(sn.snapshot.time));
    print(s);
  }

  void on_tree_error(const repo::SnapshotEntry& sn, const repo::Id& parent) override {
    print(fmt::format("Unable to load tree {}\n ... which belongs to snapshot {}\n", parent.hex(),
                      sn.id.hex()));
  }

  void finish() {
    if (!json_)
      return;
    if (last_ != nullptr)
      print(fmt::format("],\"hits\":{},\"snapshot\":\"{}\"}}", hits_, last_->id.hex()));
    print(in_use_ ? "]\n" : "[]\n");
  }

 private:
  void open_array() {
    if (!in_use_)
      print("[");
    in_use_ = true;
  }

  bool json_, quiet_, long_;
  bool in_use_ = false;
  const repo::SnapshotEntry* last_ = nullptr;  // points into the caller's snapshot list
  std::size_t hits_ = 0;
};

void warn(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

// Go's %v of a []string: "[a b]".
std::string go_list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return "[" + s + "]";
}

std::string go_tag_lists(const std::vector<std::string>& tags) {
  std::string s;
  for (const auto& t : tags) {
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (pos <= t.size()) {
      auto next = std::min(t.find(',', pos), t.size());
      if (next > pos)
        parts.push_back(t.substr(pos, next - pos));
      pos = next + 1;
    }
    s += (s.empty() ? "" : " ") + go_list(parts);
  }
  return "[" + s + "]";
}

// restic's FindFilteredSnapshots: the -s snapshots in the order given (unknown ones are
// skipped with a warning), else every snapshot passing the filters, oldest first.
repo::Result<std::vector<repo::SnapshotEntry>> select_snapshots(const repo::Repository& repo,
                                                                const FindOptions& o) {
  const repo::SnapshotFilter& f = o.filter;
  if (o.snapshots.empty()) {
    COFFER_ASSIGN_OR_RETURN(auto all, repo.list_snapshots());
    return repo::filter_snapshots(all, f);
  }
  std::vector<repo::SnapshotEntry> out;
  bool used_filter = false;
  for (const auto& s : o.snapshots) {
    used_filter = used_filter || s == "latest";
    auto e = repo::find_snapshot(repo, s, s == "latest" ? f : repo::SnapshotFilter{});
    if (!e) {
      if (s == "latest")
        warn(
            fmt::format("Ignoring \"latest\", no snapshot matched given filter (Paths:{} Tags:{} "
                        "Hosts:{})",
                        go_list(f.paths), go_tag_lists(f.tags), go_list(f.hosts)));
      else
        warn(fmt::format("Ignoring \"{}\": {}", repo::go_quote(s), e.error().message));
      continue;
    }
    bool seen = false;
    for (const auto& x : out) seen = seen || x.id == e->id;
    if (!seen)
      out.push_back(std::move(*e));
  }
  if (!used_filter && (!f.hosts.empty() || !f.tags.empty() || !f.paths.empty()))
    warn("Ignoring filters as there are explicit snapshot ids given");
  return out;
}

// Go's restic.ParseID error text, or "" for a valid id.
std::string parse_id_error(const std::string& s) {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  auto bad = [](char c) {
    auto u = static_cast<unsigned char>(c);
    std::string r = fmt::format("U+{:04X}", u < 0x80 ? u : 0xFFFD);
    if (u >= 0x20 && u < 0x7F)
      r += fmt::format(" '{}'", c);
    return "hex.DecodeString: encoding/hex: invalid byte: " + r;
  };
  std::size_t i = 1;
  for (; i < s.size(); i += 2) {
    if (!hex(s[i - 1]))
      return bad(s[i - 1]);
    if (!hex(s[i]))
      return bad(s[i]);
  }
  if (s.size() % 2 == 1) {
    if (!hex(s[i - 1]))
      return bad(s[i - 1]);
    return "hex.DecodeString: encoding/hex: odd length hex string";
  }
  return s.size() == 64 ? "" : "invalid length for hash";
}

// restic's findObjectPack (--show-pack-id).
repo::Result<void> print_object_pack(const repo::Repository& repo, const std::string& name,
                                     repo::BlobType type) {
  if (std::string err = parse_id_error(name); !err.empty()) {
    print(
        fmt::format("Note: cannot find pack for object '{}', unable to parse ID: {}\n", name, err));
    return {};
  }
  COFFER_ASSIGN_OR_RETURN(repo::Id id, repo::Id::parse(name));
  COFFER_ASSIGN_OR_RETURN(auto where, repo.lookup(repo::BlobHandle{id, type}));
  if (!where) {
    print(fmt::format("Object {} not found in the index\n", id.short_hex()));
    return {};
  }
  print(
      fmt::format("Object belongs to pack {}\n ... Pack {}: <Blob ({}) {}, offset {}, length {}, "
                  "uncompressed length {}>\n",
                  where->pack.hex(), where->pack.short_hex(), repo::blob_type_name(type),
                  id.short_hex(), where->offset, where->length, where->uncompressed_length));
  return {};
}

// COFFER_DEBUG_FIND_TREE_CACHE=BYTES (tests only): the decoded-tree cache of the search, so a
// small repository can exercise the path a large one takes (trees loaded as the walk meets
// them). Unset or invalid: the default.
std::uint64_t tree_cache_bytes() {
  const char* text = std::getenv("COFFER_DEBUG_FIND_TREE_CACHE");
  if (text == nullptr || *text == '\0')
    return 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(text, &end, 10);
  return *end == '\0' ? n : 0;
}

// --blob/--tree/--pack: which files and directories hold the objects.
repo::Result<void> find_objects(const repo::Repository& repo, const FindOptions& o,
                                const std::vector<repo::SnapshotEntry>& snaps, Output& out,
                                repo::IdQuery query) {
  repo::Finder finder(repo, out, &interrupted(), tree_cache_bytes());
  COFFER_TRY(finder.find_ids(snaps, query));
  out.finish();
  if (!o.show_pack_id)
    return {};
  for (const auto& b : query.blobs.value_or(std::vector<std::string>{}))
    COFFER_TRY(print_object_pack(repo, b, repo::BlobType::kData));
  for (const auto& t : query.trees.value_or(std::vector<std::string>{}))
    COFFER_TRY(print_object_pack(repo, t, repo::BlobType::kTree));
  return {};
}

repo::Result<int> run(const GlobalOptions& g, const FindOptions& o) {
  if (o.patterns.empty())
    return repo::fail(repo::Errc::kInvalidArgument, "wrong number of arguments");
  repo::NameQuery names{o.patterns, o.ignore_case, std::nullopt, std::nullopt};
  if (!o.oldest.empty()) {
    COFFER_ASSIGN_OR_RETURN(names.oldest, parse_find_time(o.oldest));
  }
  if (!o.newest.empty()) {
    COFFER_ASSIGN_OR_RETURN(names.newest, parse_find_time(o.newest));
  }
  if (int(o.blob) + int(o.tree) + int(o.pack) > 1)
    return repo::fail(repo::Errc::kInvalidArgument, "cannot have several ID types");
  COFFER_ASSIGN_OR_RETURN(auto repository, open_repository(g));
  const repo::Repository& repo = *repository;
  repo::IdQuery ids;
  if (o.blob)
    ids.blobs = o.patterns;
  if (o.tree)
    ids.trees = o.patterns;
  if (o.pack) {
    COFFER_ASSIGN_OR_RETURN(repo::PackBlobs pb, repo::blobs_of_packs(repo, o.patterns));
    if (!pb.missing_packs.empty()) {
      std::vector<std::string> hex;
      for (const auto& id : pb.missing_packs) hex.push_back(id.hex());
      warn(
          "some pack files are missing from the repository, getting their blobs from the "
          "repository index: " +
          go_list(hex) + "\n");
    }
    ids.blobs = std::move(pb.blob_ids);
  }
  COFFER_ASSIGN_OR_RETURN(auto snaps, select_snapshots(repo, o));
  Output out(g.json, g.quiet, o.long_format);
  if (ids.blobs || ids.trees) {
    COFFER_TRY(find_objects(repo, o, snaps, out, std::move(ids)));
  } else {
    repo::Finder finder(repo, out, &interrupted(), tree_cache_bytes());
    COFFER_TRY(finder.find_names(snaps, names));
    out.finish();
  }
  return kExitOk;
}

}  // namespace

Command add_find_command(CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<FindOptions>();
  CLI::App* sub = app.add_subcommand("find", "Find a file, a directory or restic IDs");
  sub->add_option("PATTERN", o->patterns, "name patterns, or ids with --blob/--tree/--pack");
  sub->add_option("-O,--oldest", o->oldest, "oldest modification date/time");
  sub->add_option("-N,--newest", o->newest, "newest modification date/time");
  sub->add_option("-s,--snapshot", o->snapshots, "snapshot id to search in (repeatable)");
  sub->add_flag("--blob", o->blob, "pattern is a blob-ID");
  sub->add_flag("--tree", o->tree, "pattern is a tree-ID");
  sub->add_flag("--pack", o->pack, "pattern is a pack-ID");
  sub->add_flag("--show-pack-id", o->show_pack_id,
                "display the pack-ID the blobs belong to (with --blob or --tree)");
  sub->add_flag("-i,--ignore-case", o->ignore_case, "ignore case for pattern");
  sub->add_flag("-l,--long", o->long_format, "use a long listing format showing size and mode");
  sub->add_option("-H,--host", o->filter.hosts, "only snapshots of this host (repeatable)");
  sub->add_option("--tag", o->filter.tags, "only snapshots with these tags: a,b means both");
  sub->add_option("--path", o->filter.paths, "only snapshots that include this path");
  return Command{sub, [&g, o] { return run(g, *o); }};
}

}  // namespace coffer::tools
