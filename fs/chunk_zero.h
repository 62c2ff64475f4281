// ZeroChunks: recognises the id of an all-zero blob of a given size without hashing it.
//
// restic names a blob by the SHA-256 of its plaintext, so an all-zero chunk of N bytes has
// one well-known id per N (restic's chunker cuts zero runs into 512 KiB chunks, and a file's
// tail can be any size). Hashing N zero bytes for every chunk size met would cost as much as
// hashing the data, so this unit keeps SHA-256 midstates after every 8 KiB of zeros and
// finishes a query from the nearest one (≤ 128 compression rounds, a few tens of µs).
// The SHA-256 compression function lives here (not in repo/crypto) because it needs the
// midstate, which the crypto unit does not expose; tests check it against Id::hash.
//
// Thread contract: every method is safe to call concurrently (one internal mutex).
// Ownership: owns its midstate table (32 bytes per 8 KiB of the largest size asked for)
// and a small memo of recent answers.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "repo/core/id.h"
#include "repo/index/blob.h"

namespace coffer::fs {

class ZeroChunks {
 public:
  // SHA-256 of `size` zero bytes.
  [[nodiscard]] repo::Id id_for(std::uint64_t size) const;

  // True when `blob`, as the index lists it, is the all-zero blob of its plaintext size.
  // A compressed blob whose stored length is far above what zstd makes of zeros is
  // rejected without hashing.
  [[nodiscard]] bool is_zero(const repo::PackedBlob& blob) const;

 private:
  using State = std::array<std::uint32_t, 8>;
  State midstate(std::uint64_t blocks) const;  // REQUIRES: mutex_ held

  static constexpr std::uint64_t kStrideBlocks = 128;  // 8 KiB of zeros between midstates
  static constexpr std::size_t kMemoMax = 4096;

  mutable std::mutex mutex_;                // guards checkpoints_, memo_
  mutable std::vector<State> checkpoints_;  // [k] = state after k * kStrideBlocks zero blocks
  mutable std::unordered_map<std::uint64_t, repo::Id> memo_;
};

}  // namespace coffer::fs
