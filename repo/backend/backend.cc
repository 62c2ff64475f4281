#include "repo/backend/backend.h"

#include <mutex>

namespace coffer::repo {
namespace {

std::mutex usage_mutex;
std::vector<std::pair<std::string, BackendUsage>>& usage_records() {
  static std::vector<std::pair<std::string, BackendUsage>> records;
  return records;
}

// WriteBackend::begin_file's default: the bytes stay in memory until commit() saves them,
// and stay there after a retryable save failure so that commit can be called again.
class BufferedPendingFile final : public PendingFile {
 public:
  BufferedPendingFile(WriteBackend& backend, FileKind kind) : backend_(backend), kind_(kind) {}

  Result<void> append(ByteSpan data) override {
    if (state_ != State::kOpen)
      return fail(Errc::kInvalidArgument, "append to a committed or abandoned file");
    data_.insert(data_.end(), data.begin(), data.end());
    return {};
  }

  Result<void> commit(const Handle& h) override {
    if (state_ != State::kOpen || h.kind != kind_) {
      return fail(Errc::kInvalidArgument,
                  h.path() + ": commit of a committed, abandoned or other-kind file");
    }
    auto saved = backend_.save(h, data_);
    if (saved || !saved.error().retryable) {
      state_ = saved ? State::kCommitted : State::kAbandoned;
      data_ = Bytes();
    }
    return saved;
  }

 private:
  enum class State { kOpen, kCommitted, kAbandoned };
  WriteBackend& backend_;  // outlives this file (backend.h contract)
  const FileKind kind_;
  Bytes data_;
  State state_ = State::kOpen;
};

}  // namespace

Result<SharedBytes> ReadBackend::load_shared(const Handle& h, std::uint64_t offset,
                                             std::uint64_t length) {
  COFFER_ASSIGN_OR_RETURN(Bytes data, load(h, offset, length));
  auto owner = std::make_shared<const Bytes>(std::move(data));
  ByteSpan bytes(*owner);
  return SharedBytes{std::move(owner), bytes};
}

Result<std::unique_ptr<PendingFile>> WriteBackend::begin_file(FileKind kind) {
  return std::unique_ptr<PendingFile>(std::make_unique<BufferedPendingFile>(*this, kind));
}

const char* file_kind_dir(FileKind kind) {
  switch (kind) {
    case FileKind::kConfig:
      return "";
    case FileKind::kKey:
      return "keys";
    case FileKind::kLock:
      return "locks";
    case FileKind::kSnapshot:
      return "snapshots";
    case FileKind::kIndex:
      return "index";
    case FileKind::kPack:
      return "data";
  }
  return "";
}

std::string Handle::path() const {
  if (kind == FileKind::kConfig)
    return "config";
  std::string dir = file_kind_dir(kind);
  if (kind == FileKind::kPack && name.size() >= 2)
    return dir + "/" + name.substr(0, 2) + "/" + name;
  return dir + "/" + name;
}

Result<void> list_config(ReadBackend& backend,
                         const std::function<Result<void>(const FileInfo&)>& fn) {
  auto size = backend.stat(Handle{FileKind::kConfig, "config"});
  if (!size)
    return size.error().code == Errc::kNotFound ? Result<void>{} : fail(size.error());
  return fn(FileInfo{"config", *size});
}

void record_backend_usage(const std::string& location, const BackendUsage& usage) {
  std::lock_guard lock(usage_mutex);
  usage_records().emplace_back(location, usage);
}

std::vector<std::pair<std::string, BackendUsage>> recorded_backend_usage() {
  std::lock_guard lock(usage_mutex);
  return usage_records();
}

}  // namespace coffer::repo
