// scrypt with concurrent lanes (see scrypt.h). BlockMix and ROMix follow RFC 7914 §4-5;
// the lanes work on 32-bit little-endian words.
#include "repo/crypto/scrypt.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include <openssl/evp.h>

namespace coffer::repo {
namespace {

using Word = std::uint32_t;

// The Salsa20/8 core: b = b + 8 rounds of Salsa20 over b (16 words).
void salsa20_8(Word* b) {
  Word x[16];
  std::memcpy(x, b, sizeof x);
  auto quarter = [&x](int a, int bb, int c, int d) {
    x[bb] ^= std::rotl(x[a] + x[d], 7);
    x[c] ^= std::rotl(x[bb] + x[a], 9);
    x[d] ^= std::rotl(x[c] + x[bb], 13);
    x[a] ^= std::rotl(x[d] + x[c], 18);
  };
  for (int i = 0; i < 8; i += 2) {
    quarter(0, 4, 8, 12);  // columns
    quarter(5, 9, 13, 1);
    quarter(10, 14, 2, 6);
    quarter(15, 3, 7, 11);
    quarter(0, 1, 2, 3);  // rows
    quarter(5, 6, 7, 4);
    quarter(10, 11, 8, 9);
    quarter(15, 12, 13, 14);
  }
  for (int i = 0; i < 16; ++i) b[i] += x[i];
}

// out = BlockMix(in) over 2r blocks of 16 words; `in` and `out` do not overlap.
void block_mix(const Word* in, Word* out, std::uint32_t r) {
  Word x[16];
  std::memcpy(x, in + (2 * r - 1) * 16, sizeof x);
  for (std::uint32_t i = 0; i < 2 * r; ++i) {
    for (int k = 0; k < 16; ++k) x[k] ^= in[i * 16 + k];
    salsa20_8(x);
    // Even blocks go to the first half, odd ones to the second.
    std::memcpy(out + ((i / 2) + (i % 2) * r) * 16, x, sizeof x);
  }
}

// V[j] for a V that keeps only every `stride`-th entry: the stored V[j - j % stride] advanced
// j % stride BlockMix steps, in `t0`/`t1`; returns a pointer to the result.
const Word* v_entry(const Word* v, std::uint64_t j, std::uint32_t stride, std::uint32_t r, Word* t0,
                    Word* t1) {
  const std::size_t words = 32 * static_cast<std::size_t>(r);
  const Word* cur = v + (j / stride) * words;
  for (std::uint64_t s = j % stride; s > 0; --s) {
    block_mix(cur, t0, r);
    cur = t0;
    std::swap(t0, t1);
  }
  return cur;
}

// ROMix on one lane of 32r words, in place, with `v` of ceil(n/stride)·32r words as scratch:
// the time-memory trade-off keeps every stride-th V entry and recomputes the others.
void ro_mix(Word* lane, std::uint32_t r, std::uint64_t n, std::uint32_t stride, Word* v) {
  const std::size_t words = 32 * static_cast<std::size_t>(r);
  std::vector<Word> scratch(3 * words);
  Word* x = lane;
  Word* y = scratch.data();
  for (std::uint64_t i = 0; i < n; ++i) {
    if (i % stride == 0)
      std::memcpy(v + (i / stride) * words, x, words * sizeof(Word));
    block_mix(x, y, r);
    std::swap(x, y);
  }
  Word* t0 = scratch.data() + words;
  Word* t1 = scratch.data() + 2 * words;
  for (std::uint64_t i = 0; i < n; ++i) {
    const Word* last = x + (2 * r - 1) * 16;
    std::uint64_t j = ((static_cast<std::uint64_t>(last[1]) << 32) | last[0]) & (n - 1);
    const Word* vj = v_entry(v, j, stride, r, t0, t1);
    for (std::size_t k = 0; k < words; ++k) x[k] ^= vj[k];
    block_mix(x, y, r);
    std::swap(x, y);
  }
  if (x != lane)
    std::memcpy(lane, x, words * sizeof(Word));
}

void load_words(const unsigned char* in, Word* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i, in += 4)
    out[i] = Word{in[0]} | Word{in[1]} << 8 | Word{in[2]} << 16 | Word{in[3]} << 24;
}

void store_words(const Word* in, unsigned char* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i, out += 4) {
    for (int k = 0; k < 4; ++k) out[k] = static_cast<unsigned char>(in[i] >> (8 * k));
  }
}

bool pbkdf2(std::string_view password, const unsigned char* salt, std::size_t salt_len,
            unsigned char* out, std::size_t out_len) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt,
                           static_cast<int>(salt_len), 1, EVP_sha256(), static_cast<int>(out_len),
                           out) == 1;
}

// Runs ROMix on lanes claimed from `next` until none is left; claims none when the scratch
// memory cannot be allocated.
void run_lanes(std::vector<Word>& lanes, std::uint32_t r, std::uint64_t n, std::uint32_t p,
               std::uint32_t stride, std::atomic<std::uint32_t>& next) {
  const std::size_t words = 32 * static_cast<std::size_t>(r);
  const std::uint64_t entries = (n + stride - 1) / stride;
  std::unique_ptr<Word[]> v(new (std::nothrow) Word[entries * words]);
  if (!v)
    return;
  for (std::uint32_t i = next++; i < p; i = next++)
    ro_mix(lanes.data() + i * words, r, n, stride, v.get());
}

}  // namespace

Result<void> scrypt_parallel(std::string_view password, std::span<const std::byte> salt,
                             std::uint64_t n, std::uint32_t r, std::uint32_t p,
                             std::span<std::byte> out, unsigned max_threads,
                             std::uint32_t v_stride) {
  const std::uint32_t stride = std::max<std::uint32_t>(v_stride, 1);
  const std::size_t words = 32 * static_cast<std::size_t>(r);
  std::vector<unsigned char> b(words * 4 * p);
  auto* salt_bytes = reinterpret_cast<const unsigned char*>(salt.data());
  if (!pbkdf2(password, salt_bytes, salt.size(), b.data(), b.size()))
    return fail(Errc::kIo, "scrypt: PBKDF2 failed");
  std::vector<Word> lanes(words * p);
  load_words(b.data(), lanes.data(), lanes.size());

  unsigned threads = max_threads != 0 ? max_threads : std::thread::hardware_concurrency();
  threads = std::clamp<unsigned>(threads, 1, p);
  std::atomic<std::uint32_t> next{0};
  {
    std::vector<std::jthread> helpers;
    for (unsigned t = 1; t < threads; ++t)
      helpers.emplace_back([&] { run_lanes(lanes, r, n, p, stride, next); });
    run_lanes(lanes, r, n, p, stride, next);
  }
  // A thread that could not allocate its scratch memory took no lane, and one that could
  // went on until every lane was done: lanes are left only when no thread could allocate.
  if (next.load() < p)
    return fail(Errc::kIo, "scrypt: out of memory");
  store_words(lanes.data(), b.data(), lanes.size());
  if (!pbkdf2(password, b.data(), b.size(), reinterpret_cast<unsigned char*>(out.data()),
              out.size()))
    return fail(Errc::kIo, "scrypt: PBKDF2 failed");
  return {};
}

}  // namespace coffer::repo
