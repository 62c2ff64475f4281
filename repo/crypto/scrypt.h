// scrypt (RFC 7914) with its p independent ROMix lanes computed on several threads.
//
// restic's key files use N=2^15, r=8, p=6 (or whatever restic calibrated): six lanes of
// 32 MiB each, which OpenSSL and Go compute one after the other. The lanes only meet in the
// final PBKDF2, so computing them concurrently gives the same bytes in a fraction of the
// time: every command pays this derivation once when it opens a repository.
//
// Thread contract: a pure function; it starts and joins its own threads.
// Memory: at most `max_threads` lanes of 128·r·ceil(N / v_stride) bytes at once. With
// v_stride k, ROMix stores only every k-th entry of V and recomputes a missing one from the
// nearest stored entry (the classic time-memory trade-off: k=2 halves the memory for about
// a quarter more work); the result is the same bytes for every k.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "repo/core/error.h"

namespace coffer::repo {

// Writes scrypt(password, salt, N=n, r, p) into `out` (any length). REQUIRES: n a power of
// two >= 2, r >= 1, p >= 1, r·p < 2^30, n < 2^(16·r) and the lanes' memory allocatable
// (the caller bounds it). `max_threads` lanes run at once (0: one per lane, up to the
// number of cores); `v_stride` (0 counts as 1) trades memory for time as above. Errors: kIo
// when OpenSSL's PBKDF2 fails or memory runs out.
Result<void> scrypt_parallel(std::string_view password, std::span<const std::byte> salt,
                             std::uint64_t n, std::uint32_t r, std::uint32_t p,
                             std::span<std::byte> out, unsigned max_threads = 0,
                             std::uint32_t v_stride = 1);

}  // namespace coffer::repo
