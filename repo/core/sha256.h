// Sha256: an incremental SHA-256, for files that are hashed while they are written (a pack
// streamed into a temporary file is named by the hash of all its bytes, §6).
//
// Thread contract: a Sha256 is a plain object; callers serialize access to one. A moved-from
// hasher may only be destroyed or assigned to.
// Ownership: owns its OpenSSL digest context (freed with the object).
#pragma once

#include <memory>

#include "repo/core/bytes.h"
#include "repo/core/id.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this public header

namespace coffer::repo {

class Sha256 {
 public:
  Sha256();  // aborts if OpenSSL cannot allocate or initialise SHA-256 (out of memory)
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();

  // Adds `data` to the hashed stream.
  void update(ByteSpan data);
  // The SHA-256 of everything added since construction or the last finish(); the hasher
  // starts over afterwards. finish() on a fresh hasher returns the hash of no bytes.
  Id finish();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const noexcept;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

}  // namespace coffer::repo
