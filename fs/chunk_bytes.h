// ChunkBytes: the decoded bytes of one chunk, in a buffer that is not zero-filled when
// allocated (the decoder overwrites every byte: a cold read of 1 GiB spent ~6% of its CPU
// zero-filling buffers that were about to be overwritten).
//
// Thread contract: written by one thread before it is shared; immutable afterwards.
// Ownership: owns its buffer; chunks are shared as ChunkRef (shared_ptr<const ChunkBytes>).
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "repo/core/bytes.h"

namespace coffer::fs {

class ChunkBytes {
 public:
  enum class Fill { kUninitialized, kZero };

  explicit ChunkBytes(std::size_t size, Fill fill = Fill::kUninitialized)
      : data_(fill == Fill::kZero ? new std::byte[size]() : new std::byte[size]), size_(size) {}

  [[nodiscard]] std::byte* data() { return data_.get(); }
  [[nodiscard]] const std::byte* data() const { return data_.get(); }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] const std::byte* begin() const { return data_.get(); }
  [[nodiscard]] const std::byte* end() const { return data_.get() + size_; }
  [[nodiscard]] std::span<std::byte> span() { return {data_.get(), size_}; }
  operator repo::ByteSpan() const { return {data_.get(), size_}; }  // NOLINT: a view

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t size_;
};

using ChunkRef = std::shared_ptr<const ChunkBytes>;

}  // namespace coffer::fs
