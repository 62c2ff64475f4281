// check phase "read data": each selected pack is downloaded whole by one of run.workers()
// threads (so at most that many packs are in memory), its SHA-256 compared with its name,
// every indexed blob decrypted, decompressed and hashed, and its header compared with the
// index.
#include <fmt/format.h>

#include "repo/core/parallel.h"
#include "repo/ops/check_internal.h"

namespace coffer::repo::check_detail {
namespace {

void check_blobs(CheckRun& run, const Id& id, const CheckPack& pack, const Bytes& data) {
  for (const PackedBlob& b : pack.blobs) {
    if (std::uint64_t{b.offset} + b.length > data.size()) {
      run.error(fmt::format(
          "pack {}: blob {} ({}): offset {} + length {} is beyond the end of "
          "the pack ({} bytes)",
          id.hex(), b.id.hex(), blob_type_name(b.type), b.offset, b.length, data.size()));
      continue;
    }
    auto plain = run.repo.decode_blob(b, ByteSpan(data).subspan(b.offset, b.length));
    if (!plain)
      run.error(plain.error().message);  // names the pack and the blob
  }
}

void read_pack(CheckRun& run, const Id& id) {
  const CheckPack& pack = run.packs.at(id);
  auto data = run.repo.backend().load(Handle{FileKind::kPack, id.hex()}, 0, 0);
  if (!data) {
    run.error(fmt::format("pack {}: failed to download: {}", id.hex(), data.error().message));
    return;
  }
  run.count(&CheckSummary::packs_read);
  run.count(&CheckSummary::bytes_read, data->size());
  run.pack_read(id);
  Id actual = Id::hash(*data);
  if (actual != id) {
    run.error(fmt::format("pack {}: Pack ID does not match, want {}, got {}", id.hex(), id.hex(),
                          actual.hex()));
  }
  check_blobs(run, id, pack, *data);
  auto header = read_pack_header(run.repo, id, data->size(), &*data);
  if (!header) {
    run.error(fmt::format("pack {}: {}", id.hex(), header.error().message));
    return;
  }
  for (auto& line : compare_with_index(id, std::move(*header), pack.blobs))
    run.error(std::move(line));
}

}  // namespace

void read_packs(CheckRun& run, const std::vector<Id>& selected) {
  auto done = parallel_for(selected.size(), run.workers(), [&](std::size_t i) -> Result<void> {
    if (run.cancelled())
      return fail(Errc::kCancelled, "check interrupted");
    read_pack(run, selected[i]);
    return {};
  });
  (void)done;  // only a cancellation stops it; the caller checks run.cancelled()
  if (run.options.pack_progress)
    run.options.pack_progress(selected.size(), selected.size());
}

}  // namespace coffer::repo::check_detail
