// FaultBackend: a decorator that injects latency, errors and corrupted bytes, for tests.
//
// Thread contract: safe to call concurrently; the fault settings are atomics or guarded
// by a mutex, and may be changed while other threads use the backend.
// Ownership: owns the wrapped backend.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "repo/backend/backend.h"

namespace coffer::repo {

class FaultPendingFile;

class FaultBackend final : public WriteBackend {
 public:
  explicit FaultBackend(std::unique_ptr<WriteBackend> inner) : inner_(std::move(inner)) {}

  // Every call sleeps this long first.
  void set_latency(std::chrono::milliseconds d) { latency_ms_ = d.count(); }
  // The next `n` load() calls fail with a retryable kIo error.
  void fail_next_loads(int n) { failing_loads_ = n; }
  // Loads of this file fail with kIo (permanent) until cleared.
  void break_file(const Handle& h);
  void clear_broken();
  // Loads of this file return data with one byte flipped at file offset `at`.
  void corrupt_byte(const Handle& h, std::uint64_t at);
  // Saves of files of `kind`: the next `pass` calls go through, then `count` calls fail
  // with kIo (retryable or not) without storing anything. PendingFile commits count as
  // saves: a failed one leaves the inner file pending, so a retryable one can be retried.
  void fail_saves(FileKind kind, int pass, int count, bool retryable);
  // Number of load() calls made so far.
  [[nodiscard]] std::uint64_t load_calls() const { return load_calls_; }

  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  // The same faults as load() (and counted as a load), over the inner backend's load_shared.
  Result<SharedBytes> load_shared(const Handle& h, std::uint64_t offset,
                                  std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override { return "fault:" + inner_->location(); }
  // The inner backend's, except that with a latency set it is no longer local (it stands
  // for a distant one, and callers should plan for round trips).
  [[nodiscard]] BackendProperties properties() const override {
    BackendProperties p = inner_->properties();
    if (latency_ms_ > 0)
      p.local = false;
    return p;
  }
  Result<void> save(const Handle& h, ByteSpan data) override;
  // The inner backend's PendingFile (streamed for LocalBackend), with fail_saves applied
  // at commit.
  Result<std::unique_ptr<PendingFile>> begin_file(FileKind kind) override;
  Result<void> remove(const Handle& h) override;
  Result<void> create() override { return inner_->create(); }
  void prepare_writes() override { inner_->prepare_writes(); }
  [[nodiscard]] std::optional<BackendUsage> usage() const override { return inner_->usage(); }

 private:
  friend class FaultPendingFile;
  void delay() const;
  // Counts a load, waits the injected latency and applies injected failures; returns the
  // offsets whose bytes to flip.
  Result<std::vector<std::uint64_t>> before_load(const Handle& h);
  static void apply_flips(const std::vector<std::uint64_t>& flips, std::uint64_t offset,
                          Bytes& data);
  Result<void> injected_save_fault(const Handle& h);  // fail_saves bookkeeping

  std::unique_ptr<WriteBackend> inner_;
  std::atomic<long> latency_ms_{0};
  std::atomic<int> failing_loads_{0};
  std::atomic<std::uint64_t> load_calls_{0};
  std::mutex mutex_;  // guards broken_, corrupt_, save_fault_
  std::set<std::pair<FileKind, std::string>> broken_;
  std::set<std::tuple<FileKind, std::string, std::uint64_t>> corrupt_;
  struct SaveFault {
    FileKind kind = FileKind::kPack;
    int pass = 0, count = 0;
    bool retryable = false;
  };
  std::optional<SaveFault> save_fault_;
};

}  // namespace coffer::repo
