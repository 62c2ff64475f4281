#include "repo/backend/fault_backend.h"

#include <thread>
#include <tuple>
#include <vector>

namespace coffer::repo {

void FaultBackend::delay() const {
  long ms = latency_ms_;
  if (ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void FaultBackend::break_file(const Handle& h) {
  std::scoped_lock lock(mutex_);
  broken_.insert({h.kind, h.name});
}

void FaultBackend::clear_broken() {
  std::scoped_lock lock(mutex_);
  broken_.clear();
  corrupt_.clear();
}

void FaultBackend::corrupt_byte(const Handle& h, std::uint64_t at) {
  std::scoped_lock lock(mutex_);
  corrupt_.insert({h.kind, h.name, at});
}

Result<Bytes> FaultBackend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  COFFER_ASSIGN_OR_RETURN(std::vector<std::uint64_t> flips, before_load(h));
  COFFER_ASSIGN_OR_RETURN(Bytes data, inner_->load(h, offset, length));
  apply_flips(flips, offset, data);
  return data;
}

Result<SharedBytes> FaultBackend::load_shared(const Handle& h, std::uint64_t offset,
                                              std::uint64_t length) {
  COFFER_ASSIGN_OR_RETURN(std::vector<std::uint64_t> flips, before_load(h));
  if (flips.empty())
    return inner_->load_shared(h, offset, length);
  COFFER_ASSIGN_OR_RETURN(Bytes data, inner_->load(h, offset, length));  // a copy to flip
  apply_flips(flips, offset, data);
  auto owner = std::make_shared<const Bytes>(std::move(data));
  ByteSpan bytes(*owner);
  return SharedBytes{std::move(owner), bytes};
}

void FaultBackend::apply_flips(const std::vector<std::uint64_t>& flips, std::uint64_t offset,
                               Bytes& data) {
  for (std::uint64_t at : flips) {
    if (at >= offset && at < offset + data.size())
      data[at - offset] ^= std::byte{0x01};
  }
}

Result<std::vector<std::uint64_t>> FaultBackend::before_load(const Handle& h) {
  ++load_calls_;
  delay();
  if (failing_loads_.fetch_sub(1) > 0) {
    return fail(Errc::kIo, h.path() + ": injected transient failure", true);
  }
  std::vector<std::uint64_t> flips;
  {
    std::scoped_lock lock(mutex_);
    if (broken_.count({h.kind, h.name}) != 0) {
      return fail(Errc::kIo, h.path() + ": injected permanent failure");
    }
    for (const auto& [kind, name, at] : corrupt_) {
      if (kind == h.kind && name == h.name)
        flips.push_back(at);
    }
  }
  return flips;
}

Result<std::uint64_t> FaultBackend::stat(const Handle& h) {
  delay();
  return inner_->stat(h);
}

Result<void> FaultBackend::list(FileKind kind,
                                const std::function<Result<void>(const FileInfo&)>& fn) {
  delay();
  return inner_->list(kind, fn);
}

void FaultBackend::fail_saves(FileKind kind, int pass, int count, bool retryable) {
  std::scoped_lock lock(mutex_);
  save_fault_ = SaveFault{kind, pass, count, retryable};
}

Result<void> FaultBackend::injected_save_fault(const Handle& h) {
  std::scoped_lock lock(mutex_);
  if (save_fault_ && save_fault_->kind == h.kind) {
    if (save_fault_->pass > 0) {
      --save_fault_->pass;
    } else if (save_fault_->count > 0) {
      --save_fault_->count;
      return fail(Errc::kIo, h.path() + ": injected save failure", save_fault_->retryable);
    }
  }
  return {};
}

Result<void> FaultBackend::save(const Handle& h, ByteSpan data) {
  delay();
  COFFER_TRY(injected_save_fault(h));
  return inner_->save(h, data);
}

// Forwards to the inner backend's PendingFile; commit first consults fail_saves.
class FaultPendingFile final : public PendingFile {
 public:
  FaultPendingFile(FaultBackend& owner, std::unique_ptr<PendingFile> inner)
      : owner_(owner), inner_(std::move(inner)) {}
  Result<void> append(ByteSpan data) override {
    if (!inner_)
      return fail(Errc::kInvalidArgument, "append to an abandoned file");
    return inner_->append(data);
  }
  Result<void> commit(const Handle& h) override {
    if (!inner_)
      return fail(Errc::kInvalidArgument, h.path() + ": commit of an abandoned file");
    owner_.delay();
    auto injected = owner_.injected_save_fault(h);
    if (!injected && !injected.error().retryable)
      inner_.reset();  // a permanent failure abandons the file, as the contract says
    COFFER_TRY(injected);
    return inner_->commit(h);
  }

 private:
  FaultBackend& owner_;  // outlives this file (backend.h contract)
  std::unique_ptr<PendingFile> inner_;
};

Result<std::unique_ptr<PendingFile>> FaultBackend::begin_file(FileKind kind) {
  COFFER_ASSIGN_OR_RETURN(std::unique_ptr<PendingFile> inner, inner_->begin_file(kind));
  return std::unique_ptr<PendingFile>(std::make_unique<FaultPendingFile>(*this, std::move(inner)));
}

Result<void> FaultBackend::remove(const Handle& h) {
  delay();
  return inner_->remove(h);
}

}  // namespace coffer::repo
