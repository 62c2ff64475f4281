// Byte buffers and little-endian coding helpers.
//
// Thread contract: free functions over caller-owned memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coffer::repo {

using Bytes = std::vector<std::byte>;
using ByteSpan = std::span<const std::byte>;

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) {
  auto b = as_bytes(s);
  return {b.begin(), b.end()};
}
inline std::string to_string(ByteSpan b) { return std::string(as_chars(b)); }

inline std::uint32_t load_le32(const std::byte* p) {
  return std::to_integer<std::uint32_t>(p[0]) | (std::to_integer<std::uint32_t>(p[1]) << 8) |
         (std::to_integer<std::uint32_t>(p[2]) << 16) |
         (std::to_integer<std::uint32_t>(p[3]) << 24);
}
inline void store_le32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
inline std::uint64_t load_le64(const std::byte* p) {
  return static_cast<std::uint64_t>(load_le32(p)) |
         (static_cast<std::uint64_t>(load_le32(p + 4)) << 32);
}
inline void store_le64(std::byte* p, std::uint64_t v) {
  store_le32(p, static_cast<std::uint32_t>(v));
  store_le32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

// Standard base64 with '=' padding.
std::string base64_encode(ByteSpan data);
// Decodes standard base64 (padding optional); returns false on invalid input.
bool base64_decode(std::string_view text, Bytes& out);

// Value of one hex digit (either case), or -1.
int hex_digit_value(char c);

// Lowercase hex of `data`.
std::string hex_encode(ByteSpan data);
// Decodes hex (either case); returns false on odd length or a non-hex digit.
bool hex_decode(std::string_view text, Bytes& out);

}  // namespace coffer::repo
