// restic's authenticated encryption: AES-256-CTR + Poly1305-AES (restic-format.md §2, §3).
//
// Every encrypted unit is IV(16) ‖ ciphertext ‖ MAC(16). The MAC is Poly1305 over the
// ciphertext with the one-time key r ‖ AES-128(k, IV).
//
// Thread contract: MasterKey is an immutable value; all functions are safe to call
// concurrently. Key material is wiped when a MasterKey is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "repo/core/bytes.h"
#include "repo/core/error.h"

namespace coffer::repo {

inline constexpr std::size_t kCryptoOverhead = 32;  // IV + MAC

struct MasterKey {
  std::array<std::byte, 32> encrypt{};
  std::array<std::byte, 16> mac_k{};
  std::array<std::byte, 16> mac_r{};

  MasterKey() = default;
  MasterKey(const MasterKey&) = default;
  MasterKey& operator=(const MasterKey&) = default;
  ~MasterKey();
  // True when all three parts are non-zero (restic refuses zero keys).
  [[nodiscard]] bool valid() const;
};

// Verifies the MAC and decrypts `sealed` (IV ‖ ct ‖ MAC). Errors: kCorrupt on a short
// input, an all-zero IV or a MAC mismatch.
Result<Bytes> open_sealed(const MasterKey& key, ByteSpan sealed);

// As open_sealed, into `out`, which must hold exactly sealed.size() - kCryptoOverhead bytes
// (kInvalidArgument otherwise). `out` is written only once the MAC has been verified.
Result<void> open_sealed_into(const MasterKey& key, ByteSpan sealed, std::span<std::byte> out);

// Encrypts `plain` with a fresh random IV. Errors: kIo if the RNG fails.
Result<Bytes> seal(const MasterKey& key, ByteSpan plain);

// scrypt(password, salt, N, r, p) → 64 bytes. Errors: kInvalidArgument on bad params.
Result<std::array<std::byte, 64>> scrypt_derive(std::string_view password, ByteSpan salt,
                                                std::uint64_t n, std::uint32_t r, std::uint32_t p);

// Splits 64 derived bytes into a user key (enc 32, mac.k 16, mac.r 16).
MasterKey key_from_derived(const std::array<std::byte, 64>& dk);

// Fills `out` with cryptographically secure random bytes. Errors: kIo.
Result<void> random_bytes(std::span<std::byte> out);

}  // namespace coffer::repo
