// SnapshotFs on a hand-made tree (no repository): hard links, views, xattrs, devices, special
// root nodes and refresh.
#include <map>

#include <catch2/catch.hpp>
#include <sys/sysmacros.h>

#include "fs/repo_access.h"
#include "fs/snapshot_fs.h"
#include "tests/fs/snapshot_fs_helpers.h"

using namespace coffer::repo;
using coffer::fs::Entry;
using coffer::fs::kRootNodeId;
using coffer::fs::SnapshotFs;
using coffer::fs::SnapshotFsOptions;
using coffer::test::list;
using coffer::test::resolve;

namespace {

// A hand-made repository: snapshots and trees in maps, no file data.
class FakeAccess final : public coffer::fs::RepoAccess {
 public:
  Result<std::vector<Id>> snapshot_ids() override {
    std::vector<Id> ids;
    for (const auto& [id, s] : snapshots) ids.push_back(id);
    return ids;
  }
  Result<Snapshot> load_snapshot(const Id& id) override { return snapshots.at(id); }
  Result<coffer::fs::TreePtr> load_tree(const Id& id) override {
    auto it = trees.find(id);
    if (it == trees.end())
      return fail(Errc::kNotFound, "tree " + id.hex() + " not found");
    return std::make_shared<const Tree>(it->second);
  }
  Result<void> refresh_index() override {
    ++index_refreshes;
    return {};
  }
  Result<coffer::fs::ChunksPtr> file_chunks(const std::vector<Id>& /*content*/) override {
    return fail(Errc::kNotFound, "the fake has no data blobs");
  }
  Result<std::uint64_t> read(const coffer::fs::FileChunks& /*file*/, coffer::fs::ReadStream&,
                             std::uint64_t /*offset*/, std::uint64_t /*size*/,
                             std::vector<coffer::fs::ReadSegment>& /*out*/,
                             std::vector<coffer::fs::FetchedChunk>* /*fetched*/) override {
    return fail(Errc::kIo, "the fake has no data blobs");
  }

  // Stores `tree` under a fresh id.
  Id add_tree(Tree tree) {
    std::sort(tree.nodes.begin(), tree.nodes.end(),
              [](const Node& a, const Node& b) { return a.name < b.name; });
    Id id = Id::hash(as_bytes("tree" + std::to_string(trees.size())));
    trees.emplace(id, std::move(tree));
    return id;
  }
  Id add_snapshot(const Id& root, std::int64_t secs, const std::string& host) {
    Snapshot s;
    s.tree = root;
    s.time = GoTime{secs, 0, 0};
    s.hostname = host;
    Id id = Id::hash(as_bytes("snapshot" + std::to_string(snapshots.size())));
    snapshots.emplace(id, s);
    return id;
  }

  std::map<Id, Snapshot> snapshots;
  std::map<Id, Tree> trees;
  int index_refreshes = 0;
};

Node make_node(const std::string& name, NodeType type, std::uint32_t perm) {
  Node n;
  n.name = name;
  n.type = type;
  n.mode = perm;
  n.uid = 1234;
  n.gid = 5678;
  n.mtime = GoTime{1500000000, 42, 0};
  n.links = 1;
  return n;
}

Node hard_link(const std::string& name) {
  Node n = make_node(name, NodeType::kFile, 0644);
  n.size = 11;
  n.links = 3;
  n.device_id = 2049;
  n.inode = 777;
  n.content = {Id::hash(as_bytes("data"))};
  return n;
}

struct FakeMount {
  FakeAccess access;
  std::unique_ptr<SnapshotFs> fs;
  Id snap;

  FakeMount() {
    Tree sub;
    sub.nodes.push_back(hard_link("c"));
    Tree inner;  // the contents of a root node named "/"
    Node sub_dir = make_node("sub", NodeType::kDir, 0755);
    sub_dir.subtree = access.add_tree(sub);
    inner.nodes.push_back(sub_dir);
    inner.nodes.push_back(hard_link("a"));
    inner.nodes.push_back(hard_link("b"));
    Node other = make_node("other", NodeType::kFile, 0600);
    other.links = 2;  // links > 1 but no inode: not a hard link group
    inner.nodes.push_back(other);
    Node x = make_node("x_file", NodeType::kFile, 0644);
    x.xattrs = {{"user.one", to_bytes("1")}, {"user.bin", Bytes{std::byte{0}, std::byte{255}}}};
    inner.nodes.push_back(x);
    Node dev = make_node("blockdev", NodeType::kDev, 0640);
    dev.device = makedev(7, 200);
    inner.nodes.push_back(dev);
    inner.nodes.push_back(make_node("fifo", NodeType::kFifo, 0644));
    Node link = make_node("sym", NodeType::kSymlink, 0777);
    link.linktarget = "target\xff";
    inner.nodes.push_back(link);
    Tree root;
    Node slash = make_node("/", NodeType::kDir, 0755);
    slash.subtree = access.add_tree(inner);
    root.nodes.push_back(slash);
    root.nodes.push_back(make_node("top", NodeType::kFile, 0644));
    snap = access.add_snapshot(access.add_tree(root), 1700000000, "fakehost");
    SnapshotFsOptions o;
    o.refresh_interval = std::chrono::milliseconds(0);
    auto f = SnapshotFs::create(access, o);
    REQUIRE(f);
    fs = std::move(*f);
  }
};

}  // namespace

TEST_CASE("a root node named / is replaced by its contents", "[snapshot_fs]") {
  FakeMount m;
  CHECK(list(*m.fs, resolve(*m.fs, "/snapshots/2023-11-14T22:13:20Z").nodeid) ==
        std::vector<std::string>{".", "..", "a", "b", "blockdev", "fifo", "other", "sub", "sym",
                                 "top", "x_file"});
}

TEST_CASE("hard links share one inode; directories get one per view", "[snapshot_fs]") {
  FakeMount m;
  std::string by_time = "/snapshots/2023-11-14T22:13:20Z";
  std::string by_id = "/ids/" + m.snap.short_hex();
  Entry a = resolve(*m.fs, by_time + "/a");
  Entry b = resolve(*m.fs, by_time + "/b");
  Entry c = resolve(*m.fs, by_id + "/sub/c");
  CHECK(a.nodeid == b.nodeid);
  CHECK(a.nodeid == c.nodeid);
  CHECK(a.attr.st_ino == c.attr.st_ino);
  CHECK(a.attr.st_nlink == 3);
  CHECK(a.attr.st_size == 11);  // no index entry: the stored size
  Entry other = resolve(*m.fs, by_time + "/other");
  CHECK(other.nodeid != a.nodeid);
  CHECK(other.attr.st_nlink == 2);
  CHECK(resolve(*m.fs, by_time + "/sub").nodeid != resolve(*m.fs, by_id + "/sub").nodeid);
  CHECK(resolve(*m.fs, by_time + "/top").nodeid == resolve(*m.fs, by_id + "/top").nodeid);
}

TEST_CASE("attributes, xattrs, devices and symlinks come from the nodes", "[snapshot_fs]") {
  FakeMount m;
  std::string dir = "/ids/" + m.snap.short_hex();
  Entry x = resolve(*m.fs, dir + "/x_file");
  CHECK(x.attr.st_uid == 1234);
  CHECK(x.attr.st_gid == 5678);
  CHECK(x.attr.st_mode == (S_IFREG | 0644));
  CHECK(x.attr.st_mtim.tv_sec == 1500000000);
  CHECK(x.attr.st_mtim.tv_nsec == 42);
  CHECK(*m.fs->listxattr(x.nodeid) == std::vector<std::string>{"user.one", "user.bin"});
  CHECK(**m.fs->getxattr(x.nodeid, "user.bin") == Bytes{std::byte{0}, std::byte{255}});
  CHECK(!*m.fs->getxattr(x.nodeid, "user.none"));
  CHECK(m.fs->listxattr(kRootNodeId)->empty());
  Entry dev = resolve(*m.fs, dir + "/blockdev");
  CHECK(dev.attr.st_mode == (S_IFBLK | 0640));
  CHECK(dev.attr.st_rdev == makedev(7, 200));
  CHECK(S_ISFIFO(resolve(*m.fs, dir + "/fifo").attr.st_mode));
  Entry sym = resolve(*m.fs, dir + "/sym");
  CHECK(*m.fs->readlink(sym.nodeid) == "target\xff");
  CHECK(sym.attr.st_size == 7);
  CHECK(!m.fs->open(sym.nodeid));
  auto no_data = m.fs->open(resolve(*m.fs, dir + "/a").nodeid);
  REQUIRE(!no_data);
  CHECK(no_data.error().code == Errc::kIo);  // never ENOENT for contents
}

TEST_CASE("new snapshots appear on refresh and load the new index first", "[snapshot_fs]") {
  FakeMount m;
  CHECK(m.access.index_refreshes == 0);
  Tree empty;
  m.access.add_snapshot(m.access.add_tree(empty), 1700000000, "otherhost");
  CHECK(list(*m.fs, resolve(*m.fs, "/snapshots").nodeid) ==
        std::vector<std::string>{".", "..", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z-1",
                                 "latest"});
  CHECK(m.access.index_refreshes == 1);
  CHECK(list(*m.fs, resolve(*m.fs, "/hosts").nodeid) ==
        std::vector<std::string>{".", "..", "fakehost", "otherhost"});
}
