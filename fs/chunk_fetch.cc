#include "fs/chunk_fetch.h"

#include <algorithm>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace coffer::fs {

std::vector<PackRange> plan_ranges(std::vector<repo::PackedBlob> blobs, std::uint64_t max_gap,
                                   std::uint64_t max_length) {
  std::sort(blobs.begin(), blobs.end(), [](const auto& a, const auto& b) {
    return a.pack != b.pack ? a.pack < b.pack : a.offset < b.offset;
  });
  std::vector<PackRange> out;
  for (std::size_t i = 0; i < blobs.size(); ++i) {
    const repo::PackedBlob& b = blobs[i];
    if (i > 0 && b.pack == blobs[i - 1].pack && b.offset == blobs[i - 1].offset)
      continue;  // the same blob twice
    std::uint64_t end = std::uint64_t{b.offset} + b.length;
    if (!out.empty()) {
      PackRange& r = out.back();
      std::uint64_t r_end = r.offset + r.length;
      if (r.pack == b.pack && b.offset <= r_end + max_gap && end - r.offset <= max_length) {
        r.length = std::max(r_end, end) - r.offset;
        r.blobs.push_back(b);
        continue;
      }
    }
    out.push_back(PackRange{b.pack, b.offset, b.length, {b}});
  }
  return out;
}

namespace {

std::chrono::milliseconds jittered(std::chrono::milliseconds base) {
  thread_local std::minstd_rand rng(std::random_device{}());
  std::uniform_int_distribution<long> dist(base.count() * 3 / 4, base.count() * 5 / 4);
  return std::chrono::milliseconds(dist(rng));
}

}  // namespace

repo::Result<repo::SharedBytes> load_range(repo::ReadBackend& backend, const PackRange& range,
                                           Clock::time_point deadline, LoadCounters& counters) {
  repo::Handle h{repo::FileKind::kPack, range.pack.hex()};
  std::chrono::milliseconds backoff{50};
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0)
      ++counters.retries;
    ++counters.calls;
    auto data = backend.load_shared(h, range.offset, range.length);
    if (data && data->bytes.size() == range.length) {
      counters.bytes += data->bytes.size();
      return data;
    }
    repo::Error e = data ? repo::Error{repo::Errc::kCorrupt, "short read"} : data.error();
    e = e.with_context(fmt::format("reading pack {} at {}+{}", range.pack.short_hex(), range.offset,
                                   range.length));
    auto wait = jittered(backoff);
    if (!e.retryable || Clock::now() + wait >= deadline)
      return repo::fail(std::move(e));
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

}  // namespace coffer::fs
