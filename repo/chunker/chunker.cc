// restic's chunker (restic-format.md §10), arranged for speed.
//
// The digest is the polynomial of the 64-byte window mod P. Per byte, restic computes
//   d = ((d ^ out[o]) << 8 | c) ^ mod[(d ^ out[o]) >> (k-8)]   with out[o] = o·x^504 mod P.
// We compute the same value (both are fully reduced) as
//   d = ((d << 8) ^ reduce[d >> (k-8)]) ^ (c ^ slide_out[o])   with slide_out[o] = o·x^512 mod P,
// which keeps only one table load on the chain from one digest to the next.
//
// That chain (shift, load, xor) still costs ~6 cycles per byte, so long buffers are hashed in
// blocks of kLanes independent lanes. This is exact because, once a chunk is 64 bytes past
// its skipped prefix, the digest depends only on the 64 bytes before the position: a lane
// starting at q begins from the digest of data[q-64, q) hashed into an empty window.
#include "repo/chunker/chunker.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace coffer::repo {

struct ChunkerTables {
  // reduce[b] = (b·x^k mod P) | (b << k), k = deg P: XORed into d << 8 it clears the 8 bits
  // that overflowed past degree k-1 and adds their remainder: (d<<8) ^ reduce[d>>shift]
  // = d·x^8 mod P.
  std::array<std::uint64_t, 256> reduce;
  // slide_out[b] = b·x^512 mod P: what a byte contributes when it leaves the window.
  std::array<std::uint64_t, 256> slide_out;
  unsigned shift;  // k - 8

  // The digest after sliding `in` into a window whose oldest byte is `out`.
  [[nodiscard]] std::uint64_t step(std::uint64_t d, std::uint8_t in, std::uint8_t out) const {
    const std::uint64_t off_chain = (d << 8) ^ in ^ slide_out[out];
    return off_chain ^ reduce[d >> shift];  // one load on the chain from d to d'
  }
};

namespace {

constexpr std::uint64_t kSplitMask = (1u << 20) - 1;
constexpr std::uint64_t kWindowSize = 64;
// restic hashes nothing of the first MinSize-64 bytes of a chunk ("pre").
constexpr std::uint64_t kSkip = kChunkMinSize - kWindowSize;

constexpr std::size_t kLanes = 4;
constexpr std::size_t kLaneBytes = 4096;
constexpr std::size_t kBlockBytes = kLanes * kLaneBytes;
constexpr std::size_t kNoCut = static_cast<std::size_t>(-1);

// r·x^n mod p, for r reduced mod p, by n multiplications by x.
std::uint64_t times_x_pow(std::uint64_t r, int n, Polynomial p, int deg) {
  for (int i = 0; i < n; ++i) {
    r <<= 1;
    if ((r >> deg) & 1)
      r ^= p;
  }
  return r;
}

std::shared_ptr<const ChunkerTables> build_tables(Polynomial p) {
  const int deg = polynomial_degree(p);
  auto t = std::make_shared<ChunkerTables>();
  t->shift = static_cast<unsigned>(deg - 8);
  for (std::uint64_t b = 0; b < 256; ++b) {
    t->reduce[b] = times_x_pow(b, deg, p, deg) | (b << deg);
    t->slide_out[b] = times_x_pow(b, 8 * kWindowSize, p, deg);
  }
  return t;
}

// Built once per process and polynomial.
std::shared_ptr<const ChunkerTables> tables_for(Polynomial p) {
  static std::mutex mutex;
  static std::map<Polynomial, std::shared_ptr<const ChunkerTables>> cache;  // guarded by mutex
  std::scoped_lock lock(mutex);
  auto& slot = cache[p];
  if (!slot)
    slot = build_tables(p);
  return slot;
}

// Hashes p[0, len) (whose 64 predecessors are hashed window bytes) one byte at a time.
// Returns the offset just past the first byte after which the digest has its low 20 bits
// zero, or kNoCut; `digest` enters as the digest before p[0] and leaves as the last one.
std::size_t scan_serial(const ChunkerTables& t, const std::uint8_t* p, std::size_t len,
                        std::uint64_t& digest) {
  for (std::size_t i = 0; i < len; ++i) {
    digest = t.step(digest, p[i], *(p + i - kWindowSize));
    if ((digest & kSplitMask) == 0)
      return i + 1;
  }
  return kNoCut;
}

// One step of lane J of a block, which hashes p[J*kLaneBytes + s]. True on a split digest.
template <std::size_t J>
inline bool step_lane(const ChunkerTables& t, const std::uint8_t* p, std::size_t s,
                      std::array<std::uint64_t, kLanes>& d) {
  const std::uint8_t* q = p + J * kLaneBytes + s;
  d[J] = t.step(d[J], *q, *(q - kWindowSize));
  return (d[J] & kSplitMask) == 0;
}

// Steps every lane; returns the first lane whose digest splits (later lanes are not
// stepped then), or -1. The early exit keeps the compiler from if-converting the test.
template <std::size_t... J>
inline int step_lanes(const ChunkerTables& t, const std::uint8_t* p, std::size_t s,
                      std::array<std::uint64_t, kLanes>& d, std::index_sequence<J...> /*lanes*/) {
  int lane = -1;
  static_cast<void>(((step_lane<J>(t, p, s, d) && (lane = J, true)) || ...));
  return lane;
}

// Lanes 1.. start from the digest of the 64 bytes before them, hashed into an empty window.
template <std::size_t... J>
inline void warm_lanes(const ChunkerTables& t, const std::uint8_t* p,
                       std::array<std::uint64_t, kLanes>& d, std::index_sequence<J...> /*lanes*/) {
  ((d[J + 1] = 0), ...);
  for (std::size_t b = 0; b < kWindowSize; ++b)
    ((d[J + 1] = t.step(d[J + 1], p[(J + 1) * kLaneBytes - kWindowSize + b], 0)), ...);
}

// As scan_serial for len == kBlockBytes, hashing kLanes segments side by side. When lane
// `hit` splits at step s, lanes 0..hit-1 have no split up to s; their rest is scanned
// serially, in order, before lane `hit`'s split counts.
std::size_t scan_block(const ChunkerTables& t, const std::uint8_t* p, std::uint64_t& digest) {
  std::array<std::uint64_t, kLanes> d{};
  d[0] = digest;
  warm_lanes(t, p, d, std::make_index_sequence<kLanes - 1>());
  for (std::size_t s = 0; s < kLaneBytes; ++s) {
    const int hit = step_lanes(t, p, s, d, std::make_index_sequence<kLanes>());
    if (hit < 0) [[likely]]
      continue;
    for (std::size_t j = 0; j < static_cast<std::size_t>(hit); ++j) {
      const std::size_t from = j * kLaneBytes + s + 1;
      const std::size_t cut = scan_serial(t, p + from, kLaneBytes - s - 1, d[j]);
      if (cut != kNoCut)
        return from + cut;
    }
    return static_cast<std::size_t>(hit) * kLaneBytes + s + 1;
  }
  digest = d[kLanes - 1];
  return kNoCut;
}

// As scan_serial, by blocks of kBlockBytes while they fit.
std::size_t scan(const ChunkerTables& t, const std::uint8_t* p, std::size_t len,
                 std::uint64_t& digest) {
  std::size_t i = 0;
  for (; len - i >= kBlockBytes; i += kBlockBytes) {
    const std::size_t cut = scan_block(t, p + i, digest);
    if (cut != kNoCut)
      return i + cut;
  }
  const std::size_t cut = scan_serial(t, p + i, len - i, digest);
  return cut == kNoCut ? kNoCut : i + cut;
}

}  // namespace

Chunker::Chunker(Polynomial polynomial) {
  const int deg = polynomial_degree(polynomial);
  if (deg < 8 || deg > 53) {  // restic panics on these too
    std::fprintf(stderr, "coffer: chunker polynomial %llx has degree %d, outside 8..53\n",
                 static_cast<unsigned long long>(polynomial), deg);
    std::abort();
  }
  tables_ = tables_for(polynomial);
  reset();
}

// restic's reset: an empty window, then one 0x01 byte slid in.
void Chunker::reset() {
  window_.fill(0);
  window_[0] = 1;
  wpos_ = 1;
  digest_ = 1;
  size_ = 0;
}

bool Chunker::slide_byte(std::uint8_t c) {
  const std::uint8_t out = window_[wpos_];
  window_[wpos_] = c;
  wpos_ = (wpos_ + 1) % static_cast<unsigned>(kWindowSize);
  digest_ = tables_->step(digest_, c, out);
  ++size_;
  return size_ >= kChunkMinSize && ((digest_ & kSplitMask) == 0 || size_ == kChunkMaxSize);
}

std::optional<std::size_t> Chunker::find_boundary(ByteSpan data) {
  const std::size_t n = data.size();
  std::size_t i = 0;
  if (size_ < kSkip) {
    i = static_cast<std::size_t>(std::min<std::uint64_t>(n, kSkip - size_));
    size_ += i;
  }
  // The first 64 bytes hashed in this call slide out bytes that are in the ring.
  for (const std::size_t ring_end = std::min(n, i + kWindowSize); i < ring_end; ++i) {
    if (slide_byte(std::to_integer<std::uint8_t>(data[i]))) {
      reset();
      return i + 1;
    }
  }
  if (i == n)
    return std::nullopt;
  if (auto cut = scan_in_place(data, i, n)) {
    reset();
    return cut;
  }
  std::memcpy(window_.data(), data.data() + n - kWindowSize, kWindowSize);  // oldest first
  wpos_ = 0;
  return std::nullopt;
}

std::optional<std::size_t> Chunker::scan_in_place(ByteSpan data, std::size_t from, std::size_t to) {
  // 64 bytes of this chunk are hashed, so size_ >= kChunkMinSize and only the split mask
  // and the max size can cut.
  const std::uint64_t room = kChunkMaxSize - size_;
  const std::size_t end = to - from > room ? from + static_cast<std::size_t>(room) : to;
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t cut = scan(*tables_, p + from, end - from, digest_);
  if (cut != kNoCut)
    return from + cut;
  size_ += end - from;
  if (size_ == kChunkMaxSize)
    return end;
  return std::nullopt;
}

// After the skipped prefix, a cut comes within 64 zeros: by then the window is all zero, so
// the digest is 0, and size_ >= kChunkMinSize. So this loop runs at most 64 times.
std::optional<std::uint64_t> Chunker::find_boundary_in_zeros(std::uint64_t count) {
  std::uint64_t i = 0;
  if (size_ < kSkip) {
    i = std::min(count, kSkip - size_);
    size_ += i;
  }
  for (; i < count; ++i) {
    if (slide_byte(0)) {
      reset();
      return i + 1;
    }
  }
  return std::nullopt;
}

const Id& zero_chunk_id() {
  static const Id id = Id::hash(Bytes(kChunkMinSize));
  return id;
}

}  // namespace coffer::repo
