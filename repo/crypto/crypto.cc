#include "repo/crypto/crypto.h"

#include <algorithm>
#include <memory>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "repo/crypto/scrypt.h"

namespace coffer::repo {
namespace {

// ROMix keeps every kScryptVStride-th entry of V (see scrypt.h).
constexpr std::uint32_t kScryptVStride = 2;

template <auto Fn>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};
using EvpCipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CDeleter<&EVP_CIPHER_CTX_free>>;
using EvpMacCtx = std::unique_ptr<EVP_MAC_CTX, CDeleter<&EVP_MAC_CTX_free>>;
using EvpKdfCtx = std::unique_ptr<EVP_KDF_CTX, CDeleter<&EVP_KDF_CTX_free>>;

// Algorithms fetched once; EVP_CIPHER/EVP_MAC objects are immutable and thread-safe.
struct Algorithms {
  EVP_CIPHER* aes256ctr = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
  EVP_CIPHER* aes128ecb = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
  EVP_MAC* poly1305 = EVP_MAC_fetch(nullptr, "POLY1305", nullptr);
  ~Algorithms() {
    EVP_CIPHER_free(aes256ctr);
    EVP_CIPHER_free(aes128ecb);
    EVP_MAC_free(poly1305);
  }
};

const Algorithms& algorithms() {
  static const Algorithms algs;
  return algs;
}

const unsigned char* uc(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* uc(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

bool aes_ctr(const MasterKey& key, const std::byte* iv, ByteSpan in, std::byte* out) {
  EvpCipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  return ctx &&
         EVP_EncryptInit_ex2(ctx.get(), algorithms().aes256ctr, uc(key.encrypt.data()), uc(iv),
                             nullptr) == 1 &&
         (in.empty() || EVP_EncryptUpdate(ctx.get(), uc(out), &len, uc(in.data()),
                                          static_cast<int>(in.size())) == 1);
}

bool poly1305_aes(const MasterKey& key, const std::byte* iv, ByteSpan ct, std::byte* tag) {
  std::array<std::byte, 32> otk{};
  std::copy(key.mac_r.begin(), key.mac_r.end(), otk.begin());
  EvpCipherCtx ecb(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ecb || EVP_EncryptInit_ex2(ecb.get(), algorithms().aes128ecb, uc(key.mac_k.data()), nullptr,
                                  nullptr) != 1) {
    return false;
  }
  EVP_CIPHER_CTX_set_padding(ecb.get(), 0);
  if (EVP_EncryptUpdate(ecb.get(), uc(otk.data() + 16), &len, uc(iv), 16) != 1)
    return false;
  EvpMacCtx mac(EVP_MAC_CTX_new(algorithms().poly1305));
  std::size_t out_len = 0;
  bool ok = mac && EVP_MAC_init(mac.get(), uc(otk.data()), otk.size(), nullptr) == 1 &&
            EVP_MAC_update(mac.get(), uc(ct.data()), ct.size()) == 1 &&
            EVP_MAC_final(mac.get(), uc(tag), &out_len, 16) == 1 && out_len == 16;
  OPENSSL_cleanse(otk.data(), otk.size());
  return ok;
}

}  // namespace

MasterKey::~MasterKey() {
  OPENSSL_cleanse(encrypt.data(), encrypt.size());
  OPENSSL_cleanse(mac_k.data(), mac_k.size());
  OPENSSL_cleanse(mac_r.data(), mac_r.size());
}

bool MasterKey::valid() const {
  auto nonzero = [](const auto& a) {
    return std::any_of(a.begin(), a.end(), [](std::byte b) { return b != std::byte{0}; });
  };
  return nonzero(encrypt) && nonzero(mac_k) && nonzero(mac_r);
}

Result<void> open_sealed_into(const MasterKey& key, ByteSpan sealed, std::span<std::byte> out) {
  if (sealed.size() < kCryptoOverhead) {
    return fail(Errc::kCorrupt,
                "ciphertext too short (" + std::to_string(sealed.size()) + " bytes)");
  }
  if (out.size() != sealed.size() - kCryptoOverhead)
    return fail(Errc::kInvalidArgument, "open_sealed_into: output size differs from plaintext");
  const std::byte* iv = sealed.data();
  if (std::all_of(iv, iv + 16, [](std::byte b) { return b == std::byte{0}; })) {
    return fail(Errc::kCorrupt, "invalid nonce (all zero)");
  }
  ByteSpan ct = sealed.subspan(16, sealed.size() - kCryptoOverhead);
  std::array<std::byte, 16> tag{};
  if (!poly1305_aes(key, iv, ct, tag.data()))
    return fail(Errc::kIo, "Poly1305 failed");
  if (CRYPTO_memcmp(tag.data(), sealed.data() + sealed.size() - 16, 16) != 0) {
    return fail(Errc::kCorrupt, "ciphertext verification failed (MAC mismatch)");
  }
  if (!aes_ctr(key, iv, ct, out.data()))
    return fail(Errc::kIo, "AES-CTR failed");
  return {};
}

Result<Bytes> open_sealed(const MasterKey& key, ByteSpan sealed) {
  Bytes plain(sealed.size() < kCryptoOverhead ? 0 : sealed.size() - kCryptoOverhead);
  COFFER_TRY(open_sealed_into(key, sealed, plain));
  return plain;
}

Result<Bytes> seal(const MasterKey& key, ByteSpan plain) {
  Bytes out(plain.size() + kCryptoOverhead);
  std::span<std::byte> iv(out.data(), 16);
  do {
    COFFER_TRY(random_bytes(iv));
  } while (std::all_of(iv.begin(), iv.end(), [](std::byte b) { return b == std::byte{0}; }));
  if (!aes_ctr(key, out.data(), plain, out.data() + 16))
    return fail(Errc::kIo, "AES-CTR failed");
  ByteSpan ct(out.data() + 16, plain.size());
  if (!poly1305_aes(key, out.data(), ct, out.data() + 16 + plain.size())) {
    return fail(Errc::kIo, "Poly1305 failed");
  }
  return out;
}

Result<std::array<std::byte, 64>> scrypt_derive(std::string_view password, ByteSpan salt,
                                                std::uint64_t n, std::uint32_t r, std::uint32_t p) {
  if (n < 2 || (n & (n - 1)) != 0 || r < 1 || p < 1 ||
      static_cast<std::uint64_t>(r) * p >= (1ULL << 30)) {
    return fail(Errc::kInvalidArgument, "invalid scrypt parameters");
  }
  // scrypt needs 128·r·(N + p) bytes; refuse parameters no honest key file has (restic
  // calibrates to ~60 MiB) instead of trying to allocate terabytes.
  constexpr std::uint64_t kMaxScryptMemory = 4ULL << 30;
  if (n > kMaxScryptMemory / 128 / r || 128ULL * r * (n + p) > kMaxScryptMemory) {
    return fail(Errc::kInvalidArgument, "scrypt parameters need more than 4 GiB of memory");
  }
  std::array<std::byte, 64> out{};
  // Three lanes run at once, each keeping every second entry of V (64·r·N bytes, 16 MiB
  // with restic's parameters, for a quarter more work). Three even on two cores: restic's
  // p=5 lanes then cost ~6.25 lane-times spread over both cores (~3.1) instead of three
  // rounds of two (3.75), in 48 MiB instead of the 64 MiB two full lanes took (the derivation
  // set the peak RSS of an unchanged backup).
  constexpr unsigned threads = 3;
  COFFER_TRY(scrypt_parallel(password, salt, n, r, p, out, threads, kScryptVStride));
  return out;
}

MasterKey key_from_derived(const std::array<std::byte, 64>& dk) {
  MasterKey k;
  std::copy_n(dk.begin(), 32, k.encrypt.begin());
  std::copy_n(dk.begin() + 32, 16, k.mac_k.begin());
  std::copy_n(dk.begin() + 48, 16, k.mac_r.begin());
  return k;
}

Result<void> random_bytes(std::span<std::byte> out) {
  if (RAND_bytes(uc(out.data()), static_cast<int>(out.size())) != 1) {
    return fail(Errc::kIo, "random number generator failed");
  }
  return {};
}

}  // namespace coffer::repo
