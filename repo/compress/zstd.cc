#include "repo/compress/zstd.h"

#include <memory>
#include <string>

#include <zstd.h>

namespace coffer::repo {
namespace {

struct DCtxFree {
  void operator()(ZSTD_DCtx* p) const noexcept { ZSTD_freeDCtx(p); }
};
struct CCtxFree {
  void operator()(ZSTD_CCtx* p) const noexcept { ZSTD_freeCCtx(p); }
};

constexpr std::size_t kMaxUnknownSize = std::size_t{1} << 32;  // 4 GiB sanity cap

ZSTD_DCtx* thread_dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

Result<Bytes> decompress_streaming(ByteSpan frame) {
  Bytes out;
  ZSTD_DCtx* ctx = thread_dctx();
  ZSTD_DCtx_reset(ctx, ZSTD_reset_session_only);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  std::size_t chunk = std::max<std::size_t>(frame.size() * 4, 64 * 1024);
  std::size_t rc = 1;
  while (in.pos < in.size || rc != 0) {
    std::size_t old = out.size();
    out.resize(old + chunk);
    ZSTD_outBuffer ob{out.data() + old, chunk, 0};
    rc = ZSTD_decompressStream(ctx, &ob, &in);
    out.resize(old + ob.pos);
    if (ZSTD_isError(rc))
      return fail(Errc::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rc));
    if (in.pos == in.size && ob.pos == 0 && rc != 0)
      return fail(Errc::kCorrupt, "zstd: truncated frame");
    if (out.size() > kMaxUnknownSize)
      return fail(Errc::kCorrupt, "zstd: output too large");
  }
  return out;
}

}  // namespace

Result<Bytes> zstd_decompress(ByteSpan frame, std::size_t expected_size) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR)
    return fail(Errc::kCorrupt, "zstd: not a zstd frame");
  if (expected_size == 0 && declared == ZSTD_CONTENTSIZE_UNKNOWN)
    return decompress_streaming(frame);
  std::size_t size = expected_size != 0 ? expected_size : static_cast<std::size_t>(declared);
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != size) {
    return fail(Errc::kCorrupt, "zstd: content size " + std::to_string(declared) +
                                    " differs from expected " + std::to_string(size));
  }
  if (size > kMaxUnknownSize)
    return fail(Errc::kCorrupt, "zstd: declared size too large");
  Bytes out(size + 1);  // one spare byte detects output longer than expected
  std::size_t rc =
      ZSTD_decompressDCtx(thread_dctx(), out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(rc))
    return fail(Errc::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rc));
  if (rc != size) {
    return fail(Errc::kCorrupt, "zstd: decompressed " + std::to_string(rc) + " bytes, expected " +
                                    std::to_string(size));
  }
  out.resize(size);
  return out;
}

Result<void> zstd_decompress_into(ByteSpan frame, std::span<std::byte> out) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR)
    return fail(Errc::kCorrupt, "zstd: not a zstd frame");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != out.size()) {
    return fail(Errc::kCorrupt, "zstd: content size " + std::to_string(declared) +
                                    " differs from expected " + std::to_string(out.size()));
  }
  // Output longer than `out` fails with "destination buffer too small".
  std::size_t rc =
      ZSTD_decompressDCtx(thread_dctx(), out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(rc))
    return fail(Errc::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rc));
  if (rc != out.size()) {
    return fail(Errc::kCorrupt, "zstd: decompressed " + std::to_string(rc) + " bytes, expected " +
                                    std::to_string(out.size()));
  }
  return {};
}

Result<Bytes> zstd_compress(ByteSpan data, int level) {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  ZSTD_CCtx_reset(ctx.get(), ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_contentSizeFlag, 1);
  Bytes out(ZSTD_compressBound(data.size()));
  std::size_t rc = ZSTD_compress2(ctx.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(rc))
    return fail(Errc::kIo, std::string("zstd: ") + ZSTD_getErrorName(rc));
  out.resize(rc);
  return out;
}

Result<Bytes> decode_unpacked(unsigned repo_version, Bytes plain) {
  if (repo_version < 2 || plain.empty())
    return plain;
  auto first = std::to_integer<unsigned char>(plain[0]);
  if (first == '{' || first == '[')
    return plain;
  if (first != 2) {
    return fail(Errc::kCorrupt, "unsupported encoding format " + std::to_string(first));
  }
  return zstd_decompress(ByteSpan(plain).subspan(1));
}

Result<Bytes> encode_unpacked(unsigned repo_version, ByteSpan json) {
  if (repo_version < 2)
    return Bytes(json.begin(), json.end());
  COFFER_ASSIGN_OR_RETURN(Bytes frame, zstd_compress(json));
  Bytes out;
  out.reserve(frame.size() + 1);
  out.push_back(std::byte{2});
  out.insert(out.end(), frame.begin(), frame.end());
  return out;
}

}  // namespace coffer::repo
