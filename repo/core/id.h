// Id: a 32-byte SHA-256 that names blobs, packs, index, snapshot, key and lock files.
//
// Thread contract: a value type.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "repo/core/bytes.h"
#include "repo/core/error.h"

namespace coffer::repo {

class Id {
 public:
  static constexpr std::size_t kSize = 32;

  Id() : bytes_{} {}
  explicit Id(const std::array<std::byte, kSize>& b) : bytes_(b) {}

  // Parses 64 hex digits (either case). kInvalidArgument otherwise.
  static Result<Id> parse(std::string_view hex);
  // Builds an Id from exactly 32 bytes. REQUIRES: data.size() == 32.
  static Id from_span(ByteSpan data);
  // SHA-256 of `data`.
  static Id hash(ByteSpan data);

  [[nodiscard]] std::string hex() const;        // 64 lowercase hex digits
  [[nodiscard]] std::string short_hex() const;  // first 8 hex digits, as restic prints
  [[nodiscard]] bool is_zero() const;
  [[nodiscard]] const std::array<std::byte, kSize>& bytes() const { return bytes_; }
  [[nodiscard]] ByteSpan span() const { return {bytes_.data(), bytes_.size()}; }

  auto operator<=>(const Id&) const = default;
  bool operator==(const Id&) const = default;

 private:
  std::array<std::byte, kSize> bytes_;
};

struct IdHash {
  std::size_t operator()(const Id& id) const noexcept {
    std::size_t h;
    std::memcpy(&h, id.bytes().data(), sizeof h);
    return h;
  }
};

}  // namespace coffer::repo
