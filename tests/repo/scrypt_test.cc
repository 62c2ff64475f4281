// scrypt_parallel against RFC 7914's vectors and against OpenSSL's EVP_PBE_scrypt.
#include "repo/crypto/scrypt.h"

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include "repo/core/bytes.h"

using namespace coffer::repo;

namespace {

std::string derive_hex(std::string_view password, std::string_view salt, std::uint64_t n,
                       std::uint32_t r, std::uint32_t p, unsigned threads, std::size_t len = 64,
                       std::uint32_t stride = 1) {
  std::vector<std::byte> out(len);
  auto ok = scrypt_parallel(password, as_bytes(salt), n, r, p, out, threads, stride);
  REQUIRE(ok);
  return hex_encode(out);
}

std::string openssl_hex(std::string_view password, std::string_view salt, std::uint64_t n,
                        std::uint32_t r, std::uint32_t p, std::size_t len = 64) {
  std::vector<unsigned char> out(len);
  REQUIRE(EVP_PBE_scrypt(password.data(), password.size(),
                         reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n, r, p,
                         0xFFFFFFFFU, out.data(), out.size()) == 1);
  std::vector<std::byte> bytes(len);
  std::memcpy(bytes.data(), out.data(), len);
  return hex_encode(bytes);
}

}  // namespace

TEST_CASE("scrypt_parallel matches RFC 7914's test vectors with any thread count", "[crypto]") {
  unsigned threads = GENERATE(0U, 1U, 2U, 5U);
  CHECK(derive_hex("", "", 16, 1, 1, threads) ==
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
  CHECK(derive_hex("password", "NaCl", 1024, 8, 16, threads) ==
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
}

TEST_CASE("scrypt_parallel equals OpenSSL's scrypt for restic-like parameters", "[crypto]") {
  struct Case {
    std::uint64_t n;
    std::uint32_t r, p;
    unsigned threads;
    std::size_t len;
  };
  for (Case c : {Case{4096, 8, 6, 3, 64}, Case{2048, 8, 6, 2, 64}, Case{1024, 4, 3, 0, 64},
                 Case{256, 1, 7, 4, 32}, Case{2, 2, 1, 1, 100}}) {
    INFO("N=" << c.n << " r=" << c.r << " p=" << c.p << " threads=" << c.threads);
    std::string salt(64, '\0');
    for (std::size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<char>(i * 37 + 11);
    CHECK(derive_hex("c0ffer pass\xc3\xa9", salt, c.n, c.r, c.p, c.threads, c.len) ==
          openssl_hex("c0ffer pass\xc3\xa9", salt, c.n, c.r, c.p, c.len));
  }
}

TEST_CASE("scrypt_parallel gives the same bytes when V keeps only every k-th entry", "[crypto]") {
  std::uint32_t stride = GENERATE(0U, 2U, 3U, 4U, 64U);
  INFO("stride=" << stride);
  CHECK(derive_hex("", "", 16, 1, 1, 2, 64, stride) ==
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
  CHECK(derive_hex("password", "NaCl", 1024, 8, 16, 3, 64, stride) ==
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  struct Case {
    std::uint64_t n;
    std::uint32_t r, p;
    unsigned threads;
  };
  // p not a multiple of the thread count, r other than restic's 8, N smaller than the stride.
  for (Case c : {Case{4096, 8, 7, 2}, Case{2048, 3, 5, 3}, Case{512, 1, 3, 2}, Case{2, 2, 2, 1}}) {
    INFO("N=" << c.n << " r=" << c.r << " p=" << c.p << " threads=" << c.threads);
    std::string salt(32, '\0');
    for (std::size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<char>(i * 53 + 7);
    CHECK(derive_hex("pw", salt, c.n, c.r, c.p, c.threads, 64, stride) ==
          openssl_hex("pw", salt, c.n, c.r, c.p));
  }
}
