#include "fs/chunk_zero.h"

#include <cstring>

namespace coffer::fs {
namespace {

constexpr std::array<std::uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::array<std::uint32_t, 8> kInit = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

constexpr std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// One SHA-256 compression of the 16 big-endian words `w` into `s` (FIPS 180-4 §6.2.2).
void compress(std::array<std::uint32_t, 8>& s, const std::array<std::uint32_t, 16>& block) {
  std::array<std::uint32_t, 64> w{};
  std::memcpy(w.data(), block.data(), sizeof block);
  for (int i = 16; i < 64; ++i) {
    std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  auto [a, b, c, d, e, f, g, h] = s;
  for (int i = 0; i < 64; ++i) {
    std::uint32_t t1 =
        h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[i] + w[i];
    std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  std::array<std::uint32_t, 8> add = {a, b, c, d, e, f, g, h};
  for (int i = 0; i < 8; ++i) s[i] += add[i];
}

void zero_blocks(std::array<std::uint32_t, 8>& s, std::uint64_t n) {
  const std::array<std::uint32_t, 16> zero{};
  for (std::uint64_t i = 0; i < n; ++i) compress(s, zero);
}

// Pads and finishes a message of `size` zero bytes whose full blocks `s` already holds.
repo::Id finish(std::array<std::uint32_t, 8> s, std::uint64_t size) {
  std::uint64_t rest = size % 64;  // zero bytes after the last full block
  std::array<std::uint32_t, 16> block{};
  block[rest / 4] = 0x80U << (8 * (3 - rest % 4));
  if (rest >= 56) {
    compress(s, block);
    block = {};
  }
  std::uint64_t bits = size * 8;
  block[14] = static_cast<std::uint32_t>(bits >> 32);
  block[15] = static_cast<std::uint32_t>(bits);
  compress(s, block);
  std::array<std::byte, repo::Id::kSize> out{};
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<std::byte>(s[i] >> (24 - 8 * j));
  }
  return repo::Id(out);
}

}  // namespace

ZeroChunks::State ZeroChunks::midstate(std::uint64_t blocks) const {
  std::uint64_t k = blocks / kStrideBlocks;
  if (checkpoints_.empty())
    checkpoints_.push_back(kInit);
  while (checkpoints_.size() <= k) {
    State next = checkpoints_.back();
    zero_blocks(next, kStrideBlocks);
    checkpoints_.push_back(next);
  }
  State s = checkpoints_[k];
  zero_blocks(s, blocks % kStrideBlocks);
  return s;
}

repo::Id ZeroChunks::id_for(std::uint64_t size) const {
  std::scoped_lock lock(mutex_);
  if (auto it = memo_.find(size); it != memo_.end())
    return it->second;
  repo::Id id = finish(midstate(size / 64), size);
  if (memo_.size() >= kMemoMax)
    memo_.clear();
  memo_.emplace(size, id);
  return id;
}

bool ZeroChunks::is_zero(const repo::PackedBlob& blob) const {
  std::uint64_t size = blob.plain_size();
  // zstd turns zeros into RLE blocks (a few bytes per 128 KiB block); allow a wide margin.
  if (blob.compressed() && blob.length > size / 1024 + 4096)
    return false;
  return id_for(size) == blob.id;
}

}  // namespace coffer::fs
