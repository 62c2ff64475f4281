#include "repo/core/id.h"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace coffer::repo {

Result<Id> Id::parse(std::string_view hex) {
  // Straight into the array: ids are parsed by the hundred thousand (trees, indexes).
  std::array<std::byte, kSize> b{};
  bool ok = hex.size() == kSize * 2;
  for (std::size_t i = 0; ok && i < kSize; ++i) {
    int hi = hex_digit_value(hex[2 * i]);
    int lo = hex_digit_value(hex[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    b[i] = static_cast<std::byte>(ok ? hi * 16 + lo : 0);
  }
  if (!ok)
    return fail(Errc::kInvalidArgument, "invalid id \"" + std::string(hex.substr(0, 80)) + "\"");
  return Id(b);
}

Id Id::from_span(ByteSpan data) {
  std::array<std::byte, kSize> b{};
  std::copy_n(data.begin(), kSize, b.begin());
  return Id(b);
}

Id Id::hash(ByteSpan data) {
  std::array<std::byte, kSize> b{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         reinterpret_cast<unsigned char*>(b.data()));
  return Id(b);
}

std::string Id::hex() const { return hex_encode(span()); }

std::string Id::short_hex() const { return hex().substr(0, 8); }

bool Id::is_zero() const {
  return std::all_of(bytes_.begin(), bytes_.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace coffer::repo
