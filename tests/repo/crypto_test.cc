#include "repo/crypto/crypto.h"

#include <catch2/catch.hpp>

#include "repo/crypto/key_file.h"

using namespace coffer::repo;

namespace {

MasterKey test_key() {
  MasterKey k;
  for (std::size_t i = 0; i < 32; ++i) k.encrypt[i] = std::byte(i + 1);
  for (std::size_t i = 0; i < 16; ++i) k.mac_k[i] = std::byte(0x40 + i);
  for (std::size_t i = 0; i < 16; ++i) k.mac_r[i] = std::byte(0x80 + i);
  return k;
}

}  // namespace

TEST_CASE("seal then open returns the plaintext", "[crypto]") {
  MasterKey k = test_key();
  auto plain = GENERATE(std::string(""), std::string("a"), std::string(100000, 'x'));
  auto sealed = seal(k, as_bytes(plain));
  REQUIRE(sealed);
  REQUIRE(sealed->size() == plain.size() + kCryptoOverhead);
  auto opened = open_sealed(k, *sealed);
  REQUIRE(opened);
  REQUIRE(to_string(*opened) == plain);
}

TEST_CASE("two seals of the same plaintext use different IVs", "[crypto]") {
  MasterKey k = test_key();
  auto a = seal(k, as_bytes("same"));
  auto b = seal(k, as_bytes("same"));
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(*a != *b);
}

TEST_CASE("open rejects tampering, short input, zero IV and the wrong key", "[crypto]") {
  MasterKey k = test_key();
  auto sealed = seal(k, as_bytes("secret payload"));
  REQUIRE(sealed);
  SECTION("flipped ciphertext byte") {
    (*sealed)[20] ^= std::byte{1};
    auto r = open_sealed(k, *sealed);
    REQUIRE_FALSE(r);
    REQUIRE(r.error().code == Errc::kCorrupt);
  }
  SECTION("flipped MAC byte") {
    sealed->back() ^= std::byte{0x80};
    REQUIRE_FALSE(open_sealed(k, *sealed));
  }
  SECTION("too short") { REQUIRE_FALSE(open_sealed(k, ByteSpan(sealed->data(), 31))); }
  SECTION("all-zero IV") {
    std::fill(sealed->begin(), sealed->begin() + 16, std::byte{0});
    auto r = open_sealed(k, *sealed);
    REQUIRE_FALSE(r);
    REQUIRE(r.error().message.find("nonce") != std::string::npos);
  }
  SECTION("other key") {
    MasterKey other = test_key();
    other.mac_r[0] ^= std::byte{1};
    REQUIRE_FALSE(open_sealed(other, *sealed));
  }
}

TEST_CASE("scrypt matches the RFC 7914 test vector", "[crypto]") {
  Bytes salt = to_bytes("NaCl");
  auto dk = scrypt_derive("password", salt, 1024, 8, 16);
  REQUIRE(dk);
  REQUIRE(hex_encode(*dk) ==
          "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
          "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  REQUIRE_FALSE(scrypt_derive("x", salt, 1000, 8, 1));  // N not a power of two
}

TEST_CASE("master key JSON round-trips and rejects garbage", "[crypto]") {
  MasterKey k = test_key();
  auto parsed = parse_master_key(serialize_master_key(k));
  REQUIRE(parsed);
  REQUIRE(parsed->encrypt == k.encrypt);
  REQUIRE(parsed->mac_k == k.mac_k);
  REQUIRE(parsed->mac_r == k.mac_r);
  REQUIRE_FALSE(parse_master_key("{\"mac\":{}}"));
  REQUIRE_FALSE(parse_master_key("not json"));
}

TEST_CASE("key files with bad fields are rejected as corrupt", "[crypto]") {
  REQUIRE(parse_key_file("{").error().code == Errc::kCorrupt);
  REQUIRE(parse_key_file(R"({"kdf":"argon2"})").error().code == Errc::kCorrupt);
  REQUIRE(parse_key_file(R"({"kdf":"scrypt","N":16,"r":1,"p":1,"salt":"AAAA","data":""})")
              .error()
              .code == Errc::kCorrupt);
}
