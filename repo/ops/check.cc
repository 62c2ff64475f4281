// run_check's driver, the --read-data-subset rules, and the shared CheckRun helpers.
#include "repo/ops/check.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <random>

#include "repo/core/size.h"
#include "repo/ops/check_internal.h"
#include "repo/pack/pack_format.h"

namespace coffer::repo {
namespace {

constexpr unsigned kMaxBuckets = 256;  // restic: only the first byte of the id is used

const char* const kSubsetUsage =
    "check flag --read-data-subset must have two positive integer values or be a percentage, "
    "e.g. --read-data-subset=1/2 or --read-data-subset=2.5%";

// Go strconv.ParseUint(s, 10, 64) on a whole string.
std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;
  return v;
}

Result<ReadDataSubset> parse_buckets(std::string_view text) {
  std::vector<std::uint64_t> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = text.find('/', start);
    auto v =
        parse_uint(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (!v)
      return fail(Errc::kInvalidArgument, kSubsetUsage);
    parts.push_back(*v);
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  if (parts.size() != 2)
    return fail(Errc::kInvalidArgument, kSubsetUsage);
  if (parts[0] == 0 || parts[1] == 0 || parts[0] > parts[1]) {
    return fail(Errc::kInvalidArgument,
                "check flag --read-data-subset=n/t values must be positive integers, and n <= t, "
                "e.g. --read-data-subset=1/2");
  }
  if (parts[1] > kMaxBuckets) {
    return fail(Errc::kInvalidArgument, "check flag --read-data-subset=n/t t must be at most " +
                                            std::to_string(kMaxBuckets));
  }
  ReadDataSubset s;
  s.kind = ReadDataSubset::Kind::kBucket;
  s.n = static_cast<unsigned>(parts[0]);
  s.t = static_cast<unsigned>(parts[1]);
  return s;
}

bool looks_like_buckets(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](char c) { return (c >= '0' && c <= '9') || c == '/'; });
}

}  // namespace

Result<ReadDataSubset> parse_read_data_subset(std::string_view text) {
  if (looks_like_buckets(text))
    return parse_buckets(text);
  ReadDataSubset s;
  if (!text.empty() && text.back() == '%') {
    std::string number(text.substr(0, text.size() - 1));
    char* end = nullptr;
    double p = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0')
      return fail(Errc::kInvalidArgument, kSubsetUsage);
    if (!(p > 0.0 && p <= 100.0)) {
      return fail(Errc::kInvalidArgument,
                  "check flag --read-data-subset=x% x must be above 0.0% and at most 100.0%");
    }
    s.kind = ReadDataSubset::Kind::kPercent;
    s.percent = p;
    return s;
  }
  auto bytes = parse_size(text);
  if (!bytes || *bytes > (std::uint64_t{1} << 63))
    return fail(Errc::kInvalidArgument, kSubsetUsage);
  s.kind = ReadDataSubset::Kind::kSize;
  s.bytes = *bytes;
  return s;
}

namespace {

std::vector<Id> random_packs(const std::map<Id, std::uint64_t>& packs, double percent,
                             std::mt19937_64& rng) {
  auto count = static_cast<std::size_t>(static_cast<double>(packs.size()) * (percent / 100.0));
  if (!packs.empty() && count < 1)
    count = 1;
  std::vector<Id> all;
  for (const auto& [id, size] : packs) all.push_back(id);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(std::min(count, all.size()));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

std::vector<Id> select_packs(const std::map<Id, std::uint64_t>& packs, const ReadDataSubset& s,
                             std::mt19937_64& rng) {
  std::vector<Id> out;
  switch (s.kind) {
    case ReadDataSubset::Kind::kNone:
      return out;
    case ReadDataSubset::Kind::kAll:
    case ReadDataSubset::Kind::kBucket:
      for (const auto& [id, size] : packs) {
        auto first = std::to_integer<unsigned>(id.bytes()[0]);
        if (s.kind == ReadDataSubset::Kind::kAll || first % s.t == s.n - 1)
          out.push_back(id);
      }
      return out;
    case ReadDataSubset::Kind::kPercent:
      return random_packs(packs, s.percent, rng);
    case ReadDataSubset::Kind::kSize: {
      std::uint64_t total = 0;
      for (const auto& [id, size] : packs) total += size;
      if (total == 0)
        return out;
      double pct = static_cast<double>(std::min(s.bytes, total)) / static_cast<double>(total);
      return random_packs(packs, pct * 100.0, rng);
    }
  }
  return out;
}

namespace check_detail {

void CheckRun::report(CheckSeverity severity, std::string text) {
  std::scoped_lock lock(mutex_);
  if (severity == CheckSeverity::kError)
    ++summary_.errors;
  else if (severity == CheckSeverity::kHint)
    ++summary_.hints;
  if (options.report)
    options.report(CheckMessage{severity, std::move(text)});
}

void CheckRun::count(std::uint64_t CheckSummary::*field, std::uint64_t delta) {
  std::scoped_lock lock(mutex_);
  summary_.*field += delta;
}

void CheckRun::pack_read(const Id& pack) {
  std::scoped_lock lock(mutex_);
  if (options.pack_read)
    options.pack_read(pack);
}

CheckSummary CheckRun::summary() {
  std::scoped_lock lock(mutex_);
  return summary_;
}

unsigned CheckRun::workers() const {
  if (options.workers != 0)
    return options.workers;
  return std::max(2U, repo.backend().properties().max_connections);
}

std::uint64_t expected_pack_size(const std::vector<PackedBlob>& blobs) {
  std::uint64_t size = 32 + 4;  // header IV+MAC, header length field
  for (const PackedBlob& b : blobs)
    size += b.length + (b.compressed() ? kPackEntrySizeCompressed : kPackEntrySize);
  return size;
}

}  // namespace check_detail

namespace {

using check_detail::CheckRun;

void phase(const CheckRun& run, std::string_view name) {
  if (run.options.phase)
    run.options.phase(name);
}

std::vector<Id> packs_to_read(const CheckRun& run) {
  std::map<Id, std::uint64_t> sizes;
  for (const auto& [id, p] : run.packs) sizes.emplace(id, p.expected_size);
  std::mt19937_64 rng(std::random_device{}());
  std::vector<Id> chosen = select_packs(sizes, run.options.read_data, rng);
  // Missing packs were reported already; reading them would only repeat that.
  std::erase_if(chosen, [&](const Id& id) { return !run.packs.at(id).actual_size; });
  return chosen;
}

}  // namespace

Result<CheckSummary> run_check(const Repository& repo, const CheckOptions& options) {
  CheckRun run(repo, options);
  phase(run, "load indexes");
  COFFER_TRY(check_detail::load_index_files(run));
  phase(run, "check all packs");
  COFFER_TRY(check_detail::check_pack_files(run));
  std::vector<Id> selected = packs_to_read(run);
  if (options.check_headers)
    check_detail::check_pack_headers(run, selected);
  if (run.cancelled())
    return fail(Errc::kCancelled, "check interrupted");
  phase(run, "check snapshots, trees and blobs");
  COFFER_TRY(check_detail::check_snapshots(run));
  if (run.cancelled())
    return fail(Errc::kCancelled, "check interrupted");
  if (options.read_data.kind != ReadDataSubset::Kind::kNone) {
    phase(run, "read data");
    run.count(&CheckSummary::packs_selected, selected.size());
    if (options.packs_selected)
      options.packs_selected(selected.size(), run.packs.size());
    check_detail::read_packs(run, selected);
    if (run.cancelled())
      return fail(Errc::kCancelled, "check interrupted");
  }
  return run.summary();
}

}  // namespace coffer::repo
