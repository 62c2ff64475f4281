// MemBackend: a whole repository in RAM, for unit tests and dry runs.
//
// Thread contract: every method is safe to call concurrently (one mutex over the map;
// copies are made under the lock, never returned by reference).
#pragma once

#include <map>
#include <mutex>

#include "repo/backend/backend.h"

namespace coffer::repo {

class MemBackend final : public WriteBackend {
 public:
  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override { return "mem:"; }
  [[nodiscard]] BackendProperties properties() const override { return {8, true}; }
  Result<void> save(const Handle& h, ByteSpan data) override;
  Result<void> remove(const Handle& h) override;
  Result<void> create() override { return {}; }

 private:
  std::mutex mutex_;  // guards files_
  std::map<std::pair<FileKind, std::string>, Bytes> files_;
};

}  // namespace coffer::repo
