#include "repo/chunker/polynomial.h"

#include <array>
#include <bit>
#include <cstddef>
#include <utility>

#include "repo/core/bytes.h"
#include "repo/crypto/crypto.h"

namespace coffer::repo {
namespace {

constexpr Polynomial kX = 2;  // the polynomial x

// a mod p. REQUIRES: p != 0.
Polynomial mod(Polynomial a, Polynomial p) {
  const int dp = polynomial_degree(p);
  for (int da = polynomial_degree(a); da >= dp; da = polynomial_degree(a)) a ^= p << (da - dp);
  return a;
}

// a·b mod p, for a and b already reduced mod p (Horner over the bits of b).
Polynomial mul_mod(Polynomial a, Polynomial b, Polynomial p) {
  const int dp = polynomial_degree(p);
  Polynomial r = 0;
  for (int i = polynomial_degree(b); i >= 0; --i) {
    r <<= 1;  // r < 2^dp, so this cannot overflow for dp <= 63
    if ((r >> dp) & 1)
      r ^= p;
    if ((b >> i) & 1)
      r ^= a;
  }
  return r;
}

Polynomial gcd(Polynomial a, Polynomial b) {
  while (b != 0) {
    a = mod(a, b);
    std::swap(a, b);
  }
  return a;
}

constexpr int kDrawsPerRead = 32;
constexpr int kMaxDraws = 1'000'000;  // restic's randPolMaxTries

}  // namespace

int polynomial_degree(Polynomial p) { return 63 - std::countl_zero(p); }

// Ben-Or: p of degree n is irreducible iff gcd(p, x^(2^i) - x mod p) == 1 for i = 1 .. n/2.
// x^(2^i) is kept between rounds (one squaring per round) rather than recomputed as restic
// does; the values are the same. Unlike restic, constants (degree < 1) are not irreducible.
bool polynomial_irreducible(Polynomial p) {
  const int n = polynomial_degree(p);
  if (n < 1)
    return false;
  Polynomial x_pow = mod(kX, p);  // x^(2^0)
  for (int i = 1; i <= n / 2; ++i) {
    x_pow = mul_mod(x_pow, x_pow, p);
    if (gcd(p, x_pow ^ kX) != 1)
      return false;  // n >= 2 here, so x is reduced
  }
  return true;
}

// Each draw is 8 random bytes read as a little-endian uint64, as restic's DerivePolynomial
// reads them; the RNG is asked for kDrawsPerRead draws at a time.
Result<Polynomial> random_polynomial() {
  std::array<std::byte, 8 * kDrawsPerRead> buf;
  for (int draw = 0; draw < kMaxDraws; ++draw) {
    const int slot = draw % kDrawsPerRead;
    if (slot == 0)
      COFFER_TRY_CTX(random_bytes(buf), "drawing a chunker polynomial");
    Polynomial f = load_le64(buf.data() + 8 * static_cast<std::size_t>(slot));
    f &= (Polynomial{1} << 54) - 1;  // keep bits 0..53
    f |= (Polynomial{1} << 53) | 1;  // degree 53, not divisible by x
    if (polynomial_irreducible(f))
      return f;
  }
  return fail(Errc::kIo, "no irreducible chunker polynomial found in 10^6 draws");
}

}  // namespace coffer::repo
