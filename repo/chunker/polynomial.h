// Polynomials over GF(2) packed in a uint64 (bit i = coefficient of x^i), as restic's chunker
// uses them (restic-format.md §10).
//
// Thread contract: pure functions, except random_polynomial (reads the system RNG).
#pragma once

#include <cstdint>

#include "repo/core/error.h"

namespace coffer::repo {

using Polynomial = std::uint64_t;

// Index of the highest set bit; -1 for 0.
int polynomial_degree(Polynomial p);

// True when `p` is irreducible over GF(2) (Ben-Or's test, as restic's chunker does it).
bool polynomial_irreducible(Polynomial p);

// A random irreducible polynomial of degree 53, drawn as restic's `init` draws one.
// Errors: kIo when the RNG fails; kInternal-style kIo if none is found in 10^6 draws.
Result<Polynomial> random_polynomial();

}  // namespace coffer::repo
