// zstd framing as restic uses it (restic-format.md §5).
//
// Thread contract: stateless functions; each call uses its own (pooled) context.
#pragma once

#include "repo/core/bytes.h"
#include "repo/core/error.h"

namespace coffer::repo {

// Decompresses one or more zstd frames. `expected_size` (0 = unknown) bounds the output and
// must match when given. Errors: kCorrupt.
Result<Bytes> zstd_decompress(ByteSpan frame, std::size_t expected_size = 0);

// Decompresses one or more zstd frames into `out`, whose size the output must match exactly.
// Errors: kCorrupt.
Result<void> zstd_decompress_into(ByteSpan frame, std::span<std::byte> out);

// Compresses `data` into one frame without checksum, content size included.
Result<Bytes> zstd_compress(ByteSpan data, int level = 3);

// Decodes the plaintext of an "unpacked" file (index, snapshot, lock) per repo version:
// v1: as is; v2: '{'/'[' first → as is, 0x02 → zstd, else error. Errors: kCorrupt.
Result<Bytes> decode_unpacked(unsigned repo_version, Bytes plain);

// Encodes the plaintext of an unpacked file: v1 as is; v2: 0x02 ‖ zstd frame.
Result<Bytes> encode_unpacked(unsigned repo_version, ByteSpan json);

}  // namespace coffer::repo
