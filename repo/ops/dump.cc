#include "repo/ops/dump.h"

#include <deque>
#include <future>
#include <map>

#include "repo/ops/walk.h"

namespace coffer::repo {

Result<void> dump_file(const Repository& repo, const Node& node, const ByteSink& sink,
                       const DumpOptions& options) {
  std::deque<std::future<Result<Bytes>>> inflight;
  std::size_t next = 0;
  std::uint64_t written = 0;
  auto launch = [&] {
    const Id id = node.content[next++];
    inflight.push_back(std::async(std::launch::async, [&repo, id] {
      return repo.load_blob(BlobHandle{id, BlobType::kData});
    }));
  };
  unsigned depth = std::max(1U, options.blobs_in_flight);
  while (next < node.content.size() && inflight.size() < depth) launch();
  while (!inflight.empty()) {
    Result<Bytes> blob = inflight.front().get();
    inflight.pop_front();
    if (options.cancel != nullptr && *options.cancel)
      return fail(Errc::kCancelled, "interrupted");
    if (!blob)
      return fail(blob.error());
    if (next < node.content.size())
      launch();
    written += blob->size();
    COFFER_TRY(sink(*blob));
  }
  if (written != node.size) {
    return fail(Errc::kCorrupt, "file " + node.name + ": blobs hold " + std::to_string(written) +
                                    " bytes but the node says " + std::to_string(node.size));
  }
  return {};
}

Result<void> dump_tar(const Repository& repo, const Node& dir, const std::string& dir_path,
                      const ByteSink& sink, const DumpOptions& options) {
  TarWriter tar(sink);
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> first_link;
  auto visit = [&](const std::string& path, const Node& node) -> Result<WalkAction> {
    if (options.cancel != nullptr && *options.cancel)
      return fail(Errc::kCancelled, "interrupted");
    std::string name = path.substr(1);
    if (node.type == NodeType::kSocket)
      return WalkAction::kContinue;
    if (node.type == NodeType::kFile && node.links > 1) {
      auto [it, inserted] = first_link.try_emplace({node.device_id, node.inode}, name);
      if (!inserted) {
        COFFER_TRY(tar.write_header(name, node, it->second));
        return WalkAction::kContinue;
      }
    }
    COFFER_TRY(tar.write_header(name, node));
    if (node.type == NodeType::kFile) {
      COFFER_TRY(dump_file(
          repo, node, [&](ByteSpan b) { return tar.write_data(b); }, options));
      COFFER_TRY(tar.end_file());
    }
    return WalkAction::kContinue;
  };
  COFFER_TRY(walk(repo, dir, dir_path, visit));
  return tar.finish();
}

}  // namespace coffer::repo
