#include "repo/core/sha256.h"

#include <array>
#include <cstdlib>

#include <openssl/evp.h>

namespace coffer::repo {
namespace {

void init_or_abort(EVP_MD_CTX* ctx) {
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1)
    std::abort();  // only on allocation failure: like bad_alloc, a programmer-visible stop
}

}  // namespace

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const noexcept { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { init_or_abort(ctx_.get()); }
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

void Sha256::update(ByteSpan data) {
  if (!data.empty() && EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1)
    std::abort();  // cannot fail for SHA-256 with an initialised context
}

Id Sha256::finish() {
  std::array<std::byte, Id::kSize> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != Id::kSize)
    std::abort();
  init_or_abort(ctx_.get());
  return Id(out);
}

}  // namespace coffer::repo
