// prune: deciding which packs to keep, repack and delete (restic 0.14's planPrune).
#include <algorithm>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "repo/ops/prune_internal.h"
#include "repo/pack/pack_format.h"

namespace coffer::repo {
namespace {

using prune_detail::BlobSet;
using prune_detail::emit;
using prune_detail::HandleHash;
using prune_detail::IdSet;

enum class PackType { kUnset, kData, kTree, kMixed };

// restic's packInfo: used/unused blobs and bytes of one indexed pack. used_size starts at
// the header size, so used_size + unused_size is the pack's size as the index implies.
struct PackInfo {
  std::uint64_t used_blobs = 0, unused_blobs = 0, used_size = 0, unused_size = 0;
  PackType type = PackType::kUnset;
  bool uncompressed = false;
  [[nodiscard]] std::uint64_t total() const { return used_size + unused_size; }
};

struct Candidate {
  Id id;
  PackInfo info;
};

using PackMap = std::map<Id, PackInfo>;
using DuplicateMap = std::unordered_map<BlobHandle, unsigned, HandleHash>;

// restic's packInfoFromIndex, first pass: splits index entries into used, duplicate and
// unused, moving used blobs from `used` to `keep`. Errors: kCorrupt when a used blob is in
// no index.
Result<void> classify_blobs(const std::vector<PackedBlob>& blobs, BlobSet& used, BlobSet& keep,
                            DuplicateMap& dups, PruneStats& st) {
  for (const PackedBlob& b : blobs) {
    BlobHandle h{b.id, b.type};
    if (used.erase(h) != 0) {
      keep.insert(h);
      st.size.used += b.length;
      st.blobs.used++;
    } else if (keep.count(h) != 0) {
      auto [it, inserted] = dups.try_emplace(h, 2);
      if (!inserted && it->second < 255)
        it->second++;
      st.size.duplicate += b.length;
      st.blobs.duplicate++;
    } else {
      st.size.unused += b.length;
      st.blobs.unused++;
    }
  }
  if (used.empty())
    return {};
  const BlobHandle& first = *used.begin();
  return fail(Errc::kCorrupt,
              fmt::format("index is not complete: {} blobs that snapshots need are in no index "
                          "(e.g. {} blob {}); data seems to be missing, prune will not start to "
                          "prevent (additional) data loss (run 'coffer check')",
                          used.size(), blob_type_name(first.type), first.id.hex()));
}

void add_blob(PackInfo& p, const PackedBlob& b, bool is_used) {
  (is_used ? p.used_size : p.unused_size) += b.length;
  (is_used ? p.used_blobs : p.unused_blobs)++;
}

// restic's packInfoFromIndex, second and third pass: per-pack usage; of duplicate blobs
// one copy counts as used, preferably in a pack that has used blobs anyway.
PackMap pack_usage(const std::vector<PackedBlob>& blobs, const BlobSet& keep, DuplicateMap& dups) {
  PackMap packs;
  for (const PackedBlob& b : blobs) {
    auto [it, fresh] = packs.try_emplace(b.pack);
    PackInfo& p = it->second;
    if (fresh)
      p.used_size = prune_detail::kPackHeaderOverhead;
    p.used_size += b.compressed() ? kPackEntrySizeCompressed : kPackEntrySize;
    PackType t = b.type == BlobType::kTree ? PackType::kTree : PackType::kData;
    if (p.type == PackType::kUnset)
      p.type = t;
    if (p.type != t)
      p.type = PackType::kMixed;
    BlobHandle h{b.id, b.type};
    if (dups.count(h) == 0)
      add_blob(p, b, keep.count(h) != 0);
    if (!b.compressed())
      p.uncompressed = true;
  }
  for (const PackedBlob& b : blobs) {
    auto it = dups.find(BlobHandle{b.id, b.type});
    if (it == dups.end())
      continue;
    PackInfo& p = packs[b.pack];
    unsigned& count = it->second;
    if (count == 0) {
      add_blob(p, b, false);
    } else if (p.used_blobs > 0 || count == 1) {
      add_blob(p, b, true);
      count = 0;
    } else {
      add_blob(p, b, false);
      --count;
    }
  }
  return packs;
}

struct Decision {
  PrunePlan& plan;
  const PruneOptions& o;
  std::uint64_t target;  // packs below this size are "small"
  std::vector<Candidate> candidates, small;
};

// restic's decidePackAction for one pack on the backend. Errors: kCorrupt (size mismatch).
Result<void> decide_pack(Decision& d, const Id& id, std::uint64_t size, PackMap& packs,
                         unsigned version, const PruneEvents& events) {
  PruneStats& st = d.plan.stats;
  auto it = packs.find(id);
  if (it == packs.end()) {
    emit(events.detail, "will remove pack " + id.short_hex() + " as it is unused and not indexed");
    d.plan.remove_first.push_back(id);
    st.size_unref += size;
    return {};
  }
  PackInfo p = it->second;
  packs.erase(it);
  if (p.total() != size && p.used_blobs != 0) {
    return fail(Errc::kCorrupt,
                fmt::format("pack size does not match calculated size from index: pack {}: "
                            "calculated size {} does not match real size {} (run 'coffer check')",
                            id.short_hex(), p.total(), size));
  }
  if (p.used_blobs == 0)
    st.packs.unused++;
  else if (p.unused_blobs == 0)
    st.packs.used++;
  else
    st.packs.partly_used++;
  bool must_compress = version >= 2 && p.type == PackType::kTree && p.uncompressed;
  p.uncompressed = must_compress;
  if (p.used_blobs == 0) {
    d.plan.remove.push_back(id);
    st.blobs.remove += p.unused_blobs;
    st.size.remove += p.unused_size;
  } else if (d.o.repack_cacheable_only && p.type == PackType::kData) {
    st.packs.keep++;
  } else if (p.unused_blobs == 0 && p.type != PackType::kMixed && !must_compress) {
    if (size >= d.target)
      st.packs.keep++;
    else
      d.small.push_back({id, p});
  } else {
    d.candidates.push_back({id, p});
  }
  return {};
}

// Indexed packs the backend lacks: unneeded ones are dropped from the index, needed ones
// make prune refuse. Errors: kCorrupt.
Result<void> handle_missing(PrunePlan& plan, const PackMap& missing, const PruneEvents& events) {
  std::vector<std::string> needed;
  for (const auto& [id, p] : missing) {
    if (p.used_blobs != 0) {
      needed.push_back(id.hex());
      continue;
    }
    plan.ignore.push_back(id);
    plan.stats.blobs.remove += p.unused_blobs;
    plan.stats.size.remove += p.unused_size;
  }
  if (!needed.empty()) {
    return fail(Errc::kCorrupt,
                fmt::format("packs from index missing in repo: the index references {} needed "
                            "pack files which are missing from the repository: {} (run 'coffer "
                            "check')",
                            needed.size(), fmt::join(needed, ", ")));
  }
  if (!plan.ignore.empty())
    emit(events.warn,
         "Missing but unneeded pack files are referenced in the index, will be "
         "repaired");
  for (const Id& id : plan.ignore) emit(events.warn, "will forget missing pack file " + id.hex());
  return {};
}

bool repack_first(const Candidate& a, const Candidate& b, std::uint64_t target) {
  bool a_data = a.info.type == PackType::kData, b_data = b.info.type == PackType::kData;
  if (a_data != b_data)
    return !a_data;
  bool a_small = a.info.total() < target, b_small = b.info.total() < target;
  if (a_small != b_small)
    return a_small;
  // unused/used ratio, highest first (cross-multiplied without overflow)
  auto lhs = static_cast<unsigned __int128>(a.info.unused_size) * b.info.used_size;
  auto rhs = static_cast<unsigned __int128>(b.info.unused_size) * a.info.used_size;
  if (lhs != rhs)
    return lhs > rhs;
  return a.id < b.id;
}

// restic's repack selection over the sorted candidates.
void choose_repacks(Decision& d) {
  PruneStats& st = d.plan.stats;
  if (d.small.size() < 10) {
    st.packs.keep += d.small.size();  // too few to be worth it (and no endless repacking)
  } else {
    d.candidates.insert(d.candidates.end(), d.small.begin(), d.small.end());
  }
  std::sort(d.candidates.begin(), d.candidates.end(),
            [&](const Candidate& a, const Candidate& b) { return repack_first(a, b, d.target); });
  const std::uint64_t max_unused_after = d.o.max_unused.limit(st.size.used);
  for (const Candidate& c : d.candidates) {
    const PackInfo& p = c.info;
    // restic subtracts without a floor (duplicates in deleted packs can wrap it around)
    std::uint64_t gone = st.size.remove + st.size.repackrm;
    bool reached_unused = (st.size.unused > gone ? st.size.unused - gone : 0) < max_unused_after;
    bool reached_repack = d.o.max_repack_bytes - std::min(d.o.max_repack_bytes, st.size.repack) <=
                          p.total();  // repack + total >= max, without overflow
    bool large_enough = p.total() >= d.target;
    if (reached_repack) {
      st.packs.keep++;
    } else if (p.type != PackType::kData || p.uncompressed) {
      d.plan.repack.push_back(c.id);  // trees, mixed and uncompressed tree packs: always
    } else if (reached_unused && large_enough) {
      st.packs.keep++;
    } else {
      d.plan.repack.push_back(c.id);
    }
    if (!d.plan.repack.empty() && d.plan.repack.back() == c.id) {
      st.blobs.repack += p.unused_blobs + p.used_blobs;
      st.size.repack += p.total();
      st.blobs.repackrm += p.unused_blobs;
      st.size.repackrm += p.unused_size;
    }
  }
}

// restic's decidePackAction: goes through the packs on the backend.
Result<void> decide(Repository& repo, const PruneOptions& o, PackMap packs, PrunePlan& plan,
                    const PruneEvents& events) {
  std::uint64_t target = o.repack_small ? o.pack_size / 5 * 4 : o.pack_size / 25;
  Decision d{plan, o, target, {}, {}};
  std::vector<FileInfo> listed;
  COFFER_TRY(repo.backend().list(FileKind::kPack, [&](const FileInfo& f) -> Result<void> {
    listed.push_back(f);
    return {};
  }));
  std::sort(listed.begin(), listed.end(),
            [](const FileInfo& a, const FileInfo& b) { return a.name < b.name; });
  for (const FileInfo& f : listed) {
    auto id = Id::parse(f.name);
    if (id)
      COFFER_TRY(decide_pack(d, *id, f.size, packs, repo.config().version, events));
  }
  plan.stats.packs_listed = listed.size();
  if (events.counted)
    events.counted("packs processed", listed.size());
  COFFER_TRY(handle_missing(plan, packs, events));
  choose_repacks(d);
  plan.stats.packs.unref = plan.remove_first.size();
  plan.stats.packs.repack = plan.repack.size();
  plan.stats.packs.remove = plan.remove.size();
  return {};
}

// The used blobs to copy: those with no copy in a pack that stays.
std::vector<PackedBlob> blobs_to_keep(const PrunePlan& plan, const std::vector<PackedBlob>& all,
                                      const BlobSet& used) {
  std::vector<PackedBlob> keep;
  if (plan.repack.empty())
    return keep;
  IdSet going(plan.repack.begin(), plan.repack.end());
  going.insert(plan.remove.begin(), plan.remove.end());
  IdSet repacked(plan.repack.begin(), plan.repack.end());
  BlobSet stays;
  for (const PackedBlob& b : all)
    if (!going.count(b.pack))
      stays.insert(BlobHandle{b.id, b.type});
  BlobSet chosen;
  for (const PackedBlob& b : all) {
    BlobHandle h{b.id, b.type};
    if (repacked.count(b.pack) && used.count(h) && !stays.count(h) && chosen.insert(h).second)
      keep.push_back(b);
  }
  return keep;
}

}  // namespace

Result<PrunePlan> plan_prune(Repository& repo, const PruneOptions& options,
                             const PruneEvents& events) {
  emit(events.step, "loading indexes...");
  COFFER_TRY(repo.load_index());
  COFFER_ASSIGN_OR_RETURN(prune_detail::LoadedIndex index, prune_detail::load_all_index(repo));
  PrunePlan plan;
  COFFER_ASSIGN_OR_RETURN(
      BlobSet used,
      prune_detail::find_used_blobs(repo, options.ignore_snapshots, events, plan.stats.snapshots));
  emit(events.step, "searching used packs...");
  BlobSet keep;
  DuplicateMap dups;
  COFFER_TRY(classify_blobs(index.blobs, used, keep, dups, plan.stats));
  PackMap packs = pack_usage(index.blobs, keep, dups);
  emit(events.step, "collecting packs for deletion and repacking");
  COFFER_TRY(decide(repo, options, std::move(packs), plan, events));
  plan.keep = blobs_to_keep(plan, index.blobs, keep);
  plan.temp_files = prune_detail::leftover_temp_files(repo);
  plan.stats.temp_files = plan.temp_files.size();
  return plan;
}

}  // namespace coffer::repo
