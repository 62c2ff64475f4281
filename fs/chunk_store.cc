#include "fs/chunk_store.h"

#include <algorithm>

#include <fmt/format.h>

#include "repo/chunker/chunker.h"
#include "repo/core/log.h"

namespace coffer::fs {

using repo::Errc;

// A job for a pool thread: either a fetch (the blobs of one coalesced pack range: try the
// disk cache, then read the pack) or, when `loaded` is set, the decode of one blob whose
// encrypted bytes were read (from a pack range or the disk cache).
struct ChunkStore::Job {
  std::vector<repo::PackedBlob> blobs;
  std::uint64_t bytes = 0;  // encrypted bytes, for the prefetch budget
  bool urgent = false;      // guarded by mutex_
  bool taken = false;       // guarded by mutex_
  bool budgeted = false;    // counted in prefetch_in_flight_
  bool skip_disk = false;   // a fetch after the disk copy failed verification
  std::atomic<Clock::rep> deadline{0};
  // Decode jobs: the bytes read, starting at pack offset `loaded_offset`, shared by the
  // decode jobs of one range (`loaded.owner` is null for fetch jobs).
  repo::SharedBytes loaded;
  std::uint64_t loaded_offset = 0;
  bool from_disk = false;
};

// The single-flight rendezvous of one chunk. All fields are guarded by mutex_.
struct ChunkStore::Slot {
  std::condition_variable cv;
  bool done = false;
  bool demanded = false;
  bool random = false;  // a reader outside a sequential stream waits for it
  repo::Result<ChunkRef> result = ChunkRef{};
  Clock::time_point expires{};  // for a failed slot kept as a negative entry
  std::shared_ptr<Job> job;
};

// Blobs that admit() found need fetching; their slots say whether they are demanded.
struct ChunkStore::Batch {
  std::vector<repo::PackedBlob> blobs;
};

struct ChunkStore::Counters {
  std::atomic<std::uint64_t> gets{0}, ram_hits{0}, zero_hits{0}, disk_hits{0}, disk_rejected{0},
      fetches{0}, blobs_fetched{0}, corrupt{0}, prefetch_dropped{0}, reloads{0};
};

ChunkStore::ChunkStore(const repo::Repository& repo, ChunkStoreOptions options)
    : repo_(repo),
      options_(std::move(options)),
      cache_random_(options_.cache_random),
      ram_(options_.mem_budget),
      counters_(std::make_unique<Counters>()) {}

repo::Result<std::unique_ptr<ChunkStore>> ChunkStore::open(const repo::Repository& repo,
                                                           ChunkStoreOptions options) {
  // Prefetched chunks wait for their reader in the RAM cache's scan segment (half the
  // budget), beside the chunks the reader is in (two of the largest, at most): more ahead
  // than fits there is evicted before it is read, and fetched again.
  // Over a network, keeping a pipe of round trips full takes more bytes in flight.
  if (options.prefetch_budget == kAutoPrefetch) {
    bool local = repo.backend().properties().local;
    options.prefetch_budget = std::max<std::uint64_t>(options.mem_budget / (local ? 4 : 2), 1);
  }
  const std::uint64_t scan = options.mem_budget / 2;
  const std::uint64_t reading = 2 * repo::kChunkMaxSize;
  options.prefetch_budget =
      std::min(options.prefetch_budget, scan > 2 * reading ? scan - reading : scan / 2);
  if (options.fetch_threads == 0) {
    // Over a network, two threads per connection keep every connection busy. A local disk
    // needs only a short queue of 2 MiB reads, and more threads only switch more (cold read
    // of 1 GiB, 4 runs each: 16 threads ~930 MB/s, 4-6 threads ~990).
    repo::BackendProperties p = repo.backend().properties();
    unsigned remote = 2 * std::max(1U, p.max_connections);
    unsigned local = std::max(4U, 2 * std::thread::hardware_concurrency());
    options.fetch_threads = p.local ? std::min(local, remote) : remote;
  }
  std::unique_ptr<ChunkStore> store(new ChunkStore(repo, std::move(options)));
  const ChunkStoreOptions& o = store->options_;
  if (!o.disk_dir.empty() && o.disk_budget > 0) {
    COFFER_ASSIGN_OR_RETURN(store->disk_, DiskCache::open(o.disk_dir, o.disk_budget));
  }
  unsigned n = o.fetch_threads;
  store->max_low_ = n > 1 ? n - std::max(1U, n / 4) : 1;
  store->max_decode_ = std::max(1U, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) store->threads_.emplace_back([s = store.get()] { s->worker(); });
  return store;
}

ChunkStore::~ChunkStore() {
  {
    std::scoped_lock lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  std::vector<repo::Id> orphans;  // slots of jobs that never ran
  {
    std::scoped_lock lock(mutex_);
    for (auto& [id, slot] : slots_) {
      if (!slot->done)
        orphans.push_back(id);
    }
  }
  for (const repo::Id& id : orphans) complete(id, repo::fail(Errc::kCancelled, "store closing"));
}

repo::Result<ChunkRef> ChunkStore::get(const repo::Id& blob, Touch touch) {
  ++counters_->gets;
  std::uint64_t generation = reload_generation_;
  auto r = get_once(blob, touch);
  if (!r && r.error().code == Errc::kNotFound && try_reload(generation))
    r = get_once(blob, touch);
  return r;
}

repo::Result<ChunkRef> ChunkStore::get_once(const repo::Id& id, Touch touch) {
  for (;;) {
    // Without caching for random readers, a random hit must not promote a chunk out of the
    // scan segment either.
    if (ChunkRef hit = ram_.find(id, cache_random_ ? touch : Touch::kScan)) {
      ++counters_->ram_hits;
      return hit;
    }
    Batch batch;
    std::shared_ptr<Slot> slot = admit(id, true, batch, touch == Touch::kReuse);
    if (!slot)
      continue;  // it reached the RAM cache meanwhile
    enqueue(std::move(batch.blobs));
    return wait(id, slot);
  }
}

void ChunkStore::schedule(std::span<const repo::Id> needed, std::span<const repo::Id> ahead) {
  Batch batch;
  for (const repo::Id& id : needed) admit(id, true, batch);
  for (const repo::Id& id : ahead) admit(id, false, batch);
  enqueue(std::move(batch.blobs));
}

std::shared_ptr<ChunkStore::Slot> ChunkStore::admit(const repo::Id& id, bool demand, Batch& batch,
                                                    bool random) {
  std::shared_ptr<Slot> slot;
  {
    std::scoped_lock lock(mutex_);
    if (auto it = slots_.find(id); it != slots_.end()) {
      Slot& s = *it->second;
      if (!s.done || Clock::now() < s.expires) {
        s.random = s.random || random;
        if (demand)
          promote(s);
        return it->second;
      }
      slots_.erase(it);  // an expired negative entry
    }
    if (ram_.contains(id))
      return nullptr;
    slot = std::make_shared<Slot>();
    slot->demanded = demand;
    slot->random = random;
    slots_.emplace(id, slot);
  }
  auto where = lookup(id);
  if (!where) {
    complete(id, repo::fail(where.error().with_context("looking up blob " + id.hex())));
  } else if (!*where) {
    complete(id, repo::fail(Errc::kNotFound, "data blob " + id.hex() + " not found in index"));
  } else if (zeros_.is_zero(**where)) {
    ++counters_->zero_hits;
    complete(id, zero_buffer((*where)->plain_size()), false);
  } else {
    batch.blobs.push_back(**where);
  }
  return slot;
}

void ChunkStore::promote(Slot& slot) {
  slot.demanded = true;
  std::shared_ptr<Job>& job = slot.job;
  if (!job || job->taken || job->urgent)
    return;
  job->urgent = true;
  auto later = Clock::now() + options_.deadline;
  job->deadline = std::max(job->deadline.load(), later.time_since_epoch().count());
  if (job->loaded.owner)
    decode_queue_.push_front(job);
  else
    urgent_queue_.push_back(job);
  work_cv_.notify_one();
}

void ChunkStore::enqueue(std::vector<repo::PackedBlob> blobs) {
  if (blobs.empty())
    return;
  auto deadline = (Clock::now() + options_.deadline).time_since_epoch().count();
  std::vector<PackRange> ranges =
      plan_ranges(std::move(blobs), options_.max_gap, options_.max_read);
  std::scoped_lock lock(mutex_);
  for (PackRange& range : ranges) {
    auto job = std::make_shared<Job>();
    job->bytes = range.length;
    job->deadline = deadline;
    for (const repo::PackedBlob& b : range.blobs) {
      auto it = slots_.find(b.id);
      if (it != slots_.end() && it->second->demanded)
        job->urgent = true;
    }
    if (!job->urgent && prefetch_in_flight_ + job->bytes >
                            options_.prefetch_budget + options_.prefetch_budget / 4) {
      ++counters_->prefetch_dropped;
      for (const repo::PackedBlob& b : range.blobs) slots_.erase(b.id);
      continue;
    }
    job->budgeted = !job->urgent;
    if (job->budgeted)
      prefetch_in_flight_ += job->bytes;
    job->blobs = std::move(range.blobs);
    for (const repo::PackedBlob& b : job->blobs) {
      if (auto it = slots_.find(b.id); it != slots_.end() && !it->second->done)
        it->second->job = job;
    }
    (job->urgent ? urgent_queue_ : low_queue_).push_back(job);
  }
  work_cv_.notify_all();
}

repo::Result<ChunkRef> ChunkStore::wait(const repo::Id& id, const std::shared_ptr<Slot>& slot) {
  auto deadline = Clock::now() + options_.deadline;
  std::unique_lock lock(mutex_);
  if (!slot->cv.wait_until(lock, deadline, [&] { return slot->done; })) {
    return repo::fail(
        Errc::kIo,
        fmt::format("blob {}: no answer within {} ms", id.short_hex(), options_.deadline.count()),
        true);
  }
  return slot->result;
}

void ChunkStore::complete(const repo::Id& id, repo::Result<ChunkRef> result, bool cache) {
  std::scoped_lock lock(mutex_);
  auto it = slots_.find(id);
  if (result && cache) {
    // Fetched for a sequential stream (no random reader waits for it): the scan segment.
    bool ahead = it != slots_.end() && !it->second->random;
    if (ahead || cache_random_)
      ram_.insert(id, *result, ahead);  // lock order: mutex_, then the cache's own
  }
  if (it == slots_.end() || it->second->done)
    return;
  std::shared_ptr<Slot> slot = it->second;
  bool remember = !result && result.error().code != Errc::kNotFound &&
                  result.error().code != Errc::kCancelled && options_.error_ttl.count() > 0;
  slot->done = true;
  slot->result = std::move(result);
  slot->job.reset();
  if (remember)
    slot->expires = Clock::now() + options_.error_ttl;
  else
    slots_.erase(it);
  slot->cv.notify_all();
  if (remember && ++negatives_ >= kNegativeSweep)
    sweep_negatives();
}

void ChunkStore::sweep_negatives() {
  auto now = Clock::now();
  negatives_ = 0;
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (it->second->done && it->second->expires <= now) {
      it = slots_.erase(it);
    } else {
      negatives_ += it->second->done ? 1 : 0;
      ++it;
    }
  }
}

repo::Result<std::optional<repo::PackedBlob>> ChunkStore::lookup(const repo::Id& id) const {
  repo::BlobHandle handle{id, repo::BlobType::kData};
  if (options_.index_lock == nullptr)
    return repo_.lookup(handle);
  std::shared_lock lock(*options_.index_lock);
  return repo_.lookup(handle);
}

ChunkRef ChunkStore::zero_buffer(std::uint64_t size) {
  std::scoped_lock lock(zero_mutex_);
  if (!zero_chunk_ || zero_chunk_->size() != size)
    zero_chunk_ = std::make_shared<const ChunkBytes>(size, ChunkBytes::Fill::kZero);
  return zero_chunk_;
}

bool ChunkStore::try_reload(std::uint64_t seen_generation) {
  if (!options_.reload_index)
    return false;
  std::scoped_lock lock(reload_mutex_);
  if (reload_generation_ != seen_generation)
    return true;  // another reader reloaded after this one started
  auto now = Clock::now();
  if (last_reload_ != Clock::time_point{} && now - last_reload_ < options_.reload_interval)
    return false;
  last_reload_ = now;
  ++counters_->reloads;
  auto r = options_.reload_index();
  if (!r) {
    repo::log::warn("reloading the index failed: " + r.error().message);
    return false;
  }
  ++reload_generation_;
  return true;
}

void ChunkStore::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    unsigned* busy = nullptr;  // the limited class the job counts in, if any
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || (job = next_job()) != nullptr; });
      if (stop_)
        return;
      job->taken = true;
      busy = job->loaded.owner ? &busy_decode_ : job->urgent ? nullptr : &busy_low_;
      if (busy != nullptr)
        ++*busy;
    }
    run(*job);
    {
      std::scoped_lock lock(mutex_);
      if (busy != nullptr)
        --*busy;
      if (job->budgeted)
        prefetch_in_flight_ -= job->bytes;
    }
    work_cv_.notify_all();
  }
}

std::shared_ptr<ChunkStore::Job> ChunkStore::next_job() {
  // Demand reads first (their IO overlaps everything else), then decodes (at most one per
  // core, so the chunk a reader waits for is not starved by a crowd of prefetched ones),
  // then prefetch reads (leaving threads free for demand).
  for (auto* queue : {&urgent_queue_, &decode_queue_, &low_queue_}) {
    while (!queue->empty() && queue->front()->taken) queue->pop_front();
  }
  std::deque<std::shared_ptr<Job>>* from = nullptr;
  if (!urgent_queue_.empty())
    from = &urgent_queue_;
  else if (!decode_queue_.empty() && busy_decode_ < max_decode_)
    from = &decode_queue_;
  else if (!low_queue_.empty() && busy_low_ < max_low_)
    from = &low_queue_;
  if (from == nullptr)
    return nullptr;
  std::shared_ptr<Job> job = std::move(from->front());
  from->pop_front();
  return job;
}

void ChunkStore::run(Job& job) {
  if (job.loaded.owner) {
    decode(job);
    return;
  }
  std::vector<repo::PackedBlob> todo;
  for (const repo::PackedBlob& b : job.blobs) {
    if (job.skip_disk || !try_disk(job, b))
      todo.push_back(b);
  }
  Clock::time_point deadline{Clock::duration(job.deadline.load())};
  for (const PackRange& range : plan_ranges(std::move(todo), options_.max_gap, options_.max_read))
    fetch(job, range, deadline);
}

std::uint64_t ChunkStore::take_budget(Job& parent, std::uint64_t bytes) {
  if (!parent.budgeted)
    return 0;
  std::uint64_t moved = std::min(bytes, parent.bytes);
  parent.bytes -= moved;  // the worker releases what is left after run()
  return moved;
}

bool ChunkStore::try_disk(Job& parent, const repo::PackedBlob& blob) {
  if (!disk_)
    return false;
  std::optional<repo::Bytes> sealed = disk_->load(blob.id);
  if (!sealed)
    return false;
  auto owner = std::make_shared<const repo::Bytes>(std::move(*sealed));
  repo::ByteSpan bytes(*owner);
  queue_decode(blob, repo::SharedBytes{std::move(owner), bytes}, blob.offset, true,
               take_budget(parent, blob.length));
  return true;
}

void ChunkStore::fetch(Job& parent, const PackRange& range, Clock::time_point deadline) {
  ++counters_->fetches;
  auto data = load_range(repo_.backend(), range, deadline, load_counters_);
  if (!data) {
    for (const repo::PackedBlob& b : range.blobs)
      complete(b.id, repo::fail(data.error().with_context("blob " + b.id.short_hex())));
    return;
  }
  for (const repo::PackedBlob& b : range.blobs)
    queue_decode(b, *data, range.offset, false, take_budget(parent, b.length));
}

void ChunkStore::queue_decode(const repo::PackedBlob& blob, repo::SharedBytes loaded,
                              std::uint64_t loaded_offset, bool from_disk, std::uint64_t budget) {
  auto job = std::make_shared<Job>();
  job->budgeted = budget > 0;  // prefetch bytes stay counted until decoded
  job->bytes = budget;
  job->blobs = {blob};
  job->loaded = std::move(loaded);
  job->loaded_offset = loaded_offset;
  job->from_disk = from_disk;
  std::scoped_lock lock(mutex_);
  auto it = slots_.find(blob.id);
  if (it != slots_.end() && !it->second->done) {
    it->second->job = job;
    job->urgent = it->second->demanded;
  }
  if (job->urgent)
    decode_queue_.push_front(std::move(job));
  else
    decode_queue_.push_back(std::move(job));
  work_cv_.notify_one();
}

void ChunkStore::decode(const Job& job) {
  const repo::PackedBlob& b = job.blobs.front();
  repo::ByteSpan sealed = job.loaded.bytes.subspan(b.offset - job.loaded_offset, b.length);
  auto chunk = std::make_shared<ChunkBytes>(b.plain_size());
  auto plain = repo_.decode_blob_into(b, sealed, chunk->span());
  if (!plain && job.from_disk) {
    ++counters_->disk_rejected;
    repo::log::warn("chunk cache: dropping a bad file: " + plain.error().message);
    disk_->remove(b.id);
    refetch(b);
    return;
  }
  if (!plain) {
    ++counters_->corrupt;
    complete(b.id, repo::fail(plain.error()));
    return;
  }
  ++(job.from_disk ? counters_->disk_hits : counters_->blobs_fetched);
  complete(b.id, std::move(chunk));
  if (disk_ && !job.from_disk)
    disk_->store(b.id, sealed);
}

void ChunkStore::refetch(const repo::PackedBlob& blob) {
  auto job = std::make_shared<Job>();
  job->blobs = {blob};
  job->bytes = blob.length;
  job->skip_disk = true;
  job->deadline = (Clock::now() + options_.deadline).time_since_epoch().count();
  std::scoped_lock lock(mutex_);
  auto it = slots_.find(blob.id);
  if (it != slots_.end() && !it->second->done) {
    it->second->job = job;
    job->urgent = it->second->demanded;
  }
  (job->urgent ? urgent_queue_ : low_queue_).push_back(std::move(job));
  work_cv_.notify_one();
}

ChunkStats ChunkStore::stats() const {
  const Counters& c = *counters_;
  ChunkStats s;
  s.gets = c.gets;
  s.ram_hits = c.ram_hits;
  s.zero_hits = c.zero_hits;
  s.disk_hits = c.disk_hits;
  s.disk_rejected = c.disk_rejected;
  s.fetches = c.fetches;
  s.backend_loads = load_counters_.calls;
  s.retries = load_counters_.retries;
  s.bytes_fetched = load_counters_.bytes;
  s.blobs_fetched = c.blobs_fetched;
  s.corrupt = c.corrupt;
  s.prefetch_dropped = c.prefetch_dropped;
  s.reloads = c.reloads;
  s.ram_bytes = ram_.bytes();
  s.disk_bytes = disk_ ? disk_->bytes() : 0;
  return s;
}

}  // namespace coffer::fs
