// check phases "load indexes" and "check all packs": index files, the pack listing, and
// pack headers compared with the index.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "repo/core/parallel.h"
#include "repo/crypto/crypto.h"
#include "repo/index/index_file.h"
#include "repo/ops/check_internal.h"
#include "repo/pack/pack_format.h"

namespace coffer::repo::check_detail {
namespace {

Result<IndexFile> load_index_file(const Repository& repo, const Id& id) {
  COFFER_ASSIGN_OR_RETURN(Bytes json, repo.load_unpacked(FileKind::kIndex, id));
  COFFER_ASSIGN_OR_RETURN(IndexFile parsed, parse_index(as_chars(json)));
  if (repo.config().version < 2) {
    for (const PackedBlob& b : parsed.blobs) {
      if (b.compressed())
        return fail(Errc::kCorrupt, "compressed blob in a version 1 repository");
    }
  }
  return parsed;
}

std::string describe(const PackedBlob& b) {
  return fmt::format("blob {} ({}, offset {}, length {})", b.id.hex(), blob_type_name(b.type),
                     b.offset, b.length);
}

std::string id_set(const std::vector<Id>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + ids[i].short_hex();
  return out + "}";
}

// Adds the entries of one index file; returns how many name a blob already seen in another
// pack (duplicates: legal, e.g. after two concurrent backups).
std::uint64_t add_index_file(CheckRun& run, const Id& file, const IndexFile& index) {
  std::uint64_t duplicates = 0;
  for (const PackedBlob& b : index.blobs) {
    CheckPack& p = run.packs[b.pack];
    p.blobs.push_back(b);
    if (p.index_files.empty() || p.index_files.back() != file)
      p.index_files.push_back(file);
    auto seen = run.index.lookup({b.id, b.type});
    if (seen && *seen && (*seen)->pack != b.pack)
      ++duplicates;
    run.index.add(b);
  }
  return duplicates;
}

// Sizes, duplicate-pack and mixed-pack hints, and gaps in what the index says of a pack.
void finish_pack(CheckRun& run, const Id& id, CheckPack& p) {
  std::sort(p.blobs.begin(), p.blobs.end(), blob_position_less);
  p.blobs.erase(std::unique(p.blobs.begin(), p.blobs.end()), p.blobs.end());
  std::sort(p.index_files.begin(), p.index_files.end());
  p.index_files.erase(std::unique(p.index_files.begin(), p.index_files.end()), p.index_files.end());
  p.expected_size = expected_pack_size(p.blobs);
  if (p.index_files.size() > 1) {
    run.report(CheckSeverity::kHint, fmt::format("pack {} contained in several indexes: {}",
                                                 id.hex(), id_set(p.index_files)));
  }
  bool tree = false, data = false;
  std::uint64_t end = 0;
  bool contiguous = true;
  for (const PackedBlob& b : p.blobs) {
    (b.type == BlobType::kTree ? tree : data) = true;
    contiguous = contiguous && b.offset == end;
    end = std::uint64_t{b.offset} + b.length;
  }
  if (tree && data) {
    run.report(CheckSeverity::kHint,
               fmt::format("pack {} contains a mix of tree and data blobs", id.short_hex()));
  }
  if (!contiguous)
    run.error(fmt::format("pack {}: the index lists gaps or overlapping blobs", id.hex()));
}

}  // namespace

bool blob_position_less(const PackedBlob& a, const PackedBlob& b) {
  return std::tie(a.offset, a.id, a.type, a.length, a.uncompressed_length, a.pack) <
         std::tie(b.offset, b.id, b.type, b.length, b.uncompressed_length, b.pack);
}

Result<void> load_index_files(CheckRun& run) {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> files, run.repo.list_ids(FileKind::kIndex));
  run.count(&CheckSummary::index_files, files.size());
  std::vector<std::optional<IndexFile>> loaded(files.size());
  COFFER_TRY(parallel_for(files.size(), run.workers(), [&](std::size_t i) -> Result<void> {
    auto f = load_index_file(run.repo, files[i]);
    if (f)
      loaded[i] = std::move(*f);
    else
      run.error("error loading index " + files[i].hex() + ": " + f.error().message);
    return {};
  }));
  std::uint64_t duplicates = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (loaded[i])
      duplicates += add_index_file(run, files[i], *loaded[i]);
  }
  if (duplicates > 0) {
    run.report(CheckSeverity::kHint,
               fmt::format("{} blobs are stored in more than one pack; this is non-critical, "
                           "prune removes the extra copies",
                           duplicates));
  }
  for (auto& [id, pack] : run.packs) finish_pack(run, id, pack);
  run.count(&CheckSummary::packs, run.packs.size());
  return {};
}

Result<void> check_pack_files(CheckRun& run) {
  std::map<Id, std::uint64_t> listed;
  COFFER_TRY(run.repo.backend().list(FileKind::kPack, [&](const FileInfo& f) -> Result<void> {
    if (auto id = Id::parse(f.name))
      listed.emplace(*id, f.size);
    return {};
  }));
  for (auto& [id, pack] : run.packs) {
    auto it = listed.find(id);
    if (it == listed.end()) {
      run.error(fmt::format("pack {}: does not exist", id.hex()));
      continue;
    }
    pack.actual_size = it->second;
    if (it->second != pack.expected_size) {
      run.error(fmt::format("pack {}: unexpected file size: got {}, expected {}", id.hex(),
                            it->second, pack.expected_size));
    }
    listed.erase(it);
  }
  for (const auto& [id, size] : listed) {
    run.count(&CheckSummary::orphaned_packs);
    run.report(CheckSeverity::kInfo, fmt::format("pack {}: not referenced in any index", id.hex()));
  }
  return {};
}

Result<std::vector<PackedBlob>> read_pack_header(const Repository& repo, const Id& pack,
                                                 std::uint64_t size, const Bytes* whole) {
  if (size < 4 + 32)
    return fail(Errc::kCorrupt, fmt::format("file of {} bytes is too small for a pack", size));
  Handle h{FileKind::kPack, pack.hex()};
  std::uint64_t tail_len = std::min<std::uint64_t>(size, kPackEagerTail);
  Bytes loaded;
  if (whole == nullptr) {
    COFFER_ASSIGN_OR_RETURN(loaded, repo.backend().load(h, size - tail_len, tail_len));
  }
  ByteSpan tail = whole != nullptr ? ByteSpan(*whole).subspan(size - tail_len) : ByteSpan(loaded);
  std::uint32_t hlen = load_le32(tail.data() + tail.size() - 4);
  if (hlen < 32 || hlen > size - 4 || hlen > kPackMaxHeaderSize)
    return fail(Errc::kCorrupt, fmt::format("invalid header length {}", hlen));
  Bytes far;
  ByteSpan sealed;
  if (hlen + 4 <= tail_len) {
    sealed = tail.subspan(tail.size() - 4 - hlen, hlen);
  } else if (whole != nullptr) {
    sealed = ByteSpan(*whole).subspan(size - 4 - hlen, hlen);
  } else {
    COFFER_ASSIGN_OR_RETURN(far, repo.backend().load(h, size - 4 - hlen, hlen));
    sealed = far;
  }
  auto plain = open_sealed(repo.key(), sealed);
  if (!plain)
    return fail(plain.error().with_context("header"));
  COFFER_ASSIGN_OR_RETURN(std::vector<PackedBlob> blobs, parse_pack_header(*plain, pack));
  std::uint64_t blob_bytes = 0;
  for (const PackedBlob& b : blobs) blob_bytes += b.length;
  if (blob_bytes != size - 4 - hlen) {
    return fail(Errc::kCorrupt, fmt::format("the header lists {} bytes of blobs, the file has {}",
                                            blob_bytes, size - 4 - hlen));
  }
  return blobs;
}

std::vector<std::string> compare_with_index(const Id& pack, std::vector<PackedBlob> header,
                                            const std::vector<PackedBlob>& indexed) {
  std::sort(header.begin(), header.end(), blob_position_less);
  std::vector<PackedBlob> only_header, only_index;
  std::set_difference(header.begin(), header.end(), indexed.begin(), indexed.end(),
                      std::back_inserter(only_header), blob_position_less);
  std::set_difference(indexed.begin(), indexed.end(), header.begin(), header.end(),
                      std::back_inserter(only_index), blob_position_less);
  std::vector<std::string> out;
  for (const PackedBlob& b : only_header) {
    out.push_back(
        fmt::format("pack {}: {} is in the pack header but not in the index, or the "
                    "index has it at another position",
                    pack.hex(), describe(b)));
  }
  for (const PackedBlob& b : only_index) {
    out.push_back(fmt::format("pack {}: {} is in the index but not in the pack header", pack.hex(),
                              describe(b)));
  }
  return out;
}

void check_pack_headers(CheckRun& run, const std::vector<Id>& skip) {
  std::set<Id> skipped(skip.begin(), skip.end());
  std::vector<const std::pair<const Id, CheckPack>*> todo;
  for (const auto& entry : run.packs) {
    if (entry.second.actual_size && !skipped.count(entry.first))
      todo.push_back(&entry);
  }
  auto done = parallel_for(todo.size(), run.workers(), [&](std::size_t i) -> Result<void> {
    if (run.cancelled())
      return fail(Errc::kCancelled, "check interrupted");
    const auto& [id, pack] = *todo[i];
    auto header = read_pack_header(run.repo, id, *pack.actual_size, nullptr);
    if (!header) {
      run.error(fmt::format("pack {}: {}", id.hex(), header.error().message));
      return {};
    }
    for (auto& line : compare_with_index(id, std::move(*header), pack.blobs))
      run.error(std::move(line));
    return {};
  });
  (void)done;  // only a cancellation stops it; the caller checks run.cancelled()
}

}  // namespace coffer::repo::check_detail
