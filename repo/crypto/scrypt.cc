// scrypt with concurrent lanes (see scrypt.h). BlockMix and ROMix follow RFC 7914 §4-5;
// the lanes work on 32-bit little-endian words.
#include "repo/crypto/scrypt.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace coffer::repo {
namespace {

using Word = std::uint32_t;

#if defined(__SSE2__)
// Salsa20/8 on SSE2 registers. Every 16-word block is kept in the diagonal order below
// (set up once by load_words, undone by store_words), so that one register holds four words
// that a quarter-round step updates together and a round needs only three shuffles.
constexpr bool kDiagonal = true;
// Registers: (x0 x5 x10 x15) (x4 x9 x14 x3) (x8 x13 x2 x7) (x12 x1 x6 x11).
constexpr std::array<int, 16> kOrder = {0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11};

inline __m128i rotl(__m128i v, int n) {
  return _mm_or_si128(_mm_slli_epi32(v, n), _mm_srli_epi32(v, 32 - n));
}

// One half of a double round: the columns are (x0, a, x2, b) = (x0, x1, x2, x3); the rows,
// after the shuffles, are the same steps with x1 and x3 swapped.
inline void half_round(__m128i& x0, __m128i& a, __m128i& x2, __m128i& b) {
  a = _mm_xor_si128(a, rotl(_mm_add_epi32(x0, b), 7));
  x2 = _mm_xor_si128(x2, rotl(_mm_add_epi32(a, x0), 9));
  b = _mm_xor_si128(b, rotl(_mm_add_epi32(x2, a), 13));
  x0 = _mm_xor_si128(x0, rotl(_mm_add_epi32(b, x2), 18));
}

// x = x + 8 rounds of Salsa20 over x (four registers in the diagonal order).
inline void salsa20_8(__m128i& x0, __m128i& x1, __m128i& x2, __m128i& x3) {
  const __m128i y0 = x0, y1 = x1, y2 = x2, y3 = x3;
  for (int i = 0; i < 8; i += 2) {
    half_round(x0, x1, x2, x3);  // columns
    x1 = _mm_shuffle_epi32(x1, 0x93);
    x2 = _mm_shuffle_epi32(x2, 0x4E);
    x3 = _mm_shuffle_epi32(x3, 0x39);
    half_round(x0, x3, x2, x1);  // rows
    x1 = _mm_shuffle_epi32(x1, 0x39);
    x2 = _mm_shuffle_epi32(x2, 0x4E);
    x3 = _mm_shuffle_epi32(x3, 0x93);
  }
  x0 = _mm_add_epi32(x0, y0);
  x1 = _mm_add_epi32(x1, y1);
  x2 = _mm_add_epi32(x2, y2);
  x3 = _mm_add_epi32(x3, y3);
}

inline __m128i load4(const Word* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void store4(Word* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

// out = BlockMix(in) over 2r blocks of 16 words; `in` and `out` do not overlap.
void block_mix(const Word* in, Word* out, std::uint32_t r) {
  const Word* last = in + (2 * r - 1) * 16;
  __m128i x0 = load4(last), x1 = load4(last + 4), x2 = load4(last + 8), x3 = load4(last + 12);
  for (std::uint32_t i = 0; i < 2 * r; ++i) {
    const Word* b = in + i * 16;
    x0 = _mm_xor_si128(x0, load4(b));
    x1 = _mm_xor_si128(x1, load4(b + 4));
    x2 = _mm_xor_si128(x2, load4(b + 8));
    x3 = _mm_xor_si128(x3, load4(b + 12));
    salsa20_8(x0, x1, x2, x3);
    // Even blocks go to the first half, odd ones to the second.
    Word* o = out + ((i / 2) + (i % 2) * r) * 16;
    store4(o, x0);
    store4(o + 4, x1);
    store4(o + 8, x2);
    store4(o + 12, x3);
  }
}
#else
constexpr bool kDiagonal = false;
constexpr std::array<int, 16> kOrder = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

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
#endif

// Where word 1 of a block lies in the order blocks are kept in (Integerify reads words 0, 1).
constexpr int kWord1 = kDiagonal ? 13 : 1;
static_assert(kOrder[0] == 0 && kOrder[kWord1] == 1);

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
    std::uint64_t j = ((static_cast<std::uint64_t>(last[kWord1]) << 32) | last[0]) & (n - 1);
    const Word* vj = v_entry(v, j, stride, r, t0, t1);
    for (std::size_t k = 0; k < words; ++k) x[k] ^= vj[k];
    block_mix(x, y, r);
    std::swap(x, y);
  }
  if (x != lane)
    std::memcpy(lane, x, words * sizeof(Word));
}

// Little-endian bytes to words, each 16-word block in the order block_mix keeps (kOrder).
void load_words(const unsigned char* in, Word* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* w = in + 4 * ((i & ~std::size_t{15}) + kOrder[i & 15]);
    out[i] = Word{w[0]} | Word{w[1]} << 8 | Word{w[2]} << 16 | Word{w[3]} << 24;
  }
}

// The inverse of load_words.
void store_words(const Word* in, unsigned char* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    unsigned char* w = out + 4 * ((i & ~std::size_t{15}) + kOrder[i & 15]);
    for (int k = 0; k < 4; ++k) w[k] = static_cast<unsigned char>(in[i] >> (8 * k));
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
