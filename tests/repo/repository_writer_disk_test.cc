// Tests for repo/repository_writer on a real, small file system: packs are streamed into
// temporary files in the repository, so a full disk shows up while blobs are saved. The
// tmpfs is mounted by the test (root only); without it the test is skipped with a warning.
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include <catch2/catch.hpp>

#include "repo/backend/local/local_backend.h"
#include "repo/index/index_file.h"
#include "repo/repository_writer.h"
#include "tests/support/temp_dir.h"

using namespace coffer::repo;
using coffer::test::TempDir;

namespace {

// A tmpfs of `size` mounted at `dir` (created), unmounted when the object dies.
class TmpfsMount {
 public:
  TmpfsMount(std::string dir, const std::string& size) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    std::string cmd = "mount -t tmpfs -o size=" + size + ",mode=0700 tmpfs '" + dir_ + "' 2>&1";
    mounted_ = std::system(cmd.c_str()) == 0;
  }
  ~TmpfsMount() {
    if (mounted_ && std::system(("umount '" + dir_ + "'").c_str()) != 0)
      (void)std::system(("umount -l '" + dir_ + "'").c_str());
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  [[nodiscard]] bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

std::unique_ptr<Repository> open_local(const std::string& path) {
  OpenOptions o;
  o.no_cache = true;
  auto r = Repository::open(std::make_unique<LocalBackend>(path), coffer::test::kGoldenPassword, o);
  REQUIRE(r);
  REQUIRE((*r)->load_index());
  return std::move(*r);
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().find("-tmp-") != std::string::npos)
      out.push_back(e.path().string());
  }
  return out;
}

std::vector<Id> new_ids(const Repository& repo, FileKind kind, const std::vector<Id>& before) {
  auto now = repo.list_ids(kind);
  REQUIRE(now);
  std::vector<Id> out;
  std::set_difference(now->begin(), now->end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

// Saves ~24 MiB of incompressible data blobs (and a small tree blob now and then), with a
// flush after ~3 MiB, until save_blob fails; then flushes. Returns the first error.
Result<void> save_until_full(RepositoryWriter& w) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 120; ++i) {
    Bytes plain(100000 + rng() % 200000);
    for (auto& b : plain) b = static_cast<std::byte>(rng());
    COFFER_TRY(w.save_blob(BlobType::kData, Id::hash(plain), plain));
    std::string tree = "{\"nodes\":[],\"n\":" + std::to_string(i) + "}\n";
    if (i % 10 == 0)
      COFFER_TRY(w.save_blob(BlobType::kTree, Id::hash(as_bytes(tree)), as_bytes(tree)));
    if (i == 15)
      REQUIRE(w.flush());  // stored and indexed before the disk fills up
  }
  return w.flush();
}

// Every blob named by an index file not in `index_before` lies in a stored pack not in
// `packs_before`, and loads. Returns the number of such index files.
std::size_t check_new_indexes(const std::string& path, const std::vector<Id>& packs_before,
                              const std::vector<Id>& index_before) {
  auto repo = open_local(path);
  std::vector<Id> packs = new_ids(*repo, FileKind::kPack, packs_before);
  std::set<Id> stored(packs.begin(), packs.end());
  std::vector<Id> index_files = new_ids(*repo, FileKind::kIndex, index_before);
  for (const Id& f : index_files) {
    auto json = repo->load_unpacked(FileKind::kIndex, f);
    REQUIRE(json);
    auto index = parse_index(as_chars(*json));
    REQUIRE(index);
    for (const PackedBlob& b : index->blobs) {
      REQUIRE(stored.count(b.pack) == 1);  // no index names a missing pack
      auto plain = repo->load_blob(BlobHandle{b.id, b.type});
      REQUIRE(plain);
      REQUIRE(Id::hash(*plain) == b.id);
    }
  }
  return index_files.size();
}

}  // namespace

TEST_CASE("a full disk fails the writer with kIo and leaves no temporary file or dangling index",
          "[writer][fulldisk]") {
  TempDir tmp;
  std::string mnt = tmp.path() + "/mnt";
  TmpfsMount fs(mnt, "12m");  // the golden repository (1.4 MiB) and two 4 MiB packs fit
  if (!fs.mounted()) {
    WARN("cannot mount a tmpfs (not root?); skipping");
    return;
  }
  std::string path = mnt + "/repo";
  std::filesystem::copy(std::string(COFFER_SOURCE_DIR) + "/tests/data/repos/v2", path,
                        std::filesystem::copy_options::recursive);
  std::unique_ptr<Repository> repo = open_local(path);
  auto packs_before = repo->list_ids(FileKind::kPack);
  auto index_before = repo->list_ids(FileKind::kIndex);
  WriterOptions o;
  o.pack_size = kMinPackSize;
  o.compression = Compression::kOff;
  o.uploads = 2;
  auto writer = RepositoryWriter::create(*repo, o);
  REQUIRE(writer);
  auto failed = save_until_full(**writer);
  REQUIRE_FALSE(failed);
  INFO(failed.error().message);
  CHECK(failed.error().code == Errc::kIo);
  CHECK(failed.error().message.find("No space left on device") != std::string::npos);
  auto again = (*writer)->flush();  // the error sticks
  REQUIRE_FALSE(again);
  CHECK(again.error().code == Errc::kIo);
  writer->reset();
  CHECK(temp_files(mnt).empty());
  CHECK(check_new_indexes(path, *packs_before, *index_before) >= 1);
}
