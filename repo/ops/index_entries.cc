#include "repo/ops/index_entries.h"

#include "repo/core/cancel.h"
#include "repo/core/parallel.h"
#include "repo/index/index_file.h"

namespace coffer::repo {

Result<std::vector<PackedBlob>> load_index_entries(const Repository& repo, unsigned workers) {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> files, repo.list_ids(FileKind::kIndex));
  std::vector<IndexFile> parsed(files.size());
  COFFER_TRY(parallel_for(files.size(), workers, [&](std::size_t i) -> Result<void> {
    if (cancel_requested())
      return fail(Errc::kCancelled, "interrupted");
    COFFER_ASSIGN_OR_RETURN(Bytes json, repo.load_unpacked(FileKind::kIndex, files[i]));
    auto f = parse_index(as_chars(json));
    if (!f)
      return fail(f.error().code, "index " + files[i].short_hex() + ": " + f.error().message);
    parsed[i] = std::move(*f);
    return {};
  }));
  std::vector<PackedBlob> out;
  for (auto& f : parsed) out.insert(out.end(), f.blobs.begin(), f.blobs.end());
  return out;
}

}  // namespace coffer::repo
